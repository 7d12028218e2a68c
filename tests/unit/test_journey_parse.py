"""Journey files: a valid file of every node kind becomes the expected dataclasses, each mistake is a
JourneyError naming the file, the step and the field, the version follows meaning (not key order,
defaults written out, status or description), and load_journeys reads a directory."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from activation.conditions import Catalog, parse_condition
from activation.journeys.parse import describe_journey, load_journeys, parse_journey
from activation.journeys.spec import (
    END,
    AudienceTrigger,
    Branch,
    BranchArm,
    ConditionTrigger,
    DateTrigger,
    Entry,
    EventTrigger,
    Goal,
    JourneyError,
    Notify,
    Send,
    Split,
    SplitArm,
    Step,
    SyncAction,
    TagAction,
    Wait,
)

SOURCE = "config/journeys/cart.yml"
CATALOG = Catalog.default(audiences=["cart_rescue", "recent_buyers"])
DESTINATIONS = {name: {"type": "webhook"} for name in ("crm", "email", "sms", "push", "staff_alerts")}

EVERY_KIND = """
description: Every node kind
owner: crm-marketing
status: active
entry:
  event: {type: checkout_started, where: {attribute: {name: utm_source, eq: newsletter}}}
  lookback: {hours: 2}
  re_entry: {after_days: 30}
  exclude: {tag: vip}
  holdout: 0.1
goal:
  when: {order: {since: entry, count: {gte: 1}}}
  within_days: 7
exit_when: {order: {since: entry}}
steps:
  - id: hour
    wait: {hours: 1, minutes: 30}
  - id: bought
    branch:
      - when: {order: {since: entry}}
        next: end
      - else: reminder
  - id: reminder
    send:
      destination: email
      channel: email
      template: welcome
      fields: {email: email, first_name: first_name}
      variables: {coupon: CART10}
      campaign: cart_rescue_2026
  - id: ab
    split:
      A: {weight: 0.25, next: nudge}
      B: {weight: 0.75}
  - id: nudge
    send: {destination: sms, channel: sms, text: "Your cart is waiting", fields: {phone: phone},
           frequency_cap: null}
  - id: morning
    wait: {until_time: "09:00"}
  - id: viewed
    wait: {event: {type: product_view}, timeout: {days: 3}, timed_out: to_crm}
    next: tag_it
  - id: tag_it
    tag: {add: cart_rescued}
  - id: to_crm
    sync: {destination: crm, fields: {email: email}}
  - id: tell_owner
    notify: {destination: staff_alerts, message: "A large cart was left", route: team}
"""

MINI = """
entry: {event: checkout_started}
steps:
  - id: first
    wait: {hours: 1}
  - id: mail
    send: {destination: email, channel: email, template: welcome, fields: {email: email}}
