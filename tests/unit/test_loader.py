"""The landing loader: every file read as text with file and row; what cannot be read is reported."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import write_csv, write_jsonl
from tideline.landing.loader import LandingError, load_landing_zone


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_reads_csv_parquet_and_jsonl_with_file_and_row(tmp_path: Path, con) -> None:
    write_csv(
        tmp_path / "commerce/orders/month=2025-01/a.csv",
        [
            {
                "ORDER_ID": "o1",
                "Customer_Id": "c1",
                "ordered_at": "2025-01-01",
                "amount": "1.50",
                "extra": "x",
            },
            {"ORDER_ID": "o2", "Customer_Id": "c2", "ordered_at": "2025-01-02", "amount": "2"},
        ],
    )
    pq.write_table(
        pa.table(
            {
                "order_id": ["o3", "o4"],
                "customer_id": ["c3", "c4"],
                "ordered_at": ["2025-02-01", "2025-02-02"],
                "amount": [3.25, 4.0],
            }
        ),
        tmp_path / "commerce/orders/month=2025-01/b.parquet",
    )
    write_jsonl(
        tmp_path / "events/e.jsonl",
        [
            {"event_type": "page_view", "occurred_at": "2025-01-01T00:00:00Z", "anonymous_id": "a", "n": 5},
            "",
            {"event_type": "signup", "occurred_at": "2025-01-02T00:00:00Z", "customer_id": 42},
        ],
    )
    report = load_landing_zone(tmp_path, con)

    rows = con.execute(
        "select order_id, customer_id, amount, currency, _file, _row from landing.commerce_orders order by order_id"
    ).fetchall()
    assert rows == [
        ("o1", "c1", "1.50", None, "commerce/orders/month=2025-01/a.csv", 1),
        ("o2", "c2", "2", None, "commerce/orders/month=2025-01/a.csv", 2),
        ("o3", "c3", "3.25", None, "commerce/orders/month=2025-01/b.parquet", 1),
        ("o4", "c4", "4.0", None, "commerce/orders/month=2025-01/b.parquet", 2),
    ]
    events = con.execute("select event_type, customer_id, _row from landing.events order by _row").fetchall()
    assert events == [("page_view", None, 1), ("signup", "42", 3)]
    assert con.execute("select _row, reason from landing.load_rejects").fetchall() == [(2, "empty line")]
    assert report.entities["commerce_orders"].rows == 4 and report.entities["commerce_orders"].files == 2
    assert report.entities["events"].rejected_rows == 1


def test_optional_entities_missing_give_empty_tables(tmp_path: Path, con) -> None:
    write_csv(
        tmp_path / "commerce/orders/o.csv",
        [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}],
    )
    report = load_landing_zone(tmp_path, con)
    for table in ("crm_contacts", "crm_consents", "commerce_products", "commerce_order_items", "events"):
        assert con.execute(f"select count(*) from landing.{table}").fetchone()[0] == 0
        assert report.entities[table].files == 0
    assert report.total_rows == 1


def test_file_missing_a_required_column_is_rejected_and_the_rest_loads(tmp_path: Path, con) -> None:
    write_csv(tmp_path / "commerce/orders/bad.csv", [{"order_id": "o1", "customer_id": "c1", "amount": "1"}])
    write_csv(
        tmp_path / "commerce/orders/good.csv",
        [{"order_id": "o2", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}],
    )
    (tmp_path / "commerce/orders/broken.parquet").write_bytes(b"not parquet at all")
    report = load_landing_zone(tmp_path, con)
    rejects = dict(
        con.execute("select _file, reason from landing.load_rejects where _row is null").fetchall()
    )
    assert "required column(s) ordered_at missing" in rejects["commerce/orders/bad.csv"]
    assert rejects["commerce/orders/broken.parquet"].startswith("file cannot be read as parquet")
    assert con.execute("select order_id from landing.commerce_orders").fetchall() == [("o2",)]
    assert report.entities["commerce_orders"].rejected_files == 2
    statuses = dict(con.execute("select _file, status from landing.files").fetchall())
    assert statuses == {
        "commerce/orders/bad.csv": "rejected",
        "commerce/orders/broken.parquet": "rejected",
        "commerce/orders/good.csv": "loaded",
    }


def test_ragged_and_quoted_csv_rows_keep_their_record_numbers(tmp_path: Path, con) -> None:
    path = tmp_path / "crm/contacts/c.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        'customer_id,email,city\nc1,a@x.io,Berlin\nc2,b@x.io\n"c3","c@x.io","New\nYork"\nc4,d@x.io,Rome\n'
    )
    write_csv(
        tmp_path / "commerce/orders/o.csv",
        [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}],
    )
    load_landing_zone(tmp_path, con)
    rows = con.execute("select customer_id, city, _row from landing.crm_contacts order by _row").fetchall()
    assert rows == [("c1", "Berlin", 1), ("c2", None, 2), ("c3", "New\nYork", 3), ("c4", "Rome", 4)]


def test_a_csv_the_parallel_reader_fails_on_only_past_its_header_is_read_serially(
    tmp_path: Path, con
) -> None:
    # a quoted comma, a short row and a quoted line break in a middle column: the header reads in
    # parallel, the rows do not ("does not support null_padding in conjunction with quoted new lines")
    orders = tmp_path / "commerce/orders"
    orders.mkdir(parents=True)
    (orders / "o.csv").write_text(
        'order_id,customer_id,ordered_at,amount\nx1,c1,2025-01-02,"1,5"\nx2,c2\n"x3","c3\nline two",2025-01-03,7\n'
    )
    write_csv(
        orders / "p.csv", [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}]
    )
    report = load_landing_zone(tmp_path, con)
    rows = con.execute(
        "select order_id, customer_id, amount, _row from landing.commerce_orders where _file = 'commerce/orders/o.csv' order by _row"
    ).fetchall()
    assert rows == [("x1", "c1", "1,5", 1), ("x2", "c2", None, 2), ("x3", "c3\nline two", "7", 3)]
    assert {f.file: f.status for f in report.files} == {
        "commerce/orders/o.csv": "loaded",
        "commerce/orders/p.csv": "loaded",
    }


def test_a_csv_no_reader_can_read_past_its_header_is_rejected_and_the_rest_loads(
    tmp_path: Path, con, monkeypatch
) -> None:
    from tideline.landing import loader

    orders = tmp_path / "commerce/orders"
    write_csv(
        orders / "a.csv", [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}]
    )
    write_csv(
        orders / "b.csv", [{"order_id": "o2", "customer_id": "c2", "ordered_at": "2025-01-01", "amount": "2"}]
    )
    real = loader._insert_read

    def failing(con, entity, file, pending):  # noqa: ANN001 - the loader's own arguments
        if file.file.endswith("b.csv") and file.reason is None:
            con.execute("select cast('not a number' as integer)")  # any reader error past the header
        return real(con, entity, file, pending)

    monkeypatch.setattr(loader, "_insert_read", failing)
    report = load_landing_zone(tmp_path, con)
    rejected = {f.file: f.reason for f in report.files if f.status == "rejected"}
    assert list(rejected) == ["commerce/orders/b.csv"]
    assert rejected["commerce/orders/b.csv"].startswith("file cannot be read as csv:")
    assert con.execute("select order_id from landing.commerce_orders").fetchall() == [("o1",)]
    assert con.execute(
        "select _file, reason like 'file cannot be read as csv:%' from landing.load_rejects"
    ).fetchall() == [("commerce/orders/b.csv", True)]


def test_reload_replaces_the_snapshot(tmp_path: Path, con) -> None:
    orders = tmp_path / "commerce/orders"
    write_csv(
        orders / "a.csv", [{"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}]
    )
    load_landing_zone(tmp_path, con)
    write_csv(
        orders / "b.csv", [{"order_id": "o2", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}]
    )
    load_landing_zone(tmp_path, con)
    assert con.execute("select count(*) from landing.commerce_orders").fetchone()[0] == 2


def test_missing_raw_dir_is_a_clear_error(tmp_path: Path, con) -> None:
    with pytest.raises(LandingError, match="does not exist"):
        load_landing_zone(tmp_path / "nope", con)


def test_reads_the_receivers_engagement_files_with_file_and_row(tmp_path: Path, con) -> None:
    """Lines written by the receiver's own writer load as engagement_events (and its consent
    revocations as crm_consents), every field as text, with the file and line they came from."""
    from datetime import UTC, datetime

    from activation.receiver import EngagementLog

    log = EngagementLog(tmp_path)
    key = "0b9c3e1e-55a3-4d55-9a53-2f4f3c1d2e10"
    click = {
        "event_id": "a" * 32,
        "event_type": "clicked",
        "occurred_at": "2025-03-01T10:15:00.000Z",
        "received_at": "2025-03-01T10:15:00.000Z",
        "source": "tracking",
        "message_key": key,
        "customer_id": "c1",
        "campaign": "spring",
        "variant": "B",
        "channel": "email",
        "link_index": 0,
        "url": "https://shop.example.com/sale",
        "user_agent": "Mozilla/5.0",
    }
    bounce = {
        "event_id": "esp:42",
        "event_type": "bounced",
        "occurred_at": "2025-03-01T10:16:00.000Z",
        "source": "webhook",
        "provider": "esp",
        "message_key": key,
        "customer_id": "c1",
        "channel": "email",
        "bounce_type": "hard",
    }
    revoked = {"customer_id": "c1", "channel": "email", "status": "revoked", "consented_at": "2025-03-01"}
    log.append([click], now=datetime(2025, 3, 1, 10, 15, tzinfo=UTC))
    log.append([bounce, bounce], [revoked], now=datetime(2025, 3, 1, 10, 16, tzinfo=UTC))
    log.close()
    [events_file] = log.event_files
    rel = events_file.relative_to(tmp_path).as_posix()
    assert rel.startswith("engagement/events/2025-03-01/receiver-")

    report = load_landing_zone(tmp_path, con)

    assert report.entities["engagement_events"].rows == 3
    assert report.entities["engagement_events"].rejected_rows == 0
    rows = con.execute(
        """select _file, _row, event_id, event_type, occurred_at, provider, message_key, campaign,
                  variant, link_index, url, user_agent, bounce_type
           from landing.engagement_events order by _row"""
    ).fetchall()
    assert rows == [
        (rel, 1, "a" * 32, "clicked", "2025-03-01T10:15:00.000Z", None, key, "spring", "B", "0",
         "https://shop.example.com/sale", "Mozilla/5.0", None),
        (rel, 2, "esp:42", "bounced", "2025-03-01T10:16:00.000Z", "esp", key, None, None, None, None, None, "hard"),
        (rel, 3, "esp:42", "bounced", "2025-03-01T10:16:00.000Z", "esp", key, None, None, None, None, None, "hard"),
    ]  # fmt: skip
    assert con.execute("select customer_id, status, _row from landing.crm_consents").fetchall() == [
        ("c1", "revoked", 1)
    ]


def test_a_line_torn_by_a_killed_receiver_is_rejected_with_its_line(tmp_path: Path, con) -> None:
    """A receiver killed mid-write can leave its last, unacknowledged line cut short (no newline):
    the complete lines load, the fragment goes to the rejects with file and line."""
    folder = tmp_path / "engagement/events/2025-03-01"
    folder.mkdir(parents=True)
    whole = '{"event_id":"e1","event_type":"clicked","occurred_at":"2025-03-01T10:15:00Z"}\n'
    (folder / "receiver-20250301T101500Z-7-1.jsonl").write_text(whole + '{"event_id":"ed55fe9e45')

    report = load_landing_zone(tmp_path, con)

    assert report.entities["engagement_events"].rows == 1
    assert con.execute("select _file, _row, reason from landing.load_rejects").fetchall() == [
        ("engagement/events/2025-03-01/receiver-20250301T101500Z-7-1.jsonl", 2, "line is not valid JSON")
    ]


ORDER = {"order_id": "o1", "customer_id": "c1", "ordered_at": "2025-01-01", "amount": "1"}
EXPECTED_FOLDERS = (
    "crm/contacts/, crm/consents/, commerce/products/, commerce/orders/, commerce/order_items/, events/, "
    "engagement/events/, crm/staff/, crm/customer_owners/, crm/lead_status/"
)


def _file_rejects(con) -> dict[str, tuple[str, str]]:
    """file → (entity, reason) of the whole-file rejects."""
    rows = con.execute("select _file, entity, reason from landing.load_rejects where _row is null").fetchall()
    return {f: (e, r) for f, e, r in rows}


def test_a_latin1_csv_is_rejected_as_not_utf8_with_the_fix(tmp_path: Path, con, caplog) -> None:
    """Not DuckDB's "CSV Error on Line: 2": the byte, its line, what it reads as, and the fix."""
    contacts = tmp_path / "crm/contacts"
    contacts.mkdir(parents=True)
    (contacts / "export.csv").write_bytes("customer_id,city\nc1,München\n".encode("latin-1"))
    (contacts / "good.csv").write_text("customer_id,city\nc2,Köln\n", encoding="utf-8")
    write_csv(tmp_path / "commerce/orders/o.csv", [ORDER])

    report = load_landing_zone(tmp_path, con)

    entity, reason = _file_rejects(con)["crm/contacts/export.csv"]
    assert entity == "crm_contacts"
    assert reason == (
        "file is not UTF-8: byte 0xFC on line 2 is not valid UTF-8; it reads as cp1252 (the line is in the "
        "reject's value). Save the file as UTF-8, or declare its encoding in crm/contacts/_encoding.txt (one "
        "line, e.g. cp1252; see the README, Bring your own data)"
    )
    # the line as it reads goes to the value column (like any raw value), never into the reason or logs
    assert con.execute("select value from landing.load_rejects").fetchall() == [("c1,München",)]
    assert "München" not in caplog.text and "export.csv rejected: file is not UTF-8" in caplog.text
    assert con.execute("select customer_id, city from landing.crm_contacts").fetchall() == [("c2", "Köln")]
    assert report.entities["crm_contacts"].rejected_files == 1


