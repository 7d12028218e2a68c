"""Test sends: a message rendered with its real content and sent to internal test accounts (the
activation config's `test_accounts:` lists) through the real destination, never to a customer.

    result = send_activation_test(con, binding, accounts, run, list_name="internal", customers=3)

The accounts are not customers: they get ids `test:<list>:<n>`, consent granted for every channel
and the time zone they give (UTC by default), in a table of their own that the policies read in
place of dim_customers, so a test send never touches a customer's consent, frequency caps or
state. Their ledger rows carry campaign `test:<campaign>` and sync key `test__<sync key>`: the
engagement marts leave campaigns starting with `test:` out of performance and experiments
(stg_tideline_sync__delivery_log.is_test, int_messages_collapsed). Every test send is new (each
message's key holds a fresh run id), so asking again sends again: it is a person asking to see
the messages. The work tables hold contact fields and are dropped when the send ends.

An activation's test send (`send_activation_test`, `tideline send-test`) renders the message for a
few real customers of the segment (or synthetic ones): each account gets one message per sample
customer and variant (one engine run each: a sync sends one message per customer, here per
account), with the sample customer's fields (first name, offer, ...) and the account's own address
(email, phone), so what the customer would read reaches the tester and nothing reaches
the customer. Journeys' test sends (activation/journeys/testsend.py) use the same accounts and
binding rules.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from activation.config import SyncBinding
from activation.engine import SyncResult
from activation.ledger import SCHEMA, ensure_schema
from activation.warehouse import columns_of, quote_identifier, quote_relation, table_exists

TEST_PREFIX = "test:"  # campaign prefix the marts leave out of performance
SYNC_PREFIX = "test__"  # segment (so sync key) prefix
ROW_KEY = "entry_id"  # each test message's own key: a fresh run id, so asking again sends again
# what comes from the test account, never from the sample customer: where the message goes
ADDRESS_FIELDS = ("email", "phone")
ACCOUNTS = f"{SCHEMA}.test_send_accounts"
SAMPLE = f"{SCHEMA}.test_send_sample"
QUEUE = f"{SCHEMA}.test_send_queue"
DEFAULT_CUSTOMERS = 3
MAX_CUSTOMERS = 20
# synthetic customers' values for the usual profile columns; other text columns get "<column> <n>"
SYNTHETIC = {
    "first_name": ("Alex", "Sam", "Robin", "Charlie", "Jo"),
    "last_name": ("Example", "Sample", "Tester", "Demo", "Preview"),
    "country": ("GB", "DE", "FR", "US", "ES"),
    "city": ("London", "Berlin", "Paris", "Boston", "Madrid"),
}


class TestSendError(ValueError):
    """A test send that cannot be made (no accounts, not a message, nothing to sample): nothing is sent."""


@dataclass
class TestSendResult:
    """What a test send did, by variant ('all' without variants): counts and ids, no personal data."""

    sync_key: str  # the test sync key, test__<sync key>
    samples: list[str]  # the sample customers' ids (synthetic: synthetic-<n>)
    accounts: int
    by_variant: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync_key": self.sync_key,
            "samples": self.samples,
            "accounts": self.accounts,
            "by_variant": self.by_variant,
        }


def accounts_table(
    con: duckdb.DuckDBPyConnection, relation: str, accounts: list[dict[str, str]], list_name: str
) -> None:
    """The accounts as a customer table at `relation`: every column a send may map, consent granted
    for every channel, the account's time zone (UTC by default)."""
    if not accounts:
        raise TestSendError("no test accounts to send to")
    con.execute(
        f"""create or replace table {quote_relation(relation)} (
                customer_id varchar, email varchar, phone varchar, first_name varchar, last_name varchar,
                country varchar, city varchar, timezone varchar,
                email_opt_in boolean, sms_opt_in boolean, push_opt_in boolean,
                email_consent_at timestamp, sms_consent_at timestamp, push_consent_at timestamp)"""
    )
    con.executemany(
        f"insert into {quote_relation(relation)} values (?, ?, ?, ?, ?, ?, ?, ?, true, true, true, null, null, null)",
        [
            [
                f"{TEST_PREFIX}{list_name}:{i}",
                a.get("email"),
                a.get("phone"),
                a.get("first_name"),
                a.get("last_name"),
                a.get("country"),
                a.get("city"),
                a.get("timezone", "UTC"),
            ]
            for i, a in enumerate(accounts, start=1)
        ],
    )


