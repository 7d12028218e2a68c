"""How long a send will take, said before it starts: a dry run's estimate (issue 17).

    estimate = send_estimate(con, binding, records=12_000, rate_per_second=200)

From two things the warehouse knows: the destination's rate limit (`rate_limit_per_second`: the
engine never sends faster) and the throughput the same destination reached in its recent real
runs (tideline_sync.sync_runs: records sent per second of run, runs that sent at least
MIN_OBSERVED records). The estimate is the slower of the two; with neither, there is none (the
destination's own speed bounds it: say so). Plain data: the engine puts it in the dry run's result
and the sync's Dagster metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from activation.config import SyncBinding
from activation.ledger import SCHEMA
from activation.warehouse import table_exists

MIN_OBSERVED = 100  # a run that sent fewer says little about throughput
RECENT_RUNS = 5


@dataclass(frozen=True)
class SendEstimate:
    records: int
    seconds: float | None  # None: nothing bounds it that is known
    basis: str  # in words: which bound, with its numbers


def observed_rate(con: duckdb.DuckDBPyConnection, destination: str) -> float | None:
    """Records per second the destination's recent real runs reached (the median of up to
    RECENT_RUNS runs that sent at least MIN_OBSERVED), or None."""
    if not table_exists(con, SCHEMA, "sync_runs"):
        return None
    row = con.execute(
        f"""select median(sent / duration_seconds) from (
                select sent, duration_seconds from {SCHEMA}.sync_runs
                where destination = ? and not dry_run and sent >= ? and duration_seconds > 0
                order by finished_at desc limit ?)""",
        [destination, MIN_OBSERVED, RECENT_RUNS],
    ).fetchone()
    return float(row[0]) if row and row[0] else None


def send_estimate(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, records: int, rate_per_second: float
) -> SendEstimate:
    """The expected duration of sending `records` for `binding` (module docstring)."""
    if records <= 0:
        return SendEstimate(records, 0.0, "nothing to send")
    bounds: list[tuple[float, str]] = []
    if rate_per_second > 0:
        bounds.append(
            (records / rate_per_second, f"the destination's rate limit of {rate_per_second:g} records/s")
        )
    observed = observed_rate(con, binding.destination)
    if observed:
        bounds.append((records / observed, f"{observed:,.0f} records/s reached by its recent runs"))
    if not bounds:
        return SendEstimate(
            records, None, "no rate limit and no earlier run of this destination: its own speed bounds it"
        )
    seconds, basis = max(bounds)
    return SendEstimate(records, math.ceil(seconds * 10) / 10, f"{records:,} records at {basis}")
