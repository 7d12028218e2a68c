"""Test helpers: write small landing zones and build them with the real loader and `dbt build`.

dbt's unit tests (`unit_tests:` in dbt_project/models) give every input of the model they test as a
fixture, so they pass or fail the same in every warehouse; they were about 40% of a small build's
time. One build runs them (tests/dbt/test_customer_marts.py, which checks that they all ran and
passed) and so does the demo pipeline's run (tests/e2e/test_demo_pipeline.py); every other build
skips them: `unit_tests=False` here, NO_DBT_UNIT_TESTS in the environment of a `tideline run`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import duckdb

from tideline.dbt_manifest import dbt_executable
from tideline.landing.loader import load_landing_zone
from tideline.settings import DBT_PROJECT_DIR

# dbt reads --exclude-resource-types from this variable in every command that takes it: the
# environment of a pipeline run (`tideline run`, Definitions) whose test needs no dbt unit tests
NO_DBT_UNIT_TESTS = {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test"}


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = columns or list(rows[0].keys())
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


class Warehouse:
    """A DuckDB warehouse built from a landing zone by the real loader and `dbt build`."""

    def __init__(self, path: Path):
        self.path = path

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def dicts(self, sql: str) -> list[dict]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            con.close()


def dbt_build(
    warehouse: Path,
    as_of: str,
    extra_vars: dict | None = None,
    select: str | None = None,
    unit_tests: bool = False,
) -> None:
    """`dbt build` (optionally `--select`) against the DuckDB file, as of a date, without dbt's unit
    tests unless asked (see the module docstring); fails with dbt's log."""
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    variables = json.dumps({"as_of": as_of, **(extra_vars or {})})
    command = [
        dbt_executable(),
        "build",
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--vars",
        variables,
        "--target-path",
        str(warehouse.parent / "dbt_target"),
    ]
    if select:
        command += ["--select", select]
    if not unit_tests:
        command += ["--exclude-resource-type", "unit_test"]
    done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")


def build_warehouse(
    raw_dir: Path, warehouse: Path, as_of: str, extra_vars: dict | None = None, unit_tests: bool = False
) -> Warehouse:
    """The landing zone loaded by the real loader, then `dbt build` (see dbt_build)."""
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(raw_dir, con)
    finally:
        con.close()
    dbt_build(warehouse, as_of, extra_vars, unit_tests=unit_tests)
    return Warehouse(warehouse)


def opted_in_segment(con: duckdb.DuckDBPyConnection, customers: int) -> duckdb.DuckDBPyConnection:
    """marts.dim_customers (`customers` customers c000, c001, ..., opted in to email and SMS, in UTC)
    and marts.segment of all of them with an email and a phone: what a sync needs to send."""
    con.execute("create schema if not exists marts")
    con.execute(
        """create table marts.dim_customers as
           select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id, true as email_opt_in,
                  true as sms_opt_in, 'UTC' as timezone
           from range(?) t(i)""",
        [customers],
    )
    con.execute(
        """create table marts.segment as
           select customer_id, customer_id || '@example.com' as email, '+4470000' || right(customer_id, 3) as phone
           from marts.dim_customers"""
    )
    return con
