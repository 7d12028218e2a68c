"""Dagster resources: the warehouse connection and the pipeline's run settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from activation.warehouse import DuckDBLimits


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writer at a time: every asset that
    writes through this resource is in the `warehouse` concurrency pool."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            con.execute("set TimeZone = 'UTC'")
            yield con
        finally:
            con.close()


class PipelineSettings(dg.ConfigurableResource):
    """Where the landing zone is and which date the marts are computed as of ('' = today)."""

    raw_dir: str
    as_of: str = ""


class MLSettings(dg.ConfigurableResource):
    """Where model artefacts live and the documented model settings."""

    models_dir: str
    churn_horizon_days: int = 90  # churn: no purchase in the next N days
    propensity_horizon_days: int = 30  # propensity: a purchase in the next N days
    clv_horizon_days: int = 365  # predicted_clv and expected_purchases cover this many days
    clv_holdout_days: int = 90  # held-out window for checking the CLV model
    training_cutoffs: int = 4
    cutoff_step_days: int = 30
    max_training_rows: int = 400_000
    at_risk_threshold: float = 0.5  # churn probability from which a customer is on the at-risk list
    drift_psi_warn: float = 0.2  # warn when the churn-score distribution moves more than this (PSI)
    seed: int = 42


class ActivationSettings(dg.ConfigurableResource):
    """Where the activation config is ('' = TIDELINE_ACTIVATION_CONFIG or config/activation.yml),
    and DuckDB's limits while a sync runs. Unset ('' / 0), the limits come from
    TIDELINE_DUCKDB_MEMORY_LIMIT, TIDELINE_DUCKDB_THREADS and TIDELINE_DUCKDB_TEMP_DIR, else the
    defaults in activation/warehouse.py (128MB, 2 threads, `<warehouse>.tmp`); DuckDB spills to
    the temp directory beyond the memory limit, and a sync that still runs out names the setting."""

    config_path: str = ""
    workers: int = 4  # concurrent batches per sync (they share the destination's rate limit)
    memory_limit: str = ""  # DuckDB size, e.g. 256MB or 1GB
    threads: int = 0
    temp_directory: str = ""

    def duckdb_limits(self) -> DuckDBLimits:
        return DuckDBLimits.resolve(self.memory_limit, self.threads, self.temp_directory)
