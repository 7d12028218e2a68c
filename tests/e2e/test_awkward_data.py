"""Awkward real-world data shapes: the ML steps degrade instead of failing.

Each shape is a landing zone built into a warehouse with the real loader and `dbt build`
(tests.helpers.build_warehouse); the real training and scoring functions then run on it, and
the test asserts what happens: scored, or "not trained" with the right reason, or features
left out. `tideline run` on an orders-only CSV is in test_awkward_run.py (a file of its own, so
pytest-xdist runs it beside these builds; the data generators below serve both).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models_ml.lifetime_value import train_clv
from models_ml.registry import ModelRegistry, data_identity
from models_ml.runs import ScoringOutcome, TrainingOutcome, score_and_record, train_and_record
from models_ml.training import CHURN, PROPENSITY, train_task
from tests.helpers import Warehouse, build_warehouse, write_csv, write_jsonl
from tideline.reporting.summary import build_summary

AS_OF = dt.date(2025, 12, 31)
ORDER_COLUMNS = ["order_id", "customer_id", "ordered_at", "amount"]
EVENT_FEATURES = {
    "visits_30d",
    "product_views_30d",
    "cart_adds_30d",
    "checkouts_30d",
    "app_opens_30d",
    "days_since_last_event",
}


def shop_orders(
    customers: int, seed: int = 3, zero_share: float = 0.0, days: int = 730, end: dt.date = AS_OF
) -> list[dict]:
    """A deterministic orders-only log. Customers arrive over `days` days and buy at their own
    cadence (a usual gap of 10 to 120 days, a little irregular) until they leave, with their own
    chance of leaving after each purchase; so the days since the last purchase *relative to a
    customer's usual gap* says more than recency alone, and a model can beat the recency baseline.
    Amounts are gamma distributed; `zero_share` of the orders have amount 0 (free items, fully
    discounted orders). Ids are plain numbers."""
    rng = np.random.default_rng(seed)
    start = end - dt.timedelta(days=days)
    rows: list[dict] = []
    for c in range(customers):
        gap = rng.uniform(10, 120)
        leave = rng.beta(1.0, 5.0)
        t = float(rng.uniform(0, days - 30))
        while t <= days:
            amount = 0.0 if rng.uniform() < zero_share else round(float(rng.gamma(2.0, 30.0)) + 1, 2)
            day = start + dt.timedelta(days=int(t))
            rows.append(
                {
                    "order_id": str(len(rows) + 1),
                    "customer_id": str(1000 + c),
                    "ordered_at": f"{day}T{10 + c % 8:02d}:00:00Z",
                    "amount": f"{amount:.2f}",
                }
            )
            if rng.uniform() < leave:
                break
            t += gap * rng.gamma(8.0, 1 / 8.0) + 1
    return rows


def test_shop_orders_is_deterministic_and_has_the_zero_amounts_asked_for() -> None:
    rows = shop_orders(300, seed=7, zero_share=0.1)
    assert rows == shop_orders(300, seed=7, zero_share=0.1)
    zero = sum(r["amount"] == "0.00" for r in rows) / len(rows)
    assert 0.07 < zero < 0.13
    assert len({r["customer_id"] for r in rows}) == 300


# --------------------------------------------------------------------------------------------
# the ML steps as the pipeline runs them, on a warehouse built by the real loader and dbt
# --------------------------------------------------------------------------------------------


def run_ml(
    warehouse: Warehouse, raw: Path, models: Path
) -> tuple[dict[str, TrainingOutcome], ScoringOutcome]:
    """What the ML assets do (the same models_ml.runs functions), without Dagster: train the three
    models, record every outcome, score with what can be used."""
    identity = data_identity(warehouse.path, raw)
    registry = ModelRegistry(models)
    con = duckdb.connect(str(warehouse.path))
    try:
        outcomes = {
            task.name: train_and_record(
                con, task.name, lambda task=task: train_task(con, task), lambda t: t.model, registry, identity
            )
            for task in (CHURN, PROPENSITY)
        }
        outcomes["clv"] = train_and_record(
            con, "clv", lambda: train_clv(con), lambda t: t.model(), registry, identity
        )
        scoring = score_and_record(con, registry, identity, AS_OF)
    finally:
        con.close()
    return outcomes, scoring


def build(tmp_path: Path, rows: list[dict]) -> tuple[Warehouse, Path]:
    raw = tmp_path / "raw"
    write_csv(raw / "commerce/orders/orders.csv", rows, ORDER_COLUMNS)
    return build_warehouse(raw, tmp_path / "warehouse.duckdb", str(AS_OF)), raw


def summary_of(warehouse: Warehouse) -> str:
    return build_summary(warehouse.path)


def order(n: int, customer: str | int, day: dt.date | str, amount: str = "40.00") -> dict:
    return {"order_id": str(n), "customer_id": str(customer), "ordered_at": str(day), "amount": amount}


def assert_rule_marts_built(warehouse: Warehouse, customers: int) -> None:
    """What needs no score is there: customers, tags, tag health and the rule-based segments."""
    assert warehouse.query("select count(*) from marts.dim_customers")[0][0] == customers
    assert warehouse.query("select count(*) from marts.tag_health")[0][0] > 0
    assert warehouse.query("select count(*) from marts.customer_tags")[0][0] > 0
    assert warehouse.query("select count(*) from marts.high_propensity_buyers")[0][0] == 0  # no propensity


@pytest.mark.slow
def test_one_order_per_customer_for_everyone(tmp_path: Path) -> None:
    """60 customers, one order each over two years: no one ever buys again, so every model has a
    single outcome and is not trained, each saying why; nothing is scored; the rule marts are there."""
    rows = [order(i + 1, 100 + i, AS_OF - dt.timedelta(days=12 * i + 3)) for i in range(60)]
    warehouse, raw = build(tmp_path, rows)
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert {o.status for o in outcomes.values()} == {"not_trained"}
    assert not any(o.unexpected for o in outcomes.values())
    assert ", 0 who bought again (need at least 50, and 10 of each)" in outcomes["churn"].reason
    assert "0 who bought in the next 30 days, " in outcomes["propensity"].reason
    assert ", 0 of them bought again on a later day" in outcomes["clv"].reason
    assert len(scoring.scores) == 0
    assert warehouse.query("select count(*) from ml.customer_scores")[0][0] == 0
    assert_rule_marts_built(warehouse, 60)
    assert (
        warehouse.query("select count(*) from marts.customer_tags where tag = 'one_time_buyer'")[0][0] == 60
    )
    summary = summary_of(warehouse)
    assert "Predictive scores: none" in summary
    assert "  churn       not trained: not enough data at the 4 training cutoffs" in summary


@pytest.mark.slow
def test_all_orders_on_one_day(tmp_path: Path) -> None:
    """80 customers who all bought on 2025-06-01 (some twice that day): no history before any cutoff."""
    day = dt.date(2025, 6, 1)
    rows = [order(i + 1, 100 + i % 80, f"{day}T{9 + i % 9:02d}:00:00") for i in range(120)]
    warehouse, raw = build(tmp_path, rows)
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    # the orders end on 2025-06-01: evaluation cutoff 90 days before (2025-03-03), training cutoffs from
    # 90 days before that (2024-12-03) back in steps of 30 days (2024-09-04): no one was a customer yet
    assert outcomes["churn"].reason.startswith(
        "not enough data at the 4 training cutoffs (2024-09-04 to 2024-12-03): 0 labelled rows"
    )
    assert outcomes["churn"].reason.endswith(
        "the orders end on 2025-06-01, so this needs a longer order history before 2024-09-04 or more customers"
    )
    assert outcomes["propensity"].status == "not_trained"
    assert outcomes["clv"].reason.startswith(
        "not enough data before the held-out 90 days (2025-03-03): 0 buyers"
    )
    assert len(scoring.scores) == 0
    assert_rule_marts_built(warehouse, 80)


@pytest.mark.slow
def test_zero_and_negative_amounts(tmp_path: Path) -> None:
    """A third of the orders are free (amount 0) and refunds come as negative amounts. Negative rows
    are rejects (file, row, field, reason); zero rows are orders; lifetime value counts only positive
    amounts, so the Gamma-Gamma fit gets positive spend and trains, and a customer whose orders are all
    free gets no lifetime value (while the churn and propensity features still count the free orders)."""
    rows = shop_orders(250, seed=11, zero_share=0.3)
    n = len(rows)
    rows += [
        order(n + 1, 9001, "2025-05-01", "0"),
        order(n + 2, 9001, "2025-08-01", "0.00"),
        order(n + 3, 1000, "2025-11-01", "-19.90"),
        order(n + 4, 1001, "2025-11-02", "-5"),
    ]
    warehouse, raw = build(tmp_path, rows)
    rejects = warehouse.query(
        "select source_row, field, reason from marts.rejects where entity = 'commerce_orders' order by 1"
    )
    assert rejects == [
        (n + 3, "amount", "amount -19.90 is negative"),
        (n + 4, "amount", "amount -5 is negative"),
    ]
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert outcomes["clv"].status == "approved", outcomes["clv"].reason
    assert outcomes["clv"].trained.gg.q > 1
    # lifetime value scores exactly the customers with a positive amount
    scores = scoring.scores.set_index("customer_id")
    paying = {r["customer_id"] for r in rows if float(r["amount"]) > 0}
    assert "9001" not in paying and len(paying) < 250  # some only ever got free orders
    assert set(scores.index[scores["predicted_clv"].notna()]) == paying
    # the free orders are still orders: customer 9001 is a buyer of two orders worth 0
    assert warehouse.query(
        "select order_count, revenue from marts.dim_customers where customer_id = '9001'"
    ) == [(2, 0)]


@pytest.mark.slow
def test_a_single_customer(tmp_path: Path) -> None:
    rows = [order(i + 1, "only-one", AS_OF - dt.timedelta(days=40 * i + 1), f"{20 + i}.00") for i in range(6)]
    warehouse, raw = build(tmp_path, rows)
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert {o.status for o in outcomes.values()} == {"not_trained"}
    assert "(need at least 50, and 10 of each)" in outcomes["churn"].reason
    assert outcomes["clv"].reason.startswith(
        "not enough data before the held-out 90 days (2025-10-01): 1 buyers"
    )
    assert len(scoring.scores) == 0 and {r["status"] for r in scoring.models} == {"skipped"}
    assert_rule_marts_built(warehouse, 1)
    assert "Predictive scores: none" in summary_of(warehouse)


@pytest.mark.slow
def test_thirty_customers(tmp_path: Path) -> None:
    """A small real shop: too few customers for any model; each says so, and the run's marts are there."""
    warehouse, raw = build(tmp_path, shop_orders(30, seed=5))
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert {o.status for o in outcomes.values()} == {"not_trained"}
    assert "(need at least 50 buyers and 20 repeat buyers)" in outcomes["clv"].reason
    assert len(scoring.scores) == 0
    assert_rule_marts_built(warehouse, 30)
    summary = summary_of(warehouse)
    for name in ("churn", "clv", "propensity"):
        assert f"  {name:<11} not trained: not enough data" in summary