def test_a_declared_or_byte_order_marked_encoding_is_read(tmp_path: Path, con) -> None:
    """`_encoding.txt` applies to its folder and below (the nearest wins); UTF-16 is known by its BOM."""
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm/_encoding.txt").write_text("# exports of the old CRM\ncp1252\n")
    contacts = tmp_path / "crm/contacts"
    contacts.mkdir()
    (contacts / "a.csv").write_bytes("customer_id,city,first_name\nc1,München,Zoë “Z”\n".encode("cp1252"))
    (contacts / "b.csv").write_bytes("customer_id,city\nc2,Łódź\n".encode("utf-16"))
    modern = contacts / "modern"
    modern.mkdir()
    (modern / "_encoding.txt").write_text("utf-8\n")
    (modern / "c.csv").write_text("customer_id,city\nc3,Malmö\n", encoding="utf-8")
    write_csv(tmp_path / "commerce/orders/o.csv", [ORDER])

    report = load_landing_zone(tmp_path, con)

    assert con.execute(
        "select customer_id, city, first_name, _file, _row from landing.crm_contacts order by customer_id"
    ).fetchall() == [
        ("c1", "München", "Zoë “Z”", "crm/contacts/a.csv", 1),
        ("c2", "Łódź", None, "crm/contacts/b.csv", 1),
        ("c3", "Malmö", None, "crm/contacts/modern/c.csv", 1),
    ]
    assert dict(
        con.execute("select _file, encoding from landing.files where entity = 'crm_contacts'").fetchall()
    ) == {
        "crm/contacts/a.csv": "cp1252 (crm/_encoding.txt)",
        "crm/contacts/b.csv": "utf-16 (byte-order mark)",
        "crm/contacts/modern/c.csv": "utf-8 (crm/contacts/modern/_encoding.txt)",
    }
    assert report.rejects == 0