"""


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    for name in ("welcome", "win_back"):
        (root / name).mkdir(parents=True)
        (root / name / "subject.j2").write_text("Hello")
    return root


def parse(text: str | Any, templates: Path | None = None, **options: Any):
    raw = yaml.safe_load(text) if isinstance(text, str) else text
    options.setdefault("catalog", CATALOG)
    options.setdefault("destinations", DESTINATIONS)
    return parse_journey(raw, SOURCE, options.pop("name", "cart"), templates_dir=templates, **options)


def cond(raw: Any, path: str):
    return parse_condition(raw, SOURCE, path)


# --- every node kind ---------------------------------------------------------------------------------


def test_a_journey_of_every_node_kind_becomes_the_expected_dataclasses(templates: Path) -> None:
    j = parse(EVERY_KIND, templates)
    assert (j.name, j.source, j.status, j.description, j.owner) == (
        "cart",
        SOURCE,
        "active",
        "Every node kind",
        "crm-marketing",
    )
    event = {"type": "checkout_started", "where": {"attribute": {"name": "utm_source", "eq": "newsletter"}}}
    assert j.entry == Entry(
        trigger=EventTrigger(cond({"event": event}, "entry")),
        lookback=dt.timedelta(hours=2),
        re_entry="after",
        re_entry_after_days=30,
        exclude=cond({"tag": "vip"}, "entry.exclude"),
        holdout=0.1,
    )
    assert j.entry.trigger.event.loc.path == "entry.event"
    assert j.goal == Goal(cond({"order": {"since": "entry", "count": {"gte": 1}}}, "goal.when"), 7)
    assert j.exit_when == cond({"order": {"since": "entry"}}, "exit_when")
    bought_when = cond({"order": {"since": "entry"}}, "steps[1] (bought).branch[0].when")
    viewed = cond({"event": {"type": "product_view"}}, "steps[6] (viewed).wait")
    assert j.steps == (
        Step("hour", Wait(duration=dt.timedelta(minutes=90)), "bought"),
        Step("bought", Branch((BranchArm(bought_when, END),), "reminder"), "reminder"),
        Step(
            "reminder",
            Send(
                "email",
                "email",
                {"email": "email", "first_name": "first_name"},
                {"template": "welcome", "variables": {"coupon": "CART10"}},
                frequency_cap="marketing",
                campaign="cart_rescue_2026",
            ),
            "ab",
        ),
        Step("ab", Split((SplitArm("A", 0.25, "nudge"), SplitArm("B", 0.75, "nudge"))), "nudge"),
        Step(
            "nudge",
            Send("sms", "sms", {"phone": "phone"}, {"text": "Your cart is waiting"}, frequency_cap=None),
            "morning",
        ),
        Step("morning", Wait(until_time=dt.time(9, 0)), "viewed"),
        Step("viewed", Wait(event=viewed, timeout=dt.timedelta(days=3), timed_out="to_crm"), "tag_it"),
        Step("tag_it", TagAction("cart_rescued", add=True), "to_crm"),
        Step("to_crm", SyncAction("crm", {"email": "email"}), "tell_owner"),
        Step("tell_owner", Notify("staff_alerts", "A large cart was left", route="team"), END),
    )
    assert [s.kind for s in j.steps] == [
        "wait", "branch", "send", "split", "send", "wait", "wait", "tag", "sync", "notify"
    ]  # fmt: skip
    assert j.first == "hour"


def test_the_other_triggers_parse() -> None:
    steps = "steps: [{id: only, tag: {remove: dormant}}]"
    audience = parse(f"entry: {{audience: cart_rescue}}\n{steps}")
    assert audience.entry.trigger == AudienceTrigger("cart_rescue")
    assert audience.steps == (Step("only", TagAction("dormant", add=False), END),)
    condition = parse(f"entry: {{condition: {{score: {{name: churn_probability, gte: 0.7}}}}}}\n{steps}")
    expected = cond({"score": {"name": "churn_probability", "gte": 0.7}}, "entry.condition")
    assert condition.entry.trigger == ConditionTrigger(expected)
    date = parse(f"entry: {{date: {{attribute: first_order_at, offset_days: -3}}}}\n{steps}")
    assert date.entry.trigger == DateTrigger("first_order_at", -3)
    assert parse(f"entry: {{date: {{attribute: signed_up_at}}}}\n{steps}").entry.trigger == DateTrigger(
        "signed_up_at", 0
    )


def test_defaults_are_filled_in(templates: Path) -> None:
    j = parse(
        """
        entry: {event: [add_to_cart, checkout_started]}
        goal: {within_days: 3}
        steps:
          - id: wait_it
            wait: {event: product_view, timeout: {hours: 4}}
          - id: check
            branch: [{when: {tag: vip}, next: end}]
          - id: ab
            split: {A: {weight: 0.5}, B: {weight: 0.5, next: end}}
          - id: mail
            send: {destination: email, channel: email, subject: Hi, text: Hello, fields: {email: email}}
          - id: ping
            notify: {destination: staff_alerts, message: Look}
        """,
        templates,
    )
    assert j.status == "active" and j.description == "" and j.owner is None and j.exit_when is None
    assert j.entry.trigger.event.types == ("add_to_cart", "checkout_started")
    assert (j.entry.lookback, j.entry.re_entry, j.entry.re_entry_after_days, j.entry.holdout) == (
        dt.timedelta(hours=24),
        "never",
        None,
        0.0,
    )
    assert j.entry.exclude is None
    assert j.goal == Goal(cond({"order": {"since": "entry"}}, "goal.when"), 3)
    wait, check, ab, mail, ping = j.steps
    assert (wait.next, wait.action.timed_out) == ("check", "check")
    assert (check.action.otherwise, check.next) == ("ab", "ab")
    assert ab.action.arms == (SplitArm("A", 0.5, "mail"), SplitArm("B", 0.5, END))
    assert mail.action.frequency_cap == "marketing" and mail.action.campaign is None
    assert mail.action.content == {"subject": "Hi", "text": "Hello"}
    assert (ping.action.route, ping.next) == ("owner", END)


def test_a_content_mapping_is_the_same_as_content_written_in_the_send(templates: Path) -> None:
    nested = parse(MINI.replace("template: welcome", "content: {template: welcome}"), templates)
    assert nested.steps == parse(MINI, templates).steps
    assert nested.version == parse(MINI, templates).version


def test_a_birthday_trigger_needs_a_birth_date_column() -> None:
    text = "entry: {date: {attribute: birthday, offset_days: -7}}\nsteps: [{id: a, tag: {add: vip}}]"
    assert parse(text).entry.trigger == DateTrigger("birthday", -7)  # dim_customers has birth_date
    without = dataclasses.replace(
        CATALOG, attributes={k: v for k, v in CATALOG.attributes.items() if k != "birth_date"}
    )
    with pytest.raises(JourneyError) as caught:
        parse(text, catalog=without)
    assert str(caught.value) == (
        f"{SOURCE}: entry.date.attribute: the customer table (dim_customers) has no birth date "
        "(birth_date), so there is no birthday to trigger on"
    )


# --- errors ------------------------------------------------------------------------------------------

STEP = "steps: [{id: only, tag: {add: vip}}]"
SEND = "{destination: email, channel: email, template: welcome, fields: {email: email}}"

# (case, file, path the message names, what it says)
ERRORS = [
    ("unknown top key", f"entry: {{event: signup}}\nstpes: []\n{STEP}", "stpes", "did you mean 'steps'? known: description, entry, exit_when, goal, owner, status, steps"),
    ("missing steps", "entry: {event: signup}", "steps", "missing: a journey needs entry and steps"),
    ("not a mapping", "- entry", "(top)", "a journey file must be a mapping"),
    ("status", f"status: live\nentry: {{event: signup}}\n{STEP}", "status", "must be one of active, paused, archived (got 'live')"),
    ("two triggers", f"entry: {{event: signup, audience: cart_rescue}}\n{STEP}", "entry", "needs exactly one trigger, one of: event, audience, condition, date (got event, audience)"),
    ("no trigger", f"entry: {{holdout: 0.1}}\n{STEP}", "entry", "needs exactly one trigger"),
    ("unknown entry key", f"entry: {{event: signup, holdot: 0.1}}\n{STEP}", "entry.holdot", "did you mean 'holdout'?"),
    ("trigger window", f"entry: {{event: {{type: signup, within_days: 7}}}}\n{STEP}", "entry.event.within_days", "a window does not apply here: the trigger is one event"),
    ("trigger count", f"entry: {{event: {{type: signup, count: {{gte: 2}}}}}}\n{STEP}", "entry.event.count", "a count does not apply here: the trigger is one event"),
    ("trigger not_followed_by", f"entry: {{event: {{type: checkout_started, not_followed_by: order}}}}\n{STEP}", "entry.event.not_followed_by", "the trigger is one event"),
    ("trigger event type", f"entry: {{event: chekout_started}}\n{STEP}", "entry.event.type", "unknown event type 'chekout_started'"),
    ("unknown audience", f"entry: {{audience: cart_rescu}}\n{STEP}", "entry.audience", "no audience named 'cart_rescu' (known: cart_rescue, recent_buyers)"),
    ("trigger since entry", f"entry: {{condition: {{order: {{since: entry}}}}}}\n{STEP}", "entry.condition.order.since", "the entry condition is checked before the customer enters"),
    ("exclude since entry", f"entry: {{event: signup, exclude: {{event: {{type: login, since: entry}}}}}}\n{STEP}", "entry.exclude.event.since", "entry.exclude is checked before the customer enters"),
    ("exclude unknown tag", f"entry: {{event: signup, exclude: {{tag: vipp}}}}\n{STEP}", "entry.exclude.tag", "unknown tag 'vipp'"),
    ("date not a timestamp", f"entry: {{date: {{attribute: country}}}}\n{STEP}", "entry.date.attribute", "country is text, not a date or timestamp"),
    ("date unknown column", f"entry: {{date: {{attribute: signup_at}}}}\n{STEP}", "entry.date.attribute", "no dim_customers column named 'signup_at'"),
    ("date offset", f"entry: {{date: {{attribute: signed_up_at, offset_days: 1.5}}}}\n{STEP}", "entry.date.offset_days", "offset_days must be a whole number (got 1.5)"),
    ("lookback on audience", f"entry: {{audience: cart_rescue, lookback: {{hours: 1}}}}\n{STEP}", "entry.lookback", "lookback applies to event and date triggers"),
    ("lookback unit", f"entry: {{event: signup, lookback: {{weeks: 1}}}}\n{STEP}", "entry.lookback.weeks", "unknown key of lookback 'weeks'"),
    ("lookback negative", f"entry: {{event: signup, lookback: {{hours: -1}}}}\n{STEP}", "entry.lookback.hours", "hours must be a whole number >= 0 (got -1)"),
    ("lookback fraction", f"entry: {{event: signup, lookback: {{days: 0.5}}}}\n{STEP}", "entry.lookback.days", "days must be a whole number >= 0 (got 0.5)"),
    ("re_entry word", f"entry: {{event: signup, re_entry: sometimes}}\n{STEP}", "entry.re_entry", "must be never, always or {after_days: N} (got 'sometimes')"),
    ("re_entry days", f"entry: {{event: signup, re_entry: {{after_days: 0}}}}\n{STEP}", "entry.re_entry.after_days", "after_days must be a whole number >= 1 (got 0)"),
    ("holdout too big", f"entry: {{event: signup, holdout: 0.6}}\n{STEP}", "entry.holdout", "must be a share from 0 to 0.5"),
    ("holdout text", f"entry: {{event: signup, holdout: 10%}}\n{STEP}", "entry.holdout", "(got '10%')"),
    ("goal without days", f"entry: {{event: signup}}\ngoal: {{when: {{order: {{since: entry}}}}}}\n{STEP}", "goal.within_days", "missing: a goal counts within whole days of entry"),
    ("goal days zero", f"entry: {{event: signup}}\ngoal: {{within_days: 0}}\n{STEP}", "goal.within_days", "within_days must be a whole number >= 1 (got 0)"),
    ("goal condition", f"entry: {{event: signup}}\ngoal: {{within_days: 7, when: {{order: {{since: yesterday}}}}}}\n{STEP}", "goal.when.order.since", "since takes `entry`"),
    ("exit_when attribute", f"entry: {{event: signup}}\nexit_when: {{attribute: {{name: contry, eq: DE}}}}\n{STEP}", "exit_when.attribute.name", "unknown attribute 'contry'"),
    ("steps empty", "entry: {event: signup}\nsteps: []", "steps", "must be a non-empty list of steps"),
    ("step not a mapping", "entry: {event: signup}\nsteps: [welcome]", "steps[0]", "a step must be a mapping with an id"),
    ("step without id", "entry: {event: signup}\nsteps: [{tag: {add: vip}}]", "steps[0].id", "missing: every step needs an id"),
    ("step id shape", "entry: {event: signup}\nsteps: [{id: Welcome, tag: {add: vip}}]", "steps[0].id", "must be lower-case words"),
    ("step id double underscore", "entry: {event: signup}\nsteps: [{id: a__b, tag: {add: vip}}]", "steps[0].id", "joined by single underscores"),
    ("step id end", "entry: {event: signup}\nsteps: [{id: end, tag: {add: vip}}]", "steps[0].id", "end is where a journey finishes"),
    ("step id twice", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}, {id: a, tag: {add: vip}}]", "steps[1].id", "'a' is already the id of steps[0]"),
    ("step without kind", "entry: {event: signup}\nsteps: [{id: a, next: end}]", "steps[0] (a)", "needs exactly one of send, wait, branch, split, tag, sync, notify (got none)"),
    ("step with two kinds", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}, wait: {days: 1}}]", "steps[0] (a)", "(got wait, tag)"),
    ("unknown step key", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}, nxt: end}]", "steps[0] (a).nxt", "did you mean 'next'?"),
    ("next unknown", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}, next: b}, {id: c, tag: {add: vip}}]", "steps[0] (a).next", "no step named 'b' (known: a, c, end)"),
    ("wait two modes", "entry: {event: signup}\nsteps: [{id: a, wait: {days: 1, until_time: '09:00'}}]", "steps[0] (a).wait", "needs exactly one of: a duration (seconds, minutes, hours, days), until_time or event (got a duration, until_time)"),
    ("wait nothing", "entry: {event: signup}\nsteps: [{id: a, wait: {}}]", "steps[0] (a).wait", "(got none)"),
    ("wait zero", "entry: {event: signup}\nsteps: [{id: a, wait: {days: 0, hours: 0}}]", "steps[0] (a).wait", "a wait must be longer than zero"),
    ("wait fraction", "entry: {event: signup}\nsteps: [{id: a, wait: {days: 1.5}}]", "steps[0] (a).wait.days", "days must be a whole number >= 0 (got 1.5)"),
    ("until_time shape", "entry: {event: signup}\nsteps: [{id: a, wait: {until_time: 9am}}]", "steps[0] (a).wait.until_time", 'must be a time of day "HH:MM"'),
    ("until_time hour", "entry: {event: signup}\nsteps: [{id: a, wait: {until_time: '24:00'}}]", "steps[0] (a).wait.until_time", "(got '24:00')"),
    ("until_time unquoted", "entry: {event: signup}\nsteps: [{id: a, wait: {until_time: 10:30}}]", "steps[0] (a).wait.until_time", 'write the time in quotes: until_time: "10:30" (YAML reads a time such as 10:30 without quotes as a number of minutes; got 630)'),
    ("wait event without timeout", "entry: {event: signup}\nsteps: [{id: a, wait: {event: login}}]", "steps[0] (a).wait.timeout", "missing: a wait for an event needs a timeout"),
    ("wait event zero timeout", "entry: {event: signup}\nsteps: [{id: a, wait: {event: login, timeout: {hours: 0}}}]", "steps[0] (a).wait.timeout", "timeout must be longer than zero"),
    ("wait event window", "entry: {event: signup}\nsteps: [{id: a, wait: {event: {type: login, within_days: 2}, timeout: {days: 1}}}]", "steps[0] (a).wait.event.within_days", "the wait ends at one event after the customer reaches it"),
    ("timeout on a duration", "entry: {event: signup}\nsteps: [{id: a, wait: {days: 1, timeout: {days: 2}}}]", "steps[0] (a).wait.timeout", "timeout belongs to a wait for an event"),
    ("timed_out unknown", "entry: {event: signup}\nsteps: [{id: a, wait: {event: login, timeout: {days: 1}, timed_out: nowhere}}]", "steps[0] (a).wait.timed_out", "no step named 'nowhere' (known: a, end)"),
    ("branch not a list", "entry: {event: signup}\nsteps: [{id: a, branch: {when: {tag: vip}}}]", "steps[0] (a).branch", "must be a non-empty list of arms"),
    ("branch else first", "entry: {event: signup}\nsteps: [{id: a, branch: [{else: end}, {when: {tag: vip}, next: end}]}]", "steps[0] (a).branch[0]", "the else arm goes last"),
    ("branch else and next", "entry: {event: signup}\nsteps: [{id: a, branch: [{when: {tag: vip}, next: end}, {else: end}], next: end}]", "steps[0] (a).next", "a branch with an else arm takes no next"),
    ("branch arm without next", "entry: {event: signup}\nsteps: [{id: a, branch: [{when: {tag: vip}}]}]", "steps[0] (a).branch[0].next", "missing: a branch arm is {when: <condition>, next: <step>}"),
    ("branch only else", "entry: {event: signup}\nsteps: [{id: a, branch: [{else: end}]}]", "steps[0] (a).branch", "needs at least one arm"),
    ("branch condition", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}, {id: bought, branch: [{when: {order: {within_days: two}}, next: end}]}]", "steps[1] (bought).branch[0].when.order.within_days", "must be a whole number of days >= 1 (got 'two')"),
    ("branch condition unknown score", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}, {id: bought, branch: [{when: {score: {name: churn, gte: 1}}, next: end}]}]", "steps[1] (bought).branch[0].when.score.name", "unknown score 'churn'"),
    ("branch else unknown", "entry: {event: signup}\nsteps: [{id: a, branch: [{when: {tag: vip}, next: end}, {else: b}]}]", "steps[0] (a).branch[1].else", "no step named 'b'"),
    ("split one arm", "entry: {event: signup}\nsteps: [{id: a, split: {A: {weight: 1}}}]", "steps[0] (a).split", "must map two or more arm names"),
    ("split weights", "entry: {event: signup}\nsteps: [{id: a, split: {A: {weight: 0.5}, B: {weight: 0.4}}}]", "steps[0] (a).split", "the weights add up to 0.9, not 1"),
    ("split weight zero", "entry: {event: signup}\nsteps: [{id: a, split: {A: {weight: 1}, B: {weight: 0}}}]", "steps[0] (a).split.B.weight", "must be a number > 0 (got 0)"),
    ("split weight missing", "entry: {event: signup}\nsteps: [{id: a, split: {A: {weight: 1}, B: {next: end}}}]", "steps[0] (a).split.B.weight", "missing: each arm needs a weight"),
    ("split arm name", "entry: {event: signup}\nsteps: [{id: a, split: {1: {weight: 0.5}, B: {weight: 0.5}}}]", "steps[0] (a).split.1", "an arm name is a plain name"),
    ("split arm next", "entry: {event: signup}\nsteps: [{id: a, split: {A: {weight: 0.5, next: x}, B: {weight: 0.5}}}]", "steps[0] (a).split.A.next", "no step named 'x'"),
    ("send destination", f"entry: {{event: signup}}\nsteps: [{{id: a, tag: {{add: vip}}}}, {{id: b, tag: {{add: vip}}}}, {{id: reminder, send: {SEND.replace('destination: email', 'destination: emial')}}}]", "steps[2] (reminder).send.destination", "no destination named 'emial' (known: crm, email, push, sms, staff_alerts)"),
    ("send without destination", "entry: {event: signup}\nsteps: [{id: a, send: {channel: email, template: welcome, fields: {email: email}}}]", "steps[0] (a).send.destination", "missing: the name of a destination in config/activation.yml"),
    ("send channel", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('channel: email', 'channel: fax')}}}]", "steps[0] (a).send.channel", "must be one of email, sms, push (got 'fax')"),
    ("send fields empty", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('{email: email}', '{}')}}}]", "steps[0] (a).send.fields", "needs a non-empty mapping of destination field: dim_customers column"),
    ("send field column", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('{email: email}', '{email: emial}')}}}]", "steps[0] (a).send.fields.email", "no dim_customers column named 'emial'"),
    ("send template folder", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('welcome', 'welcom')}}}]", "steps[0] (a).send.template", "no template folder 'welcom'"),
    ("send template path", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('welcome', '../secrets')}}}]", "steps[0] (a).send.template", "must be the name of a template folder"),
    ("send template and text", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, subject: Hi')}}}]", "steps[0] (a).send.subject", "a template or inline text, not both"),
    ("send no content", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome, ', '')}}}]", "steps[0] (a).send", "needs content: template: NAME (a folder of the templates directory) or inline email content (subject, and text or html)"),
    ("email without subject", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'text: Hello')}}}]", "steps[0] (a).send.subject", "missing: inline email content needs subject"),
    ("sms with subject", "entry: {event: signup}\nsteps: [{id: a, send: {destination: sms, channel: sms, subject: Hi, text: Hey, fields: {phone: phone}}}]", "steps[0] (a).send.subject", "sms content is text; subject does not apply"),
    ("push without body", "entry: {event: signup}\nsteps: [{id: a, send: {destination: push, channel: push, title: Hi, fields: {id: customer_id}}}]", "steps[0] (a).send.body", "missing: inline push content needs title and body"),
    ("content twice", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, content: {template: welcome}')}}}]", "steps[0] (a).send.content", "not both"),
    ("content key", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'content: {templat: welcome}')}}}]", "steps[0] (a).send.content.templat", "did you mean 'template'?"),
    ("frequency cap", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, frequency_cap: 3')}}}]", "steps[0] (a).send.frequency_cap", "must be a cap class"),
    ("campaign newline", "entry: {event: signup}\nsteps: [{id: a, send: {destination: email, channel: email, template: welcome, fields: {email: email}, campaign: \"a\\nb\"}}]", "steps[0] (a).send.campaign", "contains a control character"),
    ("pilot share", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, pilot: {share: 5, wait: 24h, gate: {click_rate: {min: 0.02}}}')}}}]", "steps[0] (a).send", "pilot.share must be a share between 0 and 1 (0.05 is 5%), got 5"),
    ("pilot gate rate", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, pilot: {share: 0.1, wait: 24h, gate: {open_rat: {min: 0.1}}}')}}}]", "steps[0] (a).send", "pilot.gate has unknown key(s) open_rat"),
    ("pilot wait", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, pilot: {share: 0.1, wait: soon, gate: {open_rate: {min: 0.1}}}')}}}]", "steps[0] (a).send", "pilot.wait 'soon' is not a duration"),
    ("approval_above", f"entry: {{event: signup}}\nsteps: [{{id: a, send: {SEND.replace('template: welcome', 'template: welcome, approval_above: -1')}}}]", "steps[0] (a).send", "approval_above must be a whole number >= 0, got -1"),
    ("tag both", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip, remove: dormant}}]", "steps[0] (a).tag", "must be {add: <tag>} or {remove: <tag>}"),
    ("tag name", "entry: {event: signup}\nsteps: [{id: a, tag: {add: Big Spender}}]", "steps[0] (a).tag.add", "a tag name is a plain lower-case identifier"),
    ("sync fields", "entry: {event: signup}\nsteps: [{id: a, sync: {destination: crm}}]", "steps[0] (a).sync.fields", "needs a non-empty mapping"),
    ("sync destination", "entry: {event: signup}\nsteps: [{id: a, sync: {destination: hubspot, fields: {email: email}}}]", "steps[0] (a).sync.destination", "no destination named 'hubspot'"),
    ("notify message", "entry: {event: signup}\nsteps: [{id: a, notify: {destination: staff_alerts}}]", "steps[0] (a).notify.message", "missing: the text staff receive"),
    ("notify route", "entry: {event: signup}\nsteps: [{id: a, notify: {destination: staff_alerts, message: Hi, route: boss}}]", "steps[0] (a).notify.route", "must be one of owner, manager, all_owners, first_owner, team (got 'boss')"),
    ("unreachable", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}, next: end}, {id: orphan, tag: {add: vip}}]", "steps[1] (orphan)", "not reachable from the first step 'a'"),
    ("loop without wait", "entry: {event: signup}\nsteps: [{id: a, wait: {days: 1}}, {id: b, tag: {add: vip}}, {id: c, branch: [{when: {tag: vip}, next: b}, {else: end}]}]", "steps[1] (b)", "the loop b -> c -> b has no wait step"),
    ("self loop", "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}, next: a}]", "steps[0] (a)", "the loop a -> a has no wait step"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "path", "says"), [case[1:] for case in ERRORS], ids=[c[0] for c in ERRORS])
def test_each_mistake_names_the_file_the_step_and_the_field(
    templates: Path, text: str, path: str, says: str
) -> None:
    with pytest.raises(JourneyError) as caught:
        parse(text, templates)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: {path}: "), message
    assert says in message, message


def test_the_brief_example_reads_exactly(templates: Path) -> None:
    text = (
        "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}, {id: b, tag: {add: vip}}, "
        "{id: reminder, send: {destination: emial, channel: email, template: welcome, fields: {email: email}}}]"
    )
    with pytest.raises(JourneyError) as caught:
        parse(text, templates, destinations={"crm": {}, "email": {}, "sms": {}})
    assert str(caught.value) == (
        "config/journeys/cart.yml: steps[2] (reminder).send.destination: no destination named 'emial' "
        "(known: crm, email, sms)"
    )


def test_a_loop_through_a_wait_is_allowed() -> None:
    j = parse(
        "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}, {id: pause, wait: {days: 7}},"
        " {id: again, branch: [{when: {tag: vip}, next: a}, {else: end}]}]"
    )
    assert [s.successors() for s in j.steps] == [("pause",), ("again",), ("a", END)]


def test_names_compiled_only_against_a_catalog() -> None:
    """Without a catalog only the shape is checked; with one, every condition is compiled once."""
    text = "entry: {event: signup}\nexit_when: {tag: not_a_rule}\n" + STEP
    assert parse(text, catalog=None).exit_when == cond({"tag": "not_a_rule"}, "exit_when")
    with pytest.raises(
        JourneyError, match=r"^config/journeys/cart.yml: exit_when.tag: unknown tag 'not_a_rule'"
    ):
        parse(text)


def test_tags_the_journey_sets_are_known_to_its_conditions() -> None:
    j = parse(
        "entry: {event: signup, exclude: {tag: welcomed}}\n"
        "steps: [{id: a, tag: {add: welcomed}}, {id: b, wait: {days: 1}},"
        " {id: c, branch: [{when: {tag: thanked}, next: end}]}, {id: d, tag: {remove: thanked}}]"
    )
    assert j.entry.exclude == cond({"tag": "welcomed"}, "entry.exclude")


def test_the_journey_name_must_be_a_plain_identifier() -> None:
    for bad in ("Cart", "cart-abandonment", "cart__rescue", "cart_", "x" * 49, "9lives"):
        with pytest.raises(JourneyError) as caught:
            parse(MINI, name=bad, templates=None)
        assert str(caught.value).startswith(f"{SOURCE}: (file name): {bad!r} is not a usable journey name")
    assert parse(MINI, name="x" * 48).name == "x" * 48


def test_a_destination_or_template_is_checked_only_when_given() -> None:
    j = parse(MINI.replace("destination: email", "destination: anywhere"), destinations=None, templates=None)
    assert j.steps[1].action.destination == "anywhere"
    assert j.steps[1].action.content == {"template": "welcome"}


# --- versions ------------------------------------------------------------------------------------------


def _reordered(value: Any) -> Any:
    """The same value with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def test_the_version_ignores_key_order(templates: Path) -> None:
    raw = yaml.safe_load(EVERY_KIND)
    assert parse(_reordered(raw), templates).version == parse(raw, templates).version


