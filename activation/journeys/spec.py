"""A journey as data: the immutable, validated form of one `config/journeys/<name>.yml`.

`parse_journey(raw, source)` (activation.journeys.parse) builds a `Journey` from the YAML value;
every error is a JourneyError naming the file, the node and the field, e.g.
`config/journeys/cart_abandonment.yml: steps[2] (reminder).send.destination: no destination
named 'emial'`. Conditions inside a journey are the condition language's
(activation.conditions), parsed with their own path, so their errors read the same way.

The file format (docs/journeys.md has the demo journeys as examples):

    description: ...
    owner: crm-marketing
    status: active                  # active | paused | archived (default active)
    entry:                          # exactly one trigger:
      event: {type: checkout_started, where: {...}}   # an event (type(s) and field filters)
      # audience: cart_rescue                         # joining an audience (its dbt model)
      # condition: {score: {name: churn_probability, gte: 0.7}}  # a condition becoming true
      # date: {attribute: signed_up_at, offset_days: 3}          # a date attribute + offset;
      #                                                  # attribute: birthday = every year
      lookback: {hours: 24}         # event/date triggers: how late a trigger may be seen and still
                                    # start an entry (default 24 hours)
      re_entry: never               # never | always | {after_days: N} (default never)
      exclude: <condition>          # not entered while this holds
      holdout: 0.1                  # share kept out (stable hash of journey and customer), default 0
    goal:                           # optional: converted when this holds, within `within_days`
      when: {order: {since: entry}} #   of entry (default: an order since entry)
      within_days: 7
    exit_when: <condition>          # optional: checked before every action; true -> exit
    steps:                          # the nodes, in order; each has an `id` and one kind;
      - id: welcome                 # `next` defaults to the following step, `end` finishes
        send: {destination: email, channel: email, template: welcome, fields: {email: email}}
        # optional in a send: pilot: {share: 0.05, wait: 24h, min_delivered: 200, gate: {...}}
        # and approval_above: N (docs/launches.md "For journeys")
      - id: two_days
        wait: {days: 2}             # or {until_time: "09:00"} (customer's time zone)
                                    # or {event: {type: order_completed}, timeout: {days: 3},
                                    #     timed_out: <step id>}
      - id: bought
        branch:                     # first match wins; `else` (optional) defaults to `next`
          - when: {order: {since: entry}}
            next: end
          - else: coupon
      - id: ab
        split: {A: {weight: 0.5, next: a_mail}, B: {weight: 0.5, next: b_mail}}
      - id: tag_it
        tag: {add: welcomed}        # or {remove: name}
      - id: to_crm
        sync: {destination: crm, fields: {email: email}}
      - id: tell_owner
        notify: {message: "...", route: owner}   # to the customer's linked employee

Node ids are plain identifiers (they go into idempotency keys and table rows, never into SQL text).
The version of a journey is the hash of its canonical JSON (`Journey.version`): any change to the
file that changes its meaning is a new version; customers in flight finish on the one they entered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Union

from activation.conditions import Condition
from activation.launches.spec import LaunchSpec

END = "end"  # the `next` that finishes an entry (exit reason `completed`)
STATUSES = ("active", "paused", "archived")
TRIGGERS = ("event", "audience", "condition", "date")
NODE_KINDS = ("send", "wait", "branch", "split", "tag", "sync", "notify")


class JourneyError(ValueError):
    """A journey file that cannot be used: the message names the file, the node and the field."""


@dataclass(frozen=True)
class EventTrigger:
    """An event of one of `event.types` passing `event.where` (a condition language `event:` node
    without window, count or not_followed_by)."""

    event: Condition  # an activation.conditions.nodes.Event


@dataclass(frozen=True)
class AudienceTrigger:
    """Becoming a member of the audience model `audience` (a dbt model name)."""

    audience: str


@dataclass(frozen=True)
class ConditionTrigger:
    """The condition turning true (it was false, or the customer unknown, at the previous tick)."""

    condition: Condition


@dataclass(frozen=True)
class DateTrigger:
    """`attribute` (a timestamp or date column of dim_customers) plus `offset_days` reached; for
    attribute `birthday` the day and month recur every year."""

    attribute: str
    offset_days: int = 0


Trigger = Union[EventTrigger, AudienceTrigger, ConditionTrigger, DateTrigger]  # noqa: UP007


@dataclass(frozen=True)
class Entry:
    trigger: Trigger
    lookback: dt.timedelta = dt.timedelta(hours=24)
    re_entry: str = "never"  # never | always | after
    re_entry_after_days: int | None = None  # re_entry == "after"
    exclude: Condition | None = None
    holdout: float = 0.0


@dataclass(frozen=True)
class Goal:
    when: Condition  # compiled with the entry time as anchor (`since: entry`)
    within_days: int


@dataclass(frozen=True)
class Wait:
    """One of: a duration; until the next `until_time` (HH:MM) in the customer's time zone; until
    an event (`event`, an Event condition node, after reaching the wait) with `timeout`, going to
    `next` when it happens and to `timed_out` when the timeout passes first."""

    duration: dt.timedelta | None = None
    until_time: dt.time | None = None
    event: Condition | None = None
    timeout: dt.timedelta | None = None
    timed_out: str | None = None


@dataclass(frozen=True)
class BranchArm:
    when: Condition
    next: str


@dataclass(frozen=True)
class Branch:
    arms: tuple[BranchArm, ...]
    otherwise: str  # the `else` arm, or the step's `next`


@dataclass(frozen=True)
class SplitArm:
    name: str
    weight: float
    next: str


@dataclass(frozen=True)
class Split:
    arms: tuple[SplitArm, ...]  # weights add up to 1


@dataclass(frozen=True)
class Send:
    """A message through the activation engine (consent, suppressions, caps, quiet hours, ledger)."""

    destination: str
    channel: str  # email | sms | push
    fields: dict[str, str]  # destination field -> dim_customers column
    content: dict[str, Any]  # template / subject / text / title / body, and variables
    frequency_cap: str | None = "marketing"
    campaign: str | None = None  # default: journey_<journey name>
    # a pilot with a KPI gate and/or an approval limit (activation.launches): the entries outside
    # the pilot sample wait at the step until the gate passes or a person releases them
    launch: LaunchSpec | None = None


@dataclass(frozen=True)
class TagAction:
    tag: str
    add: bool  # False: remove


@dataclass(frozen=True)
class SyncAction:
    """An upsert of the customer to a destination (CRM, audience) through the activation engine."""

    destination: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Notify:
    """A staff notification (activation.staff): each entry becomes a notification to the employees
    the route picks among those linked to the customer (owner, manager, all_owners, first_owner,
    or the team channel, which is also the fallback), with the journey, step, customer id (never
    personal data) and `message`. `destination`: every notification of the step goes there
    instead (a webhook destination), as a staff rule's `destination:` does."""

    destination: str | None
    message: str
    route: str = "owner"  # owner | manager | all_owners | first_owner | team


