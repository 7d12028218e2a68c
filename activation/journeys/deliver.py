"""A journey step's deliveries: send (a message on a channel) and sync (an upsert to a CRM or
audience) through the activation engine, notify (a staff notification) through the staff
notifications (activation.staff, which send through the same engine).

The entries due at the step whose customer the warehouse knows are written to one queue table
(`tideline_journeys.send_queue`: entry_id, customer_id and the mapped columns of dim_customers),
and the engine runs on it as a keyed message binding (activation.config.SyncBinding.row_key =
entry_id), one run per split arm (the arm is the ledger's variant):

    sync_key         journey__<journey>__<step>__<destination>
    campaign         journey:<journey>
    content_version  <journey version>:<step>
    idempotency key  destination | segment | customer | campaign:content_version:entry_id

So consent, suppressions, frequency caps shared with campaigns, quiet hours (deferred, not
dropped) and the ledger apply as to any campaign. Then each entry moves by its key's latest
ledger status: sent or unknown (maybe delivered: never resent) -> `next` as sent; dead letter
-> `next` as failed; skipped -> `next` as skipped, with the reason (no_consent, frequency_cap,
suppressed:...); deferred -> stays, due when the quiet hours end; failed (to be retried),
in flight, or not planned -> stays, due now (the next tick tries again). A dry run (simulation)
reads the decisions the policies made instead of the ledger and sends nothing.

A customer the warehouse does not know yet (an event arrived before the dbt build that creates the
customer) stays at the step, counted `waiting:unknown_customer`, until it does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb

from activation.activate import Activation, activate
from activation.config import ActivationConfig, SyncBinding
from activation.journeys.spec import Journey, Notify, Send, Step, SyncAction
from activation.launches.gate import AWAITING_APPROVAL, AWAITING_DECISION, AWAITING_GATE, GATE_FAILED
from activation.ledger import SCHEMA as LEDGER
from activation.planner import params as binding_params
from activation.planner import row_message_key_sql
from activation.staff.config import StaffConfig
from activation.staff.deliver import Sender, deliver_due
from activation.staff.planner import enqueue_journey
from activation.warehouse import DuckDBLimits, execute, quote_identifier, quote_relation, transaction

if TYPE_CHECKING:
    from activation.journeys.tick import JourneyTick

DECISIONS = "_j_decisions"
QUEUE = "send_queue"
# (entry, step) this tick's deliveries have tried (a _j_ work table: dropped with the tick)
TRIED = "_j_tried"
# the launch gate's holds (activation.launches.gate): not a skip that moves the entry on, a wait
# at the step until the gate passes, a person releases the pilot or approves the version (a
# cancelled pilot, `pilot:cancelled`, is final: those entries move on as skipped)
HOLDS = (AWAITING_GATE, GATE_FAILED, AWAITING_DECISION, AWAITING_APPROVAL)


class Deliver(Protocol):
    dry_run: bool

    def __call__(self, con: duckdb.DuckDBPyConnection, binding: SyncBinding, clock: dt.datetime) -> None:
        """Run the engine for `binding` at `clock`, leaving the decisions in temp table DECISIONS."""


@dataclass
class EngineDelivery:
    """The activation engine as a journey's delivery: the destinations and policies of the
    activation config, the landing dir (consent revocations, provider webhooks) and the DuckDB
    limits. dry_run: the policies decide, nothing is sent or recorded."""

    config: ActivationConfig
    raw_dir: Path
    limits: DuckDBLimits
    workers: int = 4
    dry_run: bool = False
    launched_by: str | None = None  # who or what started the tick (schedule:..., cli:...): sync_runs
    # the staff notifications file (activation.staff.config.optional_staff_config): routes a notify
    # step's entries to the employees linked to the customer; None: notify steps skip their entries
    staff: StaffConfig | None = None

    def notify_staff(self, con: duckdb.DuckDBPyConnection, clock: dt.datetime) -> None:
        """Send the staff notifications due at `clock` (a notify step's, made just before)."""
        if self.staff is not None and not self.dry_run:
            sender = Sender(
                self.config,
                self.raw_dir,
                self.limits,
                workers=min(self.workers, 2),
                launched_by=self.launched_by,
            )
            deliver_due(con, self.staff, sender, clock)

    def __call__(self, con: duckdb.DuckDBPyConnection, binding: SyncBinding, clock: dt.datetime) -> None:
        self.run(con, binding, clock)

    def run(
        self,
        con: duckdb.DuckDBPyConnection,
        binding: SyncBinding,
        clock: dt.datetime,
        customers: str = "marts.dim_customers",
    ) -> Activation:
        """One engine run; `customers`: whose consent and time zone the policies read."""
        return activate(
            con,
            binding,
            self.config,
            self.raw_dir,
            limits=self.limits,
            workers=self.workers,
            dry_run=self.dry_run,
            now=clock,
            keep_decisions=DECISIONS,
            record_run=not self.dry_run,
            customers=customers,
            launched_by=self.launched_by,
        )


def binding_for(journey: Journey, step: Step, schema: str, arm: str | None) -> SyncBinding:
    """The engine's binding of a send or sync step (one split arm)."""
    action = step.action
    common = {
        "segment": f"journey__{journey.name}__{step.id}",
        "relation": f"{schema}.{QUEUE}",
        "mode": "message",
        "campaign": f"journey:{journey.name}",
        "content_version": f"{journey.version}:{step.id}",
        "row_key": "entry_id",
        "variants": {arm: {}} if arm else {},
        "variant_weights": {arm: 1.0} if arm else {},
    }
    if isinstance(action, Send):
        return SyncBinding(
            destination=action.destination,
            channel=action.channel,
            fields=dict(action.fields),
            content=dict(action.content),
            frequency_cap=action.frequency_cap,
            launch=action.launch,
            **common,
        )
    if isinstance(action, SyncAction):
        return SyncBinding(
            destination=action.destination,
            channel=None,
            fields=dict(action.fields),
            frequency_cap=None,
            delivery_action="upsert",
            **common,
        )
    raise TypeError(f"step {step.id} ({step.kind}) is not delivered through a binding")


def launch_bindings(journeys: list[Journey], schema: str) -> list[SyncBinding]:
    """The bindings of the send steps that declare a pilot or an approval limit, with the
    journeys' current versions: what `tideline pilot release|cancel` and `tideline approve` decide
    on (a decision is per step and journey version, as it is per content version for a segment)."""
    return [
        binding_for(j, step, schema, None)
        for j in journeys
        for step in j.steps
        if isinstance(step.action, Send) and step.action.launch is not None
    ]


def deliver_step(t: JourneyTick, journey: Journey, step: Step) -> int:
    """Deliver to the entries due at `step` and move them by the outcome; the number moved."""
    con, s = t.con, t.s
    where, params = t.due(journey, step.id)
    # an entry the tick already tried at this step and left there (held by a pilot, a failed send
    # to retry, a customer not known yet) is not tried again by the tick's next pass
    con.execute(f"create temp table if not exists {TRIED} (entry_id varchar, node varchar)")
    con.execute(
        f"""create or replace temp table _j_due as
            select c.entry_id, c.customer_id, c.arm,
                   exists (select 1 from {quote_relation(t.customers)} as d where d.customer_id = c.customer_id)
                       as known
            from {s}.entries_live as c where {where}
              and c.entry_id not in (select entry_id from {TRIED} where node = ?)""",
        [*params, step.id],
    )
    total, unknown = con.execute("select count(*), count(*) filter (where not known) from _j_due").fetchone()
    if not total:
        return 0
    con.execute(f"insert into {TRIED} select entry_id, ? from _j_due", [step.id])
    if unknown:
        t.result.waiting += unknown
        t.result.by_reason["waiting:unknown_customer"] += unknown
    if isinstance(step.action, Notify):
        return _notify_staff(t, journey, step, step.action)
    moved = 0
    arms = [a for (a,) in con.execute("select distinct arm from _j_due where known order by 1").fetchall()]
    try:
        for arm in arms:
            binding = binding_for(journey, step, s, arm)
            _fill_queue(t, step, binding, arm)
            con.execute(f"drop table if exists {DECISIONS}")
            t.deliver(con, binding, t.clock)
            moved += _move_by_outcome(t, journey, step, binding)
    finally:  # the queue holds the step's contact fields: it is not kept between steps
        con.execute(f"drop table if exists {s}.{QUEUE}")
    return moved


def _notify_staff(t: JourneyTick, journey: Journey, step: Step, action: Notify) -> int:
    """A notify step hands its entries to the staff notifications (activation.staff.planner.
    enqueue_journey): one notification per entry and recipient, rule `journey:<journey>:<step>`,
    event the entry id, routed by the step's route (or all to its `destination`), made once by its
    id, so a tick rerun after a crash makes none again; what is due is sent at once. The entries
    move on `notified`. Without a staff notifications file they move on skipped
    (`staff:not_configured`); a dry run moves them as notified and makes nothing."""
    con = t.con
    con.execute(
        """create or replace temp table _j_notify as
           select entry_id, customer_id, ? as journey, ? as step, ? as message, ? as route,
                  cast(? as varchar) as destination
           from _j_due where known""",
        [journey.name, step.id, action.message, action.route, action.destination],
    )
    staff = getattr(t.deliver, "staff", None)
    outcome, reason = ("notified", None) if staff is not None else ("skipped", "staff:not_configured")
    if staff is not None and not t.deliver.dry_run:
        enqueue_journey(con, staff, "_j_notify", t.clock)
        t.deliver.notify_staff(con, t.clock)
    moved = t.move(
        journey,
        """select entry_id, ? as to_node, ? as outcome, cast(? as varchar) as reason,
                  cast(null as varchar) as arm, cast(null as varchar) as exit_reason
           from _j_notify""",
        [step.next, outcome, reason],
    )
    if outcome == "notified":  # notifications count as sent in the tick's totals
        t.result.sent += moved
    return moved


def _fill_queue(t: JourneyTick, step: Step, binding: SyncBinding, arm: str | None) -> None:
    columns = [
        c for c in dict.fromkeys(binding.fields.values()) if not c.startswith("_") and c != "customer_id"
    ]
    picked = "".join(f", c.{quote_identifier(col)}" for col in columns)
    t.con.execute(
        f"""create or replace table {t.s}.{QUEUE} as
            select d.entry_id, d.customer_id{picked}
            from _j_due as d join {quote_relation(t.customers)} as c on c.customer_id = d.customer_id
            where d.known and d.arm is not distinct from ?""",
        [arm],
    )


def _move_by_outcome(t: JourneyTick, journey: Journey, step: Step, binding: SyncBinding) -> int:
    con, s = t.con, t.s
    since = con.execute(
        f"select min(j.node_entered_at) from {s}.{QUEUE} as q join {s}.entries_live as j on j.entry_id = q.entry_id"
    ).fetchone()[0]
    values = {**binding_params(binding), "since": since or t.clock}
    key = row_message_key_sql("q.customer_id", "q.entry_id")
    # a live run: the ledger says what happened (this run's sends and an earlier, killed run's);
    # a dry run: what the policies decided (the ledger holds only earlier live outcomes)
    first, then = ("d", "l") if t.deliver.dry_run else ("l", "d")
    status, reason, not_before = (
        f"coalesce({first}.{c}, {then}.{c})" for c in ("status", "reason", "not_before")
    )
    execute(
        con,
        f"""create or replace temp table _j_outcome as
            with k as (select q.entry_id, {key} as idempotency_key from {s}.{QUEUE} as q),
            l as (select idempotency_key, arg_max(status, seq) as status, arg_max(reason, seq) as reason,
                         arg_max(not_before, seq) as not_before
                  from {LEDGER}.delivery_log
                  where sync_key = $sync_key and idempotency_key in (select idempotency_key from k)
                    -- a key's events are all recorded at or after its entry reached the step (the
                    -- engine's clock is the tick's): a time range DuckDB prunes, not the sync's history
                    and recorded_at >= $since
                  group by idempotency_key)
            select k.entry_id, {status} as status, {reason} as reason, {not_before} as not_before
            from k left join l on l.idempotency_key = k.idempotency_key
            left join (select idempotency_key,
                              case decision when 'send' then 'sent' when 'skip' then 'skipped'
                                   when 'defer' then 'deferred' when 'dead' then 'dead_letter' else decision end
                                  as status, reason, not_before
                       from {DECISIONS}) as d on d.idempotency_key = k.idempotency_key""",
        values,
    )
    outcome = {"send": "sent", "sync": "synced"}[step.kind]
    moved = t.move(
        journey,
        """select entry_id, ? as to_node,
                   case status when 'skipped' then 'skipped' when 'dead_letter' then 'failed' else ? end as outcome,
                   case when status in ('skipped') then reason when status <> 'sent' then status end as reason,
                   cast(null as varchar) as arm, cast(null as varchar) as exit_reason
            from _j_outcome where status in ('sent', 'unknown', 'dead_letter', 'skipped')
              and not (status = 'skipped' and list_contains(?, coalesce(reason, '')))""",
        [step.next, outcome, list(HOLDS)],
    )
    if outcome != "sent":  # syncs count as sent in the tick's totals
        t.result.sent += con.execute(
            "select count(*) from _j_outcome where status in ('sent', 'unknown')"
        ).fetchone()[0]
    _defer(t, journey, step)
    for status, n in con.execute(
        """select case when status = 'skipped' then reason else coalesce(status, 'not_planned') end, count(*)
           from _j_outcome
           where status is null or status not in ('sent', 'unknown', 'dead_letter', 'skipped')
              or (status = 'skipped' and list_contains(?, coalesce(reason, '')))
           group by 1""",
        [list(HOLDS)],
    ).fetchall():
        t.result.waiting += n
        t.result.by_reason[f"waiting:{status}"] += n
    return moved


def _defer(t: JourneyTick, journey: Journey, step: Step) -> None:
    """Deferred entries (quiet hours) stay at the step, due when the deferral ends: one
    transition row each, so the log shows the wait."""
    con, s = t.con, t.s
    if not con.execute("select count(*) from _j_outcome where status = 'deferred'").fetchone()[0]:
        return
    with transaction(con):
        con.execute(
            f"""insert into {s}.steps (entry_id, journey, version, customer_id, from_node, to_node, outcome,
                                       reason, tick_id, moved_at)
                select j.entry_id, j.journey, j.version, j.customer_id, j.current_node, j.current_node,
                       'deferred', 'quiet_hours', ?, ?
                from _j_outcome as o join {s}.entries_live as j on j.entry_id = o.entry_id where o.status = 'deferred'""",
            [t.tick_id, t.clock],
        )
        con.execute(
            f"""update {s}.entries_live as j set due_at = coalesce(o.not_before, j.due_at), tick_id = ?
                from _j_outcome as o where j.entry_id = o.entry_id and o.status = 'deferred'""",
            [t.tick_id],
        )
    n = con.execute("select count(*) from _j_outcome where status = 'deferred'").fetchone()[0]
    t.result.waiting += n
    t.result.by_reason["waiting:deferred"] += n
