"""The summary's Staff notifications block: notifications by rule (digest messages themselves left
out), sent, waiting and dead, and how many went to the team as a fallback."""

from __future__ import annotations

import datetime as dt

import duckdb

from activation.staff.store import SCHEMA, ensure_schema
from tideline.reporting.summary import _staff_lines

NOW = dt.datetime(2026, 12, 7, 12)


def test_no_state_no_block() -> None:
    assert _staff_lines(duckdb.connect()) == []


def test_counts_by_rule_and_status() -> None:
    """lead_mql: 3 made, 2 sent (one unknown counts as sent: it went out), 1 deferred (waiting),
    1 of them to the team; order_above: 1 dead. The digest row is not a notification of its own."""
    con = duckdb.connect()
    ensure_schema(con)
    for nid, rule, kind, status, fell_back in (
        ("a", "lead_mql", "lead_mql", "sent", False),
        ("b", "lead_mql", "lead_mql", "unknown", True),
        ("c", "lead_mql", "lead_mql", "deferred", False),
        ("d", "order_above", "order_above", "dead", False),
        ("e", "digest", "digest", "sent", False),
    ):
        con.execute(
            f"""insert into {SCHEMA}.notifications (notification_id, rule, rule_kind, event_key, recipient, route,
                    fell_back, destination, handle_kind, message, via_digest, created_at, due_at, status, updated_at)
                values (?, ?, ?, 'k', 'team', 'owner', ?, 'staff_team', 'webhook', 'm', false, ?, ?, ?, ?)""",
            [nid, rule, kind, fell_back, NOW, NOW, status, NOW],
        )
    lines = _staff_lines(con)
    assert lines[1].split() == [
        "Staff",
        "notifications",
        "made",
        "sent",
        "waiting",
        "dead",
        "to",
        "team",
        "(fallback)",
    ]
    assert lines[2].split() == ["lead_mql", "3", "2", "1", "0", "1"]
    assert lines[3].split() == ["order_above", "1", "0", "0", "1", "0"]
    assert len(lines) == 5
