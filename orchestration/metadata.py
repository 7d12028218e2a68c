"""Asset metadata helpers: row counts and previews that never show personal data."""

from __future__ import annotations

import dagster as dg
import duckdb

# Columns never shown in previews (personal data stays in the warehouse).
PERSONAL_COLUMNS = {"email", "phone", "first_name", "last_name", "city", "value", "anonymous_id"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_metadata(con: duckdb.DuckDBPyConnection, schema: str, table: str, preview_rows: int = 5) -> dict:
    """dagster/row_count plus a Markdown preview without personal columns."""
    columns = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]
    if not columns:
        return {}
    relation = f"{_quote(schema)}.{_quote(table)}"
    count = con.execute(f"select count(*) from {relation}").fetchone()[0]
    shown = [c for c in columns if c not in PERSONAL_COLUMNS and not c.startswith("raw__")][:12]
    metadata: dict = {"dagster/row_count": dg.MetadataValue.int(int(count))}
    if shown:
        select = ", ".join(_quote(c) for c in shown)
        df = con.execute(f"select {select} from {relation} limit {int(preview_rows)}").df()
        metadata["preview"] = dg.MetadataValue.md(df.to_markdown(index=False) if len(df) else "_empty_")
    return metadata
