"""Incremental landing: a run reads only the files that changed since the last one (landing.files is
the manifest), JSON Lines files that only grew give only their new lines, a changed file is
replaced whole, a deleted one leaves, and the result always equals a full load of the same files."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from tests.helpers import write_csv, write_jsonl
from tideline.landing import loader
from tideline.landing.contract import ENTITIES
from tideline.landing.loader import load_landing_zone

ORDERS = "commerce/orders/o.csv"
EVENTS = "events/day1.jsonl"


def order(i: int, amount: str = "10") -> dict:
    return {"order_id": f"o{i}", "customer_id": f"c{i}", "ordered_at": "2025-01-01", "amount": amount}


def event(i: int) -> dict:
    return {
        "event_id": f"e{i}",
        "event_type": "page_view",
        "occurred_at": "2025-01-01T00:00:00Z",
        "customer_id": "c1",
    }


def touch(path: Path, bump: int) -> None:
    """A modification time of its own (a rewrite within the clock's resolution is still seen)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def append_lines(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in lines))
    touch(path, 1)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    write_csv(raw / ORDERS, [order(1), order(2)])
    write_jsonl(raw / EVENTS, [event(1), event(2), event(3)])
    write_csv(raw / "crm/contacts/c.csv", [{"customer_id": "c1", "email": "a@example.com"}])
    (raw / "notes.txt").write_text("not an entity")
    return raw


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every landing table's rows (and the rejects), sorted: what dbt reads."""
    tables = [e.name for e in ENTITIES] + ["load_rejects"]
    return {t: sorted(con.execute(f"select * from landing.{t}").fetchall(), key=repr) for t in tables}


def full_load(raw: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    out = snapshot(con)
    con.close()
    return out


def actions(report) -> dict[str, str]:  # noqa: ANN001
    return {f.file: f.action for f in report.files}


def test_a_run_with_nothing_new_opens_no_file_and_keeps_every_row(raw: Path) -> None:
    con = duckdb.connect()
    first = load_landing_zone(raw, con)
    assert set(actions(first).values()) == {"loaded"} and first.rows_added == 6
    before = snapshot(con)
    second = load_landing_zone(raw, con)
    assert set(actions(second).values()) == {"unchanged"} and second.rows_added == 0
    assert second.total_rows == first.total_rows == 6 and second.rejects == first.rejects == 1
    assert snapshot(con) == before
    history = con.execute("select action, count(*) from landing.loads group by 1").fetchall()
    assert history == [("loaded", 3)]  # the unchanged run wrote no history
    manifest = con.execute("select _file, action from landing.files order by _file").fetchall()
    assert manifest == [
        ("commerce/orders/o.csv", "unchanged"),
        ("crm/contacts/c.csv", "unchanged"),
        ("events/day1.jsonl", "unchanged"),
        ("notes.txt", "not_read"),
    ]


def test_a_json_lines_file_that_grew_gives_only_its_new_lines_numbered_on(raw: Path) -> None:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    append_lines(
        raw / EVENTS, ['{"event_id": "e4", "event_type": "signup", "occurred_at": "2025-01-02"}', "{broken"]
    )
    report = load_landing_zone(raw, con)
    assert actions(report)[EVENTS] == "appended"
    assert actions(report)[ORDERS] == "unchanged"
    assert report.rows_added == 1 and report.entities["events"].rows == 4
    rows = con.execute("select event_id, _row from landing.events order by _row").fetchall()
    assert rows == [("e1", 1), ("e2", 2), ("e3", 3), ("e4", 4)]
    rejects = con.execute(
        "select _row, reason from landing.load_rejects where _file = ?", [EVENTS]
    ).fetchall()
    assert rejects == [(5, "line is not valid JSON")]
    assert snapshot(con) == full_load(raw)  # the same as reading everything again
    assert con.execute("select records, rows from landing.files where _file = ?", [EVENTS]).fetchone() == (
        5,
        4,
    )


def test_a_changed_file_is_replaced_whole_and_a_deleted_one_leaves(raw: Path) -> None:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    write_csv(raw / ORDERS, [order(1, "99"), order(3)])  # rewritten: o2 gone, o1 changed, o3 new
    touch(raw / ORDERS, 2)
    (raw / "crm/contacts/c.csv").unlink()
    report = load_landing_zone(raw, con)
    assert actions(report)[ORDERS] == "replaced" and report.deleted == ["crm/contacts/c.csv"]
    orders = con.execute("select order_id, amount from landing.commerce_orders order by 1").fetchall()
    assert orders == [("o1", "99"), ("o3", "10")]
    assert con.execute("select count(*) from landing.crm_contacts").fetchone()[0] == 0
    assert snapshot(con) == full_load(raw)
    history = con.execute(
        "select _file, action, rows_added from landing.loads where action <> 'loaded'"
    ).fetchall()
    assert sorted(history) == [("commerce/orders/o.csv", "replaced", 2), ("crm/contacts/c.csv", "deleted", 0)]


@pytest.mark.parametrize(
    "rewrite",
    [
        "first line changed",  # grew, but the bytes read before are not the same
        "no final line break",  # the last line read may have been torn: no append point
    ],
)
def test_a_json_lines_file_that_did_not_only_grow_is_read_whole(raw: Path, rewrite: str) -> None:
    con = duckdb.connect()
    path = raw / EVENTS
    if rewrite == "no final line break":
        path.write_text(path.read_text().rstrip("\n"))
        load_landing_zone(raw, con)
        with path.open("a") as fh:
            fh.write('\n{"event_id": "e9", "event_type": "signup", "occurred_at": "2025-01-03"}\n')
    else:
        load_landing_zone(raw, con)
        text = path.read_text().replace('"e1"', '"x1"')
        path.write_text(text + '{"event_id": "e9", "event_type": "signup", "occurred_at": "2025-01-03"}\n')
    touch(path, 3)
    report = load_landing_zone(raw, con)
    assert actions(report)[EVENTS] == "replaced"
    assert snapshot(con) == full_load(raw)
    assert con.execute("select count(*) from landing.events").fetchone()[0] == 4


def test_full_refresh_reads_everything_again(raw: Path) -> None:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    again = load_landing_zone(raw, con, full_refresh=True)
    assert again.full_refresh and set(actions(again).values()) == {"loaded"}
    assert snapshot(con) == full_load(raw)


def test_a_new_encoding_declaration_rereads_the_files_it_covers(raw: Path) -> None:
    con = duckdb.connect()
    path = raw / "crm/contacts/c.csv"
    path.write_bytes("customer_id,first_name\nc1,Zoë\n".encode("cp1252"))
    first = load_landing_zone(raw, con)
    assert (
        actions(first)["crm/contacts/c.csv"] == "loaded"
        and first.entities["crm_contacts"].rejected_files == 1
    )
    (raw / "crm/_encoding.txt").write_text("cp1252\n")  # the file itself is untouched
    second = load_landing_zone(raw, con)
    assert actions(second)["crm/contacts/c.csv"] == "replaced"
    assert con.execute("select first_name from landing.crm_contacts").fetchall() == [("Zoë",)]
    assert (
        con.execute(
            "select count(*) from landing.load_rejects where _file = 'crm/contacts/c.csv'"
        ).fetchone()[0]
        == 0
    )


def test_a_run_killed_inside_a_files_write_leaves_it_as_it_was(
    raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    append_lines(raw / EVENTS, ['{"event_id": "e4", "event_type": "signup", "occurred_at": "2025-01-02"}'])
    real = loader._insert_jsonl

    def dies_after_inserting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        real(*args, **kwargs)
        raise KeyboardInterrupt  # the rows are in, the manifest is not: the transaction rolls back

    monkeypatch.setattr(loader, "_insert_jsonl", dies_after_inserting)
    with pytest.raises(KeyboardInterrupt):
        load_landing_zone(raw, con)
    assert con.execute("select count(*) from landing.events").fetchone()[0] == 3
    monkeypatch.setattr(loader, "_insert_jsonl", real)
    report = load_landing_zone(raw, con)
    assert actions(report)[EVENTS] == "appended"
    assert snapshot(con) == full_load(raw)  # e4 once, not twice


def test_a_contract_change_reloads_that_entity_and_an_old_warehouse_reloads_all(raw: Path) -> None:
    con = duckdb.connect()
    load_landing_zone(raw, con)
    con.execute("alter table landing.crm_contacts drop column birth_date")  # a table of an older contract
    report = load_landing_zone(raw, con)
    assert actions(report)["crm/contacts/c.csv"] == "loaded" and actions(report)[ORDERS] == "unchanged"
    assert snapshot(con) == full_load(raw)
    con.execute("alter table landing.files drop column mtime_ns")  # a manifest from before this one
    old = load_landing_zone(raw, con)
    assert old.full_refresh and set(actions(old).values()) == {"loaded"}
    assert snapshot(con) == full_load(raw)