def test_a_bad_declaration_or_a_file_not_in_the_declared_encoding_is_rejected(tmp_path: Path, con) -> None:
    (tmp_path / "crm/contacts").mkdir(parents=True)
    (tmp_path / "crm/contacts/_encoding.txt").write_text("latin_one\n")
    (tmp_path / "crm/contacts/a.csv").write_text("customer_id\nc1\n")
    (tmp_path / "events").mkdir()
    (tmp_path / "events/_encoding.txt").write_text("ascii\n")
    (tmp_path / "events/e.jsonl").write_bytes(
        b'{"event_type":"login","occurred_at":"2025-01-01","customer_id":"c1"}\n{"event_type":"caf\xc3\xa9"}\n'
    )
    write_csv(tmp_path / "commerce/orders/o.csv", [ORDER])

    load_landing_zone(tmp_path, con)

    rejects = _file_rejects(con)
    assert rejects["crm/contacts/a.csv"][1].startswith(
        'crm/contacts/_encoding.txt names no known encoding ("latin_one"): write one encoding name'
    )
    assert rejects["events/e.jsonl"][1] == (
        "file is not valid ascii (events/_encoding.txt): byte 0xC3 on line 2 cannot be decoded; "
        "correct the declared encoding or save the file as UTF-8"
    )
    assert con.execute("select count(*) from landing.events").fetchone()[0] == 0


