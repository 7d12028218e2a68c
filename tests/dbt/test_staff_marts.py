"""Staff, owners and CRM lead stages built by dbt on a small landing zone with awkward data, as of
2026-03-31, against results worked out by hand. The project is copied with the rules file RULES
(one fit rule, one decaying behaviour rule), generated as `tideline leads build` does.

Rules: core market (DE) 10 points; viewed pricing 40 (within 60 days, half-life 10 days). Stages:
nurtured 15, marketing_qualified 40.

Staff: S1 (manager M1, webhook handle, Europe/Berlin); S2 (no manager, email handle in capitals,
time zone "Mars/Olympus": cleared, inactive); S3 (manager "ZZ" names nobody: null + reject; handle
"slack:#sales" is neither URL nor email: null + reject; active empty: active); M1 and M2 manage each
other (a cycle, kept as given); S4 names itself as manager (cleared + reject); S5 active "maybe"
(cleared, counts as active); a row without staff_id (rejected); S1 again in an earlier file
(a duplicate the later file supersedes).

Customers: L1 (DE, created 2026-01-10, contacts.owner_id S3) viewed pricing on 2026-03-01:
10 + 40 = 50, MQL; 10 + 40 * 0.5^(5/10) = 38.28 on 03-06: nurtured. CRM: sales_accepted 03-10,
on 03-25 lost at 08:00 and opportunity at 09:00 (the later wins), deal on 04-02 (after the as-of
date: ignored). Spells: raw_lead 01-10, MQL 03-01, nurtured 03-06, sales_accepted 03-10,
opportunity 03-25 (open). mql_first_on 03-01; lead_stage and crm_stage opportunity, is_mql false.
Owners: S3 from the contact (01-10, rank 1), S1 from customer_owners (02-01, rank 2); owner_id S3.
L2 and L2B share an email: identity stitching merges them into one customer (L2, the earlier
account). Owner rows: L2-S2 03-21 and L2B-S2 03-26 (one pair: the earliest, 03-21, wins), L2B-S1
03-26. Ranks S2 1, S1 2; S2 is inactive, so owner_id is S1. CRM: L2B sales_accepted 03-28 counts
for L2.
L3 (FR): CRM lost 03-30 by "NOBODY" (staff cleared + reject), stage "won" rejected; owner links
M1 (linked_at "yesterday": cleared, ranks last) and S1 linked 2026-04-05 (after the as-of date:
left out), UNKNOWN staff (rejected), and customer NOPE (rejected, as its CRM status). L4's
owner_id GHOST names nobody (field cleared + reject). E1 is erased: its owner link, CRM status
and bad CRM row appear nowhere, not even in rejects.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from activation import leads
from activation.leads.rules import PROJECT_DIR
from tests.helpers import Warehouse, load_landing_zone, write_csv, write_jsonl
from tideline.dbt_manifest import dbt_executable

pytestmark = pytest.mark.slow

AS_OF = "2026-03-31"
PRICING = "https://shop.example.com/pricing"
RULES = {
    "half_life_days": 10,
    "stages": {"nurtured": 15, "marketing_qualified": 40},
    "groups": {"fit": {"kind": "fit", "cap": 25}, "intent": {"kind": "behaviour", "cap": 50}},
    "rules": [
        {"name": "core_market", "group": "fit", "points": 10, "reason": "Lives in a core market",
         "where": {"attribute": {"name": "country", "in": ["DE"]}}},
        {"name": "viewed_pricing", "group": "intent", "points": 40, "reason": "Viewed pricing",
         "where": {"event": {"type": "page_view", "within_days": 60,
                             "where": {"attribute": {"name": "url", "eq": PRICING}}}}},
    ],
}  # fmt: skip
STAFF_COLUMNS = ["staff_id", "name", "email", "manager_id", "handle", "team", "timezone", "active"]


def staff_rows() -> list[dict]:
    return [
        {"staff_id": "S1", "name": "Ann", "email": " Ann@Example.com ", "manager_id": "M1",
         "handle": "http://127.0.0.1:8091/staff/S1", "team": "sales", "timezone": "Europe/Berlin"},
        {"staff_id": "S2", "name": "Bo", "manager_id": "", "handle": "BO@Example.com", "team": "sales",
         "timezone": "Mars/Olympus", "active": "no"},
        {"staff_id": "S3", "name": "Cy", "manager_id": "ZZ", "handle": "slack:#sales",
         "timezone": "America/New_York", "active": ""},
        {"staff_id": "M1", "name": "Di", "manager_id": "M2", "handle": "m1@example.com", "active": "true"},
        {"staff_id": "M2", "name": "Ed", "manager_id": "M1", "handle": "https://chat.example.com/hooks/m2"},
        {"staff_id": "S4", "name": "Fay", "manager_id": "S4", "active": "0"},
        {"staff_id": "S5", "name": "Gus", "active": "maybe"},
        {"staff_id": "", "name": "Nobody"},
    ]  # fmt: skip


def write_landing_zone(raw: Path) -> None:
    write_csv(
        raw / "crm/contacts/contacts.csv",
        [
            {"customer_id": "L1", "email": "l1@example.com", "country": "DE", "created_at": "2026-01-10",
             "owner_id": "S3"},
            {"customer_id": "L2", "email": "l2@example.com", "country": "US", "created_at": "2026-03-20"},
            {"customer_id": "L2B", "email": "L2@example.com", "country": "US", "created_at": "2026-03-25"},
            {"customer_id": "L3", "email": "l3@example.com", "country": "FR", "created_at": "2025-12-01"},
            {"customer_id": "L4", "email": "l4@example.com", "country": "FR", "created_at": "2025-12-01",
             "owner_id": "GHOST"},
            {"customer_id": "E1", "email": "e1@example.com", "country": "DE", "created_at": "2025-12-01"},
        ],
        ["customer_id", "email", "country", "created_at", "owner_id"],
    )  # fmt: skip
    write_csv(
        raw / "commerce/orders/orders.csv",
        [{"order_id": "o1", "customer_id": "B1", "ordered_at": "2026-03-12T10:00:00Z", "amount": "80.00"}],
    )
    write_jsonl(
        raw / "events/2026-03.jsonl",
        [
            {
                "event_type": "page_view",
                "occurred_at": "2026-03-01T09:00:00Z",
                "customer_id": "L1",
                "url": PRICING,
            }
        ],
    )
    write_csv(raw / "crm/staff/a.csv", [{**staff_rows()[0], "handle": "old@example.com"}], STAFF_COLUMNS)
    write_csv(raw / "crm/staff/b.csv", staff_rows(), STAFF_COLUMNS)
    write_csv(
        raw / "crm/customer_owners/owners.csv",
        [
            {"customer_id": "L1", "staff_id": "S1", "linked_at": "2026-02-01T09:00:00Z"},
            {"customer_id": "L2", "staff_id": "S2", "linked_at": "2026-03-21T09:00:00Z"},
            {"customer_id": "L2B", "staff_id": "S2", "linked_at": "2026-03-26T09:00:00Z"},
            {"customer_id": "L2B", "staff_id": "S1", "linked_at": "2026-03-26T09:00:00Z"},
            {"customer_id": "L3", "staff_id": "M1", "linked_at": "yesterday"},
            {"customer_id": "L3", "staff_id": "S1", "linked_at": "2026-04-05T09:00:00Z"},
            {"customer_id": "L3", "staff_id": "UNKNOWN", "linked_at": "2026-03-01"},
            {"customer_id": "NOPE", "staff_id": "S1", "linked_at": "2026-03-01"},
            {"customer_id": "", "staff_id": "S1", "linked_at": "2026-03-01"},
            {"customer_id": "E1", "staff_id": "S1", "linked_at": "2026-03-01"},
        ],
    )
    write_csv(
        raw / "crm/lead_status/status.csv",
        [
            {"customer_id": "L1", "stage": "sales_accepted", "changed_at": "2026-03-10T10:00:00Z", "staff_id": "S1"},
            {"customer_id": "L1", "stage": "Opportunity", "changed_at": "2026-03-25T09:00:00Z"},
            {"customer_id": "L1", "stage": "lost", "changed_at": "2026-03-25T08:00:00Z"},
            {"customer_id": "L1", "stage": "deal", "changed_at": "2026-04-02T09:00:00Z"},
            {"customer_id": "L2B", "stage": "sales_accepted", "changed_at": "2026-03-28T09:00:00Z"},
            {"customer_id": "L3", "stage": "lost", "changed_at": "2026-03-30T09:00:00Z", "staff_id": "NOBODY"},
            {"customer_id": "L3", "stage": "won", "changed_at": "2026-03-30T09:00:00Z"},
            {"customer_id": "NOPE", "stage": "lost", "changed_at": "2026-03-30T09:00:00Z"},
            {"customer_id": "E1", "stage": "lost", "changed_at": "2026-03-30T09:00:00Z"},
            {"customer_id": "E1", "stage": "gone", "changed_at": "2026-03-30T09:00:00Z"},
        ],
        ["customer_id", "stage", "changed_at", "staff_id"],
    )  # fmt: skip


def erase(con: duckdb.DuckDBPyConnection, customer_id: str) -> None:
    """What activation/privacy/erasure.py records for an erased customer (its ids only)."""
    from activation.privacy.erasure import DDL, SCHEMA

    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(DDL)
    con.execute(f"insert into {SCHEMA}.erased_identities values ('r1', 'customer_id', ?)", [customer_id])


def build(base: Path, write, erased: str | None = None) -> Warehouse:
    root = base / "dbt_project"
    shutil.copytree(PROJECT_DIR, root, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (root / "lead_scoring.yml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    leads.build(root)
    write(base / "raw")
    path = base / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    try:
        load_landing_zone(base / "raw", con)
        if erased:
            erase(con, erased)
    finally:
        con.close()
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [dbt_executable(), "build", "--profiles-dir", str(root), "--vars", json.dumps({"as_of": AS_OF})],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    return Warehouse(path)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return build(tmp_path_factory.mktemp("staff"), write_landing_zone, erased="E1")


def test_dim_staff_clears_what_it_cannot_use(warehouse) -> None:
    rows = {r[0]: r[1:] for r in warehouse.query(
        "select staff_id, email, manager_id, notify_handle, notify_kind, team, time_zone, is_active "
        "from marts.dim_staff"
    )}  # fmt: skip
    assert rows == {
        "S1": ("ann@example.com", "M1", "http://127.0.0.1:8091/staff/S1", "webhook", "sales", "Europe/Berlin", True),
        "S2": (None, None, "bo@example.com", "email", "sales", None, False),
        "S3": (None, None, None, None, None, "America/New_York", True),
        "M1": (None, "M2", "m1@example.com", "email", None, None, True),
        "M2": (None, "M1", "https://chat.example.com/hooks/m2", "webhook", None, None, True),
        "S4": (None, None, None, None, None, None, False),
        "S5": (None, None, None, None, None, None, True),
    }  # fmt: skip


def test_customer_owners_resolved_ranked_and_first_link_kept(warehouse) -> None:
    rows = warehouse.query(
        "select customer_id, staff_id, linked_at, owner_rank, source, staff_is_active "
        "from marts.customer_owners order by customer_id, owner_rank"
    )
    t = dt.datetime
    assert rows == [
        ("L1", "S3", t(2026, 1, 10), 1, "contacts", True),
        ("L1", "S1", t(2026, 2, 1, 9), 2, "customer_owners", True),
        ("L2", "S2", t(2026, 3, 21, 9), 1, "customer_owners", False),
        ("L2", "S1", t(2026, 3, 26, 9), 2, "customer_owners", True),
        ("L3", "M1", None, 1, "customer_owners", True),
    ]


def test_crm_stages_win_over_the_score_from_their_day(warehouse) -> None:
    daily = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select score_on, total_score, score_stage, crm_stage, lead_stage from marts.lead_score_daily "
            "where customer_id = 'L1'"
        )
    }
    d = dt.date
    assert daily[d(2026, 3, 1)] == (50.0, "marketing_qualified", None, "marketing_qualified")
    assert daily[d(2026, 3, 6)] == (38.28, "nurtured", None, "nurtured")
    assert daily[d(2026, 3, 9)][3] == "nurtured"
    assert daily[d(2026, 3, 10)][2:] == ("sales_accepted", "sales_accepted")
    assert daily[d(2026, 3, 24)][2:] == ("sales_accepted", "sales_accepted")
    assert daily[d(2026, 3, 25)][1:] == ("nurtured", "opportunity", "opportunity")
    assert daily[d(2026, 3, 31)][3] == "opportunity"


def test_stage_history_spells_follow_the_crm(warehouse) -> None:
    spells = warehouse.query(
        "select customer_id, lead_stage, entered_on, exited_on, previous_stage, next_stage "
        "from marts.lead_stage_history where customer_id in ('L1', 'L3') order by customer_id, entered_on"
    )
    d = dt.date
    assert spells == [
        ("L1", "raw_lead", d(2026, 1, 10), d(2026, 3, 1), None, "marketing_qualified"),
        ("L1", "marketing_qualified", d(2026, 3, 1), d(2026, 3, 6), "raw_lead", "nurtured"),
        ("L1", "nurtured", d(2026, 3, 6), d(2026, 3, 10), "marketing_qualified", "sales_accepted"),
        ("L1", "sales_accepted", d(2026, 3, 10), d(2026, 3, 25), "nurtured", "opportunity"),
        ("L1", "opportunity", d(2026, 3, 25), None, "sales_accepted", None),
        ("L3", "raw_lead", d(2025, 12, 1), d(2026, 3, 30), None, "lost"),
        ("L3", "lost", d(2026, 3, 30), None, "raw_lead", None),
    ]


def test_lead_scores_crm_stage_and_owner(warehouse) -> None:
    rows = {
        r[0]: r[1:]
        for r in warehouse.query(
            "select customer_id, lead_stage, crm_stage, is_mql, mql_first_on, owner_id, stage_entered_on "
            "from marts.lead_scores"
        )
    }
    d = dt.date
    assert rows["L1"] == ("opportunity", "opportunity", False, d(2026, 3, 1), "S3", d(2026, 3, 25))
    assert rows["L2"] == ("sales_accepted", "sales_accepted", False, None, "S1", d(2026, 3, 28))
    assert rows["L3"] == ("lost", "lost", False, None, "M1", d(2026, 3, 30))
    assert rows["L4"] == ("raw_lead", None, False, None, None, d(2025, 12, 1))
    assert "E1" not in rows
    crm = warehouse.query("select customer_id, crm_stage, staff_id, in_force_from, in_force_until "
                          "from marts.lead_crm_stages order by 1, 4")  # fmt: skip
    assert crm == [
        ("L1", "sales_accepted", "S1", d(2026, 3, 10), d(2026, 3, 25)),
        ("L1", "opportunity", None, d(2026, 3, 25), None),
        ("L2", "sales_accepted", None, d(2026, 3, 28), None),
        ("L3", "lost", None, d(2026, 3, 30), None),
    ]


def test_rejects_name_file_row_field_and_reason(warehouse) -> None:
    rows = warehouse.query(
        "select entity, source_file, source_row, field, value, action, reason from marts.rejects "
        "where entity in ('crm_staff', 'crm_customer_owners', 'crm_lead_status') or field = 'owner_id' "
        "order by entity, source_file, source_row, field"
    )
    got = {(r[0], r[1].split("/")[-1], r[2], r[3], r[4], r[5]) for r in rows}
    assert got == {
        ("crm_contacts", "contacts.csv", 5, "owner_id", "GHOST", "field_cleared"),
        ("crm_customer_owners", "owners.csv", 5, "linked_at", "yesterday", "field_cleared"),
        ("crm_customer_owners", "owners.csv", 7, "staff_id", "UNKNOWN", "row_rejected"),
        ("crm_customer_owners", "owners.csv", 8, "customer_id", "NOPE", "row_rejected"),
        ("crm_customer_owners", "owners.csv", 9, "customer_id", None, "row_rejected"),
        ("crm_lead_status", "status.csv", 6, "staff_id", "NOBODY", "field_cleared"),
        ("crm_lead_status", "status.csv", 7, "stage", "won", "row_rejected"),
        ("crm_lead_status", "status.csv", 8, "customer_id", "NOPE", "row_rejected"),
        ("crm_staff", "a.csv", 1, "staff_id", "S1", "row_rejected"),  # superseded by b.csv row 1
        ("crm_staff", "b.csv", 2, "timezone", "Mars/Olympus", "field_cleared"),
        ("crm_staff", "b.csv", 3, "handle", "slack:#sales", "field_cleared"),
        ("crm_staff", "b.csv", 3, "manager_id", "ZZ", "field_cleared"),
        ("crm_staff", "b.csv", 6, "manager_id", "S4", "field_cleared"),
        ("crm_staff", "b.csv", 7, "active", "maybe", "field_cleared"),
        ("crm_staff", "b.csv", 8, "staff_id", None, "row_rejected"),
    }
    reasons = {(r[0], r[3], r[4]): r[6] for r in rows}
    assert reasons[("crm_staff", "handle", "slack:#sales")] == (
        "handle is neither an http(s) webhook URL nor an email address; cleared"
    )
    assert reasons[("crm_customer_owners", "staff_id", "UNKNOWN")] == (
        'unknown employee: staff_id "UNKNOWN" is not in crm/staff'
    )
    assert reasons[("crm_lead_status", "stage", "won")] == (
        'stage "won" is not one of sales_accepted, opportunity, deal, lost'
    )


def test_an_erased_customer_leaves_no_owner_status_or_reject(warehouse) -> None:
    for table, column in (("customer_owners", "customer_id"), ("lead_crm_stages", "customer_id"),
                          ("lead_scores", "customer_id"), ("rejects", "value")):  # fmt: skip
        assert warehouse.query(f"select count(*) from marts.{table} where {column} = 'E1'") == [(0,)], table
    assert warehouse.query("select count(*) from marts.rejects where source_file like '%status.csv' "
                           "and source_row in (9, 10)") == [(0,)]  # fmt: skip


def write_without_staff(raw: Path) -> None:
    write_csv(
        raw / "commerce/orders/orders.csv",
        [{"order_id": "o1", "customer_id": "B1", "ordered_at": "2026-03-12T10:00:00Z", "amount": "80.00"}],
    )


def test_without_the_staff_files_the_marts_are_empty_with_their_types(tmp_path: Path) -> None:
    warehouse = build(tmp_path, write_without_staff)
    for table in ("dim_staff", "customer_owners", "lead_crm_stages"):
        assert warehouse.query(f"select count(*) from marts.{table}") == [(0,)]
    types = dict(warehouse.query(
        "select table_name || '.' || column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name in ('dim_staff', 'customer_owners', 'lead_scores')"
    ))  # fmt: skip
    assert types["dim_staff.is_active"] == "BOOLEAN" and types["dim_staff.notify_kind"] == "VARCHAR"
    assert (
        types["customer_owners.linked_at"] == "TIMESTAMP" and types["customer_owners.owner_rank"] == "INTEGER"
    )
    assert types["lead_scores.crm_stage"] == "VARCHAR" and types["lead_scores.owner_id"] == "VARCHAR"
