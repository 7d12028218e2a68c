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
