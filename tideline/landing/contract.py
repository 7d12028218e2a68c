"""The landing-zone contract: which entities Tideline reads, where, and which columns.

This module is the single source of truth for the raw input format. The loader
(`tideline.landing.loader`), the demo data generator, the dbt sources and the
README table are all derived from (or checked against) it.

Every entity lives under ``<raw_dir>/<path>/`` as any number of files, in any
sub-folders (for example ``commerce/orders/month=2025-03/part-0.parquet``). Files
may be CSV (with a header row), Parquet or JSON Lines; column names are matched
case-insensitively. Only ``orders`` is required; every other entity is optional
and enriches the marts when present. Within an entity only the columns marked
required must be present; missing optional columns are read as empty.
"""

from __future__ import annotations

from dataclasses import dataclass

FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # documented logical type: text, timestamp, number, integer, date
    required: bool
    meaning: str


@dataclass(frozen=True)
class Entity:
    name: str  # table name in the warehouse's landing schema, e.g. commerce_orders
    path: str  # folder below the raw dir, e.g. commerce/orders
    required: bool
    meaning: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _c(name: str, type_: str, required: bool, meaning: str) -> Column:
    return Column(name, type_, required, meaning)


CONTACTS = Entity(
    "crm_contacts",
    "crm/contacts",
    False,
    "One row per customer account in the CRM or shop. Rows sharing a normalised email or phone are merged into one customer.",
    (
        _c("customer_id", "text", True, "Account id; the same id space as orders.customer_id"),
        _c("email", "text", False, "Email address (trimmed and lower-cased on load)"),
        _c("phone", "text", False, "Phone number in any common format (normalised to E.164 using country)"),
        _c("first_name", "text", False, "Given name"),
        _c("last_name", "text", False, "Family name"),
        _c("country", "text", False, "ISO 3166-1 alpha-2 country code, e.g. DE"),
        _c("city", "text", False, "City"),
        _c("timezone", "text", False, "IANA time zone, e.g. Europe/Berlin"),
        _c("created_at", "timestamp", False, "When the account was created (ISO 8601; no offset means UTC)"),
        _c("source", "text", False, "Lead or acquisition source recorded by the CRM"),
        _c(
            "birth_date",
            "date",
            False,
            "Date of birth (YYYY-MM-DD); birthday journeys trigger on its day and month",
        ),
        _c(
            "owner_id",
            "text",
            False,
            "The employee who owns the account (a crm/staff staff_id); linked since created_at, "
            "like a crm/customer_owners row",
        ),
    ),
)

CONSENTS = Entity(
    "crm_consents",
    "crm/consents",
    False,
    "Consent events per customer and channel; the latest event on or before the as-of date wins.",
    (
        _c("customer_id", "text", True, "Account id the consent belongs to"),
        _c("channel", "text", True, "email, sms or push"),
        _c(
            "status",
            "text",
            True,
            "granted or revoked (also accepted: opt_in/opt_out, subscribed/unsubscribed, true/false)",
        ),
        _c("consented_at", "timestamp", True, "When the consent was given or withdrawn"),
        _c(
            "source",
            "text",
            False,
            "Where the consent was captured (form, checkout, preference centre, unsubscribe link)",
        ),
    ),
)

PRODUCTS = Entity(
    "commerce_products",
    "commerce/products",
    False,
    "Product catalogue.",
    (
        _c("product_id", "text", True, "Product id"),
        _c("name", "text", False, "Product name"),
        _c("category", "text", False, "Product category"),
        _c("price", "number", False, "List price"),
    ),
)