def test_writing_defaults_out_is_not_a_new_version(templates: Path) -> None:
    implicit = parse(
        """
        entry: {event: checkout_started}
        goal: {within_days: 3}
        steps:
          - id: wait_it
            wait: {event: product_view, timeout: {hours: 4}}
          - id: check
            branch: [{when: {tag: vip}, next: end}]
          - id: ab
            split: {A: {weight: 0.5}, B: {weight: 0.5}}
          - id: mail
            send: {destination: email, channel: email, template: welcome, fields: {email: email}}
          - id: ping
            notify: {destination: staff_alerts, message: Look}
        """,
        templates,
    )
    explicit = parse(
        """
        status: active
        entry: {event: {type: checkout_started}, lookback: {minutes: 1440}, re_entry: never, holdout: 0}
        goal: {when: {order: {since: entry}}, within_days: 3}
        steps:
          - id: wait_it
            wait: {event: {type: product_view}, timeout: {minutes: 240}, timed_out: check}
            next: check
          - id: check
            branch: [{when: {tag: vip}, next: end}, {else: ab}]
          - id: ab
            split: {A: {weight: 0.5, next: mail}, B: {weight: 0.5, next: mail}}
          - id: mail
            send: {destination: email, channel: email, content: {template: welcome, variables: {}},
                   fields: {email: email}, frequency_cap: marketing}
            next: ping
          - id: ping
            notify: {destination: staff_alerts, message: Look, route: owner}
            next: end
        """,
        templates,
    )
    assert explicit.canonical == implicit.canonical
    assert explicit.version == implicit.version
    # a branch's default else written as the step's next is the same branch
    as_next = parse(
        "entry: {event: signup}\nsteps: [{id: c, branch: [{when: {tag: vip}, next: end}], next: d}, {id: d, wait: {days: 1}}]"
    )
    as_else = parse(
        "entry: {event: signup}\nsteps: [{id: c, branch: [{when: {tag: vip}, next: end}, {else: d}]}, {id: d, wait: {days: 1}}]"
    )
    assert as_next.version == as_else.version  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("wait: {hours: 1, minutes: 30}", "wait: {hours: 2}"),
        ("holdout: 0.1", "holdout: 0.2"),
        ("template: welcome", "template: win_back"),
        ("within_days: 7", "within_days: 8"),
        ("timed_out: to_crm", "timed_out: tag_it"),
        (
            "A: {weight: 0.25, next: nudge}\n      B: {weight: 0.75}",
            "A: {weight: 0.75, next: nudge}\n      B: {weight: 0.25}",
        ),
        ("exclude: {tag: vip}", "exclude: {tag: dormant}"),
        ("re_entry: {after_days: 30}", "re_entry: always"),
        ("route: team", "route: owner"),
        (
            "frequency_cap: null}",
            "frequency_cap: null, pilot: {share: 0.1, wait: 24h, gate: {click_rate: {min: 0.02}}}}",
        ),
    ],
)
def test_a_real_change_is_a_new_version(templates: Path, old: str, new: str) -> None:
    assert old in EVERY_KIND
    assert parse(EVERY_KIND.replace(old, new), templates).version != parse(EVERY_KIND, templates).version


