"""Has anything the scoring reads changed since the scores were last written?

Scoring every customer costs a feature build over every order and event (seconds at 100,000
customers, tens of seconds at 1,000,000); a rerun with nothing new gives the same scores. The
inputs of a scoring are the model versions it scores with (and why any is skipped), the as-of
date, its settings, and the content of the tables it reads (their fingerprints, given by the
caller: the pipeline passes tideline.fingerprint.table_fingerprints, row count and sum of row
hashes). `input_digest` hashes them; `ml.score_inputs` keeps,
in one row, the digest of the last scoring, the fingerprint of the scores it wrote, and the run
and time it was written. The scoring is skipped when the digest is the same and the scores are
still the ones it wrote (a table changed or dropped by hand is rebuilt).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from models_ml.features import FeatureSources
from models_ml.registry import content_hash

# {"schema.table": fingerprint} of the given (schema, table)s, e.g. tideline.fingerprint.table_fingerprints
Fingerprints = Callable[[duckdb.DuckDBPyConnection, Iterable[tuple[str, str]]], dict[str, str]]

SCHEMA = "ml"
TABLE = "score_inputs"
# the tables scoring writes; their fingerprints say the scores are still the ones written
OUTPUTS = ((SCHEMA, "customer_scores"), (SCHEMA, "customer_score_reasons"))
# Bump when scoring changes what it writes, so that the next run rescores.
SCORING_FORMAT = 1


@dataclass(frozen=True)
class LastScoring:
    """The row of ml.score_inputs: what the scores in the warehouse were computed from."""

    digest: str
    outputs: str
    run_id: str
    scored_at: dt.datetime
    rows: int  # rows of ml.customer_scores it wrote

    @property
    def since(self) -> str:
        """'run <id> at <time> UTC', the scoring in words."""
        return f"run {self.run_id or '(unnamed)'} at {self.scored_at:%Y-%m-%d %H:%M:%S} UTC"


def source_tables(sources: FeatureSources) -> list[tuple[str, str]]:
    """(schema, table) of each table the scoring reads; an unqualified name is in `main`."""
    names = (sources.orders, sources.items, sources.events, sources.customers)
    return [(schema or "main", table) for schema, _, table in (name.rpartition(".") for name in names)]


def input_digest(
    con: duckdb.DuckDBPyConnection,
    models: Mapping[str, Any],
    as_of: dt.date,
    settings: Mapping[str, Any],
    sources: FeatureSources,
    fingerprints: Fingerprints,
) -> str:
    """One hash of the model choices, as-of date, settings and the fingerprints of the tables read."""
    return content_hash(
        {
            "models": dict(models),
            "as_of": str(as_of),
            "settings": dict(settings),
            "tables": fingerprints(con, source_tables(sources)),
            "format": SCORING_FORMAT,
        }
    )


def outputs_fingerprint(con: duckdb.DuckDBPyConnection, fingerprints: Fingerprints) -> str:
    return content_hash(fingerprints(con, OUTPUTS))


def last_scoring(con: duckdb.DuckDBPyConnection) -> LastScoring | None:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [SCHEMA, TABLE],
    ).fetchone()[0]
    if not exists:
        return None
    columns = {r[0] for r in con.execute(f"describe {SCHEMA}.{TABLE}").fetchall()}
    if "rows" not in columns:  # an earlier layout: score again, which writes the current one
        return None
    row = con.execute(
        f"select digest, outputs, run_id, scored_at, rows from {SCHEMA}.{TABLE} limit 1"
    ).fetchone()
    return LastScoring(*row) if row else None


def unchanged_since(
    con: duckdb.DuckDBPyConnection, wanted: str, fingerprints: Fingerprints
) -> LastScoring | None:
    """The last scoring when its inputs had the digest `wanted` and its scores are still in place."""
    last = last_scoring(con)
    if last is None or last.digest != wanted or last.outputs != outputs_fingerprint(con, fingerprints):
        return None
    return last


def remember_scoring(
    con: duckdb.DuckDBPyConnection,
    wanted: str,
    run_id: str,
    scored_at: dt.datetime,
    fingerprints: Fingerprints,
) -> None:
    """Replace the row of ml.score_inputs with this scoring (after its scores were written)."""
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"create or replace table {SCHEMA}.{TABLE} "
        "(digest varchar, outputs varchar, run_id varchar, scored_at timestamp, rows bigint)"
    )
    rows = con.execute(f"select count(*) from {SCHEMA}.customer_scores").fetchone()[0]
    con.execute(
        f"insert into {SCHEMA}.{TABLE} values (?, ?, ?, ?, ?)",
        [wanted, outputs_fingerprint(con, fingerprints), run_id, scored_at.replace(tzinfo=None), rows],
    )
