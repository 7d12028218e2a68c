"""The dbt names a macro body sees when .ci/lint_macros.py lints it (sqlfluff's jinja templater loads
this package as its `library_path`: every public name here is in the template's context).

Only what makes the body render as SQL of the right shape: the output of these calls is templated
code, which sqlfluff parses but does not lint.
"""

import re as _re
import types as _types

# dbt's cross-database type macros render as the DuckDB type; other dbt.* macros as a call
_TYPES = {
    "type_bigint": "bigint",
    "type_boolean": "boolean",
    "type_float": "double",
    "type_int": "integer",
    "type_numeric": "numeric",
    "type_string": "varchar",
    "type_timestamp": "timestamp",
}


def _sql(value):
    """An argument as SQL: text as a quoted literal, anything else as it prints."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _call(name):
    return lambda *args, **kwargs: f"{name}({', '.join(_sql(a) for a in args)})"


class _Namespace:
    """`dbt.<macro>(...)`."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _TYPES:
            return lambda: _TYPES[name]
        return _call(name)


class _Adapter:
    """`adapter.dispatch(name, namespace)(...)` renders as `name(...)`; `adapter.get_relation`
    finds nothing (sqlfluff's variants lint the branch for an existing relation as well)."""

    @staticmethod
    def dispatch(name, namespace=None):
        return _call(name)

    @staticmethod
    def get_relation(database=None, schema=None, identifier=None):
        return None

    @staticmethod
    def get_columns_in_relation(relation):
        return []

    @staticmethod
    def check_schema_exists(database=None, schema=None):
        return True

    @staticmethod
    def drop_relation(relation):
        return ""


class _Relation:
    """`api.Relation.create(...)` renders as the relation's dotted name."""

    @staticmethod
    def create(database=None, schema=None, identifier=None, **_):
        return ".".join(str(p) for p in (schema, identifier) if p)


dbt = _Namespace()
adapter = _Adapter()
api = _types.SimpleNamespace(Relation=_Relation)
exceptions = _types.SimpleNamespace(raise_compiler_error=lambda message: "")
modules = _types.SimpleNamespace(re=_re)
execute = True
flags = _types.SimpleNamespace(WHICH="compile")
run_query = lambda sql: None  # noqa: E731 (a statement run for its effect renders nothing)
target = _types.SimpleNamespace(name="lint", schema="main", type="duckdb")