def test_a_latin1_json_lines_file_is_a_reject_not_a_crash(tmp_path: Path, con) -> None:
    write_jsonl(
        tmp_path / "events/ok.jsonl",
        [{"event_type": "login", "occurred_at": "2025-01-01", "customer_id": "c1"}],
    )
    (tmp_path / "events/old.jsonl").write_bytes(
        '{"event_type": "page_view", "occurred_at": "2025-01-01", "url": "/café"}\n'.encode("latin-1")
    )
    write_csv(tmp_path / "commerce/orders/o.csv", [ORDER])

    report = load_landing_zone(tmp_path, con)

    reason = _file_rejects(con)["events/old.jsonl"][1]
    assert reason.startswith("file is not UTF-8: byte 0xE9 on line 1 is not valid UTF-8; it reads as cp1252")
    assert report.entities["events"].rows == 1 and report.entities["events"].rejected_files == 1


def test_utf8_is_checked_across_read_chunks(tmp_path: Path, monkeypatch) -> None:
    """A character split by the chunk boundary is fine; a bad byte after it is found on its line."""
    from tideline.landing import encoding

    monkeypatch.setattr(encoding, "CHUNK", 5)
    good = tmp_path / "good.csv"
    good.write_text("ab\nc€é\nñ\n", encoding="utf-8")  # € spans bytes 4-6: across the first boundary
    assert encoding.detect(tmp_path, good) == encoding.Encoding("utf-8", "default")
    bad = tmp_path / "bad.csv"
    bad.write_bytes("ab\nc€\n".encode() + b"x\xe2\x82\n")  # a € cut short on line 3
    with pytest.raises(encoding.EncodingProblem, match="byte 0xE2 on line 3 is not valid UTF-8"):
        encoding.detect(tmp_path, bad)
    (tmp_path / "_encoding.txt").write_text("cp1252")
    copy = tmp_path / "copy.csv"
    encoding.transcode(good, encoding.Encoding("utf-8", "test"), copy)
    assert copy.read_text(encoding="utf-8") == "ab\nc€é\nñ\n"


