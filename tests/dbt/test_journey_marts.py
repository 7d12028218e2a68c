"""The journey marts on hand-written journey state and ledger rows, every expected figure worked by hand.

As of 2026-03-10 (cutoff 2026-03-11 00:00). Journey `welcome`, version v1: welcome_email (send,
email) -> two_days (wait) -> bought (branch: else -> coupon_sms, or end) -> coupon_sms (send, sms)
-> end; goal within 7 days (goal_until = entered_at + 7 days); a holdout. The state is created by
activation/journeys/store.py's own DDL and the ledger by activation/ledger.py's, then filled.

Step rows (rN = seq N; times 2026-03-DD HH:MM; `x -> y` from_node -> to_node, `-` for none):

- e1 c1 entered 01 09:00: r1 entered - -> welcome_email; r2 sent welcome_email -> two_days (m1);
  r3 waited two_days -> bought 03 09:00; r4 branched bought -> coupon_sms; r5 sent coupon_sms -> -
  (m2; the send that ends the journey is the exit). Exit completed 03 09:00. Converted 04 12:00: 75 h.
- e2 c2 entered 01 10:00: r6 entered; r7 sent (m3); r8 exited two_days -> - 02 08:00 (converted).
  Converted 02 08:00: 22 h.
- e3 c3 entered 01 11:00: r9 entered; r10 skipped welcome_email -> two_days (no_consent, ledger m20
  skipped); r11 waited 03 11:00; r12 branched -> coupon_sms; r13 deferred coupon_sms -> coupon_sms
  (quiet_hours: stays at the step); r14 sent coupon_sms -> - 04 08:00 (m4, deferred then sent in
  the ledger). Completed. Not converted.
- e5 c5 entered 02 12:00: r16 entered; r17 sent (m6); r18 exited two_days -> - 03 12:00 (exit_condition).
- e6 c6 entered 05 09:00: r19 entered; r20 failed welcome_email -> two_days (ledger m21 a
  dead letter); r21 waited 07 12:00 (51 h: a late tick); r22 branched -> coupon_sms; r23 sent
  coupon_sms -> - (m7).
  Completed. converted_at 11 10:00 is after the as-of date: not converted yet, window open (to 12 09:00).
- e9 c2 again (re-entry) entered 06 09:00: r24 entered; r25 sent (m9); r26 waited 08 13:00 (52 h);
  r27 exited bought -> - (completed). Not converted, window open (to 13 09:00).
- e4 c4 entered 09 09:00: r28 entered; r29 sent (m5). Still at two_days; window open. The ledger
  also has m22, a welcome email to c4 sent on the 8th under another entry's key (say a test send):
  it is nobody's here, although it came first.
- e7 c7 entered 11 09:00 (after the as-of date): r30, r31 (m10 on the 11th): left out everywhere.
- held out, exit holdout at entry (one transition, exited - -> -): h1 c11 01 09:30 (r32),
  converted 03 10:00; h2 c12 01 10:30 (r34), h3 c13 02 09:00 (r35); h4 c14 02 10:00 (r36),
  converted_at 09 11:00 after its goal_until 09 10:00: not a conversion.
- version v2: e8 c1 entered 10 08:00: r37 entered; r38 sent (m8, content v2:welcome_email). Active.

Ledger keys are the planner's (activation.planner.row_message_key_sql: destination, segment,
customer, `journey:welcome:<version>:<step>:<entry id>`), so each send step's transition finds
its own message: c2's two welcome emails (m3 for e2, m9 for e9) by their entry ids. The ledger also
holds a campaign message of c1 (spring, m30): never a journey message.

journey_performance, welcome v1 (reached = treated entries; exits by exit_node):
  (entry)        depth 0  reached 11  converted 3 (e1, e2, h1)  exited 4 = holdout 4
  welcome_email  depth 1  reached 7   sent 5, skipped 1, failed 1  converted 2  median 0 h
  two_days       depth 2  reached 7   converted 2  exited 2 (converted e2, exit_condition e5)
                          median to the next node: e1 48, e3 48, e6 51, e9 52 h -> (48 + 51) / 2 = 49.5
  bought         depth 3  reached 4   converted 1  exited 1 (completed e9)  median 0 h
  coupon_sms     depth 4  reached 3   sent 3, deferred 1  converted 1  exited 3 (completed)  median null
v2: (entry) 1, welcome_email 1 (sent 1), two_days 1.

journey_lift, welcome v1: 11 entries, 7 treated (2 converted: 2/7 = 0.285714), 4 held out (1: 0.25),
3 undecided (e6, e9, e4), 8 messages sent. Lift 2/7 - 1/4 = 0.035714; pooled P = 3/11,
se = sqrt(3/11 * 8/11 * (1/7 + 1/4)) = 0.279145, z = 0.035714 / 0.279145 = 0.1279, p = 0.8982 (not
significant); relative 0.285714 / 0.25 - 1 = 0.142857. Intervals: Wilson from scipy, Newcombe from them.
v2: 1 entry, no holdout: no lift.

customer_tags (rule tags: c3 vip): journey tag changes up to the as-of date, latest per customer and tag:
c1 welcomed added 01 09:00 -> tagged; c2 welcomed added 01, removed 05 -> not; c3 vip added by a journey
but c3 has the rule's vip -> one row, source rule; c4 welcomed added 12 (after the as-of date) -> not;
c5 welcomed removed 02, added 04 -> tagged 04; c6 welcomed added and removed at the same clock ->
the removal wins -> not; c99 (not in dim_customers) -> not.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from scipy.stats import binomtest, chi2_contingency

from activation import ledger
from activation.journeys import store
from activation.planner import row_message_key_sql
from tests.helpers import Warehouse
from tideline.dbt_manifest import dbt_executable
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # every test compiles or builds with dbt (a subprocess each)

AS_OF = "2026-03-10"
MARTS = "+journey_performance +journey_lift stg_tideline_journeys__tag_changes customer_tags"


def at(day: int, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 3, day, hour, minute)


# entry, customer, version, entered, holdout, exited, exit_reason, converted_at, current_node
ENTRIES = [
    ("e1", "c1", "v1", at(1, "09:00"), False, at(3, "09:00"), "completed", at(4, "12:00"), None),
    ("e2", "c2", "v1", at(1, "10:00"), False, at(2, "08:00"), "converted", at(2, "08:00"), None),
    ("e3", "c3", "v1", at(1, "11:00"), False, at(4, "08:00"), "completed", None, None),
    ("e5", "c5", "v1", at(2, "12:00"), False, at(3, "12:00"), "exit_condition", None, None),
    ("e6", "c6", "v1", at(5, "09:00"), False, at(7, "12:00"), "completed", at(11, "10:00"), None),
    ("e9", "c2", "v1", at(6, "09:00"), False, at(8, "13:00"), "completed", None, None),
    ("e4", "c4", "v1", at(9, "09:00"), False, None, None, None, "two_days"),
    ("e7", "c7", "v1", at(11, "09:00"), False, None, None, None, "two_days"),
    ("h1", "c11", "v1", at(1, "09:30"), True, at(1, "09:30"), "holdout", at(3, "10:00"), None),
    ("h2", "c12", "v1", at(1, "10:30"), True, at(1, "10:30"), "holdout", None, None),
    ("h3", "c13", "v1", at(2, "09:00"), True, at(2, "09:00"), "holdout", None, None),
    ("h4", "c14", "v1", at(2, "10:00"), True, at(2, "10:00"), "holdout", at(9, "11:00"), None),
    ("e8", "c1", "v2", at(10, "08:00"), False, None, None, None, "two_days"),
]
# seq, entry, from_node, to_node, outcome, reason, at; '-' = no node
STEPS = [
    (1, "e1", "-", "welcome_email", "entered", None, at(1, "09:00")),
    (2, "e1", "welcome_email", "two_days", "sent", None, at(1, "09:00")),
    (3, "e1", "two_days", "bought", "waited", None, at(3, "09:00")),
    (4, "e1", "bought", "coupon_sms", "branched", "else", at(3, "09:00")),
    (5, "e1", "coupon_sms", "-", "sent", None, at(3, "09:00")),
    (6, "e2", "-", "welcome_email", "entered", None, at(1, "10:00")),
    (7, "e2", "welcome_email", "two_days", "sent", None, at(1, "10:00")),
    (8, "e2", "two_days", "-", "exited", "converted", at(2, "08:00")),
    (9, "e3", "-", "welcome_email", "entered", None, at(1, "11:00")),
    (10, "e3", "welcome_email", "two_days", "skipped", "no_consent", at(1, "11:00")),
    (11, "e3", "two_days", "bought", "waited", None, at(3, "11:00")),
    (12, "e3", "bought", "coupon_sms", "branched", "else", at(3, "11:00")),
    (13, "e3", "coupon_sms", "coupon_sms", "deferred", "quiet_hours", at(3, "11:00")),
    (14, "e3", "coupon_sms", "-", "sent", None, at(4, "08:00")),
    (16, "e5", "-", "welcome_email", "entered", None, at(2, "12:00")),
    (17, "e5", "welcome_email", "two_days", "sent", None, at(2, "12:00")),
    (18, "e5", "two_days", "-", "exited", "exit_condition", at(3, "12:00")),
    (19, "e6", "-", "welcome_email", "entered", None, at(5, "09:00")),
    (20, "e6", "welcome_email", "two_days", "failed", "http_500", at(5, "09:00")),
    (21, "e6", "two_days", "bought", "waited", None, at(7, "12:00")),
    (22, "e6", "bought", "coupon_sms", "branched", "else", at(7, "12:00")),
    (23, "e6", "coupon_sms", "-", "sent", None, at(7, "12:00")),
    (24, "e9", "-", "welcome_email", "entered", None, at(6, "09:00")),
    (25, "e9", "welcome_email", "two_days", "sent", None, at(6, "09:00")),
    (26, "e9", "two_days", "bought", "waited", None, at(8, "13:00")),
    (27, "e9", "bought", "-", "exited", "completed", at(8, "13:00")),
    (28, "e4", "-", "welcome_email", "entered", None, at(9, "09:00")),
    (29, "e4", "welcome_email", "two_days", "sent", None, at(9, "09:00")),
    (30, "e7", "-", "welcome_email", "entered", None, at(11, "09:00")),
    (31, "e7", "welcome_email", "two_days", "sent", None, at(11, "09:00")),
    (32, "h1", "-", "-", "exited", "holdout", at(1, "09:30")),
    (34, "h2", "-", "-", "exited", "holdout", at(1, "10:30")),
    (35, "h3", "-", "-", "exited", "holdout", at(2, "09:00")),
    (36, "h4", "-", "-", "exited", "holdout", at(2, "10:00")),
    (37, "e8", "-", "welcome_email", "entered", None, at(10, "08:00")),
    (38, "e8", "welcome_email", "two_days", "sent", None, at(10, "08:00")),
]
# message, customer, entry, step, final status, reason, recorded (5 s after the step)
MESSAGES = [
    (1, "c1", "e1", "welcome_email", "sent", None, at(1, "09:00")),
    (2, "c1", "e1", "coupon_sms", "sent", None, at(3, "09:00")),
    (3, "c2", "e2", "welcome_email", "sent", None, at(1, "10:00")),
    (4, "c3", "e3", "coupon_sms", "sent", None, at(4, "08:00")),
    (5, "c4", "e4", "welcome_email", "sent", None, at(9, "09:00")),
    (6, "c5", "e5", "welcome_email", "sent", None, at(2, "12:00")),
    (7, "c6", "e6", "coupon_sms", "sent", None, at(7, "12:00")),
    (8, "c1", "e8", "welcome_email", "sent", None, at(10, "08:00")),
    (9, "c2", "e9", "welcome_email", "sent", None, at(6, "09:00")),
    (10, "c7", "e7", "welcome_email", "sent", None, at(11, "09:00")),
    (20, "c3", "e3", "welcome_email", "skipped", "no_consent", at(1, "11:00")),
    (21, "c6", "e6", "welcome_email", "dead_letter", "failed 3 times", at(5, "09:00")),
    (22, "c4", "test-send", "welcome_email", "sent", None, at(8, "09:00")),
]
DESTINATION = {"welcome_email": "email", "coupon_sms": "sms"}  # the step's destination and channel
VERSION = {e[0]: e[2] for e in ENTRIES}


def message_key(n: int) -> str:
    """Message m<n>'s ledger key, by the planner's own SQL (a journey message's key names its entry)."""
    if n == 30:
        return str(uuid.UUID(int=30))
    _, customer, entry, step, *_ = next(m for m in MESSAGES if m[0] == n)
    values = {
        "destination": DESTINATION[step],
        "segment": f"journey__welcome__{step}",
        "message_version": f"journey:welcome:{VERSION.get(entry, 'v1')}:{step}",
        "customer": customer,
        "entry": entry,
    }
    sql = f"select cast({row_message_key_sql('$customer', '$entry')} as varchar)"
    return duckdb.connect().execute(sql, values).fetchone()[0]


TAG_CHANGES = [  # customer, tag, added, journey, at
    ("c1", "welcomed", True, "welcome", at(1, "09:00")),
    ("c2", "welcomed", True, "welcome", at(1, "10:00")),
    ("c2", "welcomed", False, "welcome", at(5, "10:00")),
    ("c3", "vip", True, "welcome", at(3, "11:00")),
    ("c4", "welcomed", True, "welcome", at(12, "09:00")),
    ("c5", "welcomed", False, "welcome", at(2, "12:00")),
    ("c5", "welcomed", True, "welcome", at(4, "12:00")),
    ("c6", "welcomed", True, "welcome", at(7, "12:00")),
    ("c6", "welcomed", False, "welcome", at(7, "12:00")),
    ("c99", "welcomed", True, "welcome", at(1, "09:00")),
]


def _node(value: str) -> str | None:
    return None if value == "-" else value


def write_state(warehouse: Path) -> None:
    """The journey state, the ledger and the few marts customer_tags reads, as the tick, the
    activation engine and dbt would have left them."""
    con = duckdb.connect(str(warehouse))
    try:
        store.ensure_schema(con)
        entered = {e[0]: e for e in ENTRIES}
        con.executemany(
            f"""insert into {store.SCHEMA}.entries_live (entry_id, journey, version, customer_id, trigger_id,
                   entered_at, holdout, current_node, exited_at, exit_reason, goal_until, converted_at, tick_id)
               values (?, 'welcome', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'tick')""",
            [
                (entry, version, customer, f"signup-{entry}", start, holdout, node, exited, reason,
                 start + timedelta(days=7), converted)
                for entry, customer, version, start, holdout, exited, reason, converted, node in ENTRIES
            ],
        )  # fmt: skip
        con.executemany(
            f"""insert into {store.SCHEMA}.steps (seq, entry_id, journey, version, customer_id, from_node,
                   to_node, outcome, reason, tick_id, moved_at)
               values (?, ?, 'welcome', ?, ?, ?, ?, ?, ?, 'tick', ?)""",
            [
                (seq, entry, entered[entry][2], entered[entry][1], _node(src), _node(dst), outcome, reason, when)
                for seq, entry, src, dst, outcome, reason, when in STEPS
            ],
        )  # fmt: skip
        con.executemany(
            f"insert into {store.SCHEMA}.tag_changes (customer_id, tag, added, journey, entry_id, changed_at) "
            "values (?, ?, ?, ?, 'e', ?)",
            TAG_CHANGES,
        )
        _write_ledger(con)
        con.execute("create schema marts")
        con.execute(
            "create table marts.dim_customers as select 'c' || cast(i as varchar) as customer_id from range(1, 15) t(i)"
        )
        for model in ("customer_tags_rules", "customer_tags_scored"):
            con.execute(
                f"create table marts.{model} (customer_id varchar, tag varchar, tagged_at timestamp, "
                "reason varchar, as_of_date date)"
            )
        con.execute(
            "insert into marts.customer_tags_rules values "
            "('c3', 'vip', timestamp '2026-03-10 00:00', 'top spender', date '2026-03-10')"
        )
    finally:
        con.close()


def _write_ledger(con: duckdb.DuckDBPyConnection) -> None:
    ledger.ensure_schema(con)
    rows = []
    for n, customer, entry, step, status, reason, when in MESSAGES:
        channel = DESTINATION[step]
        sync_key = f"journey__welcome__{step}__{channel}"
        version = f"{VERSION.get(entry, 'v1')}:{step}"
        common = (message_key(n), sync_key, f"run-{sync_key}", customer)
        campaign = "journey:welcome"
        events = [(status, reason, when + timedelta(seconds=5))]
        if status != "skipped":
            events.insert(0, ("in_flight", None, when + timedelta(seconds=5)))
        if n == 4:  # quiet hours held the coupon back overnight
            events.insert(0, ("deferred", "quiet_hours", at(3, "11:00")))
        rows += [(*common, s, r, channel, campaign, version, t) for s, r, t in events]
    rows.append(
        (
            message_key(30),
            "spring__email",
            "run-spring",
            "c1",
            "sent",
            None,
            "email",
            "spring",
            "v1",
            at(2, "09:00"),
        )
    )
    con.executemany(
        """insert into tideline_sync.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
               status, reason, channel, campaign, variant, content_version, recorded_at)
           values (?, ?, ?, ?, 'insert', ?, ?, ?, ?, null, ?, ?)""",
        rows,
    )
    for step, channel in DESTINATION.items():
        sync_key = f"journey__welcome__{step}__{channel}"
        con.execute(
            """insert into tideline_sync.sync_runs (sync_id, sync_key, segment, destination, mode, dry_run,
                   started_at, status) values (?, ?, ?, ?, 'message', false, ?, 'done')""",
            [f"run-{sync_key}", sync_key, f"journey__welcome__{step}", channel, at(1, "09:00")],
        )


def _dbt(args: list[str], warehouse: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [dbt_executable(), *args, "--profiles-dir", str(DBT_PROJECT_DIR)]
    command += ["--target-path", str(warehouse.parent / "dbt_target"), "--vars", json.dumps({"as_of": AS_OF})]
    return subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)


def _build(warehouse: Path) -> Warehouse:
    done = _dbt(["build", "--select", *MARTS.split()], warehouse)
    if done.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    return Warehouse(warehouse)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    warehouse = tmp_path_factory.mktemp("journeys") / "warehouse.duckdb"
    write_state(warehouse)
    return _build(warehouse)


def _by(rows: list[dict], *keys: str) -> dict:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


# --- the stand-in and the DDL ----------------------------------------------------------------------


def test_the_dbt_stand_in_has_the_state_ddl_columns_and_types(dbt_manifest: Path, tmp_path: Path) -> None:
    """journey_state_columns() (dbt_project/macros/journey_state.sql) against store.py's DDL: what dbt
    compiles on a warehouse without the state (`dbt compile --inline`), typed by DuckDB itself."""
    tables = sorted(
        s["name"]
        for s in json.loads(dbt_manifest.read_text())["sources"].values()
        if s["source_name"] == store.SCHEMA
    )
    marker = "-- journey state table: "
    inline = "".join(
        f"\n{marker}{t}\nselect * from {{{{ journey_state_relation('{t}') }}}} as state" for t in tables
    )
    done = _dbt(["compile", "--quiet", "--inline", inline], tmp_path / "fresh.duckdb")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    compiled = {c.split("\n", 1)[0].strip(): c.split("\n", 1)[1] for c in done.stdout.split(marker)[1:]}
    assert sorted(compiled) == tables == ["entries", "journeys", "steps", "tag_changes", "ticks", "versions"]
    con = duckdb.connect()
    store.ensure_schema(con)
    for table in tables:
        assert "where 1 = 0" in compiled[table]  # the stand-in, not the table
        declared = [(n, t) for n, t, *_ in con.execute(f"describe {store.SCHEMA}.{table}").fetchall()]
        stand_in = [(n, t) for n, t, *_ in con.execute(f"describe {compiled[table]}").fetchall()]
        assert stand_in == declared, (
            f"{store.SCHEMA}.{table}: dbt_project/macros/journey_state.sql declares {stand_in}, "
            f"activation/journeys/store.py {declared}; change both"
        )


def test_a_warehouse_where_no_journey_ticked_builds_empty_marts(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:  # only what customer_tags reads besides the journey state
        con.execute("create schema marts")
        con.execute("create table marts.dim_customers as select 'c1' as customer_id")
        for model in ("customer_tags_rules", "customer_tags_scored"):
            con.execute(
                f"create table marts.{model} as select 'c1' as customer_id, 'vip' as tag, "
                "timestamp '2026-03-01' as tagged_at, 'top' as reason, date '2026-03-10' as as_of_date "
                "where false"
            )
    finally:
        con.close()
    warehouse = _build(tmp_path / "warehouse.duckdb")
    for mart in ("fct_journey_entries", "fct_journey_steps", "journey_performance", "journey_lift"):
        assert warehouse.query(f"select count(*) from marts.{mart}") == [(0,)], mart
    assert warehouse.query("select count(*) from marts.customer_tags") == [(0,)]


# --- the marts -------------------------------------------------------------------------------------


def test_entries_state_on_the_as_of_date(built: Warehouse) -> None:
    rows = _by(built.dicts("select * from marts.fct_journey_entries"), "entry_id")
    assert set(rows) == {"e1", "e2", "e3", "e4", "e5", "e6", "e8", "e9", "h1", "h2", "h3", "h4"}  # not e7
    got = {
        e: (r["is_active"], r["current_node"], r["exit_reason"], r["exit_node"], r["converted"],
            r["steps_taken"], r["messages_sent"], r["is_goal_window_open"])
        for e, r in rows.items()
    }  # fmt: skip
    assert got == {
        "e1": (False, None, "completed", "coupon_sms", True, 4, 2, False),
        "e2": (False, None, "converted", "two_days", True, 2, 1, False),
        "e3": (False, None, "completed", "coupon_sms", False, 4, 1, False),
        "e5": (False, None, "exit_condition", "two_days", False, 2, 1, False),
        "e6": (False, None, "completed", "coupon_sms", False, 4, 1, True),  # converts after the as-of date
        "e9": (False, None, "completed", "bought", False, 3, 1, True),
        "e4": (True, "two_days", None, None, False, 2, 1, True),
        "e8": (True, "two_days", None, None, False, 2, 1, True),
        "h1": (False, None, "holdout", "(entry)", True, 0, 0, False),
        "h2": (False, None, "holdout", "(entry)", False, 0, 0, False),
        "h3": (False, None, "holdout", "(entry)", False, 0, 0, False),
        "h4": (False, None, "holdout", "(entry)", False, 0, 0, False),  # converted after goal_until
    }
    assert [float(rows[e]["hours_to_conversion"]) for e in ("e1", "e2")] == [75.0, 22.0]
    assert rows["e6"]["converted_at"] is None and rows["e6"]["hours_to_conversion"] is None
    assert rows["h4"]["converted_at"] is None
    assert (rows["e4"]["exited_at"], rows["e1"]["exited_at"]) == (None, at(3, "09:00"))
    assert rows["h1"]["is_holdout"] and not rows["e1"]["is_holdout"]


def test_steps_carry_the_time_to_the_next_transition_and_their_message(built: Warehouse) -> None:
    rows = _by(built.dicts("select * from marts.fct_journey_steps"), "step_seq")
    # e7 started after the as-of date
    assert sorted(rows) == [s for s in range(1, 39) if s not in (15, 30, 31, 33)]
    seconds = {
        s: (r["step_number"], r["seconds_to_next"], r["seconds_to_next_node"]) for s, r in rows.items()
    }
    day = 86_400
    # e1: at welcome_email and on at once; two days at two_days; through bought at once; the last send exits
    assert [seconds[s] for s in range(1, 6)] == [
        (1, 0, 0), (2, 2 * day, 2 * day), (3, 0, 0), (4, 0, None), (5, None, None),
    ]  # fmt: skip
    # e3: reaches coupon_sms (r12), deferred there until 08:00 the next day (21 h), then sends and exits
    assert [seconds[s] for s in range(9, 15)] == [
        (1, 0, 0), (2, 2 * day, 2 * day), (3, 0, 0), (4, 0, None), (5, 21 * 3600, None), (6, None, None),
    ]  # fmt: skip
    assert (seconds[20][2], seconds[21][2], seconds[25][2]) == (51 * 3600, 0, 52 * 3600)
    messages = {
        s: (r["message_key"], r["channel"], r["message_status"]) for s, r in rows.items() if r["message_key"]
    }
    sent = {2: 1, 5: 2, 7: 3, 14: 4, 17: 6, 23: 7, 25: 9, 29: 5, 38: 8}  # step -> message
    assert messages == {
        **{s: (message_key(m), DESTINATION[rows[s]["from_node"]], "sent") for s, m in sent.items()},
        10: (message_key(20), "email", "skipped"),
        20: (message_key(21), "email", "dead_letter"),
    }
    assert message_key(22) not in {
        m for m, *_ in messages.values()
    }  # another entry's, though c4's and earlier
    assert rows[32]["is_holdout"] and (rows[32]["from_node"], rows[32]["to_node"]) == (None, None)


def test_performance_per_node(built: Warehouse) -> None:
    rows = _by(built.dicts("select * from marts.journey_performance"), "version", "node")
    columns = ("node_depth", "reached", "sent", "skipped", "deferred", "failed", "converted", "exited",
               "exited_completed", "exited_converted", "exited_exit_condition", "exited_holdout", "exited_archived")  # fmt: skip
    got = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
    assert got == {
        ("v1", "(entry)"): (0, 11, 0, 0, 0, 0, 3, 4, 0, 0, 0, 4, 0),
        ("v1", "welcome_email"): (1, 7, 5, 1, 0, 1, 2, 0, 0, 0, 0, 0, 0),
        ("v1", "two_days"): (2, 7, 0, 0, 0, 0, 2, 2, 0, 1, 1, 0, 0),
        ("v1", "bought"): (3, 4, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0),
        ("v1", "coupon_sms"): (4, 3, 3, 0, 1, 0, 1, 3, 3, 0, 0, 0, 0),
        ("v2", "(entry)"): (0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ("v2", "welcome_email"): (1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ("v2", "two_days"): (2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    }
    medians = {k: r["median_hours_to_next_node"] for k, r in rows.items() if k[0] == "v1"}
    assert medians == {
        ("v1", "(entry)"): None,
        ("v1", "welcome_email"): Decimal("0"),
        ("v1", "two_days"): Decimal("49.5"),  # 48, 48, 51, 52
        ("v1", "bought"): Decimal("0"),
        ("v1", "coupon_sms"): None,  # nobody moved on from the last step
    }
    assert {r["journey"] for r in rows.values()} == {"welcome"}


def test_lift_against_the_holdout(built: Warehouse) -> None:
    rows = _by(built.dicts("select * from marts.journey_lift"), "version")
    v1 = rows["v1"]
    counts = ("entries", "treated_entries", "holdout_entries", "treated_converters", "holdout_converters",
              "undecided_entries", "messages_sent")  # fmt: skip
    assert tuple(v1[c] for c in counts) == (11, 7, 4, 2, 1, 3, 8)
    f = {k: None if v is None else float(v) for k, v in v1.items() if isinstance(v, Decimal | float)}
    assert f["treated_conversion_rate"] == pytest.approx(2 / 7, abs=1e-6)
    assert f["holdout_conversion_rate"] == 0.25
    # by hand: P = 3/11, se = sqrt(P (1 - P) (1/7 + 1/4)) = 0.279145, z = (2/7 - 1/4) / se
    se = math.sqrt(3 / 11 * 8 / 11 * (1 / 7 + 1 / 4))
    assert se == pytest.approx(0.279145, abs=1e-6)
    assert f["absolute_lift"] == pytest.approx(0.035714, abs=1e-6)
    assert f["z_score"] == pytest.approx(0.1279, abs=1e-4) == pytest.approx((2 / 7 - 0.25) / se, abs=1e-4)
    _, p_value, _, _ = chi2_contingency([[2, 5], [1, 3]], correction=False)  # the same test: chi2 = z²
    assert f["p_value"] == pytest.approx(p_value, abs=1e-6) and f["p_value"] == pytest.approx(
        0.8982, abs=1e-4
    )
    assert v1["is_significant"] is False
    assert f["relative_lift"] == pytest.approx(0.142857, abs=1e-6)
    treated = binomtest(2, 7).proportion_ci(confidence_level=0.95, method="wilson")
    holdout = binomtest(1, 4).proportion_ci(confidence_level=0.95, method="wilson")
    assert (f["treated_conversion_rate_ci_low"], f["treated_conversion_rate_ci_high"]) == (
        pytest.approx(treated.low, abs=2e-6),
        pytest.approx(treated.high, abs=2e-6),
    )
    assert (f["holdout_conversion_rate_ci_low"], f["holdout_conversion_rate_ci_high"]) == (
        pytest.approx(holdout.low, abs=2e-6),
        pytest.approx(holdout.high, abs=2e-6),
    )
    # Newcombe's interval from the two Wilson intervals
    low = 2 / 7 - 0.25 - math.hypot(2 / 7 - treated.low, holdout.high - 0.25)
    high = 2 / 7 - 0.25 + math.hypot(treated.high - 2 / 7, 0.25 - holdout.low)
    assert f["absolute_lift_ci_low"] == pytest.approx(low, abs=2e-6)
    assert f["absolute_lift_ci_high"] == pytest.approx(high, abs=2e-6)
    assert f["confidence_level"] == 0.95
    v2 = rows["v2"]
    assert (v2["entries"], v2["treated_entries"], v2["holdout_entries"]) == (1, 1, 0)
    assert v2["absolute_lift"] is None and v2["p_value"] is None and v2["is_significant"] is None


def test_journey_tags_show_in_customer_tags(built: Warehouse) -> None:
    rows = built.dicts("select customer_id, tag, tagged_at, reason, source from marts.customer_tags")
    assert sorted((r["customer_id"], r["tag"], r["source"], r["tagged_at"], r["reason"]) for r in rows) == [
        ("c1", "welcomed", "journey", at(1, "09:00"), "added by journey welcome on 2026-03-01"),
        ("c3", "vip", "rule", at(10, "00:00"), "top spender"),
        ("c5", "welcomed", "journey", at(4, "12:00"), "added by journey welcome on 2026-03-04"),
    ]