def test_status_description_and_owner_are_not_a_new_version(templates: Path) -> None:
    base = parse(EVERY_KIND, templates)
    words = (
        EVERY_KIND.replace("status: active", "status: paused")
        .replace("description: Every node kind", "description: Reworded")
        .replace("owner: crm-marketing", "owner: growth")
    )
    changed = parse(words, templates)
    assert (changed.status, changed.description, changed.owner) == ("paused", "Reworded", "growth")
    assert changed.version == base.version
    assert changed.canonical != base.canonical  # the definition still records them


def test_the_canonical_form_is_json_and_parses_back_to_the_same_journey(templates: Path) -> None:
    j = parse(
        EVERY_KIND.replace(
            "exclude: {tag: vip}", "exclude: {attribute: {name: signed_up_at, gte: 2026-01-31}}"
        ),
        templates,
    )
    text = json.dumps(j.canonical)  # plain JSON: no dates, tuples or timedeltas
    assert j.canonical["entry"]["exclude"] == {"attribute": {"name": "signed_up_at", "gte": "2026-01-31"}}
    assert j.canonical["entry"]["lookback"] == {"seconds": 7200}
    assert j.canonical["steps"][0] == {"id": "hour", "wait": {"seconds": 5400}, "next": "bought"}
    again = parse(json.loads(text), templates)
    assert again.canonical == j.canonical and again.version == j.version
    assert again.steps == j.steps and again.goal == j.goal and again.exit_when == j.exit_when
    assert again.entry.trigger == j.entry.trigger and again.entry.lookback == j.entry.lookback  # fmt: skip