def test_an_empty_file_is_reported_as_empty(tmp_path: Path, con) -> None:
    """Not "required column(s) … missing (found: column0)"."""
    orders = tmp_path / "commerce/orders"
    write_csv(orders / "good.csv", [ORDER])
    (orders / "empty.csv").write_bytes(b"")
    (orders / "blank.csv").write_text("\n \n")
    (orders / "empty.parquet").write_bytes(b"")
    (tmp_path / "events").mkdir()
    (tmp_path / "events/empty.jsonl").write_bytes(b"")

    report = load_landing_zone(tmp_path, con)

    rejects = {f: r for f, (_e, r) in _file_rejects(con).items()}
    empty = "file is empty (0 bytes): there is nothing to load; export it again, or remove it"
    assert rejects == {
        "commerce/orders/empty.csv": empty,
        "commerce/orders/empty.parquet": empty,
        "events/empty.jsonl": empty,
        "commerce/orders/blank.csv": (
            "file is empty (blank lines only): there is nothing to load; export it again, or remove it"
        ),
    }
    assert (
        report.entities["commerce_orders"].rows == 1
        and report.entities["commerce_orders"].rejected_files == 3
    )


def test_files_that_belong_to_no_entity_are_rejected_with_the_expected_folders(tmp_path: Path, con) -> None:
    write_csv(tmp_path / "commerce/orders/o.csv", [ORDER])
    write_csv(tmp_path / "orders.csv", [ORDER])  # at the top of the raw dir
    write_csv(tmp_path / "shop/orders/2025.csv", [ORDER])  # in a folder that is no entity
    write_csv(tmp_path / "crm/leads.csv", [{"customer_id": "c1"}])  # in crm/ but not crm/contacts/
    (tmp_path / "commerce/orders/2025.xlsx").write_bytes(b"PK\x03\x04")  # an entity folder, other format
    # deliberately ignored: the demo generator's ground truth, sidecars, hidden files, Spark markers
    write_csv(tmp_path / "_truth/duplicates.csv", [{"a": "1"}])
    (tmp_path / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "commerce/orders/_SUCCESS").write_bytes(b"")
    (tmp_path / "commerce/orders/.part-0.csv.crc").write_bytes(b"x")

    report = load_landing_zone(tmp_path, con)

    rejects = _file_rejects(con)
    assert set(rejects) == {
        "orders.csv",
        "shop/orders/2025.csv",
        "crm/leads.csv",
        "commerce/orders/2025.xlsx",
    }
    assert rejects["orders.csv"] == (
        "no_entity",
        "file belongs to no entity: the top of the raw dir is not an entity folder (did you mean commerce/orders/?); "
        f"move it into one of {EXPECTED_FOLDERS} (sub-folders below them are fine; files and folders whose name "
        "starts with _ or . are ignored)",
    )
    assert rejects["shop/orders/2025.csv"][1].startswith(
        "file belongs to no entity: folder shop/orders/ is not an entity folder (did you mean commerce/orders/?)"
    )
    assert rejects["crm/leads.csv"][1].startswith(
        "file belongs to no entity: folder crm/ is not an entity folder; move it into one of crm/contacts/"
    )
    assert rejects["commerce/orders/2025.xlsx"] == (
        "commerce_orders",
        "not a format Tideline reads (.xlsx): save it as CSV (.csv, with a header row), Parquet (.parquet) or "
        "JSON Lines (.jsonl, .ndjson, .json)",
    )
    assert (
        report.entities["commerce_orders"].rows == 1
        and report.entities["commerce_orders"].rejected_files == 1
    )
    assert [f.file for f in report.no_entity] == ["crm/leads.csv", "orders.csv", "shop/orders/2025.csv"]
    assert report.rejects == 4
    statuses = con.execute(
        "select entity, _file, status from landing.files where entity = 'no_entity'"
    ).fetchall()
    assert sorted(statuses) == [
        ("no_entity", "crm/leads.csv", "rejected"),
        ("no_entity", "orders.csv", "rejected"),
        ("no_entity", "shop/orders/2025.csv", "rejected"),
    ]


