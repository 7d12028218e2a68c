"""The Leads block of the summary: leads per stage, new MQLs, and the backtest's AUCs with the notes."""

from __future__ import annotations

import datetime as dt

import duckdb

from tideline.reporting.summary import _lead_lines


def warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.lead_scores (customer_id varchar, lead_stage varchar, is_mql boolean, "
        "mql_first_on date, as_of_date date)"
    )
    as_of = dt.date(2026, 3, 31)
    rows = [
        ("a", "raw_lead", False, None),
        ("b", "raw_lead", False, None),
        ("c", "nurtured", False, dt.date(2026, 1, 2)),  # was MQL once, fell back
        ("d", "marketing_qualified", True, dt.date(2026, 3, 20)),  # new in the last 30 days
        ("e", "marketing_qualified", True, dt.date(2026, 2, 1)),  # MQL for longer
    ]
    con.executemany("insert into marts.lead_scores values (?, ?, ?, ?, ?)", [(*r, as_of) for r in rows])
    con.execute(
        "create table marts.lead_score_backtest (scorer varchar, scorer_order integer, cutoff_on date, "
        "horizon_days integer, leads bigint, buyers bigint, roc_auc double, note varchar)"
    )
    con.executemany(
        "insert into marts.lead_score_backtest values (?, ?, ?, 30, ?, ?, ?, ?)",
        [
            ("lead_score", 1, dt.date(2026, 3, 1), 400, 20, 0.8123, None),
            ("recency", 2, dt.date(2026, 3, 1), 400, 20, 0.7, None),
            (
                "purchase_propensity",
                3,
                dt.date(2026, 3, 1),
                0,
                0,
                None,
                "no propensity scores as of the cutoff yet",
            ),
        ],
    )
    return con


def test_lead_block_counts_stages_and_prints_the_backtest() -> None:
    lines = _lead_lines(warehouse())
    assert lines == [
        "",
        "Lead stage               leads   share   (1 first reached MQL in the last 30 days)",
        "  raw_lead                    2   40.0%",
        "  nurtured                    1   20.0%",
        "  marketing_qualified         2   40.0%",
        "  backtest: 400 leads on 2026-03-01, 20 made a first purchase within 30 days; "
        "ROC AUC lead score 0.812, recency 0.700, purchase propensity -",
        "    purchase propensity: no propensity scores as of the cutoff yet",
        "  top reasons per lead: table marts.lead_scores; rules: dbt_project/lead_scoring.yml",
    ]


def test_no_lead_marts_no_block() -> None:
    assert _lead_lines(duckdb.connect()) == []


def test_crm_stages_follow_the_score_stages_and_every_lead_is_counted() -> None:
    con = warehouse()
    con.execute(
        "create table marts.lead_stages (lead_stage varchar, stage_order integer, source varchar, min_score double)"
    )
    con.executemany(
        "insert into marts.lead_stages values (?, ?, ?, null)",
        [
            ("raw_lead", 1, "score"),
            ("nurtured", 2, "score"),
            ("marketing_qualified", 3, "score"),
            ("sales_accepted", 4, "crm"),
            ("opportunity", 5, "crm"),
            ("deal", 6, "crm"),
            ("lost", 7, "crm"),
        ],
    )
    con.execute(
        "insert into marts.lead_scores values ('f', 'opportunity', false, date '2026-01-05', date '2026-03-31')"
    )
    lines = _lead_lines(con)
    assert lines[2:7] == [
        "  raw_lead                    2   33.3%",
        "  nurtured                    1   16.7%",
        "  marketing_qualified         2   33.3%",
        "  opportunity                 1   16.7%   (CRM)",  # CRM stages nobody is in are left out
        "  backtest: 400 leads on 2026-03-01, 20 made a first purchase within 30 days; "
        "ROC AUC lead score 0.812, recency 0.700, purchase propensity -",
    ]
