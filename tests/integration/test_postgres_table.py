"""PostgresTableDestination against a real PostgreSQL server (tests/integration/postgres.py)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from activation.destinations.base import ConfigError, Destination, OutboundRecord, SyncContext
from activation.destinations.postgres_table import PostgresDestinationError, PostgresTableDestination
from tests.integration.postgres import PostgresServer, find_pg_bin, free_port, postgres_dsn  # noqa: F401

CONTEXT = SyncContext(sync_id="sync-1", segment="vip_customers", destination="crm_pg", mode="mirror")
DSN_ENV = "TIDELINE_TEST_CRM_PG_DSN"


@pytest.fixture(scope="session")
def dsn(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL server (looked up by name: ruff flags arguments named like an imported fixture)."""
    return request.getfixturevalue("postgres_dsn")


def rec(customer_id: str, action: str = "upsert", version: str = "v1", **fields) -> OutboundRecord:
    key = hashlib.sha256(f"crm_pg|vip_customers|{customer_id}|{version}".encode()).hexdigest()
    return OutboundRecord(customer_id=customer_id, idempotency_key=key, action=action, fields=fields)


def rows(dsn: str, table: str, schema: str = "public", key: str = "customer_id") -> dict:
    """{key: {column: value}} of a table, read independently of the destination."""
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(sql.SQL("select * from {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        return {r[key]: r for r in cur.fetchall()}


@pytest.fixture
def make(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., PostgresTableDestination]]:
    monkeypatch.setenv(DSN_ENV, dsn)
    made: list[PostgresTableDestination] = []

    def _make(**config) -> PostgresTableDestination:
        config = {"dsn_env": DSN_ENV, "table": f"members_{uuid.uuid4().hex[:8]}", **config}
        destination = PostgresTableDestination.from_config("crm_pg", config)
        destination.validate()
        made.append(destination)
        return destination

    yield _make
    for destination in made:
        destination.close()


def test_is_a_destination(make):
    destination = make()
    assert isinstance(destination, Destination)
    assert destination.kind == "postgres" and destination.max_batch_size == 1000


def test_upsert_creates_the_table_then_updates_rows(make, dsn):
    d = make()
    results = d.send_batch(
        [rec("c1", email="ada@example.com", tier="gold"), rec("c2", email="bob@example.com", tier="silver")],
        CONTEXT,
    )
    assert [r.status for r in results] == ["sent", "sent"]
    assert [r.remote_id for r in results] == ["c1", "c2"]
    table = rows(dsn, d.table)
    assert table["c1"]["email"] == "ada@example.com" and table["c2"]["tier"] == "silver"
    assert table["c1"]["_tideline_idempotency_key"] == rec("c1").idempotency_key
    assert table["c1"]["_tideline_synced_at"] is not None

    # an update, a new customer and a new field (added as a text column)
    results = d.send_batch(
        [rec("c1", version="v2", email="ada@example.com", tier="platinum", score=0.93)], CONTEXT
    )
    assert results[0].status == "sent"
    results = d.send_batch([rec("c3", email="cy@example.com", tier="gold")], CONTEXT)
    assert results[0].status == "sent"
    table = rows(dsn, d.table)
    assert sorted(table) == ["c1", "c2", "c3"]
    assert table["c1"]["tier"] == "platinum" and table["c1"]["score"] == "0.93"
    assert table["c1"]["_tideline_idempotency_key"] == rec("c1", version="v2").idempotency_key
    # a record without a field leaves that column alone (it is not set to null)
    assert table["c2"]["tier"] == "silver" and table["c3"]["score"] is None


def test_delete_removes_rows(make, dsn):
    d = make()
    d.send_batch([rec(f"c{i}", email=f"u{i}@example.com") for i in range(4)], CONTEXT)
    results = d.send_batch(
        [rec("c1", action="delete"), rec("c3", action="delete"), rec("nobody", action="delete")], CONTEXT
    )
    assert [r.status for r in results] == ["sent", "sent", "sent"]
    assert sorted(rows(dsn, d.table)) == ["c0", "c2"]


def test_mixed_batch_last_record_for_a_key_wins(make, dsn):
    d = make()
    d.send_batch([rec("c1", tier="gold"), rec("c2", tier="gold")], CONTEXT)
    batch = [
        rec("c1", action="delete"),
        rec("c2", tier="silver"),
        rec("c2", tier="bronze"),
        rec("c4", tier="new"),
        rec("c4", action="delete"),
        rec("c5", action="send", tier="sent"),
    ]
    assert all(r.status == "sent" for r in d.send_batch(batch, CONTEXT))
    table = rows(dsn, d.table)
    assert sorted(table) == ["c2", "c5"]
    assert table["c2"]["tier"] == "bronze"


def test_replaying_a_batch_is_idempotent(make, dsn):
    d = make(columns={"ltv": "numeric(12, 2)", "tags": "jsonb", "raw": "json"})
    batch = [
        rec(f"c{i}", email=f"u{i}@example.com", ltv=i * 10.5, tags=["a", i], raw={"i": i}) for i in range(50)
    ]
    assert all(r.status == "sent" for r in d.send_batch(batch, CONTEXT))
    before = rows(dsn, d.table)
    time.sleep(0.01)
    results = d.send_batch(batch, CONTEXT)
    assert [r.status for r in results] == ["sent"] * 50
    assert [r.idempotency_key for r in results] == [r.idempotency_key for r in batch]
    after = rows(dsn, d.table)
    assert after == before  # unchanged rows are not rewritten: even _tideline_synced_at stays
    assert float(after["c3"]["ltv"]) == 31.5 and after["c3"]["tags"] == ["a", 3]


def test_a_bad_row_fails_alone_and_the_rest_land(make, dsn):
    d = make(columns={"code": "varchar(5)", "score": "integer"})
    batch = [
        rec("c1", code="ok1", score=1),
        rec("c2", code="far-too-long-secret", score=2),
        rec("c3", code="ok3", score=3),
        rec("c4", code="ok4", score="not-a-number-secret"),
        rec("c5", code="ok5", score=5),
        rec("c6", action="archive"),
    ]
    results = d.send_batch(batch, CONTEXT)
    assert [r.status for r in results] == ["sent", "failed", "sent", "failed", "sent", "failed"]
    assert not any(r.retryable for r in results)
    assert "value too long" in results[1].error
    assert "invalid input syntax for type integer" in results[3].error
    assert "unsupported action" in results[5].error
    for r in results:
        assert "secret" not in (r.error or "")  # errors never carry the values
    table = rows(dsn, d.table)
    assert sorted(table) == ["c1", "c3", "c5"]
    assert table["c3"]["code"] == "ok3" and table["c5"]["score"] == 5


def test_odd_identifiers_are_quoted(make, dsn):
    schema, table, key = 'Odd "Schema"', "Members; drop table x --", "Customer ID"
    d = make(schema=schema, table=table, key_column=key, columns={"Score %s": "integer"})
    fields = {"e-mail": "ada@example.com", "select": "yes", "Mixed Case": "M", 'quo"te': "q", "Score %s": 7}
    assert d.send_batch([rec("c1", **fields)], CONTEXT)[0].status == "sent"
    d.send_batch([rec("c2", **fields), rec("c1", action="delete")], CONTEXT)
    table_rows = rows(dsn, table, schema=schema, key=key)
    assert list(table_rows) == ["c2"]
    assert {k: table_rows["c2"][k] for k in fields} == fields


def test_without_create_table_uses_an_existing_table(make, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        table = f"crm_contacts_{uuid.uuid4().hex[:8]}"
        conn.execute(
            sql.SQL("create table {} (id text primary key, email text not null)").format(
                sql.Identifier(table)
            )
        )
    d = make(table=table, key_column="id", create_table=False)
    results = d.send_batch(
        [rec("c1", email="a@example.com"), rec("c2", email="b@example.com", extra=1)], CONTEXT
    )
    assert [r.status for r in results] == ["sent", "failed"]
    assert "has no column" in results[1].error
    assert rows(dsn, table, key="id") == {"c1": {"id": "c1", "email": "a@example.com"}}
    # deletes stage only the key: the not-null email column does not get in the way
    results = d.send_batch([rec("c1", action="delete"), rec("c3", email="c@example.com")], CONTEXT)
    assert [r.status for r in results] == ["sent", "sent"]
    assert list(rows(dsn, table, key="id")) == ["c3"]
    # a missing table is the whole destination's problem: it raises
    missing = make(table="no_such_table", create_table=False)
    with pytest.raises(PostgresDestinationError, match="does not exist"):
        missing.send_batch([rec("c1", email="a@example.com")], CONTEXT)


def test_a_table_dropped_or_altered_under_us_is_recreated(make, dsn):
    d = make(columns={"score": "integer"})
    assert d.send_batch([rec("c1", tier="gold", score=1)], CONTEXT)[0].status == "sent"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("alter table {} drop column tier").format(sql.Identifier(d.table)))
    assert d.send_batch([rec("c2", tier="silver", score=2)], CONTEXT)[0].status == "sent"
    assert rows(dsn, d.table)["c2"]["tier"] == "silver"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(d.table)))
    assert d.send_batch([rec("c3", tier="bronze", score=3)], CONTEXT)[0].status == "sent"
    assert list(rows(dsn, d.table)) == ["c3"]


