"""Dagster resources: the warehouse connection and the pipeline's run settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb


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
    """Where the activation config is ('' = TIDELINE_ACTIVATION_CONFIG or config/activation.yml)."""

    config_path: str = ""
    workers: int = 4  # concurrent batches per sync (they share the destination's rate limit)
    # DuckDB's memory limit while a sync runs (it spills to disk beyond it): with the engine's
    # bounded windows this keeps a sync's peak memory under 500 MB whatever the segment size
    memory_limit: str = "128MB"
