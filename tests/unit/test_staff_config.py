"""The staff notifications file: every mistake names the file, the rule and the key; the demo's
file loads against the demo's activation config; and the dbt macro that reads the state lists the
state table's columns (activation/staff/store.py), in order."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from activation.config import load_config
from activation.staff.config import StaffConfigError, load_staff_config, parse_staff_config
from activation.staff.store import SCHEMA, ensure_schema

ROOT = Path(__file__).resolve().parents[2]
DESTINATIONS = {
    "staff_team": {"type": "webhook"},
    "staff_chat": {"type": "webhook"},
    "staff_email": {"type": "smtp"},
    "email": {"type": "smtp"},
}


def _parse(**over):
    raw = {
        "link_base_url": "https://crm.example/c",
        "destinations": {"team": "staff_team", "chat": "staff_chat"},
        "rules": {"lead_mql": {"route": "owner"}},
        **over,
    }
    return parse_staff_config(raw, "staff.yml", DESTINATIONS)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"rules": {"big": {"kind": "order_above", "amount": "lots"}}},
            "staff.yml: rules.big.amount must be a number > 0, got 'lots'",
        ),
        ({"rules": {"big": {"kind": "order_above"}}}, "staff.yml: rules.big.amount is required"),
        (
            {"rules": {"lead_mql": {"route": "boss"}}},
            "staff.yml: rules.lead_mql.route 'boss' is not one of owner, manager",
        ),
        ({"rules": {"lead_mql": {"rout": "owner"}}}, "staff.yml: rules.lead_mql: unknown key(s) rout"),
        ({"rules": {"x": {}}}, "staff.yml: rules.x.kind 'x' is not one of"),
        (
            {"rules": {"lead_mql": {"within_days": 0}}},
            "staff.yml: rules.lead_mql.within_days must be a whole number",
        ),
        (
            {"rules": {"lead_mql": {"destination": "email"}}},
            "staff.yml: rules.lead_mql.destination 'email' is a smtp destination",
        ),
        (
            {"destinations": {"team": "nope"}},
            "staff.yml: destinations.team 'nope' is not a destination of the activation config",
        ),
        ({"destinations": {"chat": "staff_chat"}}, "staff.yml: destinations.team is required"),
        ({"quiet_hours": {"start": 25}}, "staff.yml: quiet_hours.start must be an hour 0-23"),
        ({"link_base_url": "ftp://x"}, "staff.yml: link_base_url must be an http(s) URL"),
        (
            {"rules": {"churn_risk_high_value": {"min_predicted_clv": 10, "clv_top_share": 0.2}}},
            "staff.yml: rules.churn_risk_high_value: give min_predicted_clv or clv_top_share, not both",
        ),
    ],
)
def test_errors_name_the_file_the_rule_and_the_key(over, message) -> None:
    with pytest.raises(StaffConfigError) as caught:
        _parse(**over)
    assert str(caught.value).startswith(message)


def test_defaults_skip_handled_customers_for_the_lead_rules_only() -> None:
    staff = _parse(
        rules={"lead_mql": {}, "new_lead_assigned": {}, "big": {"kind": "order_above", "amount": 5}}
    )
    assert {r.name: r.skip_handled for r in staff.rules} == {
        "lead_mql": True,
        "new_lead_assigned": True,
        "big": False,
    }


def test_the_demo_file_loads_against_the_demo_activation_config() -> None:
    env = {"TIDELINE_WEBHOOK_SECRET": "s", "TIDELINE_TRACKING_SECRET": "t" * 40}
    config = load_config(ROOT / "config" / "activation.yml", env=env)
    staff = load_staff_config(
        ROOT / "config" / "staff_notifications.yml", destinations=config.destinations, env=env
    )
    assert {r.kind for r in staff.enabled_rules} == {
        "new_lead_assigned",
        "lead_mql",
        "churn_risk_high_value",
        "order_above",
        "form_submitted",
    }


def test_the_dbt_macro_lists_the_state_tables_columns_in_order() -> None:
    con = duckdb.connect()
    ensure_schema(con)
    ddl = [r[0] for r in con.execute(f"describe {SCHEMA}.notifications").fetchall()]
    macro = (ROOT / "dbt_project" / "macros" / "staff_state.sql").read_text()
    assert re.findall(r"\('(\w+)', ", macro) == ddl
