"""The macro linter (.ci/lint_macros.py, part of `make lint`): sqlfluff itself lints no macro body,
so this checks that ours finds what sqlfluff would find in a model, in every branch, and reports it
at the macro file's own line and column."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MACROS = """\
{#- an expression -#}
{% macro expression(x) -%}
    CAST({{ x }} AS integer)
{%- endmacro %}

{% macro branches(raw, strict=true) -%}
    case
        when {{ raw }} = '' then 'blank'
        {%- if not strict %}
            when {{ raw }} IS null then 'empty'
        {%- endif %}
    end
{%- endmacro %}

{% macro statement(model) -%}
    select a
    FROM {{ ref(model) }}
{%- endmacro %}

{% macro returns_values() -%}
    {{ return(['a', 'b']) }}
{%- endmacro %}

{% macro postgres__matches(expr, pattern) -%}
    ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}
"""


@pytest.fixture(scope="module")
def lint_macros():
    spec = importlib.util.spec_from_file_location("lint_macros", ROOT / ".ci" / "lint_macros.py")
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:  # dataclasses look their module up while it loads
        patch.setitem(sys.modules, "lint_macros", module)
        spec.loader.exec_module(module)
    return module


def test_findings_in_every_kind_of_body_at_their_place_in_the_file(lint_macros, tmp_path, capsys) -> None:
    path = tmp_path / "macros.sql"
    path.write_text(MACROS)

    assert lint_macros.main([str(path)]) == 1

    out = capsys.readouterr().out.splitlines()
    found = {(line.split(": ")[1].split(" ")[0], line.split(": ")[0]) for line in out[:-1]}
    assert found == {
        ("CP03", f"{path}:3:5"),  # CAST, on the expression's first line
        ("CP01", f"{path}:3:18"),  # AS
        ("CP01", f"{path}:10:28"),  # IS, in a branch the default arguments do not reach
        ("CP01", f"{path}:17:5"),  # FROM, in a statement
    }
    # the macro that only returns values has no SQL to lint; the PostgreSQL one parses as PostgreSQL
    assert out[-1] == "macros: 4 linted, 1 without SQL of their own, 4 findings"


def test_clean_macros_pass(lint_macros, tmp_path, capsys) -> None:
    path = tmp_path / "macros.sql"
    path.write_text(
        MACROS.replace("CAST", "cast").replace("AS", "as").replace("IS", "is").replace("FROM", "from")
    )

    assert lint_macros.main([str(path)]) == 0
    assert capsys.readouterr().out.strip() == "macros: 4 linted, 1 without SQL of their own, 0 findings"
