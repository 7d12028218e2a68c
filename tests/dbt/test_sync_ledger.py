"""The ledger's columns are declared twice, tied here: activation/ledger.py's DDL creates the tables
(tideline_sync) on the first sync, and the dbt macro sync_ledger_columns() stands in for them, an
empty typed select, while they do not exist yet. Every ledger table dbt reads must have the same
columns, in the same order and of the same types, in both; adding a column to one fails this test
until the other follows.

The macro side is what dbt really compiles on a fresh warehouse (`dbt compile --inline` of
sync_ledger_relation() for each table of the tideline_sync source), typed by DuckDB itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from activation.ledger import SCHEMA, ensure_schema
from tideline.dbt_manifest import dbt_executable
from tideline.settings import DBT_PROJECT_DIR

MARKER = "-- ledger table: "


def _ledger_tables_dbt_reads(manifest: dict) -> list[str]:
    return sorted(s["name"] for s in manifest["sources"].values() if s["source_name"] == SCHEMA)


def _compiled_empty_relations(tables: list[str], tmp_path: Path) -> dict[str, str]:
    """{table: the select dbt compiles for it while the ledger does not exist}."""
    inline = "".join(
        f"\n{MARKER}{t}\nselect * from {{{{ sync_ledger_relation('{t}') }}}} as ledger" for t in tables
    )
    env = {
        **os.environ,
        "TIDELINE_WAREHOUSE": str(tmp_path / "fresh.duckdb"),  # no tideline_sync schema in it
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [dbt_executable(), "compile", "--quiet", "--inline", inline]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")]
    done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    chunks = done.stdout.split(MARKER)[1:]
    compiled = {chunk.split("\n", 1)[0].strip(): chunk.split("\n", 1)[1] for chunk in chunks}
    assert sorted(compiled) == tables, done.stdout[-3000:]
    return compiled


def _columns(con: duckdb.DuckDBPyConnection, select: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in con.execute(f"describe {select}").fetchall()]


@pytest.mark.slow
def test_the_dbt_stand_in_has_the_ledger_ddl_columns_and_types(dbt_manifest: Path, tmp_path: Path) -> None:
    tables = _ledger_tables_dbt_reads(json.loads(dbt_manifest.read_text()))
    assert {"delivery_log", "sync_runs"} <= set(tables)
    compiled = _compiled_empty_relations(tables, tmp_path)
    con = duckdb.connect()
    ensure_schema(con)
    for table in tables:
        assert "where 1 = 0" in compiled[table]  # the stand-in, not the table itself
        declared = _columns(con, f"{SCHEMA}.{table}")
        stand_in = _columns(con, compiled[table])
        assert stand_in == declared, (
            f"{SCHEMA}.{table}: dbt_project/macros/sync_ledger.sql declares {stand_in}, "
            f"activation/ledger.py {declared}; change both"
        )