# --- load_journeys and describe ------------------------------------------------------------------------


def test_load_journeys_reads_every_yaml_file_sorted_by_name(tmp_path: Path, templates: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "welcome.yaml").write_text(
        "entry: {event: signup}\nsteps: [{id: hello, tag: {add: welcomed}}]\n"
    )
    (folder / "cart.yml").write_text(MINI)
    (folder / "README.md").write_text("not a journey")
    (folder / "win_back.yml").write_text(
        "entry: {audience: cart_rescue, exclude: {tag: welcomed}}\nsteps: [{id: a, wait: {days: 1}}]\n"
    )
    journeys = load_journeys(folder, catalog=CATALOG, destinations=DESTINATIONS, templates_dir=templates)
    assert [(j.name, j.source) for j in journeys] == [
        ("cart", str(folder / "cart.yml")),
        ("welcome", str(folder / "welcome.yaml")),
        ("win_back", str(folder / "win_back.yml")),
    ]  # and win_back may test the tag welcome sets
    assert load_journeys(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"Cart.yml": MINI}, "Cart.yml: (file name): 'Cart' is not a usable journey name"),
        ({"cart.yml": MINI, "cart.yaml": MINI}, "cart.yml: (file name): journey 'cart' is also defined by"),
        ({"cart.yml": MINI + "  - id: mail\n    wait: {days: 1}\n    wait: {days: 2}\n"}, "cart.yml: (top): not valid YAML"),
        ({"cart.yml": "entry: [unclosed\n"}, "cart.yml: (top): not valid YAML"),
        ({"cart.yml": ""}, "cart.yml: (top): the file is empty"),
        ({"cart.yml": MINI.replace("fields: {email: email}", "fields: {email: emial}")}, "cart.yml: steps[1] (mail).send.fields.email: no dim_customers column named 'emial'"),
    ],
)  # fmt: skip
def test_load_journeys_errors_name_the_file(
    tmp_path: Path, templates: Path, files: dict[str, str], says: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(JourneyError) as caught:
        load_journeys(tmp_path, catalog=CATALOG, destinations=DESTINATIONS, templates_dir=templates)
    assert says in str(caught.value)


def test_a_key_written_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "cart.yml").write_text(
        "entry: {event: signup}\nsteps: [{id: a, tag: {add: vip}}]\nsteps: []\n"
    )
    with pytest.raises(
        JourneyError,
        match=r"cart.yml: \(top\): not valid YAML: line 3, column 1: key 'steps' is written twice",
    ):
        load_journeys(tmp_path)


