"""Tideline's plain-Python core: settings, landing, reporting, the CLI and the demo world.

Nothing here needs Dagster except the CLI, which runs the code location in orchestration/.
"""
