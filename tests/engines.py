"""Build the dbt project on PostgreSQL and on Apache Spark from a DuckDB warehouse's landing zone.

The portability check of issue 18 (tests/dbt/test_engines.py) loads a small demo with the real
landing loader into DuckDB and builds the project there; this module then ships the very same
`landing.*` tables to another engine, builds the same project with the same vars there, and reads
every table of a schema back as an engine-neutral digest (tests/engine_equality.py):

- PostgreSQL: every landing table is created with the DuckDB column types mapped one to one
  (varchar stays text, so the staging models parse the same text) and filled with COPY through
  psycopg; dbt runs with the profile's `postgres` output (TIDELINE_PG_* variables from the DSN).
- Spark: DuckDB writes every landing table as Parquet, a local Spark session (a child process, so
  the JVM and its Derby metastore are gone before dbt starts its own) registers them as tables of a
  `landing` database in a spark-warehouse folder, and dbt runs with the profile's `spark` output
  (`method: session`, TIDELINE_SPARK_WAREHOUSE / TIDELINE_SPARK_METASTORE pointing at that folder).
  The built tables are read back by another Spark child process, which writes them as Parquet that
  DuckDB reads (the test process never starts a JVM).

Models that read tables Python writes (the ledger, journeys, ML scores...) see none on either
engine, as on the DuckDB reference: the build creates the empty ML tables itself and reads the
others as empty selects (macros/sync_ledger.sql). Run `python -m tests.engines spark-register
...` / `spark-export ...` are the child processes' entry points.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb

from tests.engine_equality import TableDigest, digest
from tideline.dbt_manifest import dbt_executable
from tideline.fingerprint import quote_identifier
from tideline.settings import DBT_PROJECT_DIR

LANDING = "landing"
# DuckDB's types of the landing loader's tables -> PostgreSQL's (anything else is refused, so a new
# landing column type fails loudly here instead of being shipped as text)
POSTGRES_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
}
SPARK_SESSION_TIMEZONE = "UTC"


def java_missing() -> str | None:
    """Why Spark cannot run here (no `java` on PATH, no pyspark), or None."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (`java` not on PATH, JAVA_HOME unset): apt-get install -y openjdk-17-jre-headless"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'dbt-spark[session]')"
    return None


def landing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of the DuckDB warehouse's landing schema, sorted."""
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by table_name",
        [LANDING],
    ).fetchall()
    return [name for (name,) in rows]


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        """select column_name, data_type from information_schema.columns
           where table_schema = ? and table_name = ? order by ordinal_position""",
        [schema, table],
    ).fetchall()


# ---------------------------------------------------------------- dbt on any target


def dbt_build(
    target: str,
    as_of: str,
    work: Path,
    env: Mapping[str, str] | None = None,
    extra_vars: Mapping[str, object] | None = None,
    select: str | None = None,
) -> float:
    """`dbt build` of the whole project or of `select` (dbt's unit tests left out: their fixtures are the same on
    every engine) with the profile's `target` output, as of a date; its own target and log
    folders under `work`. Returns the seconds it took; fails with dbt's log."""
    work.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "TIDELINE_DBT_TARGET": target,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_PATH": str(work / "logs"),
        **(env or {}),
    }
    command = [
        dbt_executable(), "build", "--profiles-dir", str(DBT_PROJECT_DIR),
        "--vars", json.dumps({"as_of": as_of, **(extra_vars or {})}),
        "--target-path", str(work / "target"), "--exclude-resource-type", "unit_test",
    ]  # fmt: skip
    if select:
        command += ["--select", select]
    started = time.monotonic()
    done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=environment, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise AssertionError(
            f"dbt build on {target} failed:\n{failures(done.stdout)}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        )
    return elapsed


def failures(log: str) -> str:
    """The lines of a dbt log that name a failed or erroring node (the summary is at the end)."""
    marks = (
        "ERROR creating",
        "FAIL ",
        "ERROR ",
        "Failure in",
        "Database Error",
        "Runtime Error",
        "Compilation Error",
    )
    return "\n".join(line for line in log.splitlines() if any(m in line for m in marks))


def duckdb_digests(warehouse: Path, schema: str) -> dict[str, TableDigest]:
    """Every table of `schema` in the DuckDB warehouse, as a digest."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            """select table_name from information_schema.tables
               where table_schema = ? and table_type = 'BASE TABLE' order by table_name""",
            [schema],
        ).fetchall()
        found = {}
        for (table,) in tables:
            cursor = con.execute(f"select * from {quote_identifier(schema)}.{quote_identifier(table)}")
            found[table] = digest([d[0] for d in cursor.description], cursor.fetchall())
        return found
    finally:
        con.close()


# ---------------------------------------------------------------- PostgreSQL


def postgres_env(dsn: str) -> dict[str, str]:
    """The profile's TIDELINE_PG_* variables for a libpq DSN."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    return {
        "TIDELINE_PG_HOST": str(parts.get("host", "localhost")),
        "TIDELINE_PG_PORT": str(parts.get("port", "5432")),
        "TIDELINE_PG_USER": str(parts.get("user", "postgres")),
        "TIDELINE_PG_PASSWORD": str(parts.get("password", "")),
        "TIDELINE_PG_DATABASE": str(parts.get("dbname", "postgres")),
    }