def test_describe_journey_gives_one_line_per_step(templates: Path) -> None:
    assert describe_journey(parse(EVERY_KIND, templates)) == [
        "hour: wait 1 hour 30 minutes -> bought",
        "bought: branch: if {order: {since: entry}} -> end; else -> reminder",
        "reminder: send email (template welcome) -> ab",
        "ab: split A 25% -> nudge, B 75% -> nudge",
        "nudge: send sms (inline) -> morning",
        "morning: wait until 09:00 (customer's time zone) -> viewed",
        "viewed: wait for product_view -> tag_it; after 3 days without -> to_crm",
        "tag_it: add tag cart_rescued -> to_crm",
        "to_crm: sync to crm (email) -> tell_owner",
        "tell_owner: notify staff (to staff_alerts) -> end",
    ]


def test_the_documented_examples_are_valid_journeys() -> None:
    """Every full journey in docs/journeys.md (a yaml block opening with its file name) parses
    against the default catalog and the destinations of config/activation.yml."""
    root = Path(__file__).resolve().parents[2]
    destinations = yaml.safe_load((root / "config" / "activation.yml").read_text())["destinations"]
    docs = (root / "docs" / "journeys.md").read_text()
    blocks = re.findall(r"```yaml\n(# config/journeys/(\w+)\.yml\n.*?)```", docs, re.S)
    assert [name for _, name in blocks] == ["cart_abandonment", "welcome_series", "win_back_30d"]
    for text, name in blocks:
        journey = parse_journey(
            yaml.safe_load(text),
            f"config/journeys/{name}.yml",
            name,
            catalog=Catalog.default(),
            destinations=destinations,
        )
        assert journey.name == name
    shown = re.search(r"one line per step \(for the command line\):\n\n```\n(.*?)```", docs, re.S)
    cart = parse_journey(yaml.safe_load(blocks[0][0]), "x.yml", "cart_abandonment", catalog=Catalog.default())
    assert shown is not None and describe_journey(cart) == shown.group(1).splitlines()


