"""The landing loader: every file read as text with file and row; what cannot be read is reported."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.landing.loader import LandingError, load_landing_zone
from tests.helpers import write_csv, write_jsonl


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
