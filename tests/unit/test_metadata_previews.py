"""Asset previews (orchestration.metadata) show only columns known to be safe: an allow-list, so a
personal column nobody thought of stays out of Dagster's run history and UI."""

from __future__ import annotations

import duckdb

from orchestration.metadata import shown_columns, table_metadata

SAFE = {
    "customer_id": "cus_0000042",
    "lifecycle_stage": "at_risk",
    "recency_days": 120,
    "churn_probability": 0.71,
    "is_buyer": True,
    "signed_up_at": "2025-03-01 10:00:00",
    "order_count": 3,
}
PERSONAL = {
    "key_value": "ada.lovelace@example.com",  # int_account_keys_collected: emails and phones
    "email": "ada@example.com",
    "phone": "+4915112345678",
    "first_name": "Augusta",
    "last_name": "Lovelace",
    "nickname": "Countess Ada",  # columns nobody listed as personal: hidden all the same
    "date_of_birth": "1815-12-10",
    "home_address": "12 St James's Square",
    "email_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "raw__created_at": "ada@example.com",  # raw input text can hold anything
    "issue__phone": 'phone "+4915112345678" is not a number',
    "reason": 'created_at "ada@example.com" is not a timestamp',
    "anonymous_id": "anon-7f3e",
    "source_id": "anon-7f3e",
}


def _table(con: duckdb.DuckDBPyConnection) -> None:
    row = {**SAFE, **PERSONAL}
    con.execute("create schema intermediate")
    columns = ", ".join(f'? as "{name}"' for name in row)
    con.execute(f"create table intermediate.people as select {columns}", list(row.values()))


def test_preview_shows_only_allow_listed_columns() -> None:
    con = duckdb.connect()
    _table(con)
    metadata = table_metadata(con, "intermediate", "people")

    assert metadata["dagster/row_count"].value == 1
    preview = metadata["preview"].value
    header = [cell.strip() for cell in preview.splitlines()[0].strip("|").split("|")]
    assert header == list(SAFE)
    for name, value in PERSONAL.items():
        assert name not in header
        assert str(value) not in preview, name
    assert "cus_0000042" in preview and "at_risk" in preview


def test_shown_columns_keep_order_and_drop_what_is_not_known_safe() -> None:
    columns = ["nickname", "customer_id", "predicted_clv", "key_value", "p_alive", "email", "tag"]
    assert shown_columns(columns) == ["customer_id", "predicted_clv", "p_alive", "tag"]
    assert shown_columns(["customer_id", *(f"n{i}_count" for i in range(20))], limit=3) == [
        "customer_id",
        "n0_count",
        "n1_count",
    ]


def test_a_table_with_no_safe_column_gets_a_row_count_and_no_preview() -> None:
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.keys as select 'ada@example.com' as key_value, 'email' as kind")
    assert set(table_metadata(con, "s", "keys")) == {"dagster/row_count"}
