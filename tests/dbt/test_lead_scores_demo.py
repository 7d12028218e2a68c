"""Lead scoring on the demo data: the score finds the leads the generator planted (pricing views and
webinar registrations before a first purchase, tideline/demo/data.py H_LEAD), and the backtest's
AUCs are what scikit-learn computes from the same daily scores and purchases."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.helpers import dbt_build, load_landing_zone
from tideline.demo.data import generate_demo_data

pytestmark = pytest.mark.slow  # generates the demo and builds the dbt project


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("lead_demo")
    summary = generate_demo_data(base / "raw", customers=2000, seed=7)
    warehouse = base / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        load_landing_zone(base / "raw", con)
    finally:
        con.close()
    dbt_build(warehouse, summary.end_date.isoformat())
    truth = pd.read_parquet(base / "raw/_truth/customers.parquet")
    con = duckdb.connect(str(warehouse), read_only=True)
    yield con, truth, summary
    con.close()


def test_every_lead_is_scored_once(demo) -> None:
    con, _, _ = demo
    leads, scored, distinct = con.execute(
        "select (select count(*) from marts.dim_customers where not is_buyer), count(*), "
        "count(distinct customer_id) from marts.lead_scores"
    ).fetchone()
    assert leads == scored == distinct and leads > 100


def test_the_score_ranks_the_planted_hot_leads_first(demo) -> None:
    """Current leads the generator made hot (their intent signals precede a first purchase after
    the window) against the other leads; a score blind to the plant would give 0.5."""
    con, truth, _ = demo
    scores = con.execute("select customer_id, total_score from marts.lead_scores").df()
    merged = scores.merge(truth[["customer_id", "lead_hot"]], on="customer_id")
    assert len(merged) == len(scores) and merged.lead_hot.sum() >= 10
    assert roc_auc_score(merged.lead_hot, merged.total_score) > 0.75
    rules = {r[0] for r in con.execute("select distinct rule from marts.lead_score_reasons").fetchall()}
    assert {"viewed_pricing", "registered_webinar"} <= rules


def test_backtest_aucs_match_scikit_learn(demo) -> None:
    con, _, summary = demo
    rows = {
        r["scorer"]: r for r in con.execute("select * from marts.lead_score_backtest").df().to_dict("records")
    }
    cutoff = summary.end_date - dt.timedelta(days=30)
    assert rows["lead_score"]["cutoff_on"].date() == cutoff
    frame = con.execute(
        """
        select d.customer_id, d.total_score, c.first_order_at is not null as bought,
            coalesce(cast((select max(e.occurred_at) from intermediate.int_events_stitched e
                           where e.customer_id = d.customer_id and e.occurred_at < ?) as date),
                     cast(c.signed_up_at as date)) as last_seen_on
        from marts.lead_score_daily d join marts.dim_customers c using (customer_id)
        where d.score_on = ?
        """,
        [dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time()), cutoff],
    ).df()
    assert (
        rows["lead_score"]["leads"] == len(frame) and rows["lead_score"]["buyers"] == frame.bought.sum() > 5
    )
    assert rows["lead_score"]["roc_auc"] == pytest.approx(
        roc_auc_score(frame.bought, frame.total_score), abs=1e-4
    )
    recency = -(pd.Timestamp(cutoff) - pd.to_datetime(frame.last_seen_on)).dt.days
    assert rows["recency"]["roc_auc"] == pytest.approx(roc_auc_score(frame.bought, recency), abs=1e-4)
    assert rows["lead_score"]["roc_auc"] > 0.7
    assert pd.isna(rows["purchase_propensity"]["roc_auc"])  # no scores as old as the cutoff in one run
