"""Data-driven attribution: the removal effect of each channel in a first-order Markov chain.

A path is the ordered channels of one customer journey, ending in a conversion or not. The
paths are the dbt model marts.fct_attribution_paths, which holds the path rules (lookback,
not before the previous order, non-converting journeys) for fct_attribution and this module
alike: Python only groups its rows into paths (`load_paths`) and fits the chain.

The chain's states are `start`, one state per channel and two absorbing states, conversion
and null; transition probabilities are the observed transition counts normalised per state.
P(conversion) is the probability of being absorbed in conversion from `start`, solved
exactly: with Q the transient-to-transient and R the transient-to-absorbing probabilities,
B = (I − Q)⁻¹ R.

Removing a channel sends every transition into it to null instead. Its removal effect is
1 − P(conversion without it) / P(conversion), and its removal_share is its effect over
the sum of all effects (the data_driven model of fct_attribution uses the shares).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import duckdb
import numpy as np
import pandas as pd

from activation.warehouse import transaction

# Columns of ml.channel_removal_effects (dbt creates the table empty with the same
# columns: macros/ml_tables.sql ml_removal_effect_columns).
REMOVAL_EFFECT_COLUMNS = {
    "channel": "varchar",
    "removal_effect": "double precision",
    "removal_share": "double precision",
    "paths": "bigint",
    "converting_paths": "bigint",
    "as_of_date": "date",
    "computed_at": "timestamp",
}


@dataclass(frozen=True)
class Path:
    channels: tuple[str, ...]
    converted: bool


PATHS_RELATION = "marts.fct_attribution_paths"


def paths_from_rows(rows: Iterable[tuple[str, bool, str]]) -> list[Path]:
    """Paths from (path_id, is_converting, channel) rows ordered by path_id, then touch position."""
    return [
        Path(tuple(channel for _, _, channel in touches), bool(converting))
        for (_, converting), touches in groupby(rows, key=itemgetter(0, 1))
    ]


@dataclass(frozen=True)
class MarkovChain:
    """Transition probabilities: row `start` then one row per channel (transient states);
    `q` to transient states (same order), `r` to (conversion, null)."""

    channels: tuple[str, ...]
    q: np.ndarray
    r: np.ndarray

    @classmethod
    def fit(cls, paths: Iterable[Path]) -> MarkovChain:
        paths = [p for p in paths if p.channels]
        channels = tuple(sorted({c for p in paths for c in p.channels}))
        index = {c: i + 1 for i, c in enumerate(channels)}  # 0 is start
        n = len(channels) + 1
        q = np.zeros((n, n))
        r = np.zeros((n, 2))
        for path in paths:
            states = [0, *(index[c] for c in path.channels)]
            for a, b in zip(states, states[1:], strict=False):
                q[a, b] += 1
            r[states[-1], 0 if path.converted else 1] += 1
        totals = q.sum(axis=1) + r.sum(axis=1)
        totals[totals == 0] = 1  # start without paths: no transitions at all
        return cls(channels, q / totals[:, None], r / totals[:, None])

    def conversion_probability(self, removed: str | None = None) -> float:
        """P(absorbed in conversion | start), with `removed`'s incoming transitions sent to null."""
        q, r = self.q.copy(), self.r.copy()
        if removed is not None:
            j = self.channels.index(removed) + 1
            r[:, 1] += q[:, j]
            q[:, j] = 0.0
        absorbed = np.linalg.solve(np.eye(len(q)) - q, r)
        return float(absorbed[0, 0])


def removal_effects(paths: Sequence[Path]) -> pd.DataFrame:
    """channel, removal_effect, removal_share, paths, converting_paths; one row per channel.

    Empty when no path converts (there is nothing to attribute)."""
    columns = ["channel", "removal_effect", "removal_share", "paths", "converting_paths"]
    paths = [p for p in paths if p.channels]
    if not any(p.converted for p in paths):
        return pd.DataFrame(columns=columns)
    chain = MarkovChain.fit(paths)
    base = chain.conversion_probability()
    rows = []
    for channel in chain.channels:
        effect = 1.0 - chain.conversion_probability(channel) / base
        on = [p for p in paths if channel in p.channels]
        rows.append(
            {
                "channel": channel,
                # clip the floating-point dust of an exact 0 or 1
                "removal_effect": min(max(effect, 0.0), 1.0),
                "paths": len(on),
                "converting_paths": sum(p.converted for p in on),
            }
        )
    df = pd.DataFrame(rows)
    total = df["removal_effect"].sum()
    df["removal_share"] = df["removal_effect"] / total if total > 0 else 0.0
    return df[columns]


def load_paths(con: duckdb.DuckDBPyConnection, batch_rows: int = 50_000) -> list[Path]:
    """Every path of marts.fct_attribution_paths (as dbt built it, with the vars it ran with),
    its rows streamed in batches."""
    cursor = con.execute(
        f"select path_id, is_converting, channel from {PATHS_RELATION} order by path_id, touch_position"
    )

    def rows() -> Iterator[tuple[str, bool, str]]:
        while batch := cursor.fetchmany(batch_rows):
            yield from batch

    return paths_from_rows(rows())


def write_removal_effects(
    con: duckdb.DuckDBPyConnection, effects: pd.DataFrame, as_of: dt.date, computed_at: dt.datetime
) -> None:
    """Replace ml.channel_removal_effects with `effects` (one transaction)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in REMOVAL_EFFECT_COLUMNS.items())
    con.execute("create schema if not exists ml")
    con.execute(f"create table if not exists ml.channel_removal_effects ({columns})")
    frame = effects.assign(as_of_date=as_of, computed_at=computed_at)[list(REMOVAL_EFFECT_COLUMNS)]
    with transaction(con):
        con.execute("delete from ml.channel_removal_effects")
        con.register("effects_frame", frame)
        con.execute(
            f"insert into ml.channel_removal_effects select {', '.join(REMOVAL_EFFECT_COLUMNS)} from effects_frame"
        )
        con.unregister("effects_frame")
