"""One tick of one journey: new entries, conversions, exits, and every node transition that is
due, set-based in the warehouse (one statement per node and kind for all entries there, never a
Python loop per customer).

    result = JourneyTick(con, journey, clock, catalog=catalog, deliver=deliver).run()

In this order:

1. Conversions: every entry of the journey still inside its goal window (in flight, exited or
   held out) whose goal now holds gets `converted_at` = the tick's clock (so lift is measured on
   every entry); an entry in flight that converted exits `converted`.
2. Archived journeys: every entry in flight exits `archived`; paused ones stop here (nobody
   enters, nobody moves, nothing is sent; they continue where they were once resumed).
3. New entries (activation.journeys.entries): from the trigger, through the re-entry rule and
   the exclusion, with the holdout drawn by a stable hash of journey and customer.
4. Waits for an event: entries waiting at such a step whose event happened since they reached it
   go on at once.
5. Passes over the steps until nothing moves: entries due now first leave when the exit
   condition holds (checked before every action), then each step moves the entries due at it:
   waits (to `next`, or `timed_out`), branches (first arm whose condition holds, else `else`),
   splits (a stable hash of journey, step and customer against the weights; the arm is kept on
   the entry and becomes the ledger's variant), tags, and the deliveries (send, sync, notify)
   through the activation engine (activation.journeys.deliver). An entry may pass several steps
   in one tick (a branch, then a send, then a wait); a wait stops it.

Every move is one transaction: the transitions appended to `steps` and the entries updated
together. Deliveries are exactly once because the engine's ledger is (one idempotency key per
journey, version, entry and step): a tick killed after sending and before moving the entries is
rerun, plans the same keys, sends none of them again, and moves the entries by what the ledger
says. The clock is injected: the same inputs and clock give the same result.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from activation.conditions import Catalog, CompileContext, Condition, compile_condition, compile_event_filter
from activation.journeys import deliver as delivery
from activation.journeys.clock import naive_utc
from activation.journeys.entries import enter_new
from activation.journeys.spec import (
    END,
    Branch,
    Journey,
    Notify,
    Send,
    Split,
    Step,
    SyncAction,
    TagAction,
    Wait,
)
from activation.journeys.sql import Sql
from activation.journeys.store import SCHEMA, archive_done, ensure_schema, erased_customers_sql
from activation.warehouse import execute, quote_identifier, transaction

log = logging.getLogger(__name__)

CUSTOMERS = "marts.dim_customers"
ANCHOR = "c.entered_at"  # conditions in a journey see the entry time as `since: entry`


@dataclass
class TickResult:
    """What one tick did to one journey (also a row of tideline_journeys.ticks)."""

    journey: str
    version: str
    tick_id: str
    clock: dt.datetime
    status: str
    dry_run: bool = False
    entered: int = 0
    held_out: int = 0
    advanced: int = 0
    sent: int = 0
    skipped: int = 0
    exited: int = 0
    converted: int = 0
    waiting: int = 0  # due but held: deferred, failed (retried), customer not in the warehouse yet
    archived: int = 0  # finished entries moved to entries_history (done: converted or goal window over)
    by_reason: Counter = field(default_factory=Counter)  # "skipped:no_consent", "exited:converted", ...
    reached: Counter = field(default_factory=Counter)  # step id (or "end") -> entries moved into it
    duration_seconds: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "version": self.version,
            "clock": self.clock.isoformat(sep=" "),
            "entered": self.entered,
            "held_out": self.held_out,
            "advanced": self.advanced,
            "sent": self.sent,
            "skipped": self.skipped,
            "exited": self.exited,
            "converted": self.converted,
            "waiting": self.waiting,
            "by_reason": dict(sorted(self.by_reason.items())),
            "reached": dict(sorted(self.reached.items())),
        }


class JourneyTick:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        journey: Journey,
        clock: dt.datetime,
        *,
        catalog: Catalog,
        deliver: delivery.Deliver,
        versions: dict[str, Journey] | None = None,
        default_timezone: str = "UTC",
        schema: str = SCHEMA,
        customers: str = CUSTOMERS,
    ):
        """`deliver` runs the activation engine for one step's due entries (its dry_run: the
        policies decide and nothing is sent; see activation.journeys.deliver).
        `versions`: earlier versions with entries in flight, by version (from the versions table)."""
        self.con, self.journey, self.catalog = con, journey, catalog
        self.clock = naive_utc(clock)
        self.deliver = deliver
        self.versions = {journey.version: journey, **(versions or {})}
        self.default_timezone = default_timezone
        self.s = schema
        self.customers = customers
        self.tick_id = uuid.uuid4().hex
        self.anchor_floor: dt.datetime | None = None  # set at the start of run (_anchor_floor)
        self.result = TickResult(
            journey.name, journey.version, self.tick_id, self.clock, journey.status, dry_run=deliver.dry_run
        )

    # --- the tick -------------------------------------------------------------------------------------

    def run(self) -> TickResult:
        started, wall = time.monotonic(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ensure_schema(self.con, self.s)
        try:
            self._register()
            self.result.archived = archive_done(self.con, self.s, self.journey.name, self.clock)
            self.anchor_floor = self._anchor_floor()
            self._exit_erased()
            self._conversions()
            if self.journey.status == "archived":
                self._exit_all("archived")
            elif self.journey.status == "active":
                self.result.entered, self.result.held_out = enter_new(self)
                for version in self._versions_in_flight():
                    self._advance(self.versions[version])
        finally:
            self._drop_work_tables()
        self.result.duration_seconds = time.monotonic() - started
        self._record(wall)
        return self.result

    def _anchor_floor(self) -> dt.datetime:
        """The earliest entry time any condition of this tick sees: the journey's live entries
        (after archive_done) and the new ones (entered at or after clock - lookback)."""
        (earliest,) = self.con.execute(
            f"select min(entered_at) from {self.s}.entries_live where journey = ?", [self.journey.name]
        ).fetchone()
        since = self.clock - self.journey.entry.lookback
        return since if earliest is None else min(earliest, since)

    def _drop_work_tables(self) -> None:
        """The tick's temp tables (_j_*): gone with the tick, so a connection kept across ticks
        holds no customer ids and no memory for them."""
        names = self.con.execute(
            "select table_name from duckdb_tables() where temporary and starts_with(table_name, '_j_')"
        ).fetchall()
        for (name,) in names:
            self.con.execute(f"drop table if exists {quote_identifier(name)}")

    def _advance(self, journey: Journey) -> None:
        self._event_waits(journey)
        for _ in range(2 * len(journey.steps) + 2):  # a cycle always holds a wait (the parser checks)
            moved = self._exits(journey)
            for step in journey.steps:
                moved += self._step(journey, step)
            if not moved:
                return
        log.warning("journey %s: entries still moving after every pass of the tick", journey.name)

    # --- state ----------------------------------------------------------------------------------------

    def _register(self) -> None:
        j = self.journey
        with transaction(self.con):
            self.con.execute(
                f"insert into {self.s}.versions select ?, ?, ?, ?, ? where not exists "
                f"(select 1 from {self.s}.versions where journey = ? and version = ?)",
                [
                    j.name,
                    j.version,
                    json.dumps(j.canonical, sort_keys=True, default=str),
                    j.source,
                    self.clock,
                    j.name,
                    j.version,
                ],
            )
            self.con.execute(f"delete from {self.s}.journeys where journey = ?", [j.name])
            self.con.execute(
                f"insert into {self.s}.journeys values (?, ?, ?, ?)",
                [j.name, j.version, j.status, self.clock],
            )

    def _versions_in_flight(self) -> list[str]:
        rows = self.con.execute(
            f"select distinct version from {self.s}.entries_live where journey = ? and exited_at is null",
            [self.journey.name],
        ).fetchall()
        found = [v for (v,) in rows]
        missing = [v for v in found if v not in self.versions]
        if missing:
            log.warning(
                "journey %s: entries in flight on unknown version(s) %s are left where they are",
                self.journey.name,
                ", ".join(missing),
            )
        return sorted(v for v in found if v in self.versions)

    def _record(self, wall: dt.datetime) -> None:
        r = self.result
        self.con.execute(
            f"insert into {self.s}.ticks values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.tick_id,
                r.journey,
                r.clock,
                wall,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                r.entered,
                r.advanced,
                r.sent,
                r.skipped,
                r.exited,
                json.dumps(dict(sorted(r.by_reason.items()))),
                r.duration_seconds,
                r.dry_run,
            ],
        )

    # --- conditions -----------------------------------------------------------------------------------

    def compiled(self, cond: Condition) -> tuple[str, list]:
        """`cond` over the entry row `c` (c.customer_id, c.entered_at) at the tick's clock."""
        ctx = CompileContext(target="duckdb", now=self.clock, anchor=ANCHOR, anchor_floor=self.anchor_floor)
        return compile_condition(cond, self.catalog, ctx)

    def event_filter(self, cond: Condition, alias: str) -> tuple[str, list]:
        ctx = CompileContext(target="duckdb", now=self.clock, anchor=ANCHOR, anchor_floor=self.anchor_floor)
        return compile_event_filter(cond, self.catalog, ctx, alias)

    def due(self, journey: Journey, step_id: str) -> tuple[str, list]:
        """The WHERE of the entries due at a step now (alias c), and its positional parameters."""
        return (
            "c.journey = ? and c.version = ? and c.current_node = ? and c.exited_at is null and c.due_at <= ?",
            [journey.name, journey.version, step_id, self.clock],
        )

    def due_named(self, journey: Journey, step_id: str) -> tuple[str, dict[str, Any]]:
        """`due` with named parameters ($d_journey, $d_version, $d_node, $d_clock)."""
        return (
            "c.journey = $d_journey and c.version = $d_version and c.current_node = $d_node "
            "and c.exited_at is null and c.due_at <= $d_clock",
            {
                "d_journey": journey.name,
                "d_version": journey.version,
                "d_node": step_id,
                "d_clock": self.clock,
            },
        )

    # --- moving entries -------------------------------------------------------------------------------

    def move(
        self,
        journey: Journey,
        select: str,
        params: list[Any] | dict[str, Any],
        also: tuple[tuple[str, list[Any]], ...] = (),
    ) -> int:
        """Move the entries `select` returns (entry_id, to_node, outcome, reason, arm, exit_reason)
        in one transaction: the transitions appended to `steps`, the entries updated (their due
        time from the step they reach), or finished when to_node is `end`. `params`: positional
        (a list, for SQL with compiled conditions) or named (a dict). `also`: statements that
        belong to the same transaction (a tag step's tag changes)."""
        con = self.con
        make = f"create or replace temp table _j_moves as {select}"
        if isinstance(params, dict):
            execute(con, make, params)
        else:
            con.execute(make, params)
        n = con.execute("select count(*) from _j_moves").fetchone()[0]
        if not n:
            return 0
        due, due_params = self._due_sql(journey)
        values = {"tick": self.tick_id, "clock": self.clock, "end": END, **due_params}
        with transaction(con):
            for sql, extra in also:
                con.execute(sql, extra)
            execute(
                con,
                f"""insert into {self.s}.steps (entry_id, journey, version, customer_id, from_node, to_node,
                                                outcome, reason, tick_id, moved_at)
                    select j.entry_id, j.journey, j.version, j.customer_id, j.current_node,
                           nullif(m.to_node, $end), m.outcome, m.reason, $tick, $clock
                    from _j_moves as m join {self.s}.entries_live as j on j.entry_id = m.entry_id""",
                values,
            )
            execute(
                con,
                f"""update {self.s}.entries_live as j set
                        current_node = nullif(m.to_node, $end),
                        node_entered_at = $clock,
                        due_at = case when m.to_node = $end then null else {due} end,
                        exited_at = case when m.to_node = $end then $clock end,
                        exit_reason = case when m.to_node = $end then coalesce(m.exit_reason, 'completed') end,
                        arm = coalesce(m.arm, j.arm),
                        tick_id = $tick
                    from _j_moves as m
                    where j.entry_id = m.entry_id""",
                values,
            )
        self._count_moves()
        return int(n)

    def _count_moves(self) -> None:
        r = self.result
        rows = self.con.execute(
            "select to_node, outcome, reason, exit_reason, count(*) from _j_moves group by all"
        ).fetchall()
        for to_node, outcome, reason, exit_reason, n in rows:
            r.reached[to_node] += n
            if outcome == "exited" or to_node == END:
                r.exited += n
                r.by_reason[f"exited:{exit_reason or 'completed'}"] += n
            if outcome not in ("exited", "entered"):
                r.advanced += n
            if outcome == "sent":
                r.sent += n
            elif outcome == "skipped":
                r.skipped += n
                r.by_reason[f"skipped:{reason}"] += n

    def _due_sql(self, journey: Journey) -> tuple[str, dict[str, Any]]:
        """The due time of an entry reaching `m.to_node`: now, except at a wait (the clock plus its
        duration or timeout, or the next `until_time` in the customer's time zone)."""
        cases, values = [], {"zone": self.default_timezone}
        zone = (
            f"coalesce((select tz.name from {self.customers} as d join pg_timezone_names() as tz "
            "on d.timezone = tz.name where d.customer_id = j.customer_id), $zone)"
        )
        for i, step in enumerate(journey.steps):
            wait = step.action
            if not isinstance(wait, Wait):
                continue
            values[f"node{i}"] = step.id
            if wait.until_time is not None:
                local = f"timezone({zone}, timezone('UTC', $clock))"
                at = wait.until_time.hour * 60 + wait.until_time.minute
                values[f"min{i}"] = at
                next_local = (
                    f"(date_trunc('day', {local}) + to_minutes($min{i})"
                    f" + case when hour({local}) * 60 + minute({local}) >= $min{i}"
                    " then interval 1 day else interval 0 day end)"
                )
                cases.append(f"when $node{i} then timezone('UTC', timezone({zone}, {next_local}))")
            else:
                span = wait.duration if wait.duration is not None else wait.timeout
                assert span is not None
                values[f"secs{i}"] = int(span.total_seconds())
                cases.append(f"when $node{i} then $clock + to_seconds($secs{i})")
        if not cases:
            return "$clock", values
        return f"case m.to_node {' '.join(cases)} else $clock end", values

    # --- conversions and exits ------------------------------------------------------------------------

    def _conversions(self) -> None:
        goal = self.journey.goal
        if goal is None:
            return
        q = Sql()
        where = (
            f"c.journey = {q.bind(self.journey.name)} and c.converted_at is null "
            f"and c.goal_until >= {q.bind(self.clock)} and c.entered_at <= {q.bind(self.clock)}"
        )
        cond = q.cond(self.compiled(goal.when))
        self.con.execute(
            f"create or replace temp table _j_converted as select c.entry_id from {self.s}.entries_live as c "
            f"where {where} and {cond}",
            q.params,
        )
        self.con.execute(
            f"update {self.s}.entries_live set converted_at = ? where entry_id in (select entry_id from _j_converted)",
            [self.clock],
        )
        self.result.converted = self.con.execute("select count(*) from _j_converted").fetchone()[0]
        for version, journey in self.versions.items():
            self._exit(
                journey,
                "converted",
                "c.journey = ? and c.version = ? and c.exited_at is null and c.converted_at is not null",
                [journey.name, version],
            )

    def _exit_all(self, reason: str) -> None:
        for version, journey in self.versions.items():
            self._exit(
                journey,
                reason,
                "c.journey = ? and c.version = ? and c.exited_at is null",
                [journey.name, version],
            )
        # entries on versions no longer known exit too
        self._exit(self.journey, reason, "c.journey = ? and c.exited_at is null", [self.journey.name])

    def _exit_erased(self) -> None:
        """Customers with an erasure request (tideline customer erase) leave every journey at once,
        before anything else happens to them (their sends are suppressed by the engine as well)."""
        erased = erased_customers_sql(self.con)
        if erased is None:
            return
        for version, journey in self.versions.items():
            self._exit(
                journey,
                "erased",
                f"c.journey = ? and c.version = ? and c.exited_at is null and c.customer_id in ({erased})",
                [journey.name, version],
            )

    def _exits(self, journey: Journey) -> int:
        """Entries due now whose exit condition holds leave before any action."""
        if journey.exit_when is None:
            return 0
        q = Sql()
        cond = q.cond(self.compiled(journey.exit_when))
        where = f"{cond} and c.journey = ? and c.version = ? and c.exited_at is null and c.due_at <= ?"
        return self._exit(
            journey, "exit_condition", where, [*q.params, journey.name, journey.version, self.clock]
        )

    def _exit(self, journey: Journey, reason: str, where: str, params: list[Any]) -> int:
        """Finish the entries `where` (over the entry row c, positional `params`) selects, as `reason`."""
        return self.move(
            journey,
            f"""select c.entry_id, ? as to_node, 'exited' as outcome, ? as reason,
                       cast(null as varchar) as arm, ? as exit_reason
                from {self.s}.entries_live as c where {where}""",
            [END, reason, reason, *params],
        )

    # --- steps ----------------------------------------------------------------------------------------

    def _step(self, journey: Journey, step: Step) -> int:
        action = step.action
        handler: Callable[[Journey, Step], int] = {
            Wait: self._wait,
            Branch: self._branch,
            Split: self._split,
            TagAction: self._tag,
            Send: self._deliver,
            SyncAction: self._deliver,
            Notify: self._deliver,
        }[type(action)]
        return handler(journey, step)

    def _wait(self, journey: Journey, step: Step) -> int:
        wait = step.action
        assert isinstance(wait, Wait)
        where, params = self.due(journey, step.id)
        to = wait.timed_out if wait.event is not None and wait.timed_out else step.next
        reason = "timed_out" if wait.event is not None else None
        return self.move(
            journey,
            f"""select c.entry_id, ? as to_node, 'waited' as outcome, ? as reason, cast(null as varchar) as arm,
                       cast(null as varchar) as exit_reason
                from {self.s}.entries_live as c where {where}""",
            [to, reason, *params],
        )

    def _event_waits(self, journey: Journey) -> int:
        """Entries waiting for an event that happened since they reached the wait go on now."""
        moved = 0
        events = self.catalog.relations["events"]
        for step in journey.steps:
            wait = step.action
            if not isinstance(wait, Wait) or wait.event is None:
                continue
            q = Sql()  # the f-string below binds in text order
            # the waiting entries joined to the events of their customers since the earliest wait
            # began (a time range DuckDB prunes): no scan of the whole history per entry
            sql = f"""with waiting as (
                          select c.entry_id, c.customer_id, c.node_entered_at from {self.s}.entries_live as c
                          where c.journey = {q.bind(journey.name)} and c.version = {q.bind(journey.version)}
                            and c.current_node = {q.bind(step.id)} and c.exited_at is null)
                      select distinct w.entry_id, {q.bind(step.next)} as to_node, 'waited' as outcome,
                             'event' as reason, cast(null as varchar) as arm, cast(null as varchar) as exit_reason
                      from waiting as w
                      join {events.schema}.{events.table} as e on e.customer_id = w.customer_id
                      where e.occurred_at >= (select min(node_entered_at) from waiting)
                        and e.occurred_at >= w.node_entered_at and e.occurred_at < {q.bind(self.clock)}
                        and {q.cond(self.event_filter(wait.event, "e"))}"""
            moved += self.move(journey, sql, q.params)
        return moved

    def _branch(self, journey: Journey, step: Step) -> int:
        branch = step.action
        assert isinstance(branch, Branch)
        q = Sql()
        arms = " ".join(
            f"when {q.cond(self.compiled(arm.when))} then {q.bind(arm.next)}" for arm in branch.arms
        )
        target = f"case {arms} else {q.bind(branch.otherwise)} end"
        where, params = self.due(journey, step.id)
        return self.move(
            journey,
            f"""select c.entry_id, {target} as to_node, 'branched' as outcome, cast(null as varchar) as reason,
                       cast(null as varchar) as arm, cast(null as varchar) as exit_reason
                from {self.s}.entries_live as c where {where}""",
            [*q.params, *params],
        )

    def _split(self, journey: Journey, step: Step) -> int:
        split = step.action
        assert isinstance(split, Split)
        where, values = self.due_named(journey, step.id)
        values["salt"] = f"split|{journey.name}|{step.id}"
        to, arm, cumulative = [], [], 0.0
        for i, a in enumerate(split.arms):
            values[f"next{i}"], values[f"arm{i}"] = a.next, a.name
            if i < len(split.arms) - 1:
                cumulative += a.weight
                values[f"below{i}"] = cumulative
                to.append(f"when u < $below{i} then $next{i}")
                arm.append(f"when u < $below{i} then $arm{i}")
        last = len(split.arms) - 1
        to_sql = f"case {' '.join(to)} else $next{last} end"
        arm_sql = f"case {' '.join(arm)} else $arm{last} end"
        unit = "(('0x' || substr(md5($salt || '|' || c.customer_id), 1, 8))::ubigint / 4294967296.0)"
        return self.move(
            journey,
            f"""select entry_id, {to_sql} as to_node, 'split' as outcome, {arm_sql} as reason, {arm_sql} as arm,
                       cast(null as varchar) as exit_reason
                from (select c.entry_id, {unit} as u from {self.s}.entries_live as c where {where})""",
            values,
        )

    def _tag(self, journey: Journey, step: Step) -> int:
        tag = step.action
        assert isinstance(tag, TagAction)
        where, params = self.due(journey, step.id)
        self.con.execute(
            f"""create or replace temp table _j_tagging as
                select c.entry_id, c.customer_id from {self.s}.entries_live as c where {where}""",
            params,
        )
        change = (
            f"insert into {self.s}.tag_changes select customer_id, ?, ?, ?, entry_id, ? from _j_tagging",
            [tag.tag, tag.add, journey.name, self.clock],
        )
        return self.move(
            journey,
            """select entry_id, ? as to_node, 'tagged' as outcome, ? as reason, cast(null as varchar) as arm,
                      cast(null as varchar) as exit_reason from _j_tagging""",
            [step.next, f"{'added' if tag.add else 'removed'}:{tag.tag}"],
            also=(change,),
        )

    def _deliver(self, journey: Journey, step: Step) -> int:
        return delivery.deliver_step(self, journey, step)
