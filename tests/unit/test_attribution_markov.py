"""Markov removal effects on path sets worked out by hand, and against a brute-force enumeration."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import duckdb
import pytest

from models_ml.attribution import (
    REMOVAL_EFFECT_COLUMNS,
    MarkovChain,
    Path,
    load_paths,
    paths_from_rows,
    removal_effects,
    write_removal_effects,
)

# start -> A 2/4, B 1/4, C 1/4; A -> B 1/2, null 1/2; B -> conversion 2/2; C -> null 1/1.
# P(conv) = 1/2 * 1/2 * 1 + 1/4 * 1 = 1/2.
# Without A: only start -> B converts: 1/4 -> effect 1 - (1/4)/(1/2) = 1/2.
# Without B: nothing converts -> effect 1. Without C: still 1/2 -> effect 0.
# Shares: 1/2 : 1 : 0 -> 1/3, 2/3, 0.
HAND_PATHS = [
    Path(("A", "B"), True),
    Path(("A",), False),
    Path(("B",), True),
    Path(("C",), False),
]


def test_removal_effects_by_hand() -> None:
    chain = MarkovChain.fit(HAND_PATHS)
    assert chain.conversion_probability() == pytest.approx(0.5, abs=1e-12)
    assert chain.conversion_probability("A") == pytest.approx(0.25, abs=1e-12)
    effects = removal_effects(HAND_PATHS).set_index("channel")
    assert list(effects.index) == ["A", "B", "C"]
    assert effects["removal_effect"].tolist() == pytest.approx([0.5, 1.0, 0.0], abs=1e-12)
    assert effects["removal_share"].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0], abs=1e-12)
    assert effects["paths"].tolist() == [2, 2, 1]
    assert effects["converting_paths"].tolist() == [1, 2, 0]


def test_no_conversion_means_no_effects() -> None:
    assert removal_effects([Path(("A",), False), Path(("B", "A"), False)]).empty
    assert removal_effects([]).empty


# Repeated channels and cycles (A -> A, A -> B -> A): the exact solution must equal the sum
# over every walk from start to conversion of the product of its transition probabilities.
CYCLIC_PATHS = [
    Path(("A", "B", "A"), True),
    Path(("B", "A"), False),
    Path(("A", "A", "C"), True),
    Path(("C", "B"), False),
    Path(("B",), True),
    Path(("C", "A", "B"), False),
]


def _transition_probabilities(paths: list[Path], removed: str | None) -> dict[str, dict[str, float]]:
    """Counted independently of MarkovChain: state -> next state -> probability."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for path in paths:
        states = ["start", *path.channels, "conversion" if path.converted else "null"]
        for a, b in zip(states, states[1:], strict=False):
            counts[a][b] += 1
    probabilities = {}
    for state, nxt in counts.items():
        total = sum(nxt.values())
        moved: Counter = Counter()
        for b, n in nxt.items():
            moved["null" if b == removed else b] += n / total
        probabilities[state] = dict(moved)
    return probabilities


def _enumerate_conversion(paths: list[Path], removed: str | None = None) -> float:
    """Brute force: push the probability mass of every walk of length 1, 2, 3, ... one step
    further (walks grouped by the state they are in) and add what reaches conversion, until
    the mass still walking is negligible. No matrix inverse involved."""
    probabilities = _transition_probabilities(paths, removed)
    walking = {"start": 1.0}
    converted = 0.0
    while sum(walking.values()) > 1e-15:
        nxt: dict[str, float] = defaultdict(float)
        for state, mass in walking.items():
            for b, step in probabilities[state].items():
                if b == "conversion":
                    converted += mass * step
                elif b != "null":
                    nxt[b] += mass * step
        walking = nxt
    return converted


def test_exact_solution_equals_enumeration_of_walks() -> None:
    chain = MarkovChain.fit(CYCLIC_PATHS)
    base = _enumerate_conversion(CYCLIC_PATHS)
    assert chain.conversion_probability() == pytest.approx(base, abs=1e-9)
    effects = removal_effects(CYCLIC_PATHS).set_index("channel")
    for channel in ("A", "B", "C"):
        removed = _enumerate_conversion(CYCLIC_PATHS, channel)
        assert chain.conversion_probability(channel) == pytest.approx(removed, abs=1e-9)
        assert effects.loc[channel, "removal_effect"] == pytest.approx(1 - removed / base, abs=1e-9)
    assert effects["removal_share"].sum() == pytest.approx(1.0, abs=1e-12)
    # by hand: start -> A, B, C 1/3 each; A -> B 2/6, conversion 1/6, A 1/6, null 1/6, C 1/6;
    # B -> A 2/5, null 2/5, conversion 1/5; C -> conversion, B, A 1/3 each. With a, b, c the
    # conversion probabilities from A, B, C: 5a = 2b + 1 + c, b = (2a + 1)/5, c = (1 + a + b)/3
    # -> a = 27/56, b = 11/28, c = 5/8, and P = (a + b + c)/3 = 1/2.
    assert base == pytest.approx(0.5, abs=1e-9)
    assert chain.conversion_probability() == pytest.approx(0.5, abs=1e-12)


def test_paths_are_the_rows_of_the_paths_model_in_order() -> None:
    """load_paths groups marts.fct_attribution_paths, whatever order its rows are stored in, by
    path and touch position; the rows are those the dbt unit test
    attribution_paths_converting_and_not_by_hand expects (the path rules are dbt's)."""
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.fct_attribution_paths (path_id varchar, is_converting boolean, "
        "channel varchar, touch_position bigint)"
    )
    rows = [
        ("customer:c1", False, "sms", 3),
        ("order:o1", True, "email", 2),
        ("customer:c2", False, "paid_search", 2),
        ("order:o2", True, "social", 1),
        ("customer:c1", False, "referral", 1),
        ("order:o1", True, "paid_search", 1),
        ("customer:c2", False, "email", 1),
        ("customer:c1", False, "push", 2),
    ]
    con.executemany("insert into marts.fct_attribution_paths values (?, ?, ?, ?)", rows)
    expected = [
        Path(("referral", "push", "sms"), False),  # c1 after its last order
        Path(("email", "paid_search"), False),  # c2, never ordered
        Path(("paid_search", "email"), True),  # o1
        Path(("social",), True),  # o2
    ]
    assert load_paths(con) == expected
    assert load_paths(con, batch_rows=3) == expected  # paths that straddle fetched batches stay whole
    assert paths_from_rows([]) == []


def test_write_replaces_the_table_with_the_contract_columns() -> None:
    con = duckdb.connect()
    as_of, now = dt.date(2025, 6, 30), dt.datetime(2025, 6, 30, 6, 0)
    write_removal_effects(con, removal_effects(HAND_PATHS), as_of, now)
    write_removal_effects(con, removal_effects(HAND_PATHS[:3]), as_of, now)  # A, B only
    rows = con.execute(
        "select channel, removal_share, paths, as_of_date from ml.channel_removal_effects order by channel"
    ).fetchall()
    # second set: start -> A 2/3, B 1/3; A -> B 1/2, null 1/2; P = 1/3 + 1/3 = 2/3;
    # without A: 1/3 (effect 1/2); without B: 0 (effect 1) -> shares 1/3, 2/3
    assert [(c, round(s, 12), n, d) for c, s, n, d in rows] == [
        ("A", round(1 / 3, 12), 2, as_of),
        ("B", round(2 / 3, 12), 2, as_of),
    ]
    columns = [r[0] for r in con.execute("describe ml.channel_removal_effects").fetchall()]
    assert columns == list(REMOVAL_EFFECT_COLUMNS)