def test_a_pilot_on_a_send_is_the_segment_activations_pilot_and_part_of_the_version(templates: Path) -> None:
    text = EVERY_KIND.replace(
        "frequency_cap: null}",
        "frequency_cap: null,\n           pilot: {share: 0.1, wait: 36h, min_delivered: 200,\n"
        "                   gate: {click_rate: {min: 0.02}, unsubscribe_rate: {max: 0.01}}},\n"
        "           approval_above: 500}",
    )
    j = parse(text, templates)
    launch = j.step("nudge").action.launch
    assert launch.pilot.share == 0.1 and launch.pilot.wait == dt.timedelta(hours=36)
    assert launch.pilot.min_delivered == 200 and launch.approval_above == 500
    assert {(r.metric, r.direction, r.threshold) for r in launch.pilot.gate} == {
        ("click_rate", "min", 0.02),
        ("unsubscribe_rate", "max", 0.01),
    }
    assert j.step("reminder").action.launch is None  # a send without one has none
    nudge = next(s for s in j.canonical["steps"] if s["id"] == "nudge")["send"]
    assert nudge["pilot"] == {
        "share": 0.1,
        "wait": "2160m",
        "min_delivered": 200,
        "gate": {"click_rate": {"min": 0.02}, "unsubscribe_rate": {"max": 0.01}},
    }
    again = parse(json.loads(json.dumps(j.canonical)), templates)  # the canonical form reads back the same
    assert again.version == j.version and again.step("nudge").action.launch == launch
    assert "nudge: send sms (inline, pilot 10% judged after 1 day 12 hours, approval above 500)" in " ".join(
        describe_journey(j)
    )


def test_a_notify_step_without_a_destination_is_routed_to_the_linked_employees(templates: Path) -> None:
    routed = parse(
        EVERY_KIND.replace("notify: {destination: staff_alerts, message:", "notify: {message:"), templates
    )
    action = routed.step("tell_owner").action
    assert (action.destination, action.route, action.message) == (None, "team", "A large cart was left")
    assert "tell_owner: notify staff (route team) -> end" in describe_journey(routed)
    assert routed.version != parse(EVERY_KIND, templates).version  # all to one destination is not routing