@pytest.mark.slow
def test_load_rejects_reach_marts_rejects_and_the_summary(tmp_path: Path) -> None:
    """A stray file and a Latin-1 export end where the user looks: marts.rejects and the summary."""
    from tests.helpers import build_warehouse
    from tideline.reporting.summary import build_summary

    raw = tmp_path / "raw"
    write_csv(raw / "commerce/orders/o.csv", [ORDER])
    write_csv(raw / "orders_march.csv", [ORDER])
    (raw / "crm/contacts").mkdir(parents=True)
    (raw / "crm/contacts/c.csv").write_bytes("customer_id,city\nc1,Zürich\n".encode("latin-1"))
    warehouse = build_warehouse(raw, tmp_path / "w.duckdb", "2025-01-31")

    rows = warehouse.query(
        "select entity, source_file, source_row, action, message from marts.rejects order by 2"
    )
    assert [r[:4] for r in rows] == [
        ("crm_contacts", "crm/contacts/c.csv", None, "file_rejected"),
        ("no_entity", "orders_march.csv", None, "file_rejected"),
    ]
    assert rows[1][4].startswith("orders_march.csv: file belongs to no entity: the top of the raw dir")
    summary = build_summary(warehouse.path)
    assert (
        "Rejected input: 2 (rows rejected 0, fields cleared 0, files rejected 2) — by entity: crm_contacts 1, "
        "no_entity 1" in summary
    )


def test_a_linked_entity_folder_is_read(tmp_path: Path, con) -> None:
    """An export folder linked into the raw dir is read like a real one (the walk follows links)."""
    exports = tmp_path / "exports"
    write_csv(exports / "2025.csv", [ORDER])
    raw = tmp_path / "raw"
    (raw / "commerce").mkdir(parents=True)
    (raw / "commerce/orders").symlink_to(exports, target_is_directory=True)

    report = load_landing_zone(raw, con)

    assert report.entities["commerce_orders"].rows == 1 and report.rejects == 0
    assert con.execute("select _file from landing.commerce_orders").fetchall() == [
        ("commerce/orders/2025.csv",)
    ]
