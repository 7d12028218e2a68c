"""The condition-language additions the tag rules need, run on a small DuckDB with hand-worked members.

As of 2026-03-10 (`now` 2026-03-11 00:00). Customers: buyers b1 (revenue 1000), b2 (500),
b3 (100), b4 (50); non-buyers n1, n2, n3 (revenue 0).
- `among`: top_share 0.5 of revenue among buyers ranks b1 0, b2 1/3, b3 2/3, b4 1 -> {b1, b2};
  among everyone the three zeros push b3 to 2/6 -> {b1, b2, b3}.
- order `share`: b1 1 of 2 purchases with a coupon (0.5), b2 1 of 3, b3 1 of 1 (its cancelled
  order without coupon is no purchase), b4 0 of 1; n1.. have no orders (no share, no match).
- `max_days_ago: 10` (first order on or after 2026-02-28 00:00): b1 at exactly 2026-02-28 00:00
  is in, b2 at 2026-02-27 23:59:59 is out, b3 (2026-03-10 23:00) in; `within_days: 10` starts a
  day later, so b1 is out there.
- `not_followed_by`: b1 added to cart on 03-08 and placed a cancelled order on 03-09 (no
  purchase: `order` keeps it, `any_order` does not); b2 added to cart on 03-08 and 03-09, no order.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from activation.conditions import (
    Catalog,
    CompileContext,
    ConditionError,
    compile_condition,
    compile_last_event_at,
    parse_condition,
)

AS_OF = dt.date(2026, 3, 10)
VARS = {"share": 0.5, "days": 10, "label": "text"}
CATALOG = Catalog(tags=("vip",))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute("create schema marts; create schema intermediate; create schema staging")
    con.execute(
        "create table marts.dim_customers (customer_id varchar, revenue double, is_buyer boolean, "
        "order_count integer, first_order_at timestamp)"
    )
    con.executemany(
        "insert into marts.dim_customers values (?, ?, ?, ?, ?)",
        [
            ("b1", 1000.0, True, 2, ts("2026-02-28 00:00:00")),
            ("b2", 500.0, True, 3, ts("2026-02-27 23:59:59")),
            ("b3", 100.0, True, 1, ts("2026-03-10 23:00:00")),
            ("b4", 50.0, True, 1, ts("2025-01-01 00:00:00")),
            ("n1", 0.0, False, 0, None),
            ("n2", 0.0, False, 0, None),
            ("n3", 0.0, False, 0, None),
        ],
    )
    con.execute(
        "create table intermediate.int_orders_resolved (customer_id varchar, ordered_at timestamp, "
        "is_purchase boolean, status varchar, used_coupon boolean, amount double, channel varchar, "
        "coupon_code varchar)"
    )
    con.executemany(
        "insert into intermediate.int_orders_resolved values (?, ?, ?, ?, ?, 10, 'web', null)",
        [
            ("b1", ts("2026-02-28 00:00"), True, "completed", True),
            ("b1", ts("2026-03-01 00:00"), True, "completed", False),
            ("b1", ts("2026-03-09 00:00"), False, "cancelled", False),
            ("b2", ts("2026-02-27 23:59:59"), True, "completed", True),
            ("b2", ts("2026-03-01 00:00"), True, "completed", False),
            ("b2", ts("2026-03-02 00:00"), True, "completed", False),
            ("b3", ts("2026-03-10 23:00"), True, "completed", True),
            ("b3", ts("2026-03-05 00:00"), False, "cancelled", False),
            ("b4", ts("2025-01-01 00:00"), True, "completed", False),
        ],
    )
    con.execute(
        "create table intermediate.int_events_stitched (customer_id varchar, event_type varchar, "
        "occurred_at timestamp, product_id varchar, url varchar, utm_source varchar, utm_medium varchar, "
        "utm_campaign varchar)"
    )
    con.executemany(
        "insert into intermediate.int_events_stitched (customer_id, event_type, occurred_at) values (?, ?, ?)",
        [
            ("b1", "add_to_cart", ts("2026-03-08 10:00")),
            ("b2", "add_to_cart", ts("2026-03-08 10:00")),
            ("b2", "checkout_started", ts("2026-03-09 12:00")),
            ("n1", "add_to_cart", ts("2026-02-01 10:00")),  # outside 7 days
        ],
    )
    yield con
    con.close()


def members(con, raw: dict, variables: dict | None = VARS) -> set[str]:
    cond = parse_condition(raw, source="tags.yml", path="where")
    sql, params = compile_condition(
        cond, CATALOG, CompileContext(target="duckdb", as_of=AS_OF, vars=variables)
    )
    rows = con.execute(f"select c.customer_id from marts.dim_customers as c where {sql}", params).fetchall()
    return {r[0] for r in rows}


def test_top_share_among_ranks_only_the_subset(con) -> None:
    among = {"attribute": {"name": "is_buyer", "eq": True}}
    assert members(con, {"attribute": {"name": "revenue", "top_share": 0.5, "among": among}}) == {"b1", "b2"}
    assert members(con, {"attribute": {"name": "revenue", "top_share": 0.5}}) == {"b1", "b2", "b3"}
    # bottom_share among buyers: b4 (0), b3 (1/3)
    assert members(con, {"attribute": {"name": "revenue", "bottom_share": 0.5, "among": among}}) == {
        "b3",
        "b4",
    }


def test_order_share_of_the_orders_matching_where(con) -> None:
    coupon = {"attribute": {"name": "used_coupon", "eq": True}}
    assert members(con, {"order": {"share": {"gte": 0.5}, "where": coupon}}) == {"b1", "b3"}
    assert members(con, {"order": {"share": {"lt": 0.5}, "where": coupon}}) == {"b2", "b4"}
    # customers without orders have no share: `not` is how to include them
    assert members(con, {"not": {"order": {"share": {"gte": 0.5}, "where": coupon}}}) == {
        "b2",
        "b4",
        "n1",
        "n2",
        "n3",
    }


def test_max_days_ago_counts_whole_days_back_from_the_as_of_date(con) -> None:
    assert members(con, {"attribute": {"name": "first_order_at", "max_days_ago": 10}}) == {"b1", "b3"}
    assert members(con, {"attribute": {"name": "first_order_at", "within_days": 10}}) == {"b3"}
    assert members(con, {"attribute": {"name": "first_order_at", "max_days_ago": 11}}) == {"b1", "b2", "b3"}


def test_not_followed_by_any_order_counts_cancelled_orders(con) -> None:
    cart = {"type": ["add_to_cart", "checkout_started"], "within_days": 7}
    assert members(con, {"event": {**cart, "not_followed_by": "order"}}) == {"b1", "b2"}
    assert members(con, {"event": {**cart, "not_followed_by": "any_order"}}) == {"b2"}


def test_var_references_bind_their_value_and_write_var_for_dbt(con) -> None:
    raw = {
        "all": [
            {"attribute": {"name": "revenue", "top_share": {"var": "share"}}},
            {"attribute": {"name": "first_order_at", "max_days_ago": {"var": "days"}}},
            {"event": {"type": "add_to_cart", "within_days": {"var": "days"}}},
        ]
    }
    assert members(con, raw) == {"b1"}
    assert members(con, raw, {**VARS, "share": 0.2, "days": 11}) == {"b1", "b2"}  # b2 ranks 1/6
    assert members(con, raw, {**VARS, "days": 1}) == set()
    cond = parse_condition(raw, source="tags.yml")
    sql, params = compile_condition(cond, CATALOG, CompileContext(target="dbt", vars=VARS))
    assert params == []
    assert "share_rank < {{ var('share') }}" in sql
    assert "dbt.dateadd('day', -(var('days') | int), as_of_date())" in sql
    assert "dbt.dateadd('day', -(var('days') | int), as_of_cutoff())" in sql


def test_var_reference_errors_name_file_and_path() -> None:
    def error(raw: dict, variables: dict | None = VARS) -> str:
        cond = parse_condition(raw, source="dbt_project/tags.yml", path="tags[2].where")
        with pytest.raises(ConditionError) as info:
            compile_condition(cond, CATALOG, CompileContext(target="dbt", vars=variables))
        return str(info.value)

    msg = error({"attribute": {"name": "revenue", "gte": {"var": "nope"}}})
    assert msg.startswith("dbt_project/tags.yml: tags[2].where.attribute.gte.var: unknown dbt var 'nope'")
    msg = error({"attribute": {"name": "revenue", "gte": {"var": "label"}}})
    assert "tags[2].where.attribute.gte.var: dbt var label is 'text'" in msg and "a number" in msg
    msg = error({"attribute": {"name": "revenue", "top_share": {"var": "days"}}})
    assert "top_share.var: dbt var days is 10" in msg and "share between 0 and 1" in msg
    assert "dbt vars are not available here" in error(
        {"attribute": {"name": "revenue", "gte": {"var": "x"}}}, None
    )
    msg = error({"attribute": {"name": "country", "eq": {"var": "label"}}})
    assert "where.attribute.eq: country is text: a dbt var stands only for a number here" in msg


def test_parse_errors_of_the_additions_name_the_path() -> None:
    with pytest.raises(ConditionError, match=r"x.yml: where.attribute.among: among applies to top_share"):
        parse_condition({"attribute": {"name": "revenue", "gte": 1, "among": {"consent": "email"}}}, "x.yml")
    with pytest.raises(
        ConditionError, match=r"x.yml: where.order.share: share is the share of the orders matching"
    ):
        parse_condition({"order": {"share": {"gte": 0.5}}}, "x.yml")
    with pytest.raises(ConditionError, match=r"where.order.share.gte: a share is a number from 0 to 1"):
        parse_condition(
            {"order": {"share": {"gte": 2}, "where": {"attribute": {"name": "amount", "gt": 1}}}}, "x.yml"
        )
    with pytest.raises(ConditionError, match=r"where.attribute.gte: a var reference is \{var: name\}"):
        parse_condition({"attribute": {"name": "revenue", "gte": {"var": "a", "b": 1}}}, "x.yml")


def test_last_event_time_is_the_latest_matching_event(con) -> None:
    cond = parse_condition(
        {"event": {"type": ["add_to_cart", "checkout_started"], "within_days": 7}}, "x.yml"
    )
    sql, params = compile_last_event_at(cond, CATALOG, CompileContext(target="duckdb", as_of=AS_OF))
    rows = dict(con.execute(f"select c.customer_id, {sql} from marts.dim_customers as c", params).fetchall())
    assert rows["b1"] == ts("2026-03-08 10:00")
    assert rows["b2"] == ts("2026-03-09 12:00")
    assert rows["n1"] is None and rows["b3"] is None
