"""Tideline orchestration: the Dagster code location (see orchestration.definitions)."""
