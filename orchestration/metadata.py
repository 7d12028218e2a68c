"""Asset metadata helpers: row counts and previews that never show personal data.

Dagster keeps every materialisation's metadata in its run history and shows it in the UI, so a
preview is data leaving the warehouse. Previews therefore show only columns known to be safe (an
allow-list), never "everything but the personal columns we thought of": a new column, or one that
holds emails under an innocent name (int_account_keys_collected.key_value), stays hidden until it
is added here on purpose.

A column is safe when it is in SAFE_COLUMNS or its name matches SAFE_NAME: ids of accounts,
orders, products, events, messages and syncs; categories (channel, campaign, stage, segment, tag,
source, status, country); counts, amounts, scores, shares, rates and probabilities; timestamps
(`*_at`, `*_on`) and the listed dates; booleans (`is_*`, `has_*`). The patterns match only names
of plain words joined by single underscores, so `raw__*` and `issue__*` columns (raw input text,
which can hold anything) never match. Hidden by omission, among others: email, phone, names,
city, timezone, url, user_agent, anonymous_id, session_id, source_id, coupon_code, key_value,
value, reason and message (reasons quote raw input values), fields_json, field_hash, error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import dagster as dg
import duckdb

from activation.warehouse import quote_identifier

MAX_PREVIEW_COLUMNS = 12

SAFE_COLUMNS = frozenset(
    {
        # ids (account ids are not contact data; anonymous_id, session_id, source_id stay hidden)
        "customer_id", "account_id", "order_id", "product_id", "event_id", "message_key",
        "idempotency_key", "sync_id", "sync_key", "touchpoint_id", "seq", "attempt", "version",
        "model_version", "content_version", "spell_number", "reason_rank", "link_index",
        "touch_position", "path_length", "staff_id", "owner_id", "manager_id", "notification_id",
        "owner_rank",
        # where a row came from (file paths and record numbers, never the row's values)
        "_file", "_row", "_rejected", "entity", "field", "action", "format", "rows", "source_file",
        "source_row",
        # categories
        "status", "event_type", "event_source", "channel", "campaign", "variant", "segment",
        "destination", "mode", "provider", "bounce_type", "bot_reason", "skip_reason", "key_type",
        "lifecycle_stage", "stage", "previous_stage", "lead_stage", "crm_stage", "score_stage",
        "notify_kind", "route", "team", "rfm_segment", "segment_description", "tag",
        "description", "rule", "category", "product_name", "currency", "country", "source",
        "lead_source", "consent_source", "acquisition_source", "acquisition_medium", "source_medium",
        "utm_source", "utm_medium", "utm_campaign", "touch_type", "model", "arm", "arm_type",
        "baseline_arm", "cost_type", "feature", "features", "metrics", "baseline_metrics",
        "skipped_by_reason", "dry_run", "beats_baseline", "used_coupon", "in_crm", "in_commerce",
        "in_web",
        # amounts, counts, scores
        "amount", "revenue", "monetary", "frequency", "price", "unit_price", "quantity", "cost",
        "roi", "roas", "weight", "reach", "sent", "delivered", "bounced", "hard_bounced",
        "complaints", "unsubscribes", "conversions", "converters", "unique_opens", "unique_clicks",
        "bot_opens", "failed", "skipped", "planned", "added", "changed", "removed", "unknown",
        "dead_letters", "segment_rows", "rejected_keys", "deliveries", "events", "merged_accounts",
        "accounts_in_customer", "purchase_days", "average_order_value", "predicted_clv", "p_alive",
        "expected_purchases", "purchase_propensity", "p_value", "revenue_per_message",
        "revenue_per_recipient", "effect", "removal_effect", "paths", "converting_paths",
        "discount_total", "line_amount", "confidence_level", "seconds_since_sent", "calling_code",
        "national_digits", "trunk_prefix",
        # dates
        "as_of_date", "order_date", "send_date", "valid_from", "valid_to", "since", "not_before",
        "evaluation_cutoff", "training_window_start", "training_window_end",
    }
)  # fmt: skip

_WORDS = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
SAFE_NAME = re.compile(
    rf"(?:is|has|days|n)_{_WORDS}"
    rf"|{_WORDS}_(?:at|on|count|days|seconds|score|share|rate|probability|lift|revenue|amount|opt_in"
    r"|ci_low|ci_high)"
)


def is_safe_column(name: str) -> bool:
    """True when `name` is known not to hold personal data (see the module docstring)."""
    return name in SAFE_COLUMNS or SAFE_NAME.fullmatch(name) is not None


def shown_columns(columns: Iterable[str], limit: int = MAX_PREVIEW_COLUMNS) -> list[str]:
    """The safe columns of `columns`, in order, at most `limit`: what a preview may show."""
    return [c for c in columns if is_safe_column(c)][:limit]


def table_metadata(con: duckdb.DuckDBPyConnection, schema: str, table: str, preview_rows: int = 5) -> dict:
    """dagster/row_count plus a Markdown preview of the safe columns only (none: no preview)."""
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
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    count = con.execute(f"select count(*) from {relation}").fetchone()[0]
    shown = shown_columns(columns)
    metadata: dict = {"dagster/row_count": dg.MetadataValue.int(int(count))}
    if shown:
        select = ", ".join(quote_identifier(c) for c in shown)
        df = con.execute(f"select {select} from {relation} limit {int(preview_rows)}").df()
        metadata["preview"] = dg.MetadataValue.md(df.to_markdown(index=False) if len(df) else "_empty_")
    return metadata
