"""The Catalog: everything a condition can address, with its type, and the relations it lives in.

The lists here mirror the dbt project (tests/unit/test_conditions_catalog.py ties them together):
- attributes: the documented columns of marts.dim_customers (_customers__models.yml), typed;
  personal columns (email, phone, names) can only be tested for presence (is_null), so no address
  or name is ever written into a condition file or a compiled model;
- rfm values and scores (marts.customer_rfm), lifecycle stages (marts.customer_lifecycle), RFM
  segment names (the rfm_segments grid), tags (the rules file dbt_project/tags.yml), predictive scores
  (ml.customer_scores, macro ml_score_columns), consent channels (dim_customers.<channel>_opt_in);
- event fields (intermediate.int_events_stitched, and the product's category from
  staging.stg_commerce__products) and order fields (intermediate.int_orders_resolved): no mart
  holds single events or orders, so these two intermediate models (and the products staging
  model for the category) are read directly;
- message engagement (marts.fct_messages, marts.fct_message_events);
- audiences: the models conditions may reference with `audience:` (given by the caller: audience
  files and segment models are the later increment's; a name not listed is an error).

Identifiers in compiled SQL come only from here, and each is checked by `safe_identifier`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

TEXT, INTEGER, NUMBER, BOOLEAN, TIMESTAMP = "text", "integer", "number", "boolean", "timestamp"
TYPES = (TEXT, INTEGER, NUMBER, BOOLEAN, TIMESTAMP)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def safe_identifier(name: str) -> str:
    """`name` if it is a plain lower-case SQL identifier (letters, digits, underscore; at most 63
    characters, PostgreSQL's limit), usable unquoted on every engine; else ValueError."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63)")
    return name


@dataclass(frozen=True)
class Column:
    """A column a condition can compare: its SQL name, type, and whether it is personal data."""

    name: str
    type: str
    personal: bool = False

    def __post_init__(self) -> None:
        safe_identifier(self.name)
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} is not one of {TYPES}")


@dataclass(frozen=True)
class Relation:
    """A relation: as dbt names it (`ref` model, or `source` (source, table)) and as the
    runtime targets name it (`schema.table`)."""

    schema: str
    table: str
    ref: str | None = None
    source: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        safe_identifier(self.schema)
        safe_identifier(self.table)
        if self.ref is not None:
            safe_identifier(self.ref)
        if self.source is not None:
            for part in self.source:
                safe_identifier(part)
        if (self.ref is None) == (self.source is None):
            raise ValueError(f"relation {self.schema}.{self.table} needs exactly one of ref and source")

    @classmethod
    def model(cls, schema: str, name: str) -> Relation:
        return cls(schema, name, ref=name)


def _columns(*columns: Column) -> Mapping[str, Column]:
    return MappingProxyType({c.name: c for c in columns})


# The documented columns of dim_customers, by name as a condition addresses them. as_of_date is
# left out on purpose (the same for every customer; see EXCLUDED_ATTRIBUTES).
DIM_CUSTOMERS = _columns(
    Column("customer_id", TEXT),
    Column("merged_accounts", INTEGER),
    Column("email", TEXT, personal=True),
    Column("phone", TEXT, personal=True),
    Column("first_name", TEXT, personal=True),
    Column("last_name", TEXT, personal=True),
    Column("country", TEXT),
    Column("city", TEXT),
    Column("timezone", TEXT),
    Column("birth_date", TIMESTAMP, personal=True),  # a date; compared as a timestamp at midnight
    Column("signed_up_at", TIMESTAMP),
    Column("acquisition_source", TEXT),
    Column("acquisition_medium", TEXT),
    Column("email_opt_in", BOOLEAN),
    Column("sms_opt_in", BOOLEAN),
    Column("push_opt_in", BOOLEAN),
    Column("email_consent_at", TIMESTAMP),
    Column("sms_consent_at", TIMESTAMP),
    Column("push_consent_at", TIMESTAMP),
    Column("first_order_at", TIMESTAMP),
    Column("last_order_at", TIMESTAMP),
    Column("order_count", INTEGER),
    Column("revenue", NUMBER),
    Column("average_order_value", NUMBER),
    Column("coupon_order_count", INTEGER),
    Column("last_activity_at", TIMESTAMP),
    Column("is_buyer", BOOLEAN),
)
EXCLUDED_ATTRIBUTES = MappingProxyType({"as_of_date": "the as-of date itself, the same for every customer"})

RFM = _columns(
    Column("recency_days", INTEGER),
    Column("frequency", INTEGER),
    Column("monetary", NUMBER),
    Column("r_score", INTEGER),
    Column("f_score", INTEGER),
    Column("m_score", INTEGER),
    Column("fm_score", INTEGER),
    Column("rfm_score", TEXT),
)

SCORES = _columns(
    Column("churn_probability", NUMBER),
    Column("purchase_propensity", NUMBER),
    Column("expected_purchases", NUMBER),
    Column("p_alive", NUMBER),
    Column("predicted_clv", NUMBER),
)

