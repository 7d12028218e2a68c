"""Test sends of a journey: each message step rendered with its real content and sent to internal
test accounts (the activation config's `test_accounts:` lists), through the real destinations.

    results = send_test(con, journey, config.test_accounts["internal"], deliver, clock)

The accounts are not customers: they get ids `test:<list>:<n>`, consent granted for every channel
and the time zone they give (UTC by default), in a table of their own that the policies read in
place of dim_customers, so a test send never touches a customer's consent, caps or state. Their
ledger rows carry campaign `test:journey:<journey>` and sync key `test__journey__<journey>__<step>
__<destination>`: the engagement marts leave campaigns starting with `test:` out of performance
(stg_tideline_sync__delivery_log.is_test). Every test send is new (its key holds a fresh id), so
running it again sends again: it is a person asking to see the messages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from activation.journeys.deliver import EngineDelivery, binding_for
from activation.journeys.spec import Journey, Send, Step
from activation.journeys.store import SCHEMA, ensure_schema
from activation.testsend import TestSendError, accounts_table, drop_tables, new_run_id, test_binding
from activation.warehouse import quote_identifier

QUEUE = f"{SCHEMA}.test_queue"
ACCOUNTS = f"{SCHEMA}.test_accounts"


def send_test(
    con: duckdb.DuckDBPyConnection,
    journey: Journey,
    accounts: list[dict[str, str]],
    deliver: EngineDelivery,
    clock: dt.datetime,
    *,
    list_name: str = "test",
    steps: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Send each message step of `journey` (or only `steps`) to `accounts`; per step what the
    engine did (sent, skipped by reason, failed)."""
    if not accounts:
        raise TestSendError("no test accounts to send to")
    chosen = [s for s in journey.steps if isinstance(s.action, Send) and (not steps or s.id in steps)]
    unknown = set(steps) - {s.id for s in journey.steps if isinstance(s.action, Send)}
    if unknown:
        raise ValueError(f"journey {journey.name} has no message step {', '.join(sorted(unknown))}")
    ensure_schema(con)
    accounts_table(con, ACCOUNTS, accounts, list_name)
    try:
        return _send_steps(con, journey, chosen, deliver, clock, new_run_id())
    finally:  # the accounts' contact fields are not kept in the warehouse
        drop_tables(con, QUEUE, ACCOUNTS)


def _send_steps(
    con: duckdb.DuckDBPyConnection,
    journey: Journey,
    chosen: list[Step],
    deliver: EngineDelivery,
    clock: dt.datetime,
    run_id: str,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for step in chosen:
        binding = test_binding(binding_for(journey, step, SCHEMA, None), QUEUE)
        columns = sorted(set(binding.fields.values()) - {"customer_id"})
        picked = "".join(f", a.{quote_identifier(c)}" for c in columns)
        con.execute(
            f"create or replace table {QUEUE} as "
            f"select a.customer_id, ? || ':' || a.customer_id as entry_id{picked} from {ACCOUNTS} as a",
            [f"test-{run_id}"],
        )
        done = deliver.run(con, binding, clock, customers=ACCOUNTS)
        results[step.id] = {
            "sent": done.result.sent,
            "skipped": done.result.skipped_by_reason,
            "failed": done.result.failed + done.result.dead_letters,
        }
    return results
