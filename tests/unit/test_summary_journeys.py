"""The summary's Journeys block, read from marts.journey_lift when the warehouse has journeys."""

from __future__ import annotations

import duckdb

from tideline.reporting.summary import _journey_lines

LIFT_COLUMNS = """journey varchar, version varchar, entries bigint, treated_entries bigint, holdout_entries bigint,
    treated_converters bigint, holdout_converters bigint, messages_sent bigint, last_entered_at timestamp,
    absolute_lift decimal(18, 6), absolute_lift_ci_low decimal(18, 6), absolute_lift_ci_high decimal(18, 6),
    p_value decimal(18, 6), confidence_level decimal(4, 3)"""


def _warehouse(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(f"create table marts.journey_lift ({LIFT_COLUMNS})")
    if rows:
        con.executemany(f"insert into marts.journey_lift values ({', '.join(['?'] * 14)})", rows)
    return con


def test_no_journey_marts_or_no_entries_no_block() -> None:
    assert _journey_lines(duckdb.connect()) == []
    assert _journey_lines(_warehouse([])) == []


def test_each_journey_with_entries_sends_and_conversions_treated_against_holdout() -> None:
    """welcome has two versions: v1 (7 treated, 2 converted; 4 held out, 1 converted; 8 sent) and v2
    (3 treated, 1 converted; 1 held out, 0; 3 sent): together 15 entries, 11 sent, 3 of 10 treated
    (30.0%) and 1 of 5 held out (20.0%). Each version's lift stays its own. cart has no holdout."""
    con = _warehouse(
        [
            (
                "welcome",
                "v1",
                11,
                7,
                4,
                2,
                1,
                8,
                "2026-03-09 09:00",
                0.035714,
                -0.466154,
                0.456633,
                0.898198,
                0.95,
            ),
            ("welcome", "v2", 4, 3, 1, 1, 0, 3, "2026-03-10 08:00", 0.333333, -0.457, 0.792, 0.414216, 0.95),
            ("cart", "c1", 20, 20, 0, 2, 0, 18, "2026-03-10 11:00", None, None, None, None, 0.95),
        ]
    )
    lines = _journey_lines(con)
    assert lines[0] == "" and lines[1].split()[:4] == ["Journeys", "entries", "sent", "treated"]
    rows = {
        line.split()[0]: line for line in lines[2:] if line.startswith("  ") and not line.startswith("    ")
    }
    assert rows["welcome"].split() == [
        "welcome",
        "15",
        "11",
        "3",
        "of",
        "10",
        "(30.0%)",
        "1",
        "of",
        "5",
        "(20.0%)",
    ]
    assert rows["cart"].split() == ["cart", "20", "18", "2", "of", "20", "(10.0%)", "no", "holdout"]
    lifts = [line.strip() for line in lines if line.startswith("    ")]
    assert lifts == [  # the latest version first
        "version v2: lift vs holdout +33.3 pts (95% CI -45.7 pts to +79.2 pts), p = 0.414",
        "version v1: lift vs holdout +3.6 pts (95% CI -46.6 pts to +45.7 pts), p = 0.898",
    ]
    assert [line.split()[0] for line in lines[2:] if not line.startswith("    ")][:2] == ["cart", "welcome"]
    assert lines[-1].startswith("  treated: entries that went through the journey")