Action = Union[Wait, Branch, Split, Send, TagAction, SyncAction, Notify]  # noqa: UP007


@dataclass(frozen=True)
class Step:
    id: str
    action: Action
    next: str  # the following step's id, or END

    @property
    def kind(self) -> str:
        return {
            Wait: "wait",
            Branch: "branch",
            Split: "split",
            Send: "send",
            TagAction: "tag",
            SyncAction: "sync",
            Notify: "notify",
        }[type(self.action)]

    def successors(self) -> tuple[str, ...]:
        """Every step id (or END) this step can lead to."""
        a = self.action
        if isinstance(a, Branch):
            return (*(arm.next for arm in a.arms), a.otherwise)
        if isinstance(a, Split):
            return tuple(arm.next for arm in a.arms)
        if isinstance(a, Wait) and a.timed_out is not None:
            return (self.next, a.timed_out)
        return (self.next,)


@dataclass(frozen=True)
class Journey:
    name: str  # the file stem: a plain identifier
    source: str  # the file, for messages
    entry: Entry
    steps: tuple[Step, ...]
    status: str = "active"
    description: str = ""
    owner: str | None = None
    goal: Goal | None = None
    exit_when: Condition | None = None
    canonical: dict[str, Any] = field(default_factory=dict, compare=False)  # the YAML value, normalised

    @property
    def first(self) -> str:
        return self.steps[0].id

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def version(self) -> str:
        """12 hex digits of sha256 over the canonical JSON without `status` (pausing is not a new
        version) and without `description`/`owner` (words, not behaviour)."""
        meaning = {k: v for k, v in self.canonical.items() if k not in ("status", "description", "owner")}
        text = json.dumps(meaning, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
