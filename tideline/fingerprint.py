"""Content fingerprints of warehouse tables: has a table changed since a step last read it?

A fingerprint is the row count and the sum of every row's hash (DuckDB's `hash` of the row as a
struct), so any insert, delete or update of any column changes it, whatever order the rows are
in. It costs one scan (about 0.1 s per 5 million narrow rows on one core), far less than
rebuilding what reads the table. A table that does not exist has the fingerprint "missing", so a
step whose input appears later sees a change. Steps keep the fingerprints of their inputs from
their last successful run and skip the work when every one is the same (the dbt build, the
scoring).

Identifiers are quoted by activation.warehouse.quote_identifier, never formatted in raw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from activation.warehouse import quote_identifier

MISSING = "missing"


def table_fingerprint(con: Any, schema: str, table: str, ignore: Iterable[str] = ()) -> str:
    """'<rows>:<sum of row hashes>' of schema.table, or MISSING when it does not exist. Columns in
    `ignore` (bookkeeping a step rewrites without changing what the table says, such as a
    `checked_at`) are left out of the row hash."""
    columns = [
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]
    if not columns:
        return MISSING
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    skipped = set(ignore)
    if skipped:
        kept = [quote_identifier(c) for c in columns if c not in skipped] or ["0"]
        row = f"hash({', '.join(kept)})"
    else:
        row = "hash(t)"
    rows, total = con.execute(f"select count(*), coalesce(sum({row}), 0) from {relation} as t").fetchone()
    return f"{rows}:{total}"


def table_fingerprints(con: Any, tables: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{'schema.table': fingerprint} for each (schema, table)."""
    return {f"{schema}.{table}": table_fingerprint(con, schema, table) for schema, table in tables}


def digest(parts: Mapping[str, Any]) -> str:
    """One short hash of a mapping of fingerprints and settings (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