# Fields an event's `where` can compare: name in the condition -> column. `category` is the
# product's (joined by product_id), `type` the event_type.
EVENT_FIELDS = _columns(
    Column("event_type", TEXT),
    Column("url", TEXT),
    Column("utm_source", TEXT),
    Column("utm_medium", TEXT),
    Column("utm_campaign", TEXT),
    Column("product_id", TEXT),
    Column("category", TEXT),
)
EVENT_FIELD_ALIASES = MappingProxyType({"type": "event_type"})

ORDER_FIELDS = _columns(
    Column("amount", NUMBER),
    Column("channel", TEXT),
    Column("coupon_code", TEXT),
    Column("used_coupon", BOOLEAN),  # a coupon code or a discount
    Column("status", TEXT),
)

LIFECYCLE_STAGES = ("prospect", "new", "active", "at_risk", "churned", "reactivated")
RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose",
    "Hibernating",
    "Lost",
)


def rule_tags() -> tuple[str, ...]:
    """The tags of the rules file (dbt_project/tags.yml, activation/tags.py): the tags customer_tags
    can hold. Read when a Catalog is made (cached by activation.tags)."""
    from activation.tags import rule_names  # activation.tags compiles with this package

    return rule_names()


# channel -> the dim_customers column holding "the latest consent event for it granted consent"
CONSENT_COLUMNS = MappingProxyType({"email": "email_opt_in", "sms": "sms_opt_in", "push": "push_opt_in"})
# The documented behaviour event types (README, landing contract); extend with `with_event_types`.
EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "checkout_started",
    "signup",
    "login",
    "form_submit",
    "app_open",
)
ORDER_STATUSES = ("completed", "cancelled", "refunded")
MESSAGE_CHANNELS = ("email", "sms", "push")

RELATIONS = MappingProxyType(
    {
        "customers": Relation.model("marts", "dim_customers"),
        "lifecycle": Relation.model("marts", "customer_lifecycle"),
        "rfm": Relation.model("marts", "customer_rfm"),
        "tags": Relation.model("marts", "customer_tags"),
        "scores": Relation("ml", "customer_scores", source=("ml", "customer_scores")),
        "events": Relation.model("intermediate", "int_events_stitched"),
        "products": Relation.model("staging", "stg_commerce__products"),
        "orders": Relation.model("intermediate", "int_orders_resolved"),
        "messages": Relation.model("marts", "fct_messages"),
        "message_events": Relation.model("marts", "fct_message_events"),
    }
)


@dataclass(frozen=True)
class Catalog:
    """What conditions can address. `Catalog.default()` is the dbt project's; `with_tags`,
    `with_event_types` and `with_audiences` extend it (tag rules, custom events, audience models)."""

    attributes: Mapping[str, Column] = field(default_factory=lambda: DIM_CUSTOMERS)
    rfm: Mapping[str, Column] = field(default_factory=lambda: RFM)
    scores: Mapping[str, Column] = field(default_factory=lambda: SCORES)
    event_fields: Mapping[str, Column] = field(default_factory=lambda: EVENT_FIELDS)
    order_fields: Mapping[str, Column] = field(default_factory=lambda: ORDER_FIELDS)
    lifecycle_stages: tuple[str, ...] = LIFECYCLE_STAGES
    rfm_segments: tuple[str, ...] = RFM_SEGMENTS
    tags: tuple[str, ...] = field(default_factory=rule_tags)
    consent_columns: Mapping[str, str] = field(default_factory=lambda: CONSENT_COLUMNS)
    event_types: tuple[str, ...] = EVENT_TYPES
    order_statuses: tuple[str, ...] = ORDER_STATUSES
    message_channels: tuple[str, ...] = MESSAGE_CHANNELS
    relations: Mapping[str, Relation] = field(default_factory=lambda: RELATIONS)
    audiences: Mapping[str, Relation] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def default(cls, audiences: Iterable[str] = (), audience_schema: str = "marts") -> Catalog:
        """The dbt project's catalog, with these audience models (dbt model names, built in
        `audience_schema`) addressable by `audience:`."""
        return cls().with_audiences(audiences, audience_schema)

    def with_audiences(self, names: Iterable[str], schema: str = "marts") -> Catalog:
        """This catalog with more audience models (each a dbt model name, a plain identifier)."""
        extra = {name: Relation.model(schema, name) for name in names}
        return replace(self, audiences=MappingProxyType({**self.audiences, **extra}))

    def with_tags(self, names: Iterable[str]) -> Catalog:
        """This catalog with more tag names (e.g. from the tag rules file)."""
        return replace(self, tags=tuple(dict.fromkeys((*self.tags, *names))))

    def with_event_types(self, names: Iterable[str]) -> Catalog:
        """This catalog with more behaviour event types (events a shop sends beyond the documented)."""
        return replace(self, event_types=tuple(dict.fromkeys((*self.event_types, *names))))
