"""Small hand-made warehouses for the staff notification tests: the contract's marts
(marts.dim_staff, marts.customer_owners, marts.lead_scores with exactly the contract's columns, as
i16-staff builds them) and the tables the rules read (ml.customer_scores, the orders and events
relations), plus activation and staff configs pointing at loopback sinks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

from activation.config import ActivationConfig, PolicyConfig
from activation.staff.config import StaffConfig, parse_staff_config
from activation.staff.deliver import Sender
from activation.warehouse import DuckDBLimits

SECRET = "staff-test-webhook-secret"
TRACKING = "staff-test-tracking-secret-0123456789abcdef"
ENV = {"STAFF_WEBHOOK_SECRET": SECRET, "TIDELINE_TRACKING_SECRET": TRACKING}
AS_OF = dt.date(2026, 12, 7)

DDL = """
create schema if not exists marts;
create schema if not exists ml;
create schema if not exists intermediate;
create table marts.dim_staff (staff_id varchar, staff_name varchar, email varchar, manager_id varchar,
    notify_handle varchar, notify_kind varchar, team varchar, time_zone varchar, is_active boolean);
create table marts.customer_owners (customer_id varchar, staff_id varchar, linked_at timestamp,
    owner_rank integer, source varchar, staff_is_active boolean);
create table marts.lead_scores (customer_id varchar, lead_stage varchar, mql_first_on date, is_mql boolean,
    total_score double, top_reasons varchar, crm_stage varchar, owner_id varchar);
create table ml.customer_scores (customer_id varchar, churn_probability double, predicted_clv double,
    as_of_date date);
create table intermediate.int_orders_resolved (order_id varchar, customer_id varchar, ordered_at timestamp,
    amount decimal(12, 2), currency varchar, is_purchase boolean);
create table intermediate.int_events_stitched (event_id varchar, event_type varchar, occurred_at timestamp,
    customer_id varchar, url varchar);
"""


def make_warehouse(path: Path | str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(DDL)
    return con


def add_staff(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    """(staff_id, manager_id, handle, kind, time_zone, is_active); name and email are made up."""
    for staff_id, manager, handle, kind, zone, active in rows:
        con.execute(
            "insert into marts.dim_staff values (?, ?, ?, ?, ?, ?, 'sales', ?, ?)",
            [staff_id, f"Person {staff_id}", f"{staff_id}@corp.example", manager, handle, kind, zone, active],
        )


def add_owners(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]]) -> None:
    """(customer_id, staff_id, linked_at ISO); owner_rank and staff_is_active as the contract says."""
    for customer, staff_id, linked in rows:
        con.execute(
            "insert into marts.customer_owners values (?, ?, ?, 0, 'customer_owners', "
            "coalesce((select is_active from marts.dim_staff where staff_id = ?), false))",
            [customer, staff_id, linked, staff_id],
        )
    con.execute(
        """update marts.customer_owners as o set owner_rank = r.rank from (
               select customer_id, staff_id, row_number() over (partition by customer_id order by linked_at, staff_id) as rank
               from marts.customer_owners) as r
           where r.customer_id = o.customer_id and r.staff_id = o.staff_id"""
    )


def add_lead(
    con, customer: str, mql_first_on: str | None, score: float, crm_stage: str | None = None
) -> None:
    con.execute(
        "insert into marts.lead_scores values (?, ?, ?, ?, ?, ?, ?, null)",
        [
            customer,
            crm_stage or ("marketing_qualified" if mql_first_on else "nurtured"),
            mql_first_on,
            mql_first_on is not None,
            score,
            "Viewed pricing 2 days ago (+22 of 25); Registered for a webinar today (+25 of 25)",
            crm_stage,
        ],
    )


def activation_config(
    http_base: str, smtp: tuple[str, int] | None = None, **policies: Any
) -> ActivationConfig:
    destinations: dict[str, dict[str, Any]] = {
        "staff_team": {
            "type": "webhook",
            "url": f"{http_base}/staff/team",
            "secret_env": "STAFF_WEBHOOK_SECRET",
            "retry_attempts": 1,
        },
        "staff_chat": {
            "type": "webhook",
            "url": f"{http_base}/staff/chat",
            "secret_env": "STAFF_WEBHOOK_SECRET",
            "retry_attempts": 1,
            "timeout_seconds": 2,
        },
    }
    if smtp:
        destinations["staff_email"] = {
            "type": "smtp",
            "host": smtp[0],
            "port": smtp[1],
            "from_address": "tideline@corp.example",
            "unsubscribe_base_url": "http://127.0.0.1:9/u",
            "retry_attempts": 1,
        }
    return ActivationConfig(destinations, PolicyConfig(**policies), env=dict(ENV))


def staff_config(config: ActivationConfig, rules: dict[str, Any], **top: Any) -> StaffConfig:
    raw = {
        "link_base_url": "https://crm.corp.example/customers",
        "destinations": {
            "team": "staff_team",
            "chat": "staff_chat",
            **({"email": "staff_email"} if "staff_email" in config.destinations else {}),
        },
        "quiet_hours": {"start": 0, "end": 0},
        "rules": rules,
        **top,
    }
    return parse_staff_config(raw, "test_staff.yml", config.destinations)


def sender(config: ActivationConfig, tmp: Path) -> Sender:
    raw = tmp / "raw"
    raw.mkdir(exist_ok=True)
    return Sender(config, raw, DuckDBLimits(), workers=1)
