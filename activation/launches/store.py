"""Launch decisions in the warehouse: `tideline_sync.launch_decisions` (created by activation.ledger).

Every decision of a staged launch is a row, with its numbers: a pilot gate writes one row per
rule (metric, value, bound, threshold, sample, pass or fail) and one overall row (metric null);
a roll-out writes its winner (or the fallback); a person's release, cancellation or approval is
a row with their name in `decided_by`. A launch is one activation (sync key) and content version:
a new content version is a new launch, judged and approved again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from activation.ledger import SCHEMA, ensure_schema

TABLE = f"{SCHEMA}.launch_decisions"
VERDICTS = ("pass", "fail", "released", "cancelled", "winner", "fallback")  # what moves a stage on


@dataclass(frozen=True)
class Decision:
    sync_key: str
    campaign: str
    content_version: str
    stage: str  # pilot, rollout, approval
    decision: str  # pass, fail, released, cancelled, approved, winner, fallback
    decided_at: dt.datetime
    decided_by: str
    metric: str | None = None  # None: the overall decision
    value: float | None = None
    bound: float | None = None
    threshold: float | None = None
    sample: int | None = None
    variant: str | None = None
    detail: str | None = None


COLUMNS = (
    "decision_id",
    "sync_key",
    "campaign",
    "content_version",
    "stage",
    "decision",
    "metric",
    "value",
    "bound",
    "threshold",
    "sample",
    "variant",
    "detail",
    "decided_at",
    "decided_by",
)


def record(con: duckdb.DuckDBPyConnection, decisions: Sequence[Decision]) -> None:
    """Append `decisions` as one decision (they share a decision_id), in one transaction."""
    if not decisions:
        return
    ensure_schema(con)
    decision_id = uuid.uuid4().hex
    con.executemany(
        f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})",
        [
            [
                decision_id,
                d.sync_key,
                d.campaign,
                d.content_version,
                d.stage,
                d.decision,
                d.metric,
                d.value,
                d.bound,
                d.threshold,
                d.sample,
                d.variant,
                d.detail,
                d.decided_at.replace(tzinfo=None),
                d.decided_by,
            ]
            for d in decisions
        ],
    )


def latest_verdict(
    con: duckdb.DuckDBPyConnection, sync_key: str, content_version: str, stage: str
) -> tuple[str, str | None, dt.datetime, str] | None:
    """(decision, variant, decided_at, decided_by) of the launch stage's latest overall verdict."""
    row = con.execute(
        f"""select decision, variant, decided_at, decided_by from {TABLE}
            where sync_key = ? and content_version = ? and stage = ? and metric is null
              and list_contains(?, decision)
            order by decided_at desc, rowid desc limit 1""",
        [sync_key, content_version, stage, list(VERDICTS)],
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def approval(
    con: duckdb.DuckDBPyConnection, sync_key: str, content_version: str
) -> tuple[str, dt.datetime] | None:
    """(who, when) of the latest approval of the activation's content version, or None."""
    row = con.execute(
        f"""select decided_by, decided_at from {TABLE}
            where sync_key = ? and content_version = ? and stage = 'approval' and decision = 'approved'
            order by decided_at desc, rowid desc limit 1""",
        [sync_key, content_version],
    ).fetchone()
    return None if row is None else (row[0], row[1])


def first_sent(
    con: duckdb.DuckDBPyConnection, sync_key: str, content_version: str, stage: str
) -> dt.datetime | None:
    """When the launch's first message of `stage` was sent (the ledger's time), or None."""
    row = con.execute(
        f"""select min(recorded_at) from {SCHEMA}.delivery_log
            where sync_key = ? and content_version = ? and stage = ? and status = 'sent'""",
        [sync_key, content_version, stage],
    ).fetchone()
    return row[0] if row else None


def failing_rules(con: duckdb.DuckDBPyConnection, sync_key: str, content_version: str) -> list[str]:
    """The failing rules of the launch's latest failed pilot gate, in words (their `detail`)."""
    rows = con.execute(
        f"""with verdict as (
                select decision_id from {TABLE}
                where sync_key = ? and content_version = ? and stage = 'pilot' and metric is null
                  and decision = 'fail'
                order by decided_at desc, rowid desc limit 1)
            select detail from {TABLE}
            where decision_id in (select decision_id from verdict) and metric is not null and decision = 'fail'
            order by metric""",
        [sync_key, content_version],
    ).fetchall()
    return [str(d) for (d,) in rows]
