"""The condition language: one YAML shape for audiences, tag rules, journeys and lead scoring.

    cond = parse_condition(raw, source="config/audiences/x.yml", path="where")
    sql, params = compile_condition(cond, Catalog.default(), CompileContext(target="duckdb"))
    con.execute(f"select c.customer_id from marts.dim_customers as c where {sql}", params)

parse (YAML value -> immutable, validated AST), Catalog (what is addressable, typed), compile
(AST -> SQL boolean over the customer row `c` for the targets dbt, duckdb and postgres).
Plain Python: no dagster, no dbt. The language is documented in docs/audiences.md.
"""

from .catalog import Catalog, Column, Relation
from .compile import (
    TARGETS,
    CompileContext,
    compile_condition,
    compile_event_filter,
    compile_last_event_at,
    compile_message_filter,
)
from .errors import ConditionError
from .nodes import Condition
from .parse import parse_condition

__all__ = [
    "TARGETS",
    "Catalog",
    "Column",
    "CompileContext",
    "Condition",
    "ConditionError",
    "Relation",
    "compile_condition",
    "compile_event_filter",
    "compile_last_event_at",
    "compile_message_filter",
    "parse_condition",
]
