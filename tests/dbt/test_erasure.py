"""The dbt side of an erasure, macro by macro (dbt_project/macros/erasure.sql), compiled by dbt itself
(`dbt compile --inline`) and run on DuckDB and on a real PostgreSQL server.

- erased_identities_relation(): on a warehouse where nobody was erased it stands in for
  tideline_sync.erased_identities with the same columns and types as activation/privacy/erasure.py's
  DDL (an empty select), so such a warehouse builds.
- not_erased(): keeps a row unless one of its identities was erased. Worked by hand: erased are
  id c1, anonymous id anon-ada, sha256("ada@example.com") and sha256("+447700900123"):

      row  customer_id  anonymous_id  email                 phone           kept?
      r1   c1           -             -                     -               no  (id)
      r2   -            anon-ada      -                     -               no  (anonymous id)
      r3   g-new        -             ada@example.com       -               no  (email hash: a future row)
      r4   g-other      -             -                     +447700900123   no  (phone hash)
      r5   c2           anon-x        bob@example.com       +447700900999   yes
      r6   -            -             -                     -               yes (nothing names anyone)

- On PostgreSQL the only dialect difference is sha256_hex (adapter dispatch): its Postgres form
  must give the very hash the Python erasure stored, or staging there would match nobody.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from activation.ledger import SCHEMA
from activation.privacy.erasure import ensure_tables
from tests.integration.postgres import postgres_dsn  # noqa: F401
from tideline.dbt_manifest import dbt_executable
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # dbt compiles the project

MARKER = "-- part: "
ADA_EMAIL, ADA_PHONE = "ada@example.com", "+447700900123"
ROWS = [
    ("r1", "c1", None, None, None),
    ("r2", None, "anon-ada", None, None),
    ("r3", "g-new", None, ADA_EMAIL, None),
    ("r4", "g-other", None, None, ADA_PHONE),
    ("r5", "c2", "anon-x", "bob@example.com", "+447700900999"),
    ("r6", None, None, None, None),
]
INLINE = {
    "stand_in": "select * from {{ erased_identities_relation() }} as erased",
    "filter": (
        "select row_id from rows_to_check where {{ not_erased(customer_id='customer_id', "
        "anonymous_id='anonymous_id', email='email', phone='phone') }} order by row_id"
    ),
    "pg_hash": "select {{ tideline.postgres__sha256_hex(\"'ada@example.com'\") }} as h",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _compile(warehouse: Path, tmp_path: Path) -> dict[str, str]:
    inline = "".join(f"\n{MARKER}{name}\n{sql}" for name, sql in INLINE.items())
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [dbt_executable(), "compile", "--quiet", "--inline", inline]
    command += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")]
    done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    chunks = done.stdout.split(MARKER)[1:]
    return {chunk.split("\n", 1)[0].strip(): chunk.split("\n", 1)[1].strip() for chunk in chunks}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What dbt compiles on a warehouse with no erasure table yet."""
    tmp = tmp_path_factory.mktemp("erasure_dbt")
    return _compile(tmp / "fresh.duckdb", tmp)


def _erased_view(con, schema_prefix: str = "") -> None:
    con.execute(f"create schema if not exists {schema_prefix}staging")
    con.execute(
        f"create table {schema_prefix}staging.stg_tideline_privacy__erased_identities (kind varchar, value varchar)"
    )
    con.execute(
        f"insert into {schema_prefix}staging.stg_tideline_privacy__erased_identities values "
        "('customer_id', 'c1'), ('anonymous_id', 'anon-ada'), ('email_sha256', ?), ('phone_sha256', ?)",
        [sha(ADA_EMAIL), sha(ADA_PHONE)],
    )


def test_the_stand_in_has_the_ddl_columns_and_types(compiled: dict[str, str]) -> None:
    assert "where 1 = 0" in compiled["stand_in"]  # the stand-in, not the table
    con = duckdb.connect()
    ensure_tables(con)
    declared = [(n, t) for n, t, *_ in con.execute(f"describe {SCHEMA}.erased_identities").fetchall()]
    stand_in = [(n, t) for n, t, *_ in con.execute(f"describe {compiled['stand_in']}").fetchall()]
    assert stand_in == declared


def test_not_erased_keeps_only_rows_that_name_no_erased_identity(compiled: dict[str, str], tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "fresh.duckdb"))  # the compiled SQL names database "fresh"
    _erased_view(con)
    con.execute(
        "create table rows_to_check (row_id varchar, customer_id varchar, anonymous_id varchar, "
        "email varchar, phone varchar)"
    )
    con.executemany("insert into rows_to_check values (?, ?, ?, ?, ?)", ROWS)
    assert con.execute(compiled["filter"]).fetchall() == [("r5",), ("r6",)]


def test_on_postgres_the_filter_matches_the_hashes_python_stored(compiled: dict[str, str], request) -> None:
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    pg_hash = compiled["pg_hash"]
    assert "encode(sha256(convert_to(" in pg_hash  # the Postgres form of sha256_hex
    # on Postgres, dbt renders not_erased with the Postgres sha256_hex: the same SQL otherwise
    duck_hash = "sha256(email)"
    assert duck_hash in compiled["filter"]
    pg_filter = (
        compiled["filter"]
        .replace('"fresh".', "")
        .replace(duck_hash, "encode(sha256(convert_to(email, 'UTF8')), 'hex')")
        .replace("sha256(phone)", "encode(sha256(convert_to(phone, 'UTF8')), 'hex')")
    )
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("drop schema if exists staging cascade")
        cur.execute("create schema staging")
        cur.execute("create table staging.stg_tideline_privacy__erased_identities (kind text, value text)")
        cur.execute(
            "insert into staging.stg_tideline_privacy__erased_identities values "
            "('customer_id', 'c1'), ('anonymous_id', 'anon-ada'), ('email_sha256', %s), ('phone_sha256', %s)",
            [sha(ADA_EMAIL), sha(ADA_PHONE)],
        )
        cur.execute(
            "create temp table rows_to_check (row_id text, customer_id text, anonymous_id text, email text, phone text)"
        )
        cur.executemany("insert into rows_to_check values (%s, %s, %s, %s, %s)", ROWS)
        cur.execute(pg_hash)
        assert cur.fetchone()[0] == sha(ADA_EMAIL)
        cur.execute(pg_filter)
        kept = cur.fetchall()
        cur.execute("drop schema staging cascade")
    assert kept == [("r5",), ("r6",)]