def test_binding(binding: SyncBinding, relation: str, variant: str | None = None) -> SyncBinding:
    """`binding` as a test send reading `relation`: segment test__..., campaign test:..., no frequency
    cap (the accounts' messages count against nobody's), no holdout, each message keyed by its
    ROW_KEY column; `variant`: that variant only (every test account gets it)."""
    variants = {variant: dict(binding.variants[variant])} if variant is not None else {}
    return replace(
        binding,
        segment=f"{SYNC_PREFIX}{binding.segment}",
        relation=relation,
        campaign=f"{TEST_PREFIX}{binding.campaign}",
        frequency_cap=None,
        holdout_share=0.0,
        variants=variants,
        variant_weights={variant: 1.0} if variant is not None else {},
        row_key=binding.row_key or ROW_KEY,
        schedule=None,
    )


def drop_tables(con: duckdb.DuckDBPyConnection, *relations: str) -> None:
    """Drop the test send's work tables (they hold contact fields: never kept)."""
    for relation in relations:
        con.execute(f"drop table if exists {quote_relation(relation)}")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# --- an activation's test send ------------------------------------------------------------------------


def send_activation_test(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    accounts: list[dict[str, str]],
    run: Callable[[SyncBinding, str], SyncResult],
    *,
    list_name: str,
    customers: int = DEFAULT_CUSTOMERS,
    synthetic: bool = False,
    now: dt.datetime | None = None,
) -> TestSendResult:
    """Send `binding`'s message, rendered for `customers` sample customers of its segment (real ones,
    or synthetic with `synthetic`), to each of `accounts`: one engine run per variant, through
    `run(test binding, customers relation)` (the caller's engine: activation.activate.activate with
    the destination of the activation config). TestSendError when it cannot be made."""
    _check(binding, customers)
    ensure_schema(con)
    accounts_table(con, ACCOUNTS, accounts, list_name)
    try:
        samples = (
            _synthetic_sample(con, binding, customers, now or dt.datetime.now(dt.UTC))
            if synthetic
            else _real_sample(con, binding, customers)
        )
        run_id = new_run_id()
        result = TestSendResult(f"{SYNC_PREFIX}{binding.sync_key}", samples, len(accounts))
        for variant in sorted(binding.variants) or [None]:
            counts: dict[str, Any] = {"sent": 0, "skipped": {}, "failed": 0}
            # one engine run per sample customer: a sync sends one message per customer (account)
            for n in range(1, len(samples) + 1):
                _fill_queue(con, binding, n, f"test-{run_id}:{variant or 'all'}")
                done = run(test_binding(binding, QUEUE, variant), ACCOUNTS)
                counts["sent"] += done.sent
                counts["failed"] += done.failed + done.dead_letters
                for reason, k in done.skipped_by_reason.items():
                    counts["skipped"][reason] = counts["skipped"].get(reason, 0) + k
            result.by_variant[variant or "all"] = counts
        return result
    finally:
        drop_tables(con, QUEUE, SAMPLE, ACCOUNTS)


def _check(binding: SyncBinding, customers: int) -> None:
    if binding.mode != "message" or binding.channel is None:
        raise TestSendError(
            f"{binding.sync_key} is a {binding.mode} sync without a message to render: "
            "send-test sends message activations (email, sms, push)"
        )
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise TestSendError(f"--customers must be between 1 and {MAX_CUSTOMERS}, got {customers}")


def _mapped_columns(binding: SyncBinding) -> list[tuple[str, str | None]]:
    """The segment columns the destination reads, each with the account column it comes from when
    it is an address (email, phone: by the column's or the destination field's name), else None."""
    out: dict[str, str | None] = {}
    for target, column in binding.fields.items():
        if column == "customer_id":
            continue
        address = column if column in ADDRESS_FIELDS else target if target in ADDRESS_FIELDS else None
        if out.get(column) is None:
            out[column] = address
    return list(out.items())


