"""The generated audience models and the membership history, built by real dbt on a small warehouse.

The warehouse is the condition-language fixture (tests/integration/test_conditions_members.py:
only the relations the compiler reads, built with plain DDL) with a few changes made here, and
dbt builds the checked-in models of models/marts/audiences/ three times, as of 2026-03-10 (A),
2026-03-12 (B) and 2026-03-20 (C), with the fixture changed between runs. The members and the
spells below are worked out by hand from the rows:

- win_back_dormant (churned, email or phone): c08, c09, c12, c14; c12 becomes reactivated before C.
- vip_early_access (tag vip): c01, c04, c13; c13 loses the tag before B and has it again before C.
- cart_rescue (add_to_cart / checkout_started in 7 days, no order at or after it, email consent,
  not vip): c07 only (its checkout 03-10 10:00, no order since; its email consent is granted
  here). c04 (add_to_cart 03-04, in 7 days as of A) has no consent and is vip; c05, c16, c18
  ordered after their carts. As of C the window [03-14, 03-21) holds no cart event: c07 leaves.
- browsers_not_buyers (>= 3 product views in 14 days, no order in 90 days, no cart in 14 days):
  c10 (views 03-07 10:00 and 03-08, added here, and 03-09); c01 has 3 views but orders.
- high_propensity_buyers (the hand-written segment; a stand-in table set per run): A c01, c02;
  B c02; C c01, c02.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.integration.test_conditions_members import build, ts

pytestmark = pytest.mark.slow  # three dbt builds

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
A, B, C = dt.date(2026, 3, 10), dt.date(2026, 3, 12), dt.date(2026, 3, 20)
AUDIENCES = ("browsers_not_buyers", "cart_rescue", "vip_early_access", "win_back_dormant")

MEMBERS = {
    A: {
        "win_back_dormant": {"c08", "c09", "c12", "c14"},
        "vip_early_access": {"c01", "c04", "c13"},
        "cart_rescue": {"c07"},
        "browsers_not_buyers": {"c10"},
    },
    B: {
        "win_back_dormant": {"c08", "c09", "c12", "c14"},
        "vip_early_access": {"c01", "c04"},
        "cart_rescue": {"c07"},
        "browsers_not_buyers": {"c10"},
    },
    C: {
        "win_back_dormant": {"c08", "c09", "c14"},
        "vip_early_access": {"c01", "c04", "c13"},
        "cart_rescue": set(),
        "browsers_not_buyers": {"c10"},
    },
}
HIGH_PROPENSITY = {A: ["c01", "c02"], B: ["c02"], C: ["c01", "c02"]}

SPELLS = {
    ("c08", "win_back_dormant", A, None),
    ("c09", "win_back_dormant", A, None),
    ("c14", "win_back_dormant", A, None),
    ("c12", "win_back_dormant", A, C),
    ("c01", "vip_early_access", A, None),
    ("c04", "vip_early_access", A, None),
    ("c13", "vip_early_access", A, B),
    ("c13", "vip_early_access", C, None),
    ("c07", "cart_rescue", A, C),
    ("c10", "browsers_not_buyers", A, None),
    ("c01", "high_propensity_buyers", A, B),
    ("c01", "high_propensity_buyers", C, None),
    ("c02", "high_propensity_buyers", A, None),
}


def change_world(path: Path, day: dt.date) -> None:
    """The fixture as it stands on `day` (one writer: dbt opens the file after this closes it)."""
    con = duckdb.connect(str(path))
    if day == A:
        build(con.execute, con.executemany, "?")
        con.execute("alter table marts.dim_customers add column phone varchar")
        con.execute("alter table marts.dim_customers add column first_name varchar")
        con.execute("update marts.dim_customers set email_opt_in = true where customer_id = 'c07'")
        con.executemany(
            "insert into intermediate.int_events_stitched (event_id, customer_id, event_type, occurred_at, "
            "product_id) values (?, ?, 'product_view', ?, 'p3')",
            [("x1", "c10", ts("2026-03-08 10:00")), ("x2", "c10", ts("2026-03-07 10:00"))],
        )
        con.execute("create table marts.high_propensity_buyers (customer_id varchar)")
    if day == B:
        con.execute("delete from marts.customer_tags where customer_id = 'c13' and tag = 'vip'")
    if day == C:
        con.execute("insert into marts.customer_tags values ('c13', 'vip')")
        con.execute(
            "update marts.customer_lifecycle set lifecycle_stage = 'reactivated' where customer_id = 'c12'"
        )
    con.execute("delete from marts.high_propensity_buyers")
    con.executemany(
        "insert into marts.high_propensity_buyers values (?)", [(c,) for c in HIGH_PROPENSITY[day]]
    )
    con.close()


def dbt_build(path: Path, target: Path, day: dt.date) -> None:
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = str(Path(sys.executable).parent / "dbt")
    done = subprocess.run(
        [dbt, "build", "--select", "path:models/marts/audiences", "--quiet", "--profiles-dir", str(DBT_PROJECT),
         "--target-path", str(target), "--vars", json.dumps({"as_of": day.isoformat()})],
        cwd=DBT_PROJECT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def members(path: Path) -> dict[str, set[str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            a: {r[0] for r in con.execute(f"select customer_id from marts.{a}").fetchall()} for a in AUDIENCES
        }
    finally:
        con.close()


def spells(path: Path) -> set[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "select customer_id, audience, entered_at, exited_at from marts.audience_membership_history"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == len(set(rows))
    return set(rows)


def test_members_and_membership_spells_across_three_as_of_dates(tmp_path: Path) -> None:
    path, target = tmp_path / "fixture.duckdb", tmp_path / "target"
    for day in (A, B, C):
        change_world(path, day)
        dbt_build(path, target, day)
        assert members(path) == MEMBERS[day], day
    assert spells(path) == SPELLS
    # rerunning the latest date (the pipeline runs again the same day) changes nothing
    dbt_build(path, target, C)
    assert spells(path) == SPELLS
    # a run as of an earlier date rewinds what was recorded from that date on, and records that date
    change_world(path, B)  # c13 loses vip again; high_propensity_buyers is B's
    dbt_build(path, target, B)
    rewound = {s for s in SPELLS if s[2] < B} - {
        ("c12", "win_back_dormant", A, C),
        ("c07", "cart_rescue", A, C),
    } | {
        ("c12", "win_back_dormant", A, B),  # reactivated in the fixture since C
        ("c07", "cart_rescue", A, None),  # B's cart window holds its checkout again
    }
    assert spells(path) == rewound
