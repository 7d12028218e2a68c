"""The condition language's parser and checks: nested all / any / not become the right immutable
AST, and every kind of mistake is a ConditionError naming the file and the path inside it (and,
for unknown names, the known ones or the closest)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from activation.conditions import Catalog, CompileContext, ConditionError, compile_condition, parse_condition
from activation.conditions.nodes import All, AnyOf, Attribute, Comparison, Event, Not, Tag

SOURCE = "config/audiences/cart_rescue.yml"
CATALOG = Catalog.default(audiences=["recent_buyers"])


def parse(text: str):
    return parse_condition(yaml.safe_load(text), source=SOURCE, path="where")


def compile_(text: str, target: str = "duckdb", **context):
    return compile_condition(parse(text), CATALOG, CompileContext(target=target, **context))


# --- nesting and shape ----------------------------------------------------------------------------


def test_nested_all_any_not_become_the_tree_written() -> None:
    cond = parse(
        """
        all:
          - tag: vip
          - any:
              - not: {tag: dormant}
              - all: [{attribute: {name: country, eq: DE}}, {not: {not: {consent: email}}}]
        """
    )
    assert isinstance(cond, All) and len(cond.items) == 2
    tag, either = cond.items
    assert tag == Tag(("vip",), tag.loc) and tag.loc.path == "where.all[0].tag"
    assert isinstance(either, AnyOf) and either.loc.path == "where.all[1].any"
    negated, inner = either.items
    assert isinstance(negated, Not) and negated.item.names == ("dormant",)
    assert negated.item.loc.path == "where.all[1].any[0].not.tag"
    assert isinstance(inner, All)
    country, double_not = inner.items
    assert country == Attribute("country", Comparison("eq", "DE", country.loc), country.loc)
    assert isinstance(double_not, Not) and isinstance(double_not.item, Not)
    assert double_not.item.item.loc.path == "where.all[1].any[1].all[1].not.not.consent"


def test_the_ast_is_immutable() -> None:
    cond = parse("all: [{tag: vip}]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cond.items = ()  # type: ignore[misc]
    assert isinstance(cond.items, tuple)


def test_shorthands_mean_their_long_forms() -> None:
    assert parse("lifecycle_stage: at_risk").cmp.op == "eq"
    assert parse("tag: {in: [vip, dormant]}").names == ("vip", "dormant")
    assert parse("tag: {eq: vip}").names == ("vip",)
    assert parse("consent: {channel: sms}").channel == "sms"
    event = parse("event: {type: add_to_cart}")
    assert isinstance(event, Event) and event.types == ("add_to_cart",) and event.count is None


def test_the_contract_example_compiles_for_every_target() -> None:
    text = """
    all:
      - tag: vip
      - lifecycle_stage: {in: [at_risk, churned]}
      - days_in_stage: {gte: 30}
      - rfm_segment: {not_in: [Lost]}
      - rfm: {name: r_score, gte: 4}
      - attribute: {name: country, in: [DE, AT, CH]}
      - attribute: {name: signed_up_at, within_days: 14}
      - attribute: {name: revenue, top_share: 0.05}
      - score: {name: churn_probability, gte: 0.6}
      - consent: email
      - not: {audience: recent_buyers}
      - any:
          - event: {type: product_view, within_days: 14, count: {gte: 3}}
          - event: {type: [add_to_cart, checkout_started], within_days: 7, not_followed_by: order}
          - event: {type: add_to_cart, within_days: 7, where: {attribute: {name: category, eq: shoes}}}
          - order: {within_days: 90, count: {eq: 0}}
          - order: {within_days: 365, sum: {gte: 500}}
          - message: {campaign: win_back_2026q4, clicked: true}
    """
    dbt_sql, dbt_params = compile_(text, "dbt")
    assert dbt_params == [] and "{{ ref('dim_customers') }}" in dbt_sql and "'win_back_2026q4'" in dbt_sql
    assert "{{ source('ml', 'customer_scores') }}" in dbt_sql and "as_of_cutoff()" in dbt_sql
    duck_sql, duck_params = compile_(text, "duckdb")
    pg_sql, pg_params = compile_(text, "postgres")
    assert duck_params == pg_params and "win_back_2026q4" in duck_params
    assert duck_sql.count("?") == len(duck_params) == pg_sql.count("%s")
    assert "win_back_2026q4" not in duck_sql and "marts.dim_customers" in duck_sql


# --- every error names the file and the path ------------------------------------------------------

PARSE_ERRORS = [
    # (condition, path, words the message must hold)
    ("[tag: vip]", "where", "mapping with exactly one key"),
    ("{tag: vip, consent: email}", "where", "exactly one key"),
    ("atribute: {name: country, eq: DE}", "where", "did you mean 'attribute'"),
    ("all: []", "where.all", "non-empty list"),
    ("any: {tag: vip}", "where.any", "non-empty list"),
    ("all: [{tag: vip}, {consent: email}, {event: {type: product_view, within_days: two}}]",
     "where.all[2].event.within_days", "must be a whole number of days >= 1 (got 'two')"),
    ("event: {type: product_view, within_days: 0}", "where.event.within_days", ">= 1 (got 0)"),
    ("event: {type: product_view, within_days: 1.5}", "where.event.within_days", "whole number"),
    ("attribute: {name: country, equals: DE}", "where.attribute.equals", "did you mean 'eq'"),
    ("attribute: {name: revenue, gte: 1, lte: 2}", "where.attribute", "exactly one operator"),
    ("attribute: {name: revenue}", "where.attribute", "exactly one operator"),
    ("attribute: {eq: DE}", "where.attribute", "needs a name"),
    ("attribute: {name: '', eq: DE}", "where.attribute.name", "non-empty name"),
    ("attribute: {name: country, eq: null}", "where.attribute.eq", "use is_null"),
    ("attribute: {name: country, eq: [DE]}", "where.attribute.eq", "must be one value"),
    ("attribute: {name: country, in: DE}", "where.attribute.in", "non-empty list"),
    ("attribute: {name: country, in: [DE, {x: 1}]}", "where.attribute.in[1]", "must be one value"),
    ("attribute: {name: revenue, between: [1]}", "where.attribute.between", "two values"),
    ("attribute: {name: revenue, between: [9, 1]}", "where.attribute.between", "low <= high"),
    ("attribute: {name: revenue, between: [1, x]}", "where.attribute.between", "same kind"),
    ("attribute: {name: country, is_null: yes please}", "where.attribute.is_null", "true or false"),
    ("attribute: {name: revenue, top_share: 1.5}", "where.attribute.top_share", "between 0 and 1"),
    ("attribute: {name: revenue, bottom_share: 0}", "where.attribute.bottom_share", "between 0 and 1"),
    ("tag: {gte: 3}", "where.tag", "gte does not apply to tags"),
    ("tag: ''", "where.tag", "non-empty name"),
    ("lifecycle_stage: [at_risk]", "where.lifecycle_stage", "one operator"),
    ("consent: {medium: email}", "where.consent.medium", "unknown key of consent"),
    ("event: {within_days: 7}", "where.event", "needs a type"),
    ("event: {type: []}", "where.event.type", "non-empty list"),
    ("event: {type: add_to_cart, within_day: 7}", "where.event.within_day", "did you mean 'within_days'"),
    ("event: {type: add_to_cart, within_days: 7, before_days: 30}", "where.event", "one window at most"),
    ("event: {type: add_to_cart, since: signup}", "where.event.since", "takes `entry`"),
    ("event: {type: add_to_cart, not_followed_by: email}", "where.event.not_followed_by", "takes: order"),
    ("event: {type: add_to_cart, count: 3}", "where.event.count", "one operator"),
    ("event: {type: add_to_cart, count: {gte: -1}}", "where.event.count.gte", "whole number >= 0"),
    ("event: {type: add_to_cart, count: {top_share: 0.1}}", "where.event.count.top_share", "does not apply here"),
    ("event: {type: add_to_cart, between: [2026-03-01]}", "where.event.between", "two dates"),
    ("event: {type: add_to_cart, between: [2026-03-01, soon]}", "where.event.between[1]", "a date like"),
    ("event: {type: add_to_cart, between: [2026-03-09, 2026-03-01]}", "where.event.between", "on or before"),
    ("event: {type: add_to_cart, where: {tag: vip}}", "where.event.where", "unknown where condition 'tag'"),
    ("event: {type: add_to_cart, where: {all: [{attribute: {name: url}}]}}",
     "where.event.where.all[0].attribute", "exactly one operator"),
    ("order: {sum: {gte: lots}}", "where.order.sum.gte", "compared with a number"),
    ("order: {count: {eq: 1}, amount: 3}", "where.order.amount", "unknown key of order"),
    ("message: {campaign: x}", "where.message", "exactly one of sent, opened"),
    ("message: {campaign: x, sent: true, clicked: true}", "where.message", "exactly one of"),
    ("message: {campaign: x, clicked: yes please}", "where.message.clicked", "true or false"),
    ("message: {campaign: [], sent: true}", "where.message.campaign", "non-empty list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "path", "words"), PARSE_ERRORS, ids=[p[1] + " " + p[2] for p in PARSE_ERRORS]
)
def test_parse_errors_name_file_and_path(text: str, path: str, words: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: {path}: "), message
    assert words in message, message
    assert caught.value.source == SOURCE and caught.value.path == path


def test_the_example_error_reads_as_documented() -> None:
    with pytest.raises(ConditionError) as caught:
        parse("all: [{tag: vip}, {consent: email}, {event: {type: product_view, within_days: two}}]")
    assert str(caught.value) == (
        "config/audiences/cart_rescue.yml: where.all[2].event.within_days: "
        "must be a whole number of days >= 1 (got 'two')"
    )


COMPILE_ERRORS = [
    # unknown names list the known ones (or the closest)
    ("attribute: {name: contry, eq: DE}", "where.attribute.name", "did you mean 'country'"),
    ("attribute: {name: shoe_size, eq: 42}", "where.attribute.name", "known: acquisition_medium"),
    ("attribute: {name: as_of_date, eq: 2026-01-01}", "where.attribute.name", "not addressable"),
    ("tag: vipp", "where.tag", "did you mean 'vip'"),
    ("tag: {in: [vip, gold]}", "where.tag[1]", "unknown tag 'gold'"),
    ("lifecycle_stage: at-risk", "where.lifecycle_stage.eq", "did you mean 'at_risk'"),
    ("lifecycle_stage: {in: [new, lapsed]}", "where.lifecycle_stage.in[1]", "known: active"),
    ("rfm_segment: {not_in: [lost]}", "where.rfm_segment.not_in[0]", "did you mean 'Lost'"),
    ("rfm: {name: recency, lt: 30}", "where.rfm.name", "did you mean 'recency_days'"),
    ("score: {name: churn, gte: 0.5}", "where.score.name", "known: churn_probability"),
    ("consent: whatsapp", "where.consent", "known: email, push, sms"),
    ("audience: recent_buyer", "where.audience", "did you mean 'recent_buyers'"),
    ("event: {type: prodct_view}", "where.event.type", "did you mean 'product_view'"),
    ("event: {type: [add_to_cart, wishlist]}", "where.event.type[1]", "Catalog.with_event_types"),
    ("event: {type: add_to_cart, where: {attribute: {name: colour, eq: red}}}",
     "where.event.where.attribute.name", "unknown field 'colour'"),
    ("event: {type: add_to_cart, where: {attribute: {name: type, eq: add-to-cart}}}",
     "where.event.where.attribute.eq", "did you mean 'add_to_cart'"),
    ("order: {where: {attribute: {name: coupon, eq: X}}}", "where.order.where.attribute.name",
     "did you mean 'coupon_code'"),
    ("order: {where: {attribute: {name: status, eq: complete}}}", "where.order.where.attribute.eq",
     "did you mean 'completed'"),
    ("message: {campaign: x, channel: fax, sent: true}", "where.message.channel", "known: email, push, sms"),
    # wrong types and impossible comparisons
    ("attribute: {name: country, top_share: 0.1}", "where.attribute.top_share",
     "top_share does not apply to country (text: use one of eq, ne, in, not_in, is_null)"),
    ("attribute: {name: country, gte: DE}", "where.attribute.gte", "does not apply to country"),
    ("attribute: {name: country, eq: 12}", "where.attribute.eq", "country is text: got 12 (quote it"),
    ("attribute: {name: revenue, eq: lots}", "where.attribute.eq", "revenue is number"),
    ("attribute: {name: revenue, in: [1, two]}", "where.attribute.in[1]", "revenue is number"),
    ("attribute: {name: is_buyer, eq: 1}", "where.attribute.eq", "is_buyer is boolean"),
    ("attribute: {name: is_buyer, gt: true}", "where.attribute.gt", "does not apply to is_buyer"),
    ("attribute: {name: signed_up_at, eq: 2026-01-01}", "where.attribute.eq", "does not apply to signed_up_at"),
    ("attribute: {name: signed_up_at, gte: last week}", "where.attribute.gte", "compare it with a date"),
    ("attribute: {name: revenue, within_days: 3}", "where.attribute.within_days", "does not apply to revenue"),
    ("attribute: {name: email, eq: a@example.com}", "where.attribute.eq", "personal data: only is_null"),
    ("lifecycle_stage: {gte: new}", "where.lifecycle_stage.gte", "does not apply to lifecycle_stage"),
    ("rfm_segment: {top_share: 0.1}", "where.rfm_segment.top_share", "does not apply to rfm_segment"),
    ("days_in_stage: {eq: soon}", "where.days_in_stage.eq", "days_in_stage is integer"),
    ("score: {name: churn_probability, eq: high}", "where.score.eq", "is number"),
    ("score: {name: p_alive, within_days: 3}", "where.score.within_days", "does not apply to score p_alive"),
    ("event: {type: add_to_cart, where: {attribute: {name: url, top_share: 0.1}}}",
     "where.event.where.attribute.top_share", "does not apply to url"),
    ("order: {where: {attribute: {name: amount, top_share: 0.1}}}", "where.order.where.attribute.top_share",
     "does not apply to amount"),
    ("order: {where: {attribute: {name: amount, gt: much}}}", "where.order.where.attribute.gt", "amount is number"),
    # only available in journeys
    ("event: {type: add_to_cart, since: entry}", "where.event.since", "needs an entry time"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "path", "words"), COMPILE_ERRORS, ids=[p[1] + " " + p[2] for p in COMPILE_ERRORS]
)
def test_compile_errors_name_file_and_path(text: str, path: str, words: str) -> None:
    cond = parse(text)  # the shape is fine: the catalog finds what is wrong
    for target in ("duckdb", "dbt"):
        with pytest.raises(ConditionError) as caught:
            compile_condition(cond, CATALOG, CompileContext(target=target))
        message = str(caught.value)
        assert message.startswith(f"{SOURCE}: {path}: "), message
        assert words in message, message


def test_no_audiences_known_says_so() -> None:
    with pytest.raises(
        ConditionError, match=r"where.audience: unknown audience 'x' \(no audiences are known"
    ):
        compile_condition(parse("audience: x"), Catalog.default(), CompileContext())


def test_text_dbt_would_read_as_jinja_is_refused_for_the_dbt_target_only() -> None:
    text = "attribute: {name: city, in: [Berlin, '{{ run_query(\"drop schema marts\") }}']}"
    with pytest.raises(ConditionError) as caught:
        compile_(text, "dbt")
    assert str(caught.value).startswith(f"{SOURCE}: where.attribute.in[1]: text containing '{{{{'")
    sql, params = compile_(text, "duckdb")  # bound, so harmless at runtime
    assert params == ["Berlin", '{{ run_query("drop schema marts") }}'] and "{{" not in sql


def test_dbt_literals_double_quotes_and_refuse_nul() -> None:
    sql, _ = compile_('rfm_segment: "Can\'t Lose"', "dbt")
    assert "'Can''t Lose'" in sql
    with pytest.raises(ConditionError, match=r"where.attribute.eq: cannot quote"):
        compile_('attribute: {name: city, eq: "a\\0b"}', "dbt")


def test_extending_the_catalog() -> None:
    cond = parse("all: [{tag: gold}, {event: {type: wishlist_add}}]")
    catalog = CATALOG.with_tags(["gold"]).with_event_types(["wishlist_add"])
    sql, params = compile_condition(cond, catalog, CompileContext())
    assert params[:2] == ["gold", "wishlist_add"] and "marts.customer_tags" in sql


def test_context_checks() -> None:
    with pytest.raises(ValueError, match="target 'spark' is not one of dbt, duckdb, postgres"):
        CompileContext(target="spark")
    with pytest.raises(ValueError, match="dbt var as_of"):
        import datetime as dt

        CompileContext(target="dbt", as_of=dt.date(2026, 1, 1))