def fresh_database(dsn: str, name: str) -> str:
    """A new, empty database `name` on the server of `dsn` (dropped first if it exists), so a build
    shares no schema with other tests of the session; its DSN."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return make_conninfo(**{**conninfo_to_dict(dsn), "dbname": name})


def landing_to_postgres(warehouse: Path, dsn: str) -> dict[str, int]:
    """Every landing table of the DuckDB warehouse into schema `landing` of the PostgreSQL database
    (dropped and created again), with COPY; {table: rows}."""
    import psycopg
    from psycopg import sql

    con = duckdb.connect(str(warehouse), read_only=True)
    shipped = {}
    try:
        with psycopg.connect(dsn, autocommit=False) as pg:
            pg.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(LANDING)))
            pg.execute(sql.SQL("create schema {}").format(sql.Identifier(LANDING)))
            for table in landing_tables(con):
                columns = _columns(con, LANDING, table)
                unknown = [f"{name} {kind}" for name, kind in columns if kind not in POSTGRES_TYPES]
                if unknown:
                    raise ValueError(
                        f"landing.{table}: no PostgreSQL type for {unknown} (add it to POSTGRES_TYPES)"
                    )
                target = sql.Identifier(LANDING, table)
                pg.execute(
                    sql.SQL("create table {} ({})").format(
                        target,
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(POSTGRES_TYPES[kind]))
                            for name, kind in columns
                        ),
                    )
                )
                names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
                cursor = con.execute(f"select * from {LANDING}.{quote_identifier(table)}")
                count = 0
                with pg.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(target, names)) as copy:
                    while batch := cursor.fetchmany(10_000):
                        for row in batch:
                            copy.write_row(row)
                        count += len(batch)
                shipped[table] = count
            pg.commit()
    finally:
        con.close()
    return shipped


def postgres_digests(dsn: str, schema: str) -> dict[str, TableDigest]:
    """Every table of `schema` in the PostgreSQL database, as a digest."""
    import psycopg
    from psycopg import sql

    found = {}
    with psycopg.connect(dsn) as pg:
        tables = pg.execute(
            """select table_name from information_schema.tables
               where table_schema = %s and table_type = 'BASE TABLE' order by table_name""",
            [schema],
        ).fetchall()
        for (table,) in tables:
            cursor = pg.execute(sql.SQL("select * from {}").format(sql.Identifier(schema, table)))
            found[table] = digest([d.name for d in cursor.description], cursor.fetchall())
    return found


# ---------------------------------------------------------------- Spark


def spark_env(spark_dir: Path) -> dict[str, str]:
    """The profile's Spark variables: the session's warehouse folder and Derby metastore in `spark_dir`."""
    return {
        "TIDELINE_SPARK_WAREHOUSE": str(spark_dir / "warehouse"),
        "TIDELINE_SPARK_METASTORE": str(spark_dir / "metastore_db"),
        # Derby's log (derby.log) goes there too, not into the working directory
        "JAVA_TOOL_OPTIONS": f"-Dderby.stream.error.file={spark_dir / 'derby.log'}",
    }


def _spark_session(spark_dir: Path):  # noqa: ANN202 (pyspark is imported lazily)
    """A local Spark session on the same warehouse folder and metastore as the profile's."""
    from pyspark.sql import SparkSession

    env = spark_env(spark_dir)
    return (
        SparkSession.builder.master("local[1]")
        .appName("tideline-tests")
        .enableHiveSupport()
        .config("spark.sql.warehouse.dir", env["TIDELINE_SPARK_WAREHOUSE"])
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={env['TIDELINE_SPARK_METASTORE']};create=true",
        )
        .config("spark.sql.session.timeZone", SPARK_SESSION_TIMEZONE)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )


