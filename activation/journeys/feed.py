"""The live feed: behaviour events and orders reach a journey tick within a minute, with no dbt build.

dbt turns the landing zone into `intermediate.int_events_stitched` and `intermediate.int_orders_resolved`
once per pipeline run; a journey ticks every minute. The shop and the tracker append JSON Lines to
the landing zone as things happen (the demo shop writes `events/shop/<day>/shop-*.jsonl` and
`commerce/orders/shop/shop-*.jsonl`, tideline/demo/shop.py), so a tick takes those new lines in
itself, the way activation/intake.py takes in the receiver's consent lines:

take_in_feed    every `*.jsonl` (also `.ndjson` and `.json`, read as JSON Lines like the loader
                does) under `<raw>/events/` and `<raw>/commerce/orders/`, recursively, skipping names
                that start with `_` or `.` as the loader does. Only new complete lines are read:
                `tideline_journeys.feed_files` keeps per file how many bytes and lines were taken in
                and a fingerprint of its first bytes. A line being written (no newline yet) waits for
                the next tick; a file now shorter than its offset, or whose first bytes changed, was
                replaced: the rows its earlier content gave are forgotten (as dbt's next landing
                snapshot forgets them) and it is read again from the start (rows are keyed by
                event_id/order_id, so nothing is recorded twice). Rows and offsets are written in
                one transaction per batch of lines, so a tick killed mid-way loses and repeats
                nothing. The cost grows with the new bytes, not with the history: a file that did
                not grow costs one stat. (The first call on a landing zone that already holds JSON
                Lines history reads all of it once, a batch at a time; prune_feed then drops what
                dbt holds.)
refresh_views   (re)creates the views `tideline_journeys.events` and `tideline_journeys.orders`
                that the tick's conditions read: dbt's relation (when it exists; before the first
                dbt build there are only the live rows) UNION ALL the live rows whose id dbt's
                relation does not hold, each with its customer resolved as dbt resolves it.
prune_feed      deletes the live rows whose id dbt's relation now holds (call it after every dbt
                build), so the live tables stay small.

The views' anti-join looks for a live row's id only among dbt's rows at or after the earliest live
row's time (occurred_at / ordered_at). The same line has the same time in dbt and in the feed, so
this finds every row dbt holds from the same line, and it lets DuckDB skip dbt's older row groups:
a tick's cost stays with the new rows instead of scanning every id in the history (an id-only
anti-join scans all of dbt's ids on every read of the view). The one row it can miss is an id that
dbt holds from another line with an older time than every live row (an event re-sent later with a
new time): it shows twice until the next prune_feed (after the next build), whose id-only match is
exact.

Parsing is the landing loader's and staging's, in SQL on the new lines: a field is
`json_extract_string` of the line's object (as tideline/landing/loader.py reads JSON Lines), blank
text is null, times and numbers go through the same patterns and casts as the `parse_timestamp` and
`parse_number` macros (dbt_project/macros/parsing.sql; a time without offset is UTC), and a line is
usable exactly when base_events__events / base_commerce__orders would keep its row. An unusable line
(torn JSON, not UTF-8, no id, a bad time or amount, an unknown status) is skipped and counted, and
the first few are logged with file, line and reason (never the line itself): never an exception.

Duplicates follow staging: an event id seen twice keeps its first line (base_events__events), an
order id keeps its latest line (base_commerce__orders: the later file, then the later line wins),
in landing order (file path below the raw dir, then line). An event without event_id gets the id
staging gives it, `row:<file>:<line>` (the loader's 1-based line number), so the views and
prune_feed match it to dbt's row.

The DuckDB warehouse has one writer: these functions write through the tick's connection and never
open another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from activation.journeys.clock import naive_utc

log = logging.getLogger(__name__)

SCHEMA = "tideline_journeys"  # activation.journeys.store.SCHEMA: the journey state's schema

# landing folders (tideline.landing.contract EVENTS.path and ORDERS.path; a test ties them)
EVENTS_DIR = "events"
ORDERS_DIR = "commerce/orders"
SUFFIXES = (".jsonl", ".ndjson", ".json")  # the contract's JSON Lines suffixes
IGNORED_PREFIXES = (".", "_")  # as the loader: never read
BATCH_LINES = 50_000  # lines per transaction (bounds memory on a first read of a long history)
READ_BYTES = 8 << 20  # bytes read from a file at a time
HEAD_BYTES = 1024  # a file's first bytes, fingerprinted to notice a replaced file
MAX_PROBLEMS = 20  # unusable lines reported by file and line per call (all are counted)
BOM = b"\xef\xbb\xbf"

# dbt's relations the views extend (activation.conditions.catalog RELATIONS "events" / "orders")
DBT_EVENTS = ("intermediate", "int_events_stitched")
DBT_ORDERS = ("intermediate", "int_orders_resolved")
ID_MAP = ("marts", "customer_id_map")
ANONYMOUS_IDS = ("intermediate", "int_anonymous_ids_stitched")

# the views' columns and types: dbt's (journeys-contract.md, "Relations the conditions read")
EVENT_COLUMNS = {
    "event_id": "varchar",
    "customer_id": "varchar",
    "event_type": "varchar",
    "occurred_at": "timestamp",
    "url": "varchar",
    "utm_source": "varchar",
    "utm_medium": "varchar",
    "utm_campaign": "varchar",
    "product_id": "varchar",
}
ORDER_COLUMNS = {
    "order_id": "varchar",
    "customer_id": "varchar",
    "ordered_at": "timestamp",
    "is_purchase": "boolean",
    "amount": "decimal(28,6)",  # dbt.type_numeric() of parse_number
    "channel": "varchar",
    "coupon_code": "varchar",
    "used_coupon": "boolean",
    "status": "varchar",
}

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.live_events (
    event_id varchar primary key,  -- staging's id: the line's event_id, else row:<file>:<line>
    account_id varchar,            -- the line's customer_id (an account id), resolved in the view
    anonymous_id varchar,
    event_type varchar not null,
    occurred_at timestamp not null, -- UTC
    url varchar,
    utm_source varchar,
    utm_medium varchar,
    utm_campaign varchar,
    product_id varchar,
    source_file varchar not null,  -- landing file below the raw dir and its 1-based line: the
    source_line bigint not null,   -- duplicate rule's order, and where a row came from
    taken_in_at timestamp not null
);
create table if not exists {SCHEMA}.live_orders (
    order_id varchar primary key,
    account_id varchar not null,   -- the line's customer_id (an account id), resolved in the view
    ordered_at timestamp not null, -- UTC
    amount decimal(28, 6) not null,
    channel varchar,
    coupon_code varchar,
    discount decimal(28, 6) not null, -- discount_amount, 0 when absent or not a number (as staging)
    status varchar not null,       -- completed | cancelled | refunded
    source_file varchar not null,
    source_line bigint not null,
    taken_in_at timestamp not null
);
create table if not exists {SCHEMA}.feed_files (
    file varchar primary key,      -- below the raw dir, e.g. events/shop/2026-03-02/shop-...jsonl
    bytes_read bigint not null,    -- complete lines taken in end here
    lines_read bigint not null,
    head varchar not null,         -- sha256 of the first min(1024, bytes_read) bytes
    taken_in_at timestamp not null
);
"""