ORDERS = Entity(
    "commerce_orders",
    "commerce/orders",
    True,
    "One row per order. The only required entity: orders alone give customers, RFM, lifecycle and most tags.",
    (
        _c(
            "order_id",
            "text",
            True,
            "Order id, unique across all files (a later file's row wins over an earlier duplicate)",
        ),
        _c("customer_id", "text", True, "Account id of the buyer"),
        _c("ordered_at", "timestamp", True, "When the order was placed (ISO 8601; no offset means UTC)"),
        _c("amount", "number", True, "Order total after discounts, dot as decimal separator, not negative"),
        _c("currency", "text", False, "ISO 4217 code; amounts are summed as given (no conversion)"),
        _c(
            "status",
            "text",
            False,
            "completed (default), cancelled or refunded; only completed orders count as purchases",
        ),
        _c("discount_amount", "number", False, "Discount applied to the order"),
        _c("coupon_code", "text", False, "Coupon used, if any"),
        _c("channel", "text", False, "Sales channel, e.g. web, app, store"),
        _c("email", "text", False, "Buyer email on the order; links guest checkouts to CRM contacts"),
    ),
)

ORDER_ITEMS = Entity(
    "commerce_order_items",
    "commerce/order_items",
    False,
    "Order lines.",
    (
        _c("order_id", "text", True, "Order the line belongs to"),
        _c("product_id", "text", True, "Product bought"),
        _c("quantity", "integer", False, "Units (default 1)"),
        _c("unit_price", "number", False, "Price per unit"),
    ),
)

EVENTS = Entity(
    "events",
    "events",
    False,
    "Behaviour events from web and app. Anonymous events are stitched to the customer who later signs up or logs in on the same anonymous_id.",
    (
        _c("event_id", "text", False, "Event id (deduplicated when present)"),
        _c(
            "event_type",
            "text",
            True,
            "page_view, product_view, add_to_cart, checkout_started, signup, login, form_submit, app_open, …",
        ),
        _c("occurred_at", "timestamp", True, "When it happened"),
        _c("anonymous_id", "text", False, "Device or cookie id; required when customer_id is empty"),
        _c("customer_id", "text", False, "Account id when known (always set on signup and login)"),
        _c("session_id", "text", False, "Session id"),
        _c("product_id", "text", False, "Product for product_view / add_to_cart"),
        _c("url", "text", False, "Page URL"),
        _c("utm_source", "text", False, "Campaign source, e.g. google, newsletter"),
        _c("utm_medium", "text", False, "Campaign medium, e.g. cpc, email, social"),
        _c("utm_campaign", "text", False, "Campaign name"),
    ),
)

ENGAGEMENT_EVENTS = Entity(
    "engagement_events",
    "engagement/events",
    False,
    "Engagement with the messages Tideline sent: clicks, opens and unsubscribes recorded by the engagement receiver "
    "(`tideline receiver`, activation/receiver.py) and provider webhooks. Written by the receiver as JSON lines; "
    "a re-delivered webhook appears again with the same event_id and is counted once.",
    (
        _c(
            "event_id",
            "text",
            True,
            "Event id: a uuid4 hex for tracking and unsubscribe events, `{provider}:{provider event id}` for webhooks",
        ),
        _c("event_type", "text", True, "clicked, opened, unsubscribed, delivered, bounced or complained"),
        _c(
            "occurred_at",
            "timestamp",
            True,
            "When it happened (the provider's time for webhooks), UTC ISO 8601",
        ),
        _c("received_at", "timestamp", False, "When the receiver got it, UTC ISO 8601"),
        _c(
            "source", "text", False, "tracking (click or open pixel), unsubscribe (one-click link) or webhook"
        ),
        _c(
            "provider",
            "text",
            False,
            "The email provider that sent a webhook; empty for tracking and unsubscribes",
        ),
        _c(
            "message_key",
            "text",
            False,
            "The message: the delivery ledger's idempotency key as a UUID with dashes",
        ),
        _c("customer_id", "text", False, "Customer the message went to (account id, never an email)"),
        _c("campaign", "text", False, "Campaign, from the signed tracking token (clicks and opens)"),
        _c(
            "variant",
            "text",
            False,
            "Experiment variant, from the signed tracking token; empty without experiment",
        ),
        _c("segment", "text", False, "Segment the message was sent to (unsubscribes)"),
        _c("channel", "text", False, "email, sms or push"),
        _c("link_index", "integer", False, "Position of the clicked link in the message (0-based)"),
        _c("url", "text", False, "The clicked link's destination"),
        _c(
            "user_agent",
            "text",
            False,
            "User-Agent of the open or click (first 200 characters); tells proxies and bots apart",
        ),
        _c("bounce_type", "text", False, "hard or soft, for bounced events"),
    ),
)