def _spark_child(*args: str) -> None:
    """Run this module's Spark entry point in a child process (its JVM ends with it)."""
    spark_dir = Path(args[1])
    env = {**os.environ, **spark_env(spark_dir), "PYSPARK_PYTHON": sys.executable}
    command = [sys.executable, "-m", "tests.engines", *args]
    done = subprocess.run(command, cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:1])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


def landing_to_spark(warehouse: Path, spark_dir: Path) -> dict[str, int]:
    """Every landing table of the DuckDB warehouse as Parquet under `spark_dir`/landing, registered as
    a table of the `landing` database of the Spark warehouse in `spark_dir`; {table: rows}."""
    files = spark_dir / "landing"
    files.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse), read_only=True)
    shipped = {}
    try:
        for table in landing_tables(con):
            relation = con.table(f"{LANDING}.{quote_identifier(table)}")
            relation.write_parquet(str(files / f"{table}.parquet"))
            shipped[table] = relation.aggregate("count(*)").fetchone()[0]
    finally:
        con.close()
    _spark_child("spark-register", str(spark_dir), *shipped)
    return shipped


def spark_table_name(table: str) -> str:
    """A table (or database) name for Spark SQL, which quotes with backticks: the loader's and dbt's
    names are plain lower-case words, and anything else is refused rather than quoted."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,127}", table):
        raise ValueError(
            f"landing table {table!r} is not a plain lower-case name; cannot register it in Spark"
        )
    return table


def _register(spark_dir: Path, tables: list[str]) -> None:
    spark = _spark_session(spark_dir)
    spark.sql(f"create database if not exists {LANDING}")
    for table in tables:
        name = f"{LANDING}.{spark_table_name(table)}"
        spark.sql(f"drop table if exists {name}")
        path = (spark_dir / "landing" / f"{table}.parquet").as_posix()
        spark.catalog.createTable(name, path=path, source="parquet")
    spark.stop()


def spark_digests(spark_dir: Path, schema: str) -> dict[str, TableDigest]:
    """Every table of database `schema` in the Spark warehouse, as a digest: a Spark child process
    writes each as Parquet (timestamps as microseconds, UTC), DuckDB reads them."""
    out = spark_dir / "export" / schema
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _spark_child("spark-export", str(spark_dir), schema, str(out))
    found = {}
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        for folder in sorted(p for p in out.iterdir() if p.is_dir()):
            cursor = con.execute("select * from read_parquet(?)", [str(folder / "*.parquet")])
            found[folder.name] = digest([d[0] for d in cursor.description], cursor.fetchall())
    finally:
        con.close()
    return found


def _export(spark_dir: Path, schema: str, out: Path) -> None:
    spark = _spark_session(spark_dir)
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    for table in spark.catalog.listTables(spark_table_name(schema)):
        if table.isTemporary:
            continue
        frame = spark.table(f"{schema}.{spark_table_name(table.name)}")
        # one file even for an empty table, so its columns come back too
        frame.coalesce(1).write.mode("overwrite").parquet(str(out / table.name))
    spark.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Spark child processes of tests/engines.py")
    sub = parser.add_subparsers(dest="command", required=True)
    register = sub.add_parser("spark-register")
    register.add_argument("spark_dir", type=Path)
    register.add_argument("tables", nargs="+")
    export = sub.add_parser("spark-export")
    export.add_argument("spark_dir", type=Path)
    export.add_argument("schema")
    export.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "spark-register":
        _register(args.spark_dir, args.tables)
    else:
        _export(args.spark_dir, args.schema, args.out)


if __name__ == "__main__":
    main()