@dataclass(frozen=True)
class FeedResult:
    files: int = 0  # files with new complete lines
    lines: int = 0  # new complete lines read (= events + orders + skipped)
    events: int = 0  # usable event lines taken in
    orders: int = 0  # usable order lines taken in
    skipped: int = 0  # unusable lines
    problems: tuple[str, ...] = field(default=(), compare=False)  # the first few: file, line, reason

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "lines": self.lines,
            "events": self.events,
            "orders": self.orders,
            "skipped": self.skipped,
        }


def ensure_feed_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the live tables and the file offsets that do not exist yet (idempotent)."""
    con.execute(DDL)


# ------------------------------------------------------------------------------------------------
# take_in_feed: new complete lines -> live_events / live_orders
# ------------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Lines read but not yet written, and how far each file has been read."""

    kinds: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    offsets: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # file -> bytes, lines, head
    replaced: set[str] = field(default_factory=set)  # files whose earlier rows are forgotten

    def __len__(self) -> int:
        return len(self.lines)

    def clear(self) -> None:
        """Forget what was written (the reader goes on appending to this batch)."""
        for rows in (self.kinds, self.files, self.lines, self.texts):
            rows.clear()
        self.offsets.clear()
        self.replaced.clear()


def take_in_feed(
    con: duckdb.DuckDBPyConnection, raw_dir: Path | str, now: dt.datetime | None = None
) -> FeedResult:
    """Take the new complete lines of the landing zone's event and order JSON Lines files into
    tideline_journeys.live_events / live_orders (see the module docstring)."""
    raw = Path(raw_dir).resolve()
    ensure_feed_schema(con)
    taken_in_at = naive_utc(now or dt.datetime.now(dt.UTC))
    known = {
        file: (int(size), int(lines), head)
        for file, size, lines, head in con.execute(
            f"select file, bytes_read, lines_read, head from {SCHEMA}.feed_files"
        ).fetchall()
    }
    loaded = _landing_sizes(con)
    totals = FeedResult()
    batch = _Batch()
    grown: set[str] = set()
    for kind, path in _feed_files(raw):
        rel = path.relative_to(raw).as_posix()
        try:
            start = known.get(rel)
            if start is None and rel in loaded:  # the landing snapshot has it up to there
                start = _resume_point(path, loaded[rel])
                batch.offsets[rel] = start  # recorded even when nothing follows: counted once
            for _ in _read_new_lines(path, rel, kind, start, batch):
                grown.add(rel)
                if len(batch) >= BATCH_LINES:
                    totals = _add(totals, _write(con, batch, taken_in_at))
                    batch.clear()
        except OSError as exc:  # vanished or unreadable: the next tick tries again
            log.warning(
                "journey feed: %s cannot be read (%s); it is tried again next tick", rel, exc.strerror
            )
    if batch.offsets:
        totals = _add(totals, _write(con, batch, taken_in_at))
    totals = replace(totals, files=len(grown))
    if totals.lines:
        log.info("journey feed: %s", totals.as_dict())  # counts only, never ids
    for problem in totals.problems:
        log.warning("journey feed: %s", problem)
    return totals