STAFF = Entity(
    "crm_staff",
    "crm/staff",
    False,
    "One row per employee who follows customers up (sales, support); staff notifications go to them. "
    "A later file's row wins over an earlier one with the same staff_id.",
    (
        _c(
            "staff_id",
            "text",
            True,
            "Employee id; crm/customer_owners, contacts.owner_id and manager_id refer to it",
        ),
        _c("name", "text", False, "Display name"),
        _c("email", "text", False, "Work email address (trimmed and lower-cased on load)"),
        _c(
            "manager_id",
            "text",
            False,
            "The staff_id of the employee's manager; empty when none (an unknown id is cleared and reported)",
        ),
        _c(
            "handle",
            "text",
            False,
            "Where notifications go: an http(s) webhook URL of a chat tool, or an email address "
            "(anything else is cleared and reported)",
        ),
        _c("team", "text", False, "Team name, e.g. sales-emea"),
        _c(
            "timezone",
            "text",
            False,
            "IANA time zone for quiet hours, e.g. Europe/Berlin (unknown zones are cleared)",
        ),
        _c("active", "text", False, "true or false (also yes/no, 1/0); empty means true"),
    ),
)

CUSTOMER_OWNERS = Entity(
    "crm_customer_owners",
    "crm/customer_owners",
    False,
    "Links between customers and the employees who follow them up; a customer can have several. "
    "Links to merged accounts count for the merged customer; the earliest link of a pair wins.",
    (
        _c("customer_id", "text", True, "Account id, the same id space as contacts and orders"),
        _c("staff_id", "text", True, "The linked employee (a crm/staff staff_id)"),
        _c(
            "linked_at",
            "timestamp",
            False,
            "When the employee was linked (ISO 8601; no offset means UTC); the first linked is the first owner",
        ),
    ),
)

LEAD_STATUS = Entity(
    "crm_lead_status",
    "crm/lead_status",
    False,
    "Sales decisions about leads recorded in the CRM: from changed_at's day on, the stage wins over the "
    "lead score's stage until the customer's next status (docs/leads.md).",
    (
        _c("customer_id", "text", True, "Account id of the lead"),
        _c("stage", "text", True, "sales_accepted, opportunity, deal or lost"),
        _c("changed_at", "timestamp", True, "When the stage was set (ISO 8601; no offset means UTC)"),
        _c("staff_id", "text", False, "The employee who set it (a crm/staff staff_id)"),
    ),
)

ENTITIES: tuple[Entity, ...] = (
    CONTACTS,
    CONSENTS,
    PRODUCTS,
    ORDERS,
    ORDER_ITEMS,
    EVENTS,
    ENGAGEMENT_EVENTS,
    STAFF,
    CUSTOMER_OWNERS,
    LEAD_STATUS,
)
ENTITIES_BY_NAME = {e.name: e for e in ENTITIES}


def contract_markdown() -> str:
    """The README's landing-zone reference, generated from this module (a test keeps them equal)."""
    parts: list[str] = []
    for entity in ENTITIES:
        need = "required" if entity.required else "optional"
        parts.append(f"#### `{entity.path}/` — {need}\n\n{entity.meaning}\n")
        parts.append("| column | type | required | meaning |\n|---|---|---|---|")
        for c in entity.columns:
            parts.append(f"| `{c.name}` | {c.type} | {'yes' if c.required else 'no'} | {c.meaning} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
