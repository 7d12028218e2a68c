"""The same dbt project on PostgreSQL and on Apache Spark gives the same marts as on DuckDB (issue 18).

A small demo (300 customers, 120 days) is loaded by the real landing loader into DuckDB and the
whole project is built there (`dbt build`: every model and data test) as of the demo's last day:
the reference. Its `landing.*` tables are then shipped as they are (tests/engines.py) to

- the test fixture's PostgreSQL server (COPY), and
- a local Spark session's warehouse folder (Parquet files registered as tables of a `landing`
  database; dbt-spark `method: session`),

and the project is built there with the same vars and as-of date. Every table of the `marts`
schema must then have the same columns, row count and checksum as on DuckDB (tests/engine_equality.py:
numbers by value, floats rounded, row order ignored); a failure names each table that differs
with sample rows. Nothing Python writes (ledger, journeys, ML scores) exists in any of the three
builds: the project builds those inputs empty everywhere. Each test prints its build times.

Outside CI, the PostgreSQL test skips without the server binaries (tests/integration/postgres.py)
and the Spark test without Java; with CI=true both fail instead (.ci/run installs them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests import engines
from tests.dbt.test_identity_resolution import RECURSIVE_CTE
from tests.engine_equality import TableDigest, compare
from tests.integration.postgres import postgres_dsn  # noqa: F401 (registers the session fixture)
from tideline.demo.data import generate_demo_data
from tideline.landing.loader import load_landing_zone

pytestmark = pytest.mark.slow  # a demo built with dbt on DuckDB, then on PostgreSQL and on Spark

CUSTOMERS, DAYS, SEED = 300, 120, 11
SCHEMA = "marts"


@dataclass(frozen=True)
class Reference:
    warehouse: Path
    as_of: str
    marts: dict[str, TableDigest]
    seconds: float


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """The demo loaded into DuckDB and built there: the marts every other engine must equal."""
    root = tmp_path_factory.mktemp("engines")
    raw = root / "raw"
    as_of = generate_demo_data(raw, customers=CUSTOMERS, days=DAYS, seed=SEED).end_date.isoformat()
    warehouse = root / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(raw, con)
    finally:
        con.close()
    seconds = engines.dbt_build("duckdb", as_of, root / "duckdb", env={"TIDELINE_WAREHOUSE": str(warehouse)})
    marts = engines.duckdb_digests(warehouse, SCHEMA)
    print(f"\nDuckDB: dbt build {seconds:.1f} s, {len(marts)} marts")
    yield Reference(warehouse, as_of, marts, seconds)


def assert_same_marts(engine: str, reference: Reference, built: dict[str, TableDigest]) -> None:
    # the demo must exercise the marts: most of them hold rows
    assert len(reference.marts) >= 40
    assert sum(1 for d in reference.marts.values() if d.rows) >= 30
    problems = compare(reference.marts, built)
    assert not problems, (
        f"{len(problems)} of {len(reference.marts)} marts differ on {engine}:\n" + "\n\n".join(problems)
    )


def test_identity_in_rounds_equals_the_recursive_cte_on_the_demo(reference: Reference) -> None:
    """The demo's duplicate accounts (about 3%) merge exactly as the former recursive CTE merged them."""
    con = duckdb.connect(str(reference.warehouse), read_only=True)
    try:
        rounds = set(con.execute("select * from intermediate.int_accounts_resolved").fetchall())
        recursive = set(con.execute(RECURSIVE_CTE, [20]).fetchall())
    finally:
        con.close()
    assert rounds == recursive
    assert sum(1 for _, _, size in rounds if size > 1) >= 2  # the demo does merge accounts


def test_postgres_builds_the_same_marts(
    reference: Reference, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn = engines.fresh_database(request.getfixturevalue("postgres_dsn"), "tideline_engines")
    shipped = engines.landing_to_postgres(reference.warehouse, dsn)
    assert shipped["events"] > 1000 and shipped["commerce_orders"] > 100
    seconds = engines.dbt_build(
        "postgres", reference.as_of, tmp_path / "postgres", env=engines.postgres_env(dsn)
    )
    built = engines.postgres_digests(dsn, SCHEMA)
    print(f"\nPostgreSQL: dbt build {seconds:.1f} s (DuckDB {reference.seconds:.1f} s), {len(built)} marts")
    assert_same_marts("PostgreSQL", reference, built)


def test_spark_builds_the_same_marts(reference: Reference, tmp_path: Path) -> None:
    missing = engines.java_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing}; CI must install Java (.ci/run)", pytrace=False)
        pytest.skip(f"{missing} to run the Spark build")
    spark_dir = tmp_path / "spark"
    shipped = engines.landing_to_spark(reference.warehouse, spark_dir)
    assert shipped["events"] > 1000
    seconds = engines.dbt_build("spark", reference.as_of, tmp_path / "dbt", env=engines.spark_env(spark_dir))
    built = engines.spark_digests(spark_dir, SCHEMA)
    print(f"\nSpark: dbt build {seconds:.1f} s (DuckDB {reference.seconds:.1f} s), {len(built)} marts")
    assert_same_marts("Spark", reference, built)