def _landing_sizes(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Bytes of each JSON Lines file the last landing snapshot read (landing.files.bytes, taken
    before reading): dbt has those lines, so the feed takes a file it has never seen from there
    (a landing zone whose history is JSON Lines is not taken in twice)."""
    try:
        rows = con.execute(
            "select _file, bytes from landing.files where bytes is not null and format = 'jsonl'"
        ).fetchall()
    except duckdb.Error:  # no landing snapshot yet, or one from before the bytes column
        return {}
    return {str(f): int(b) for f, b in rows}


def _resume_point(path: Path, size: int) -> tuple[int, int, str]:
    """(offset, lines, head) just after the last complete line within the first `size` bytes: a
    line the snapshot read torn is read again whole. The lines before are counted (events without
    an id get the row id `row:<file>:<line>` that staging gives them)."""
    size = min(size, path.stat().st_size)
    lines, offset = 0, 0
    with path.open("rb") as fh:
        first = fh.read(HEAD_BYTES)
        fh.seek(0)
        done = 0
        while done < size:
            chunk = fh.read(min(READ_BYTES, size - done))
            if not chunk:
                break
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                offset = done + newline + 1
            lines += chunk.count(b"\n")
            done += len(chunk)
    return offset, lines, _fingerprint(first, offset)


def _feed_files(raw: Path) -> Iterator[tuple[str, Path]]:
    """("event" | "order", path) of every JSON Lines file below the two folders, in landing order."""
    for kind, folder in (("event", raw / EVENTS_DIR), ("order", raw / ORDERS_DIR)):
        found: list[Path] = []
        for parent, dirs, names in os.walk(folder, followlinks=True):  # as the loader walks
            dirs[:] = [d for d in dirs if not d.startswith(IGNORED_PREFIXES)]
            found += [
                Path(parent) / n
                for n in names
                if not n.startswith(IGNORED_PREFIXES) and Path(n).suffix.lower() in SUFFIXES
            ]
        for path in sorted(found, key=lambda p: p.relative_to(raw).as_posix()):
            yield kind, path


def _read_new_lines(
    path: Path, rel: str, kind: str, known: tuple[int, int, str] | None, batch: _Batch
) -> Iterator[None]:
    """Append the file's new complete lines to `batch` with the file's new offset (bytes, lines,
    head), yielding after each read that found some. A replaced file is read from the start, and
    the rows its earlier content gave are forgotten (as dbt's next landing snapshot forgets them)."""
    size = path.stat().st_size
    start, line_no, head = known or (0, 0, "")
    if size == start:
        return
    with path.open("rb") as fh:
        first = fh.read(HEAD_BYTES)
        if known and (size < start or _fingerprint(first, start) != head):
            start, line_no = 0, 0  # replaced (shorter, or other first bytes): read it again
            batch.replaced.add(rel)
            batch.offsets[rel] = (0, 0, _fingerprint(first, 0))
            yield
        position = start
        fh.seek(position)
        carry = b""
        while position + len(carry) < size:
            chunk = fh.read(min(READ_BYTES, size - position - len(carry)))
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if not cut:
                continue  # no complete line yet (a long line): read on
            for raw_line in data[:cut].split(b"\n")[:-1]:
                line_no += 1
                batch.kinds.append(kind)
                batch.files.append(rel)
                batch.lines.append(line_no)
                batch.texts.append(_text(raw_line, line_no))
            position += cut
            batch.offsets[rel] = (position, line_no, _fingerprint(first, position))
            yield


def _text(raw_line: bytes, line_no: int) -> str | None:
    """The line as text (the loader reads CRLF files, and a UTF-8 BOM on the first line), or None
    when it is not UTF-8."""
    if line_no == 1 and raw_line.startswith(BOM):
        raw_line = raw_line[len(BOM) :]
    try:
        return raw_line.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _fingerprint(first: bytes, bytes_read: int) -> str:
    return hashlib.sha256(first[: min(HEAD_BYTES, bytes_read)]).hexdigest()


def _add(a: FeedResult, b: FeedResult) -> FeedResult:
    problems = (a.problems + b.problems)[:MAX_PROBLEMS]
    return FeedResult(
        a.files + b.files,
        a.lines + b.lines,
        a.events + b.events,
        a.orders + b.orders,
        a.skipped + b.skipped,
        problems,
    )


# Parsing, as parse_timestamp / parse_number / nullif_blank (dbt_project/macros/parsing.sql) and the
# loader's json_extract_string. The timestamp pattern is parse_timestamp's, split in two so that a
# time without offset is UTC whatever the session's TimeZone (dbt's profile sets UTC).
_DATE_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"
_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
TIME_HINT = "use ISO 8601, e.g. 2025-03-01T10:00:00Z"


def _field(key: str) -> str:
    """A JSON field as staging sees it: the loader's text, blank -> null (trim as SQL's trim)."""
    return f"nullif(trim(json_extract_string(j, '$.{key}')), '')"


def _timestamp(text: str) -> str:
    return f"""case
        when regexp_matches({text}, '{_DATE_TIME}{_OFFSET}$')
            then timezone('UTC', try_cast({text} as timestamptz))
        when regexp_matches({text}, '{_DATE_TIME}$') then try_cast({text} as timestamp)
    end"""


def _number(text: str) -> str:
    return f"case when regexp_matches({text}, '{_NUMBER}') then try_cast({text} as decimal(28, 6)) end"


_LINE_PROBLEM = """
        when text is null then 'line is not UTF-8'
        when trim(text) = '' then 'empty line'
        when j is null then 'line is not valid JSON'
        when json_type(j) <> 'OBJECT' then 'line is JSON but not an object'"""

# base_events__events: event_type and occurred_at required, anonymous_id or customer_id
PARSE_EVENTS = f"""
create or replace temp table _feed_events as
with lines as (
    select source_file, source_line, text, try_cast(text as json) as j
    from _feed_lines where kind = 'event'
),
fields as (
    select
        source_file,
        source_line,
        text,
        j,
        {_field("event_id")} as given_event_id,
        lower({_field("event_type")}) as event_type,
        {_field("occurred_at")} as occurred_text,
        {_field("anonymous_id")} as anonymous_id,
        {_field("customer_id")} as account_id,
        {_field("product_id")} as product_id,
        {_field("url")} as url,
        lower({_field("utm_source")}) as utm_source,
        lower({_field("utm_medium")}) as utm_medium,
        lower({_field("utm_campaign")}) as utm_campaign
    from lines
),
typed as (
    select
        *,
        coalesce(given_event_id, 'row:' || source_file || ':' || cast(source_line as varchar)) as event_id,
        {_timestamp("occurred_text")} as occurred_at
    from fields
)
select
    *,
    case {_LINE_PROBLEM}
        when event_type is null then 'event_type is empty'
        when occurred_text is null then 'occurred_at is empty'
        when occurred_at is null then 'occurred_at is not a timestamp ({TIME_HINT})'
        when anonymous_id is null and account_id is null then 'neither anonymous_id nor customer_id is set'
    end as problem
from typed
"""

# base_commerce__orders: order_id, customer_id, ordered_at, amount (not negative), a known status;
# a discount_amount that is not a number is cleared (0 in stg_commerce__orders)
PARSE_ORDERS = f"""
create or replace temp table _feed_orders as
with lines as (
    select source_file, source_line, text, try_cast(text as json) as j
    from _feed_lines where kind = 'order'
),
fields as (
    select
        source_file,
        source_line,
        text,
        j,
        {_field("order_id")} as order_id,
        {_field("customer_id")} as account_id,
        {_field("ordered_at")} as ordered_text,
        {_field("amount")} as amount_text,
        lower(coalesce({_field("status")}, 'completed')) as status_text,
        {_field("discount_amount")} as discount_text,
        {_field("coupon_code")} as coupon_code,
        lower({_field("channel")}) as channel
    from lines
),
typed as (
    select
        *,
        {_timestamp("ordered_text")} as ordered_at,
        {_number("amount_text")} as amount,
        coalesce({_number("discount_text")}, 0) as discount,
        case
            when status_text in ('completed', 'complete', 'paid', 'fulfilled', 'shipped', 'delivered')
                then 'completed'
            when status_text in ('cancelled', 'canceled', 'voided', 'void') then 'cancelled'
            when status_text in ('refunded', 'returned') then 'refunded'
        end as status
    from fields
)
select
    *,
    case {_LINE_PROBLEM}
        when order_id is null then 'order_id is empty'
        when account_id is null then 'customer_id is empty'
        when ordered_text is null then 'ordered_at is empty'
        when ordered_at is null then 'ordered_at is not a timestamp ({TIME_HINT})'
        when amount_text is null then 'amount is empty'
        when amount is null and amount_text like '%,%'
            then 'amount is not a number (use a dot as decimal separator, no thousands separator)'
        when amount is null then 'amount is not a number'
        when amount < 0 then 'amount is negative'
        when status is null then 'status is not one of completed, cancelled, refunded'
    end as problem
from typed
"""

# an id seen again: events keep the first line, orders the latest (staging's rules), in landing
# order; the same line read again (a replaced file) changes nothing for events
UPSERT_EVENTS = f"""
insert into {SCHEMA}.live_events (
    event_id, account_id, anonymous_id, event_type, occurred_at, url, utm_source, utm_medium,
    utm_campaign, product_id, source_file, source_line, taken_in_at
)
select
    event_id, account_id, anonymous_id, event_type, occurred_at, url, utm_source, utm_medium,
    utm_campaign, product_id, source_file, source_line, ?
from _feed_events
where problem is null
qualify row_number() over (partition by event_id order by source_file, source_line) = 1
on conflict (event_id) do update set
    account_id = excluded.account_id,
    anonymous_id = excluded.anonymous_id,
    event_type = excluded.event_type,
    occurred_at = excluded.occurred_at,
    url = excluded.url,
    utm_source = excluded.utm_source,
    utm_medium = excluded.utm_medium,
    utm_campaign = excluded.utm_campaign,
    product_id = excluded.product_id,
    source_file = excluded.source_file,
    source_line = excluded.source_line,
    taken_in_at = excluded.taken_in_at
where excluded.source_file < live_events.source_file
    or (excluded.source_file = live_events.source_file and excluded.source_line < live_events.source_line)
"""

UPSERT_ORDERS = f"""
insert into {SCHEMA}.live_orders (
    order_id, account_id, ordered_at, amount, channel, coupon_code, discount, status,
    source_file, source_line, taken_in_at
)
select
    order_id, account_id, ordered_at, amount, channel, coupon_code, discount, status,
    source_file, source_line, ?
from _feed_orders
where problem is null
qualify row_number() over (partition by order_id order by source_file desc, source_line desc) = 1
on conflict (order_id) do update set
    account_id = excluded.account_id,
    ordered_at = excluded.ordered_at,
    amount = excluded.amount,
    channel = excluded.channel,
    coupon_code = excluded.coupon_code,
    discount = excluded.discount,
    status = excluded.status,
    source_file = excluded.source_file,
    source_line = excluded.source_line,
    taken_in_at = excluded.taken_in_at
where excluded.source_file > live_orders.source_file
    or (excluded.source_file = live_orders.source_file and excluded.source_line >= live_orders.source_line)
"""

UPSERT_OFFSETS = f"""
insert into {SCHEMA}.feed_files (file, bytes_read, lines_read, head, taken_in_at)
select file, bytes_read, lines_read, head, ? from _feed_offsets
on conflict (file) do update set
    bytes_read = excluded.bytes_read,
    lines_read = excluded.lines_read,
    head = excluded.head,
    taken_in_at = excluded.taken_in_at
"""

COUNTS = """
select
    (select count(*) from _feed_events where problem is null),
    (select count(*) from _feed_orders where problem is null),
    (select count(*) from _feed_events where problem is not null)
        + (select count(*) from _feed_orders where problem is not null)
"""

PROBLEMS = f"""
select source_file, source_line, problem from _feed_events where problem is not null
union all
select source_file, source_line, problem from _feed_orders where problem is not null
order by source_file, source_line
limit {MAX_PROBLEMS}
"""


def _write(con: duckdb.DuckDBPyConnection, batch: _Batch, taken_in_at: dt.datetime) -> FeedResult:
    """Parse the batch's lines and write the usable ones and the files' offsets, in one transaction."""
    lines = pa.table(
        {
            "kind": pa.array(batch.kinds, pa.string()),
            "source_file": pa.array(batch.files, pa.string()),
            "source_line": pa.array(batch.lines, pa.int64()),
            "text": pa.array(batch.texts, pa.string()),
        }
    )
    offsets = pa.table(
        {
            "file": pa.array(list(batch.offsets), pa.string()),
            "bytes_read": pa.array([o[0] for o in batch.offsets.values()], pa.int64()),
            "lines_read": pa.array([o[1] for o in batch.offsets.values()], pa.int64()),
            "head": pa.array([o[2] for o in batch.offsets.values()], pa.string()),
        }
    )
    con.register("_feed_lines", lines)
    con.register("_feed_offsets", offsets)
    con.execute("begin transaction")
    try:
        if batch.replaced:  # their earlier content's rows are gone from the landing zone
            for table in ("live_events", "live_orders"):
                con.execute(
                    f"delete from {SCHEMA}.{table} where source_file in (select unnest(?::varchar[]))",
                    [sorted(batch.replaced)],
                )
        con.execute(PARSE_EVENTS)
        con.execute(PARSE_ORDERS)
        con.execute(UPSERT_EVENTS, [taken_in_at])
        con.execute(UPSERT_ORDERS, [taken_in_at])
        con.execute(UPSERT_OFFSETS, [taken_in_at])
        events, orders, skipped = con.execute(COUNTS).fetchone() or (0, 0, 0)
        problems = tuple(
            f"{file} line {line}: {problem}; skipped"
            for file, line, problem in con.execute(PROBLEMS).fetchall()
        )
        con.execute("drop table _feed_events")
        con.execute("drop table _feed_orders")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_feed_lines")
        con.unregister("_feed_offsets")
    return FeedResult(0, len(batch), int(events), int(orders), int(skipped), problems)


# ------------------------------------------------------------------------------------------------
# The views: dbt's relation + the live rows it does not hold
# ------------------------------------------------------------------------------------------------


def _empty(columns: dict[str, str]) -> str:
    """A relation with these columns and no rows (stands in for a dbt relation not built yet)."""
    return "(select " + ", ".join(f"cast(null as {t}) as {c}" for c, t in columns.items()) + " where false)"


def _relation_exists(con: duckdb.DuckDBPyConnection, relation: tuple[str, str]) -> bool:
    row = con.execute(
        """select count(*) from information_schema.tables
           where table_catalog = current_database() and table_schema = ? and table_name = ?""",
        list(relation),
    ).fetchone()
    return bool(row and row[0])


def _source(con: duckdb.DuckDBPyConnection, relation: tuple[str, str], columns: dict[str, str]) -> str:
    """`schema.table` when the relation exists, else an empty stand-in with its columns."""
    return ".".join(relation) if _relation_exists(con, relation) else _empty(columns)


# account id (the line's customer_id) -> resolved customer, from the customer_id_map mart (every
# non-anonymous source maps an account to the same customer); an account it does not hold yet is
# its own customer, as int_accounts_resolved keeps a new account's own id
_ACCOUNTS = """
accounts as (
    select m.source_id as account_id, min(m.customer_id) as customer_id
    from {id_map} as m
    where m.source <> 'anonymous' and m.source_id in (select live.account_id from live)
    group by m.source_id
)"""


def _live_cte(table: str, key: str, at: str) -> str:
    """`live`: the live rows dbt's relation ({dbt}, filled in later) does not hold, looked for
    among dbt's rows since the earliest live row (a range DuckDB prunes: no scan of every id)."""
    return f"""with live as (
    select l.*
    from {SCHEMA}.{table} as l
    where not exists (
        select 1 from {{dbt}} as d
        where d.{key} = l.{key}
            and d.{at} >= (select min(m.{at}) from {SCHEMA}.{table} as m)
    )
)"""


EVENTS_VIEW = (
    f"""
create or replace view {SCHEMA}.events as
"""
    + _live_cte("live_events", "event_id", "occurred_at")
    + ""","""
    + _ACCOUNTS
    + f""",
resolved as (
    select live.*, coalesce(accounts.customer_id, live.account_id) as account_customer_id
    from live
    left join accounts on live.account_id = accounts.account_id
),
-- an anonymous id first identified since the build: its first live event with an account, as
-- int_anonymous_ids_stitched orders them (occurred_at, event_id)
stitched_live as (
    select anonymous_id, account_customer_id as customer_id
    from resolved
    where anonymous_id is not null and account_id is not null
    qualify row_number() over (partition by anonymous_id order by occurred_at, event_id) = 1
)
select {", ".join(EVENT_COLUMNS)}
from {{dbt}}
union all
-- as int_events_stitched: the event's own account, else its anonymous id's customer
select
    r.event_id,
    coalesce(r.account_customer_id, stitched_dbt.customer_id, stitched_live.customer_id) as customer_id,
    r.event_type,
    r.occurred_at,
    r.url,
    r.utm_source,
    r.utm_medium,
    r.utm_campaign,
    r.product_id
from resolved as r
left join {{anonymous_ids}} as stitched_dbt on r.anonymous_id = stitched_dbt.anonymous_id
left join stitched_live on r.anonymous_id = stitched_live.anonymous_id
"""
)

ORDERS_VIEW = (
    f"""
create or replace view {SCHEMA}.orders as
"""
    + _live_cte("live_orders", "order_id", "ordered_at")
    + ""","""
    + _ACCOUNTS
    + f"""
select {", ".join(ORDER_COLUMNS)}
from {{dbt}}
union all
select
    l.order_id,
    coalesce(accounts.customer_id, l.account_id) as customer_id,
    l.ordered_at,
    l.status = 'completed' as is_purchase,  -- int_orders_resolved
    l.amount,
    l.channel,
    l.coupon_code,
    l.coupon_code is not null or l.discount > 0 as used_coupon,  -- stg_commerce__orders
    l.status
from live as l
left join accounts on l.account_id = accounts.account_id
"""
)

_ID_MAP_COLUMNS = {"source": "varchar", "source_id": "varchar", "customer_id": "varchar"}
_ANONYMOUS_COLUMNS = {"anonymous_id": "varchar", "customer_id": "varchar"}


def refresh_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the views tideline_journeys.events and .orders over what the warehouse holds now:
    call it after a dbt build (a relation built for the first time joins the views) or every tick."""
    ensure_feed_schema(con)
    id_map = _source(con, ID_MAP, _ID_MAP_COLUMNS)
    con.execute(
        EVENTS_VIEW.format(
            dbt=_source(con, DBT_EVENTS, EVENT_COLUMNS),
            id_map=id_map,
            anonymous_ids=_source(con, ANONYMOUS_IDS, _ANONYMOUS_COLUMNS),
        )
    )
    con.execute(ORDERS_VIEW.format(dbt=_source(con, DBT_ORDERS, ORDER_COLUMNS), id_map=id_map))


def prune_feed(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the live rows whose id dbt's relation now holds (after a dbt build); how many."""
    ensure_feed_schema(con)
    pruned = 0
    for table, key, at, relation in (
        ("live_events", "event_id", "occurred_at", DBT_EVENTS),
        ("live_orders", "order_id", "ordered_at", DBT_ORDERS),
    ):
        if _relation_exists(con, relation):
            # dbt's rows from the earliest live row's time on (a range DuckDB prunes), as the views
            # look: a scan of every id in the history each tick grew with the history
            row = con.execute(
                f"""delete from {SCHEMA}.{table} where {key} in (
                        select d.{key} from {".".join(relation)} as d
                        where d.{at} >= (select min({at}) from {SCHEMA}.{table}))"""
            ).fetchone()
            pruned += int(row[0]) if row else 0
    if pruned:
        log.info("journey feed: pruned %d live rows dbt now holds", pruned)
    return pruned
