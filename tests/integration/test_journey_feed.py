"""activation.journeys.feed: the landing zone's new event and order lines reach the journey views
within a tick, with no dbt build.

Real DuckDB files and real JSON Lines files in tmp_path. dbt's relations are small stand-in tables
with dbt's names and column types (as a built warehouse has them), except in the last test, where
the real loader and `dbt build` turn the same landing lines into dbt's relations and the views must
hold exactly the rows dbt does."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import requests

from activation.conditions.catalog import EVENT_FIELDS, ORDER_FIELDS
from activation.journeys import feed
from activation.journeys.feed import FeedResult, prune_feed, refresh_views, take_in_feed
from activation.warehouse import literal
from tests.helpers import dbt_build, write_csv
from tideline.demo.shop import CUSTOMER_HEADER, DemoShop
from tideline.landing.contract import EVENTS, FILE_FORMATS, ORDERS
from tideline.landing.loader import load_landing_zone

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
T = "2026-03-02T10:00:00Z"


def _event(event_id: str | None, customer: str | None = "c1", **fields) -> str:
    record = {"event_id": event_id, "event_type": "page_view", "occurred_at": T, "customer_id": customer}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def _order(order_id: str, customer: str = "c1", **fields) -> str:
    record = {"order_id": order_id, "customer_id": customer, "ordered_at": T, "amount": "10.00"}
    record.update(fields)
    return json.dumps(record)


def _append(path: Path, *lines: str, end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + end)
    return path


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def _events_file(raw: Path, name: str = "shop-1.jsonl") -> Path:
    return raw / "events" / "shop" / "2026-03-02" / name


def _orders_file(raw: Path, name: str = "shop-1.jsonl") -> Path:
    return raw / "commerce" / "orders" / "shop" / name


# ------------------------------------------------------------------------------------------------
# take_in_feed
# ------------------------------------------------------------------------------------------------


def test_only_new_complete_lines_are_read_on_the_next_call(raw: Path, con) -> None:
    events = _append(_events_file(raw), _event("e1"), _event("e2"))
    _append(_orders_file(raw), _order("o1"))
    assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=3, events=2, orders=1, skipped=0)
    assert take_in_feed(con, raw, NOW) == FeedResult()  # nothing new: nothing read

    _append(events, _event("e3"))
    later = NOW + dt.timedelta(minutes=1)
    assert take_in_feed(con, raw, later) == FeedResult(files=1, lines=1, events=1)
    assert _rows(con, "select event_id, taken_in_at from tideline_journeys.live_events order by 1") == [
        ("e1", NOW.replace(tzinfo=None)),
        ("e2", NOW.replace(tzinfo=None)),
        ("e3", later.replace(tzinfo=None)),
    ]
    assert _rows(con, "select file, bytes_read, lines_read from tideline_journeys.feed_files order by 1") == [
        ("commerce/orders/shop/shop-1.jsonl", _orders_file(raw).stat().st_size, 1),
        ("events/shop/2026-03-02/shop-1.jsonl", events.stat().st_size, 3),
    ]


def test_a_file_the_landing_snapshot_read_is_taken_in_from_where_the_snapshot_stopped(
    raw: Path, con, tmp_path: Path
) -> None:
    """The history a landing zone keeps as JSON Lines is in dbt already: the feed starts each file
    where the landing loader's snapshot stopped (landing.files.bytes), not at its first line; a line
    the snapshot read torn is read again whole."""
    from tideline.landing.loader import load_landing_zone

    events = _append(_events_file(raw, "history.jsonl"), _event("h1"), _event("h2"))
    _append(events, '{"event_id": "h3", "event_type": "page_view"', end="")  # being written
    load_landing_zone(raw, con)
    with events.open("a", encoding="utf-8") as fh:  # the torn line is finished, then one more
        fh.write(', "occurred_at": "2026-03-02T10:00:00Z", "customer_id": "c1"}\n' + _event("h4") + "\n")
    first = take_in_feed(con, raw, NOW)
    assert _rows(con, "select event_id from tideline_journeys.live_events order by 1") == [("h3",), ("h4",)]
    assert first.events == 2
    assert take_in_feed(con, raw, NOW) == FeedResult()  # the resume point was recorded: nothing again


def test_what_the_demo_shop_appends_is_in_the_views_at_the_next_call(raw: Path, con) -> None:
    with DemoShop(raw) as shop:  # the real shop on loopback, writing its append-only files
        page = requests.get(
            f"{shop.base_url}/p/1?utm_source=Newsletter", headers={CUSTOMER_HEADER: "c1"}, timeout=5
        )
        bought = requests.post(
            f"{shop.base_url}/checkout", json={"amount": 42.5}, headers={CUSTOMER_HEADER: "c1"}, timeout=5
        )
        assert page.status_code == 200 and bought.status_code == 201
        assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=3, events=2, orders=1)
        refresh_views(con)
        assert _rows(
            con, "select customer_id, event_type, utm_source from tideline_journeys.events order by 2"
        ) == [
            ("c1", "checkout_started", None),
            ("c1", "page_view", "newsletter"),
        ]
        assert _rows(
            con, "select order_id, customer_id, is_purchase, amount from tideline_journeys.orders"
        ) == [(bought.json()["order_id"], "c1", True, Decimal("42.5"))]
        requests.get(f"{shop.base_url}/p/2", headers={CUSTOMER_HEADER: "c2"}, timeout=5)
        assert take_in_feed(con, raw, NOW) == FeedResult(files=1, lines=1, events=1)
    assert _rows(con, "select count(*) from tideline_journeys.events where customer_id = 'c2'") == [(1,)]


def test_a_torn_last_line_waits_for_the_next_call(raw: Path, con) -> None:
    whole = _event("e2", utm_source="newsletter")
    path = _append(_events_file(raw), _event("e1"), whole[:25], end="")  # the writer is mid-line
    assert take_in_feed(con, raw, NOW) == FeedResult(files=1, lines=1, events=1)
    assert take_in_feed(con, raw, NOW) == FeedResult()  # still torn: nothing read, nothing skipped
    with path.open("a") as fh:
        fh.write(whole[25:] + "\n")
    assert take_in_feed(con, raw, NOW) == FeedResult(files=1, lines=1, events=1)
    assert _rows(con, "select event_id, utm_source from tideline_journeys.live_events order by 1") == [
        ("e1", None),
        ("e2", "newsletter"),
    ]


def test_a_replaced_file_is_read_again_from_the_start_and_nothing_is_recorded_twice(raw: Path, con) -> None:
    path = _append(_orders_file(raw), _order("o1"), _order("o2"), _order("o3"))
    _append(_orders_file(raw, "other.jsonl"), _order("o9"))
    assert take_in_feed(con, raw, NOW).orders == 4
    path.write_text(_order("o2", amount="20") + "\n")  # replaced by a shorter file
    assert take_in_feed(con, raw, NOW) == FeedResult(files=1, lines=1, orders=1)
    # the file's earlier rows are gone from the landing zone, and from the live rows (as from dbt's
    # next snapshot); the other file's stay
    assert _rows(con, "select order_id, amount from tideline_journeys.live_orders order by 1") == [
        ("o2", Decimal("20")),
        ("o9", Decimal("10")),
    ]
    # replaced by a longer file with other first bytes: reading on at the old offset would start mid-line
    path.write_text("\n".join([_order("o4"), _order("o2", amount="30"), _order("o5")]) + "\n")
    assert take_in_feed(con, raw, NOW) == FeedResult(files=1, lines=3, orders=3)
    assert _rows(
        con, "select order_id, amount, source_line from tideline_journeys.live_orders order by 1"
    ) == [
        ("o2", Decimal("30"), 2),
        ("o4", Decimal("10"), 1),
        ("o5", Decimal("10"), 3),
        ("o9", Decimal("10"), 1),
    ]
    assert _rows(
        con, "select lines_read from tideline_journeys.feed_files where file like '%shop-1.jsonl'"
    ) == [(3,)]
    assert take_in_feed(con, raw, NOW) == FeedResult()


def test_an_id_seen_again_follows_staging_events_keep_the_first_line_orders_the_latest(
    raw: Path, con
) -> None:
    _append(
        _events_file(raw, "a.jsonl"),
        _event("e1", event_type="product_view"),
        _event("e1", event_type="login"),
    )
    _append(_orders_file(raw, "a.jsonl"), _order("o1", status="completed"), _order("o1", status="cancelled"))
    assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=4, events=2, orders=2)
    # a later call, a later line of the same file and a later file
    _append(_events_file(raw, "a.jsonl"), _event("e1", event_type="signup"))
    _append(_events_file(raw, "b.jsonl"), _event("e1", event_type="app_open"))
    _append(_orders_file(raw, "b.jsonl"), _order("o1", status="refunded"))
    assert take_in_feed(con, raw, NOW).lines == 3
    assert _rows(con, "select event_id, event_type, source_line from tideline_journeys.live_events") == [
        ("e1", "product_view", 1)
    ]
    assert _rows(con, "select order_id, status, source_file from tideline_journeys.live_orders") == [
        ("o1", "refunded", "commerce/orders/shop/b.jsonl")
    ]
    # an earlier file appearing later does not win over the latest file's order
    _append(_orders_file(raw, "0.jsonl"), _order("o1", status="completed"))
    take_in_feed(con, raw, NOW)
    assert _rows(con, "select status from tideline_journeys.live_orders") == [("refunded",)]


def test_unusable_lines_are_skipped_counted_and_named_by_file_and_line(raw: Path, con, caplog) -> None:
    events = [
        _event("e1"),
        '{"event_id": "e2", "event_type": "page_view", "occurred_at": "2026-03-02T1',  # torn by a crash
        "",
        '["an", "array"]',
        _event("e3", event_type=" "),
        _event("e4", occurred_at="yesterday"),
        _event("e5", occurred_at="2026-03-02T10:00+02:00"),  # staging's pattern, but no timestamp cast
        _event("e6", customer=None),  # neither customer nor anonymous id
        _event(None, anonymous_id="a1", event_type="Page_View", occurred_at="2026-03-02 10:00"),
    ]
    orders = [
        _order("o1", amount="1,5"),
        _order("o2", amount="-3"),
        _order("o3", status="lost"),
        _order("", amount="3"),
        _order("o4", customer=" "),
        _order("o5", ordered_at=""),
        _order("o6", amount=12.5, status="Paid", discount_amount="a lot", coupon_code=" "),
    ]
    _append(_events_file(raw), *events)
    path = _orders_file(raw)
    _append(path, *orders)
    with path.open("ab") as fh:
        fh.write(b'{"order_id": "o7", "customer_id": "c\xff"}\n')  # not UTF-8
    with caplog.at_level("WARNING", logger="activation.journeys.feed"):
        result = take_in_feed(con, raw, NOW)
    assert result == FeedResult(files=2, lines=17, events=2, orders=1, skipped=14)
    assert result.problems == (
        "commerce/orders/shop/shop-1.jsonl line 1: amount is not a number (use a dot as decimal separator, "
        "no thousands separator); skipped",
        "commerce/orders/shop/shop-1.jsonl line 2: amount is negative; skipped",
        "commerce/orders/shop/shop-1.jsonl line 3: status is not one of completed, cancelled, refunded; skipped",
        "commerce/orders/shop/shop-1.jsonl line 4: order_id is empty; skipped",
        "commerce/orders/shop/shop-1.jsonl line 5: customer_id is empty; skipped",
        "commerce/orders/shop/shop-1.jsonl line 6: ordered_at is empty; skipped",
        "commerce/orders/shop/shop-1.jsonl line 8: line is not UTF-8; skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 2: line is not valid JSON; skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 3: empty line; skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 4: line is JSON but not an object; skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 5: event_type is empty; skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 6: occurred_at is not a timestamp "
        "(use ISO 8601, e.g. 2025-03-01T10:00:00Z); skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 7: occurred_at is not a timestamp "
        "(use ISO 8601, e.g. 2025-03-01T10:00:00Z); skipped",
        "events/shop/2026-03-02/shop-1.jsonl line 8: neither anonymous_id nor customer_id is set; skipped",
    )
    assert all(problem in caplog.text for problem in result.problems)
    assert 'customer_id"' not in caplog.text  # reasons only, never the line
    # the usable ones, typed as staging types them
    assert _rows(
        con,
        "select event_id, event_type, occurred_at, account_id from tideline_journeys.live_events order by 1",
    ) == [
        ("e1", "page_view", dt.datetime(2026, 3, 2, 10, 0), "c1"),
        ("row:events/shop/2026-03-02/shop-1.jsonl:9", "page_view", dt.datetime(2026, 3, 2, 10, 0), "c1"),
    ]
    assert _rows(
        con, "select order_id, amount, status, discount, coupon_code from tideline_journeys.live_orders"
    ) == [("o6", Decimal("12.5"), "completed", Decimal("0"), None)]


def test_times_are_utc_and_text_is_normalised_as_staging_does(raw: Path, con) -> None:
    _append(
        _events_file(raw),
        _event("e1", occurred_at="2026-03-02T12:30:00+02:00", utm_source=" Google ", utm_medium="CPC"),
        _event("e2", occurred_at="2026-03-02", product_id=42, url=" https://shop.example.com/p "),
        _event("e3", occurred_at="2026-03-02T10:00:00.123456-0130", customer=" c2 "),
    )
    _append(
        _orders_file(raw),
        _order("o1", ordered_at="2026-03-02T23:30:00-01:00", amount=" 7.1234567 ", channel="WEB"),
    )
    assert take_in_feed(con, raw, NOW).skipped == 0
    assert _rows(
        con,
        "select event_id, occurred_at, account_id, product_id, url, utm_source, utm_medium "
        "from tideline_journeys.live_events order by 1",
    ) == [
        ("e1", dt.datetime(2026, 3, 2, 10, 30), "c1", None, None, "google", "cpc"),
        ("e2", dt.datetime(2026, 3, 2, 0, 0), "c1", "42", "https://shop.example.com/p", None, None),
        ("e3", dt.datetime(2026, 3, 2, 11, 30, 0, 123456), "c2", None, None, None, None),
    ]
    assert _rows(con, "select ordered_at, amount, channel, status from tideline_journeys.live_orders") == [
        (dt.datetime(2026, 3, 3, 0, 30), Decimal("7.123457"), "web", "completed")
    ]


def test_only_the_event_and_order_folders_are_read_as_the_loader_finds_files(raw: Path, con) -> None:
    assert (EVENTS.path, ORDERS.path) == (feed.EVENTS_DIR, feed.ORDERS_DIR)
    assert set(feed.SUFFIXES) == {suffix for suffix, fmt in FILE_FORMATS.items() if fmt == "jsonl"}
    _append(raw / "events" / "month=2026-03" / "part-00000.ndjson", _event("e1"))
    _append(raw / "events" / "_truth" / "x.jsonl", _event("hidden1"))
    _append(raw / "events" / ".tmp.jsonl", _event("hidden2"))
    _append(raw / "events" / "export.csv", "event_id,event_type")
    _append(raw / "engagement" / "events" / "receiver-1.jsonl", _event("engagement1"))
    _append(raw / "commerce" / "order_items" / "items.jsonl", _order("item1"))
    _append(raw / "commerce" / "orders" / "orders.json", _order("o1"))
    assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=2, events=1, orders=1)
    assert take_in_feed(con, raw / "missing", NOW) == FeedResult()


def test_lines_and_offsets_are_written_together_a_crash_between_batches_loses_and_repeats_nothing(
    raw: Path, con, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(_events_file(raw, "a.jsonl"), *(_event(f"a{i}") for i in range(5)))
    _append(_events_file(raw, "b.jsonl"), *(_event(f"b{i}") for i in range(3)))
    monkeypatch.setattr(feed, "BATCH_LINES", 2)  # a transaction per two lines ...
    monkeypatch.setattr(feed, "READ_BYTES", 64)  # ... read in pieces shorter than a line
    real_write, calls = feed._write, []

    def crash_on_the_third_batch(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the tick is killed while writing
        return real_write(*args)

    monkeypatch.setattr(feed, "_write", crash_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        take_in_feed(con, raw, NOW)
    assert _rows(con, "select count(*) from tideline_journeys.live_events") == [(4,)]
    assert _rows(con, "select file, lines_read from tideline_journeys.feed_files") == [
        ("events/shop/2026-03-02/a.jsonl", 4)
    ]
    monkeypatch.setattr(feed, "_write", real_write)
    assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=4, events=4)
    assert _rows(con, "select count(*), count(distinct event_id) from tideline_journeys.live_events") == [
        (8, 8)
    ]


def test_a_failure_while_writing_the_offsets_leaves_no_rows_either(raw: Path, con, monkeypatch) -> None:
    _append(_events_file(raw), _event("e1"), _event("e2"))
    _append(_orders_file(raw), _order("o1"))
    monkeypatch.setattr(feed, "UPSERT_OFFSETS", "select error('the disk is full' || ?)")
    with pytest.raises(duckdb.Error, match="the disk is full"):
        take_in_feed(con, raw, NOW)
    assert _rows(con, "select count(*) from tideline_journeys.live_events") == [(0,)]
    assert _rows(con, "select count(*) from tideline_journeys.live_orders") == [(0,)]
    monkeypatch.undo()
    assert take_in_feed(con, raw, NOW) == FeedResult(files=2, lines=3, events=2, orders=1)


# ------------------------------------------------------------------------------------------------
# The views and prune_feed, over stand-ins of dbt's relations (names and column types as dbt builds them)
# ------------------------------------------------------------------------------------------------


def _dbt_stand_ins(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema intermediate; create schema marts")
    con.execute(
        """create table intermediate.int_events_stitched (
            event_id varchar, event_type varchar, occurred_at timestamp, anonymous_id varchar,
            customer_id varchar, is_stitched boolean, session_id varchar, product_id varchar,
            url varchar, utm_source varchar, utm_medium varchar, utm_campaign varchar)"""
    )
    con.execute(
        """insert into intermediate.int_events_stitched values
           ('e1', 'page_view', '2026-03-02 10:00', 'a1', 'c1', false, 's1', null, 'https://x', 'google', 'cpc', 'spring'),
           ('e2', 'signup', '2026-03-01 09:05', 'a9', 'c9', false, null, null, null, null, null, null)"""
    )
    con.execute(
        """create table intermediate.int_orders_resolved (
            order_id varchar, customer_id varchar, account_id varchar, ordered_at timestamp,
            order_date date, amount decimal(28,6), currency varchar, status varchar,
            is_purchase boolean, discount_amount decimal(28,6), coupon_code varchar,
            used_coupon boolean, channel varchar)"""
    )
    con.execute(
        """insert into intermediate.int_orders_resolved values
           ('o1', 'c1', 'c1', '2026-03-02 10:00', '2026-03-02', 10, 'EUR', 'completed', true, 0, null, false, 'web')"""
    )
    con.execute(
        """create table marts.customer_id_map (source varchar, source_id varchar, customer_id varchar, is_merged boolean);
           insert into marts.customer_id_map values
           ('crm', 'c4', 'c3', true), ('commerce', 'c4', 'c3', true), ('web', 'c3', 'c3', true),
           ('anonymous', 'c5', 'c9', false)"""  # an anonymous id that looks like an account: not used for accounts
    )
    con.execute(
        """create table intermediate.int_anonymous_ids_stitched (anonymous_id varchar, customer_id varchar, identified_at timestamp);
           insert into intermediate.int_anonymous_ids_stitched values ('a9', 'c9', '2026-03-01 09:05')"""
    )


def test_the_views_are_dbts_rows_and_the_live_rows_dbt_does_not_hold(raw: Path, con) -> None:
    _dbt_stand_ins(con)
    _append(
        _events_file(raw),
        _event("e1", event_type="login"),  # dbt holds e1: dbt's row, once
        _event("e3", customer="c2", occurred_at="2026-03-02T10:00:00Z", product_id="p1"),
    )
    _append(
        _orders_file(raw),
        _order("o1", status="refunded"),  # dbt holds o1
        _order("o2", customer="c2", amount="5.5", coupon_code="SPRING"),
        _order("o3", customer="c2", status="cancelled", discount_amount="2"),
        _order("o4", customer="c2"),
    )
    take_in_feed(con, raw, NOW)
    refresh_views(con)
    assert _rows(con, "select * from tideline_journeys.events order by event_id") == [
        ("e1", "c1", "page_view", dt.datetime(2026, 3, 2, 10), "https://x", "google", "cpc", "spring", None),
        ("e2", "c9", "signup", dt.datetime(2026, 3, 1, 9, 5), None, None, None, None, None),
        ("e3", "c2", "page_view", dt.datetime(2026, 3, 2, 10), None, None, None, None, "p1"),
    ]
    assert _rows(con, "select * from tideline_journeys.orders order by order_id") == [
        ("o1", "c1", dt.datetime(2026, 3, 2, 10), True, Decimal("10"), "web", None, False, "completed"),
        ("o2", "c2", dt.datetime(2026, 3, 2, 10), True, Decimal("5.5"), None, "SPRING", True, "completed"),
        ("o3", "c2", dt.datetime(2026, 3, 2, 10), False, Decimal("10"), None, None, True, "cancelled"),
        ("o4", "c2", dt.datetime(2026, 3, 2, 10), True, Decimal("10"), None, None, False, "completed"),
    ]
    # exactly the contract's columns, with dbt's types (so the UNION keeps them)
    for view, dbt_relation, columns in (
        ("events", "intermediate.int_events_stitched", feed.EVENT_COLUMNS),
        ("orders", "intermediate.int_orders_resolved", feed.ORDER_COLUMNS),
    ):
        described = {name: kind for name, kind, *_ in _rows(con, f"describe tideline_journeys.{view}")}
        dbt_types = {name: kind for name, kind, *_ in _rows(con, f"describe {dbt_relation}")}
        assert list(described) == list(columns)
        assert described == {name: dbt_types[name] for name in described}
    # what the condition compiler reads from "events" and "orders" is there
    assert {"customer_id", "occurred_at", *EVENT_FIELDS} - {"category"} <= set(feed.EVENT_COLUMNS)
    assert {"customer_id", "ordered_at", "is_purchase", *ORDER_FIELDS} <= set(feed.ORDER_COLUMNS)


def test_live_rows_get_their_customer_through_the_id_map_else_their_own_account(raw: Path, con) -> None:
    _dbt_stand_ins(con)
    _append(
        _events_file(raw),
        _event("e10", customer="c4"),  # merged into c3 by identity resolution
        _event("e11", customer="c5"),  # not in the map (c5 is only an anonymous id there): its own id
        _event("e12", customer=None, anonymous_id="a9"),  # stitched by dbt to c9
        _event(
            "e13", customer=None, anonymous_id="a7", occurred_at="2026-03-02T09:00:00Z"
        ),  # before signing up
        _event(
            "e14", customer="c4", anonymous_id="a7", event_type="signup", occurred_at="2026-03-02T09:30:00Z"
        ),
        _event(
            "e15", customer="c6", anonymous_id="a7", event_type="login", occurred_at="2026-03-02T09:40:00Z"
        ),
        _event("e16", customer=None, anonymous_id="a8"),  # never identified: no customer, as dbt
    )
    _append(_orders_file(raw), _order("o10", customer="c4"), _order("o11", customer="c7"))
    take_in_feed(con, raw, NOW)
    refresh_views(con)
    assert _rows(
        con, "select event_id, customer_id from tideline_journeys.events where event_id like 'e1_' order by 1"
    ) == [
        ("e10", "c3"),
        ("e11", "c5"),
        ("e12", "c9"),
        ("e13", "c3"),  # a7's first identifying live event is e14 (c4 -> c3)
        ("e14", "c3"),
        ("e15", "c6"),
        ("e16", None),
    ]
    assert _rows(
        con, "select order_id, customer_id from tideline_journeys.orders where order_id >= 'o10' order by 1"
    ) == [
        ("o10", "c3"),
        ("o11", "c7"),
    ]


def test_before_the_first_dbt_build_the_views_hold_the_live_rows_and_pick_dbt_up_when_refreshed(
    raw: Path, con
) -> None:
    _append(_events_file(raw), _event("e1", customer="c4"), _event("e3"))
    _append(_orders_file(raw), _order("o1"), _order("o2", customer="c4"))
    take_in_feed(con, raw, NOW)
    refresh_views(con)  # no intermediate or marts schema yet
    assert _rows(
        con, "select event_id, customer_id, event_type from tideline_journeys.events order by 1"
    ) == [
        ("e1", "c4", "page_view"),
        ("e3", "c1", "page_view"),
    ]
    assert _rows(
        con, "select order_id, customer_id, is_purchase from tideline_journeys.orders order by 1"
    ) == [
        ("o1", "c1", True),
        ("o2", "c4", True),
    ]
    for view, columns in (("events", feed.EVENT_COLUMNS), ("orders", feed.ORDER_COLUMNS)):
        described = {name: kind for name, kind, *_ in _rows(con, f"describe tideline_journeys.{view}")}
        assert described == {name: kind.upper().replace(" ", "") for name, kind in columns.items()}
    _dbt_stand_ins(con)  # the first dbt build
    refresh_views(con)
    assert _rows(
        con, "select event_id, customer_id, event_type from tideline_journeys.events order by 1"
    ) == [
        ("e1", "c1", "page_view"),  # dbt's row
        ("e2", "c9", "signup"),
        ("e3", "c1", "page_view"),
    ]
    assert _rows(con, "select order_id, customer_id from tideline_journeys.orders order by 1") == [
        ("o1", "c1"),
        ("o2", "c3"),  # now through the map
    ]


def test_prune_drops_the_live_rows_dbt_now_holds_and_the_views_do_not_change(raw: Path, con) -> None:
    _append(_events_file(raw), _event("e1"), _event("e3"))
    _append(_orders_file(raw), _order("o1"), _order("o2"))
    take_in_feed(con, raw, NOW)
    assert prune_feed(con) == 0  # no dbt relation yet: everything stays live
    _dbt_stand_ins(con)
    refresh_views(con)
    events_before = _rows(con, "select * from tideline_journeys.events order by 1")
    orders_before = _rows(con, "select * from tideline_journeys.orders order by 1")
    assert prune_feed(con) == 2  # e1 and o1
    assert _rows(con, "select event_id from tideline_journeys.live_events") == [("e3",)]
    assert _rows(con, "select order_id from tideline_journeys.live_orders") == [("o2",)]
    assert _rows(con, "select * from tideline_journeys.events order by 1") == events_before
    assert _rows(con, "select * from tideline_journeys.orders order by 1") == orders_before
    assert prune_feed(con) == 0
    assert take_in_feed(con, raw, NOW) == FeedResult()  # pruned rows are not read again


# ------------------------------------------------------------------------------------------------
# Parity with dbt: the same landing lines through the loader and dbt, and through the feed
# ------------------------------------------------------------------------------------------------

PARITY_EVENTS_A = [
    _event(
        "e1",
        customer="c1",
        event_type="Page_View",
        occurred_at="2026-03-01T12:30:00+02:00",
        utm_source=" Google ",
    ),
    _event(
        None, customer=None, anonymous_id="anon1", occurred_at="2026-03-01 08:00"
    ),  # id: row:<file>:<line>
    _event(
        "e3", customer="c4", anonymous_id="anon1", event_type="signup", occurred_at="2026-03-01T08:10:00Z"
    ),
    _event("e4", customer=None, anonymous_id="anon2", occurred_at="2026-03-01"),  # never identified
    _event("e5", customer="c2", occurred_at="2026-03-01T10:00:00.1234567-01:30", product_id=42),
    _event("e6", customer="c1", occurred_at="2026-03-01T24:00:00"),
    "not json",
    "",
    _event("e7", occurred_at="2026-03-01T10:00+02:00"),
    _event("e8", customer=None),
    _event("e9", event_type=" "),
]
PARITY_EVENTS_B = [_event("e1", customer="c2", event_type="login"), _event("e10", customer="c3")]
PARITY_ORDERS_A = [
    _order("o1", customer="c1", amount="42.50", status="Paid", coupon_code="SPRING"),
    _order("o2", customer="c4", amount=12.5),
    _order("o3", customer="c2", amount="1,5"),
    _order("o4", customer="c2", amount="-1"),
    _order("o5", customer="c2", status="lost"),
    _order("o6", customer="c3", status="returned", discount_amount="lots", coupon_code="  "),
    _order("o1", customer="c1", amount="40", status="canceled"),
    _order("o8", customer="c2", amount=42.5, status="Paid", coupon_code="SPRING"),
]
PARITY_ORDERS_B = [
    _order(
        "o2",
        customer="c4",
        amount="11",
        discount_amount=2,
        channel="WEB",
        ordered_at="2026-03-01T23:30:00-01:00",
    ),
    _order("o7", customer="c3", amount=".5"),
]


@pytest.mark.slow
def test_the_views_hold_exactly_the_rows_dbt_builds_from_the_same_lines(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(raw / "events" / "month=2026-03" / "part-a.jsonl", *PARITY_EVENTS_A)
    _append(raw / "events" / "month=2026-03" / "part-b.jsonl", *PARITY_EVENTS_B)
    _append(raw / "commerce" / "orders" / "a.jsonl", *PARITY_ORDERS_A)
    _append(raw / "commerce" / "orders" / "b.jsonl", *PARITY_ORDERS_B)
    write_csv(  # c3 and c4 share an email: one customer (c3, seen first)
        raw / "crm" / "contacts" / "contacts.csv",
        [
            {"customer_id": "c3", "email": "same@example.com", "created_at": "2026-01-01T00:00:00Z"},
            {"customer_id": "c4", "email": "Same@Example.com ", "created_at": "2026-02-01T00:00:00Z"},
        ],
    )
    built = tmp_path / "dbt.duckdb"
    with duckdb.connect(str(built)) as con:
        load_landing_zone(raw, con)
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")  # only the tests of the models built
    dbt_build(built, "2026-03-31", select="+int_events_stitched +int_orders_resolved +customer_id_map")

    live = tmp_path / "live.duckdb"  # the feed's warehouse: dbt's identity relations, no events or orders yet
    with duckdb.connect(str(live)) as con:
        con.execute(f"attach {literal(str(built))} as built (read_only)")  # ATTACH binds no parameters
        con.execute("create schema marts; create schema intermediate")
        con.execute("create table marts.customer_id_map as select * from built.marts.customer_id_map")
        con.execute(
            "create table intermediate.int_anonymous_ids_stitched as "
            "select * from built.intermediate.int_anonymous_ids_stitched"
        )
        dbt_events = _rows(
            con,
            f"select {', '.join(feed.EVENT_COLUMNS)} from built.intermediate.int_events_stitched order by 1",
        )
        dbt_orders = _rows(
            con,
            f"select {', '.join(feed.ORDER_COLUMNS)} from built.intermediate.int_orders_resolved order by 1",
        )
        con.execute("detach built")
        result = take_in_feed(con, raw, NOW)
        refresh_views(con)
        assert result == FeedResult(files=4, lines=23, events=8, orders=7, skipped=8)
        assert _rows(con, "select * from tideline_journeys.events order by 1") == dbt_events
        assert _rows(con, "select * from tideline_journeys.orders order by 1") == dbt_orders
    assert len(dbt_events) == 7 and len(dbt_orders) == 5  # the fixture reaches the cases it names