@pytest.mark.slow
def test_no_repeat_buyers(tmp_path: Path) -> None:
    """100 customers with one to three orders each, all on their first day: several orders but no
    repeat purchase day, so BG/NBD has no repeat buyers and churn no one who came back."""
    rows = []
    for c in range(100):
        day = AS_OF - dt.timedelta(days=7 * c + 2)
        rows += [order(len(rows) + 1 + k, 500 + c, f"{day}T{10 + k}:00:00") for k in range(1 + c % 3)]
    warehouse, raw = build(tmp_path, rows)
    assert warehouse.query("select max(order_count) from marts.dim_customers")[0][0] == 3
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert {o.status for o in outcomes.values()} == {"not_trained"}
    assert ", 0 who bought again (need at least 50" in outcomes["churn"].reason
    assert ", 0 of them bought again on a later day" in outcomes["clv"].reason
    assert len(scoring.scores) == 0
    assert_rule_marts_built(warehouse, 100)


@pytest.mark.slow
def test_ids_that_are_numbers_in_one_file_and_text_in_another(tmp_path: Path) -> None:
    """The same customers' orders come half from a CSV (ids as text), half from Parquet (ids as
    integers), with CRM contacts in JSON Lines (ids as JSON numbers): they are one customer each, the
    features count both files' orders, and the scores join back to every customer."""
    rows = shop_orders(300, seed=21)
    raw = tmp_path / "raw"
    write_csv(raw / "commerce/orders/text_ids.csv", rows[0::2], ORDER_COLUMNS)
    odd = rows[1::2]
    table = pa.table(
        {
            "order_id": [r["order_id"] for r in odd],
            "customer_id": pa.array([int(r["customer_id"]) for r in odd], pa.int64()),
            "ordered_at": [r["ordered_at"] for r in odd],
            "amount": pa.array([float(r["amount"]) for r in odd], pa.float64()),
        }
    )
    (raw / "commerce/orders/2025").mkdir(parents=True)
    pq.write_table(table, raw / "commerce/orders/2025/number_ids.parquet")
    write_jsonl(
        raw / "crm/contacts/contacts.jsonl", [{"customer_id": 1000 + c, "country": "DE"} for c in range(300)]
    )
    warehouse = build_warehouse(raw, tmp_path / "warehouse.duckdb", str(AS_OF))

    assert warehouse.query("select count(*) from marts.dim_customers")[0][0] == 300
    per_customer = dict(warehouse.query("select customer_id, order_count from marts.dim_customers"))
    by_hand: dict[str, int] = {}
    for r in rows:
        by_hand[r["customer_id"]] = by_hand.get(r["customer_id"], 0) + 1
    assert per_customer == by_hand  # orders from both files land on the same customer
    outcomes, scoring = run_ml(warehouse, raw, tmp_path / "models")
    assert {n: o.status for n, o in outcomes.items()} == dict.fromkeys(
        ("churn", "propensity", "clv"), "approved"
    )
    ids = {r[0] for r in warehouse.query("select customer_id from marts.dim_customers")}
    assert set(scoring.scores["customer_id"]) == ids
    # every customer got every score it can have: the purchases of both files were found
    assert (
        scoring.scores["predicted_clv"].notna().all() and scoring.scores["purchase_propensity"].notna().all()
    )
