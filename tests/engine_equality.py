"""Is a table built on one engine the same as on another? Row count and a checksum per table.

The portability checks (issue 18) build the dbt project on DuckDB and on another engine
(PostgreSQL, Spark) from the same landing data and compare every mart. Engines return the same
values in different Python types (a count is an int on DuckDB, a Decimal on PostgreSQL; a
timestamp may come back with a time zone), and floating sums differ in their last bits with the
order of addition, so every value is first normalised to text:

- numbers (int, float, Decimal) compare by value: an integral value is written as an integer
  (3, 3.0 and Decimal('3.00') are all "3"), any other rounded to `PLACES` decimals;
- booleans are "true"/"false" (not 1/0); NULL is its own marker, never equal to a string;
- timestamps are naive UTC in ISO form, dates ISO; lists and maps are normalised element by element.

A table's digest is its column names (sorted: the column order is not compared), its row count
and the sha256 of its normalised rows sorted, so the row order is not compared either. `compare`
says which tables differ and shows a few rows that are in one build and not the other.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PLACES = 6  # decimals a non-integral number is rounded to before comparing
NULL = "\x00null"
SHOWN = 3  # rows shown per side when a table differs


def normalise(value: object) -> str:
    """One value as comparable text (module docstring)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | decimal.Decimal):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return str(number)
        number = round(number, PLACES)  # first: 3284.9999999999995 (a parallel sum) is 3285
        if number == int(number) and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.{PLACES}f}".rstrip("0")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{k}: {normalise(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(normalise(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class TableDigest:
    columns: tuple[str, ...]  # lower-case, sorted
    rows: int
    checksum: str
    sample: tuple[tuple[str, ...], ...]  # every normalised row, sorted (for the differences shown)


def digest(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> TableDigest:
    """The digest of a table given its column names and its rows (any order) from any DB-API cursor."""
    names = [c.lower() for c in columns]
    order = sorted(range(len(names)), key=lambda i: names[i])
    normalised = sorted(tuple(normalise(row[i]) for i in order) for row in rows)
    sha = hashlib.sha256()
    for row in normalised:
        sha.update("\x1f".join(row).encode())
        sha.update(b"\x1e")
    return TableDigest(tuple(names[i] for i in order), len(normalised), sha.hexdigest(), tuple(normalised))


def compare(expected: Mapping[str, TableDigest], actual: Mapping[str, TableDigest]) -> list[str]:
    """What differs between two builds, one message per table (empty: every table is equal)."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want is None or got is None:
            problems.append(f"{table}: only in the {'other' if want is None else 'reference'} build")
        elif want.columns != got.columns:
            problems.append(
                f"{table}: columns differ: missing {sorted(set(want.columns) - set(got.columns))}, "
                f"extra {sorted(set(got.columns) - set(want.columns))}"
            )
        elif want.checksum != got.checksum:
            only_want = sorted(set(want.sample) - set(got.sample))[:SHOWN]
            only_got = sorted(set(got.sample) - set(want.sample))[:SHOWN]
            problems.append(
                f"{table}: {want.rows} rows in the reference build, {got.rows} in the other; columns "
                f"{list(want.columns)}; only in the reference: {only_want}; only in the other: {only_got}"
            )
    return problems