def test_connection_refused_fails_retryable_without_raising(dsn, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv(DSN_ENV, f"host=127.0.0.1 port={port} dbname=x user=y")
    d = PostgresTableDestination.from_config(
        "crm_pg", {"dsn_env": DSN_ENV, "table": "t", "retry_attempts": 3, "retry_base_seconds": 0.01}
    )
    started = time.monotonic()
    results = d.send_batch([rec("c1", email="a@example.com"), rec("c2")], CONTEXT)
    assert time.monotonic() - started < 5
    assert [(r.status, r.retryable) for r in results] == [("failed", True), ("failed", True)]
    assert "after 3 attempts" in results[0].error and "Connection refused" in results[0].error
    d.close()


def test_a_missing_database_makes_the_destination_unusable(dsn, monkeypatch):
    monkeypatch.setenv(DSN_ENV, dsn.replace("dbname=tideline_test", "dbname=no_such_db"))
    d = PostgresTableDestination.from_config("crm_pg", {"dsn_env": DSN_ENV, "table": "t"})
    with pytest.raises(PostgresDestinationError, match="does not exist"):
        d.send_batch([rec("c1", email="a@example.com")], CONTEXT)
    d.close()


def test_a_dropped_connection_is_retried(make, dsn, monkeypatch):
    monkeypatch.setenv(DSN_ENV, f"{dsn} application_name=tideline-drop-test")
    d = make(retry_base_seconds=0.01)
    assert d.send_batch([rec("c1", tier="gold")], CONTEXT)[0].status == "sent"
    with psycopg.connect(dsn, autocommit=True) as admin:
        killed = admin.execute(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = %s",
            ["tideline-drop-test"],
        ).fetchone()[0]
    assert killed == 1
    results = d.send_batch([rec("c2", tier="gold")], CONTEXT)
    assert results[0].status == "sent"
    assert sorted(rows(dsn, d.table)) == ["c1", "c2"]


def test_server_stopped_mid_sync_fails_retryable(dsn, monkeypatch):
    bin_dir = find_pg_bin()
    if bin_dir is None:  # the session server is an external one (TIDELINE_TEST_POSTGRES_DSN)
        pytest.skip("needs the PostgreSQL binaries to start a private server")
    server = PostgresServer(bin_dir)  # a second, private server we can stop
    server.start()
    try:
        monkeypatch.setenv(DSN_ENV, server.dsn)
        d = PostgresTableDestination.from_config(
            "crm_pg",
            {"dsn_env": DSN_ENV, "table": "members", "retry_attempts": 2, "retry_base_seconds": 0.01},
        )
        assert d.send_batch([rec("c1", tier="gold")], CONTEXT)[0].status == "sent"
    finally:
        server.stop()
    results = d.send_batch([rec("c2", tier="gold"), rec("c3", action="delete")], CONTEXT)
    assert [(r.status, r.retryable) for r in results] == [("failed", True), ("failed", True)]
    d.close()


def test_four_threads_many_batches_every_row_exactly_once(make, dsn):
    d = make(max_batch_size=250)
    threads, batches, size = 4, 20, 250
    results: list = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        start.wait()  # all four race to create the table
        for b in range(batches):
            batch = [rec(f"t{t}-b{b}-r{r}", thread=t, batch=b, shared="x") for r in range(size)]
            # every third batch is sent twice, as the engine does after an unclear outcome
            sent = d.send_batch(batch, CONTEXT) + (d.send_batch(batch, CONTEXT) if b % 3 == 0 else [])
            with lock:
                results.extend(sent)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    assert all(r.status == "sent" for r in results)
    with psycopg.connect(dsn) as conn:
        total, distinct = conn.execute(
            sql.SQL("select count(*), count(distinct customer_id) from {}").format(sql.Identifier(d.table))
        ).fetchone()
        per_thread = dict(
            conn.execute(
                sql.SQL("select thread, count(*) from {} group by thread").format(sql.Identifier(d.table))
            ).fetchall()
        )
    assert total == distinct == threads * batches * size
    assert per_thread == {str(t): batches * size for t in range(threads)}
    print(f"\n4 threads: {total} rows (+ replays) in {elapsed:.2f}s")


def test_throughput_sanity(make, dsn):
    d = make()
    records = [rec(f"c{i}", email=f"user{i}@example.com", tier="gold", score=i % 100) for i in range(10_000)]
    started = time.monotonic()
    for i in range(0, len(records), d.max_batch_size):
        results = d.send_batch(records[i : i + d.max_batch_size], CONTEXT)
        assert all(r.status == "sent" for r in results)
    elapsed = time.monotonic() - started
    print(f"\n10k rows in {elapsed:.2f}s ({10_000 / elapsed:,.0f} rows/s)")
    assert elapsed < 5
    assert len(rows(dsn, d.table)) == 10_000


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"dsn_env": DSN_ENV}, "table"),
        ({"table": "t"}, "dsn_env"),
        ({"dsn_env": "TIDELINE_TEST_UNSET_VAR", "table": "t"}, "dsn_env"),
        ({"dsn_env": DSN_ENV, "host": "db", "table": "t"}, "dsn_env"),
        ({"host": "db", "user": "u", "table": "t"}, "dbname"),
        (
            {
                "host": "db",
                "dbname": "d",
                "user": "u",
                "password_env": "TIDELINE_TEST_UNSET_VAR",
                "table": "t",
            },
            "password_env",
        ),
        ({"dsn_env": DSN_ENV, "table": "t", "columns": {"code": "text); drop table t; --"}}, "columns.code"),
        ({"dsn_env": DSN_ENV, "table": "t", "columns": {"_tideline_x": "text"}}, "columns._tideline_x"),
        ({"dsn_env": DSN_ENV, "table": "t", "max_batch_size": 0}, "max_batch_size"),
        ({"dsn_env": DSN_ENV, "table": "t", "create_table": "yes"}, "create_table"),
        ({"dsn_env": DSN_ENV, "table": "x" * 64}, "table"),
    ],
)
def test_validate_names_destination_and_field(config, field, monkeypatch):
    monkeypatch.setenv(DSN_ENV, "host=127.0.0.1 port=1 dbname=x user=y")
    monkeypatch.delenv("TIDELINE_TEST_UNSET_VAR", raising=False)
    destination = PostgresTableDestination.from_config("crm_pg", config)
    with pytest.raises(ConfigError, match=rf"destination crm_pg: {field}\b"):
        destination.validate()


def test_validate_accepts_host_config_and_sql_types(monkeypatch):
    monkeypatch.setenv("TIDELINE_TEST_PG_PASSWORD", "s3cret")
    destination = PostgresTableDestination.from_config(
        "crm_pg",
        {
            "host": "db.internal",
            "port": 5433,
            "dbname": "crm",
            "user": "tideline",
            "password_env": "TIDELINE_TEST_PG_PASSWORD",
            "table": "members",
            "columns": {
                "a": "varchar(5)",
                "b": "numeric(12, 2)",
                "c": "timestamp with time zone",
                "d": "double precision",
                "e": "text[]",
                "f": "timestamp(3) without time zone",
            },
        },
    )
    destination.validate()
