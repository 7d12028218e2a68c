"""The landing load on a PostgreSQL warehouse (issue 18): DuckDB reads the files into its workspace,
tideline/landing/postgres.py ships what changed to the fixture's real PostgreSQL server with COPY.

Every test gets a database of its own on the fixture's server. "The same as on DuckDB" is judged
with tests/engine_equality.py: the landing tables in PostgreSQL against a plain DuckDB load (no
mirror) of the same files, table by table (the manifest and the history without the load's ids
and times, which differ between any two loads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from tests import engine_equality
from tests.helpers import write_csv, write_jsonl
from tests.integration.postgres import postgres_dsn  # noqa: F401 - registers the fixture
from tideline.demo.data import generate_demo_data
from tideline.landing.contract import ENTITIES
from tideline.landing.loader import load_landing_zone
from tideline.landing.postgres import PostgresMirror, connect
from tideline.settings import REPO_ROOT

# what differs between any two loads of the same files: when, and under which load id
VOLATILE = {"files": ("loaded_at", "checked_at"), "loads": ("load_id", "loaded_at")}
TABLES = [e.name for e in ENTITIES] + ["load_rejects", "files", "loads"]


@pytest.fixture
def pg_conninfo(postgres_dsn: str) -> Iterator[str]:  # noqa: F811
    """A database of its own on the fixture's server (the mirror writes schema `landing`)."""
    name = f"landing_{uuid.uuid4().hex[:10]}"
    with connect(postgres_dsn) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    yield postgres_dsn.replace("dbname=tideline_test", f"dbname={name}")
    with connect(postgres_dsn) as admin:
        admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def awkward_landing_zone(raw: Path) -> Path:
    """A small demo (its planted malformed rows and duplicates) and the awkward files real exports
    bring: quoted line breaks and ragged rows, a declared cp1252 folder, a UTF-16 file, a Latin-1
    file in a UTF-8 folder, JSON Lines with broken lines and a NUL escape, Parquet, an empty file,
    a file missing a required column, a format Tideline does not read and a file in no entity."""
    generate_demo_data(raw, customers=80, days=60, seed=11)
    orders = raw / "commerce/orders/extra"
    orders.mkdir(parents=True)
    (orders / "ragged.csv").write_text(
        "order_id,customer_id,ordered_at,amount\nx1,c1,2025-01-02,1.5\nx2,c2\n"
    )
    (raw / "crm/contacts/multiline.csv").write_text(
        'customer_id,email,city\nq1,a@x.io,Berlin\nq2,b@x.io\n"q3","c@x.io","New\nYork"\n'
    )
    pq.write_table(
        pa.table(
            {
                "order_id": ["p1", "p2"],
                "customer_id": ["c1", None],
                "ordered_at": ["2025-01-04", "2025-01-05"],
                "amount": [3.5, None],
            }
        ),
        orders / "part.parquet",
    )
    (orders / "empty.csv").write_bytes(b"")
    write_csv(orders / "no_amount.csv", [{"order_id": "n1", "customer_id": "c1"}])
    (orders / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    old_crm = raw / "crm/contacts/old"
    old_crm.mkdir(parents=True)
    (old_crm / "_encoding.txt").write_text("cp1252\n")
    (old_crm / "a.csv").write_bytes("customer_id,city,first_name\nz1,München,Zoë “Z”\n".encode("cp1252"))
    (raw / "crm/contacts/utf16.csv").write_bytes("customer_id,city\nz2,Łódź\n".encode("utf-16"))
    (raw / "crm/contacts/latin1.csv").write_bytes("customer_id,city\nz3,Zürich\n".encode("latin-1"))
    write_jsonl(
        raw / "events/extra/odd.jsonl",
        [
            {
                "event_id": "e1",
                "event_type": "login",
                "occurred_at": "2025-01-01T10:00:00Z",
                "customer_id": "c1",
            },
            "not json",
            "[1, 2]",
            "",
            '{"event_id": "e2", "event_type": "signup", "url": "nul \\u0000 inside"}',
        ],
    )
    (raw / "stray.csv").write_text("a,b\n1,2\n")
    return raw


def _order(order_id: str, customer_id: str, amount: str) -> dict:
    return {"order_id": order_id, "customer_id": customer_id, "ordered_at": "2025-01-06", "amount": amount}


def load_duckdb(raw: Path, path: Path) -> None:
    """The reference: the loader into a DuckDB file, no mirror."""
    with duckdb.connect(str(path)) as con:
        load_landing_zone(raw, con)


def load_mirrored(raw: Path, workspace: Path, conninfo: str) -> PostgresMirror:
    """The postgres target's load: DuckDB workspace, PostgreSQL mirror; the mirror, for its counts."""
    with duckdb.connect(str(workspace)) as con, connect(conninfo) as pg:
        mirror = PostgresMirror(pg, workspace.parent / "scratch")
        load_landing_zone(raw, con, mirror=mirror)
    return mirror


def _select(table: str, columns: list[str]) -> str:
    kept = [c for c in columns if c not in VOLATILE.get(table, ())]
    return f'select {", ".join(f"{chr(34)}{c}{chr(34)}" for c in kept)} from landing."{table}"'


def duckdb_digests(path: Path) -> dict[str, engine_equality.TableDigest]:
    digests = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table in TABLES:
            columns = [d[0] for d in con.execute(f'select * from landing."{table}" limit 0').description]
            cur = con.execute(_select(table, columns))
            rows = [tuple(_without_nul(value) for value in row) for row in cur.fetchall()]
            digests[table] = engine_equality.digest([d[0] for d in cur.description], rows)
    return digests


def _without_nul(value: object) -> object:
    """DuckDB's text as the mirror ships it: PostgreSQL text holds no NUL, it becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def pg_digests(conninfo: str) -> dict[str, engine_equality.TableDigest]:
    digests = {}
    with connect(conninfo) as pg:
        for table in TABLES:
            cur = pg.execute(f'select * from landing."{table}" limit 0')
            cur = pg.execute(_select(table, [d.name for d in cur.description]))
            digests[table] = engine_equality.digest([d.name for d in cur.description], cur.fetchall())
    return digests


def assert_mirrored(workspace: Path, conninfo: str, reference: Path, same_history: bool = True) -> None:
    """The database holds what the workspace holds, table by table, and its rows and rejects are
    those of a fresh DuckDB load of the files as they are now (`reference`: its manifest and
    history say "loaded" where an incremental load says "unchanged" or "appended"). Not
    `same_history`: a repair or a retried file added history rows in the database only."""
    shipped, ours = pg_digests(conninfo), duckdb_digests(workspace)
    if not same_history:
        shipped, ours = ({t: d for t, d in side.items() if t != "loads"} for side in (shipped, ours))
    assert engine_equality.compare(ours, shipped) == []
    fresh = duckdb_digests(reference)
    kept = TABLES[:-2]  # the entity tables and load_rejects
    assert engine_equality.compare({t: fresh[t] for t in kept}, {t: shipped[t] for t in kept}) == []


def file_rows(digests: dict[str, engine_equality.TableDigest], file: str) -> set[tuple[str, ...]]:
    """The normalised rows of every entity table and the rejects that came from `file`."""
    found = set()
    for table, table_digest in digests.items():
        if table in ("files", "loads"):
            continue
        at = table_digest.columns.index("_file")
        found |= {(table, *row) for row in table_digest.sample if row[at] == file}
    return found


def test_awkward_files_land_in_postgres_with_the_same_rows_and_rejects_as_on_duckdb(
    tmp_path: Path, pg_conninfo: str
) -> None:
    raw = awkward_landing_zone(tmp_path / "raw")
    load_duckdb(raw, tmp_path / "reference.duckdb")
    mirror = load_mirrored(raw, tmp_path / "workspace.duckdb", pg_conninfo)

    reference, shipped = duckdb_digests(tmp_path / "reference.duckdb"), pg_digests(pg_conninfo)
    assert engine_equality.compare(reference, shipped) == []
    assert shipped["events"].rows > 1000 and mirror.shipped_rows > shipped["events"].rows
    rejects = {(row[0], row[1]) for row in shipped["load_rejects"].sample}  # (_file, _row) sorted first
    assert ("commerce/orders/extra/no_amount.csv", engine_equality.NULL) in rejects
    assert ("crm/contacts/latin1.csv", engine_equality.NULL) in rejects
    assert ("stray.csv", engine_equality.NULL) in rejects
    assert ("events/extra/odd.jsonl", "2") in rejects  # "not json", line 2
    with connect(pg_conninfo) as pg:
        city = pg.execute("select city from landing.crm_contacts where customer_id = 'z1'").fetchone()
        url = pg.execute("select url from landing.events where event_id = 'e2'").fetchone()
    assert city == ("München",)
    assert url == ("nul \ufffd inside",)  # PostgreSQL text holds no NUL: U+FFFD instead


def test_a_second_load_copies_nothing_and_changes_are_mirrored(tmp_path: Path, pg_conninfo: str) -> None:
    raw = awkward_landing_zone(tmp_path / "raw")
    workspace = tmp_path / "workspace.duckdb"
    load_mirrored(raw, workspace, pg_conninfo)
    before = pg_digests(pg_conninfo)

    again = load_mirrored(raw, workspace, pg_conninfo)
    # only the files rejected unread go again: the loader judges them anew on every load (their
    # reject and manifest rows); no file's rows are copied
    assert sorted(again.shipped) == ["commerce/orders/extra/sheet.xlsx", "stray.csv"]
    assert again.shipped_rows == 2 * 2
    after = pg_digests(pg_conninfo)
    assert {t: after[t] for t in TABLES[:-2]} == {t: before[t] for t in TABLES[:-2]}  # rows and rejects

    # a changed file, a deleted one, an appended JSON Lines file and a new file
    ragged = raw / "commerce/orders/extra/ragged.csv"
    ragged.write_text("order_id,customer_id,ordered_at,amount\nx1,c1,2025-01-02,2.5\n")
    (raw / "commerce/orders/extra/part.parquet").unlink()
    odd = raw / "events/extra/odd.jsonl"
    with odd.open("a") as fh:
        fh.write(json.dumps({"event_id": "e3", "event_type": "login", "customer_id": "c9"}) + "\n{broken\n")
    write_csv(raw / "commerce/orders/extra/new.csv", [_order("y1", "c4", "9")])
    changed = load_mirrored(raw, workspace, pg_conninfo)

    load_duckdb(raw, tmp_path / "reference.duckdb")
    assert_mirrored(workspace, pg_conninfo, tmp_path / "reference.duckdb")
    # only what changed went: the new file (1 row), the replaced one (1), the two appended lines
    # (1 event, 1 reject), each with its manifest and history row; the deleted file's history row
    assert sorted(changed.shipped) == sorted(
        [
            "commerce/orders/extra/new.csv",
            "commerce/orders/extra/part.parquet",
            "commerce/orders/extra/ragged.csv",
            "commerce/orders/extra/sheet.xlsx",
            "events/extra/odd.jsonl",
            "stray.csv",
        ]
    )
    assert changed.shipped_rows == 1 + 1 + 2 + 3 * 2 + 1 + 2 * 2
    with connect(pg_conninfo) as pg:
        actions = dict(
            pg.execute(
                "select _file, action from landing.files where action not in ('unchanged', 'not_read')"
            ).fetchall()
        )
        history = pg.execute("select _file, action from landing.loads where action = 'deleted'").fetchall()
    assert actions == {
        "commerce/orders/extra/ragged.csv": "replaced",
        "commerce/orders/extra/new.csv": "loaded",
        "events/extra/odd.jsonl": "appended",
    }
    assert history == [("commerce/orders/extra/part.parquet", "deleted")]


def test_a_new_database_one_that_lost_a_file_or_an_old_table_is_brought_level_with_the_workspace(
    tmp_path: Path,
    pg_conninfo: str,
    postgres_dsn: str,  # noqa: F811
) -> None:
    raw = tmp_path / "raw"
    write_csv(raw / "commerce/orders/a.csv", [_order("1", "c1", "5")])
    write_csv(raw / "commerce/orders/b.csv", [_order("2", "c2", "6")])
    workspace = tmp_path / "workspace.duckdb"
    with duckdb.connect(str(workspace)) as con:  # the workspace is up to date, the database empty
        load_landing_zone(raw, con)
    first = load_mirrored(raw, workspace, pg_conninfo)
    assert first.shipped == [] and first.shipped_rows == 2 * 2  # nothing changed: finish shipped it
    with connect(pg_conninfo) as pg:  # a file's rows lost on the database side only
        pg.execute("delete from landing.commerce_orders where _file = 'commerce/orders/b.csv'")
        pg.execute("delete from landing.files where _file = 'commerce/orders/b.csv'")
    load_mirrored(raw, workspace, pg_conninfo)
    load_duckdb(raw, tmp_path / "reference.duckdb")
    assert_mirrored(workspace, pg_conninfo, tmp_path / "reference.duckdb", same_history=False)
    with connect(pg_conninfo) as pg:
        replaced = pg.execute("select _file from landing.loads where action = 'replaced'").fetchall()
    assert ("commerce/orders/b.csv",) in replaced  # incremental models see the file changed

    # a table of another shape (an older contract) with a view over it, as dbt leaves them
    with connect(pg_conninfo) as pg:
        pg.execute("alter table landing.commerce_orders drop column currency")
        pg.execute("create view landing.old_orders as select order_id from landing.commerce_orders")
    load_mirrored(raw, workspace, pg_conninfo)
    assert_mirrored(workspace, pg_conninfo, tmp_path / "reference.duckdb", same_history=False)


# a load killed by SIGKILL at a chosen point of shipping one file
KILLED_LOAD = """
import os, signal, sys
from pathlib import Path
import duckdb
import tideline.landing.postgres as shipping
from tideline.landing.loader import load_landing_zone

raw, workspace, conninfo, target, point = sys.argv[1:]
shipping.CHUNK_BYTES = 64  # many chunks per file: the kill lands inside a COPY
current = {"file": None}
ship, chunks, changed = shipping.PostgresMirror._ship, shipping._chunks, shipping.PostgresMirror.file_changed

def tracked_ship(self, con, file, entity, after_row):
    current["file"] = file
    return ship(self, con, file, entity, after_row)

def killing_chunks(path):
    for number, chunk in enumerate(chunks(path)):
        yield chunk
        if point == "mid-copy" and current["file"] == target and number == 1:
            os.kill(os.getpid(), signal.SIGKILL)

def killing_changed(self, con, load_id, file, entity, after_row=0):
    changed(self, con, load_id, file, entity, after_row)
    if point == "between-commits" and file == target:
        os.kill(os.getpid(), signal.SIGKILL)

shipping.PostgresMirror._ship = tracked_ship
shipping._chunks = killing_chunks
shipping.PostgresMirror.file_changed = killing_changed
with duckdb.connect(workspace) as con, shipping.mirror_to(conninfo, Path(workspace).parent / "scratch") as mirror:
    load_landing_zone(raw, con, mirror=mirror)
print("not killed")
"""


def _orders(n: int, prefix: str) -> list[dict]:
    return [_order(f"{prefix}{i}", f"c{i % 7}", f"{i}.50") for i in range(n)]


@pytest.mark.parametrize("point", ["mid-copy", "between-commits"])
def test_a_load_killed_while_shipping_leaves_every_file_as_it_was_or_as_it_is_now(
    tmp_path: Path, pg_conninfo: str, point: str
) -> None:
    raw = tmp_path / "raw"
    write_csv(raw / "commerce/orders/a.csv", _orders(40, "a"))
    write_csv(raw / "commerce/orders/b.csv", _orders(40, "b"))
    write_csv(raw / "commerce/orders/c.csv", _orders(40, "c"))
    workspace = tmp_path / "workspace.duckdb"
    load_mirrored(raw, workspace, pg_conninfo)
    load_duckdb(raw, tmp_path / "old.duckdb")
    old = duckdb_digests(tmp_path / "old.duckdb")

    write_csv(raw / "commerce/orders/a.csv", _orders(30, "A"))  # replaced: shipped first
    write_csv(raw / "commerce/orders/b.csv", _orders(50, "B"))  # replaced: the kill lands here
    write_csv(raw / "commerce/orders/c.csv", _orders(45, "C"))  # replaced: never reached
    load_duckdb(raw, tmp_path / "new.duckdb")
    new = duckdb_digests(tmp_path / "new.duckdb")
    target = "commerce/orders/b.csv"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_LOAD, str(raw), str(workspace), pg_conninfo, target, point],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-3000:]

    on_pg, on_duckdb = pg_digests(pg_conninfo), duckdb_digests(workspace)
    state = {}
    for file in ("commerce/orders/a.csv", target, "commerce/orders/c.csv"):
        was, now = file_rows(old, file), file_rows(new, file)
        for side, digests in (("postgres", on_pg), ("duckdb", on_duckdb)):
            rows = file_rows(digests, file)
            assert rows in (was, now), f"{file} on {side} is neither as it was nor as it is now"
            state[(file, side)] = "new" if rows == now else "old"
    assert state[("commerce/orders/a.csv", "postgres")] == state[("commerce/orders/a.csv", "duckdb")] == "new"
    assert state[("commerce/orders/c.csv", "postgres")] == state[("commerce/orders/c.csv", "duckdb")] == "old"
    killed_after_commit = point == "between-commits"
    assert state[(target, "postgres")] == ("new" if killed_after_commit else "old")
    assert state[(target, "duckdb")] == "old"

    load_mirrored(raw, workspace, pg_conninfo)  # the next run brings both sides to now
    assert_mirrored(workspace, pg_conninfo, tmp_path / "new.duckdb", same_history=not killed_after_commit)
