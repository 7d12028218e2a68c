"""The demo world: generated data, the simulated audience, the demo shop, the local destinations.

Product code never imports this package; only the CLI's demo command (tideline/commands/demo.py)
and the tests do (tests/unit/test_layout.py enforces it).
"""