def _real_sample(con: duckdb.DuckDBPyConnection, binding: SyncBinding, customers: int) -> list[str]:
    """SAMPLE: `customers` customers of the segment (a stable pseudo-random pick by a hash of the id),
    with the columns the destination reads and their position `_n`; their ids."""
    relation = _segment(con, binding)
    picked = [
        str(r[0])
        for r in con.execute(
            f"""select customer_id from {quote_relation(relation)} where customer_id is not null
                group by customer_id order by md5(cast(customer_id as varchar)), customer_id limit ?""",
            [customers],
        ).fetchall()
    ]
    if not picked:
        raise TestSendError(
            f"segment {binding.segment} ({relation}) has no customers to render for: use --synthetic"
        )
    columns = "".join(f", s.{quote_identifier(c)}" for c, _ in _mapped_columns(binding))
    con.execute(
        f"""create or replace table {SAMPLE} as
            select list_position(?, cast(s.customer_id as varchar)) as _n{columns}
            from {quote_relation(relation)} as s
            where list_contains(?, cast(s.customer_id as varchar))
            qualify row_number() over (partition by s.customer_id order by s.customer_id) = 1""",
        [picked, picked],
    )
    return picked


def _synthetic_sample(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, customers: int, now: dt.datetime
) -> list[str]:
    """SAMPLE: `customers` made-up customers, with the segment's column types (so templates format
    them as they would a real customer's): known profile columns get plausible values, other text
    `<column> <n>`, numbers n, flags true, dates and times now."""
    relation = _segment(con, binding)
    mapped = [c for c, _ in _mapped_columns(binding)]
    columns = "".join(f", s.{quote_identifier(c)}" for c in mapped)
    con.execute(
        f"create or replace table {SAMPLE} as select 0 as _n{columns} from {quote_relation(relation)} as s where false"
    )
    types = {name: kind for name, kind, *_ in con.execute(f"describe {SAMPLE}").fetchall()}
    rows = [[n, *(_synthetic_value(c, types[c], n, now) for c in mapped)] for n in range(1, customers + 1)]
    con.executemany(f"insert into {SAMPLE} values ({', '.join(['?'] * (len(mapped) + 1))})", rows)
    return [f"synthetic-{n}" for n in range(1, customers + 1)]


def _synthetic_value(column: str, kind: str, n: int, now: dt.datetime) -> Any:
    kind = kind.upper()
    if column in SYNTHETIC:
        values = SYNTHETIC[column]
        return values[(n - 1) % len(values)]
    if kind in ("VARCHAR", "TEXT") or kind.startswith("VARCHAR"):
        return f"{column} {n}"
    if kind == "BOOLEAN":
        return True
    if kind.startswith(("DATE", "TIMESTAMP")):
        return now.replace(tzinfo=None)
    if kind.startswith(
        ("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "U", "DECIMAL", "DOUBLE", "FLOAT")
    ):
        return n
    return None


def _segment(con: duckdb.DuckDBPyConnection, binding: SyncBinding) -> str:
    schema, _, table = binding.relation.rpartition(".")
    if not table_exists(con, schema or "main", table):
        raise TestSendError(
            f"segment {binding.segment} is not built in this warehouse ({binding.relation} does not exist): "
            "run `tideline run` first"
        )
    missing = sorted({c for c, _ in _mapped_columns(binding)} - columns_of(con, binding.relation))
    if missing:
        raise TestSendError(
            f"{binding.relation} has no column {', '.join(missing)} that {binding.sync_key} maps"
        )
    return binding.relation


def _fill_queue(con: duckdb.DuckDBPyConnection, binding: SyncBinding, n: int, prefix: str) -> None:
    """QUEUE: one row per test account for the `n`-th sample customer: the account's id and
    addresses, the sample customer's other fields, and a message key of its own (`prefix`: run id
    and variant; then the sample's position)."""
    picked = []
    for column, address in _mapped_columns(binding):
        source = f"a.{quote_identifier(address)}" if address else f"s.{quote_identifier(column)}"
        picked.append(f", {source} as {quote_identifier(column)}")
    con.execute(
        f"""create or replace table {QUEUE} as
            select a.customer_id, ? || ':' || cast(s._n as varchar) as {ROW_KEY}{"".join(picked)}
            from {SAMPLE} as s cross join {ACCOUNTS} as a where s._n = ?""",
        [prefix, n],
    )
