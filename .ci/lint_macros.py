"""Lint the SQL inside dbt macros with sqlfluff (part of `make lint` and the pre-commit hooks).

sqlfluff lints no macro body: the dbt templater skips macro files ("Skipped file ... because it is
a macro") and the jinja templater renders a file of `{% macro %}` definitions to nothing. So this
script lints each macro on its own: the body is cut out of its file and templated with sqlfluff's
jinja templater (the project's sqlfluff rules from pyproject.toml, dbt's builtins, the project's
macros loadable, each parameter bound to its own name, so `{{ expr }}` renders as the identifier
`expr`). A body that is an expression is linted as the target of a `select`; a body that is a
statement (select, create, a bracketed select) as it is. Every `{% if %}` branch is linted
(sqlfluff renders the unreached ones as variants). Output of nested macro calls is templated code,
ignored here as in models: each macro is linted where it is written. Positions are reported as
file:line:column of the macro file, so a finding is fixed where it stands.

Generic tests (`{% test %}` blocks) are macros too and are linted the same way.

Usage: python .ci/lint_macros.py [macro files or folders]
       (default: dbt_project/macros and dbt_project/tests/generic)
Exits 1 when anything is found, 0 when all is clean.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.nodes
from sqlfluff.core import FluffConfig, Linter

ROOT = Path(__file__).resolve().parent.parent
MACRO_DIR = ROOT / "dbt_project" / "macros"

# A macro block (or a generic test, dbt's other kind of macro): its opening tag, the body, and the
# closing tag (macros do not nest).
MACRO = re.compile(
    r"{%-?\s*(?P<kind>macro|test)\s+(?P<name>\w+)\s*\((?P<signature>.*?)\)\s*-?%}"
    r"(?P<body>.*?){%-?\s*end(?P=kind)\s*-?%}",
    re.DOTALL,
)
# Jinja comments, statements and expressions: what is left when they are removed is the body's SQL.
JINJA = re.compile(r"{#.*?#}|{%.*?%}|{{.*?}}", re.DOTALL)
STATEMENT_START = re.compile(r"^\(?\s*(select|with|create|insert|update|delete|alter)\b", re.IGNORECASE)

# Arguments for parameters a bare name cannot stand for (lists that are iterated, for instance).
EXAMPLE_ARGUMENTS: dict[str, dict[str, object]] = {
    "reject_rows": {
        "checks": [("email", "email", "field_cleared"), ("order_id", "order_id", "duplicate")],
    },
    "unique_combination": {"columns": ["customer_id", "tag"]},
    "campaign_rate": {"name": "open_rate"},  # a rate the macro knows (it refuses any other)
    "python_owned_relation": {"columns": []},  # the columns are the callers' (ledger, journey state)
    "chi_square_tail_at": {"k": 3},  # a whole number of degrees of freedom (the macro does arithmetic on it)
}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.code} {self.message}"


@dataclass(frozen=True)
class Macro:
    path: Path
    name: str
    parameters: tuple[str, ...]
    body: str
    body_line: int  # the line of the macro file the body's first character stands on
    body_column: int  # its column (1-based)


def macros_in(path: Path) -> Iterator[Macro]:
    """Every macro defined in a file, with its parameter names (from Jinja's own parser)."""
    source = path.read_text()
    for match in MACRO.finditer(source):
        signature = f"{{% macro {match['name']}({match['signature']}) %}}{{% endmacro %}}"
        node = next(jinja2.Environment().parse(signature).find_all(jinja2.nodes.Macro))
        start = match.start("body")
        line = source.count("\n", 0, start) + 1
        column = start - (source.rfind("\n", 0, start) + 1) + 1
        yield Macro(path, node.name, tuple(a.name for a in node.args), match.group("body"), line, column)


@dataclass(frozen=True)
class Lintable:
    """A macro body as sqlfluff reads it, and how its positions map back to the macro file."""

    template: str
    first_line: int  # the template line the body's first line stands on
    line: int  # ... and that line's number in the macro file
    first_column_shift: int  # added to columns on the body's first line
    column_shift: int  # added to columns on the others

    def position(self, line: int, column: int) -> tuple[int, int]:
        """The macro file's line and column for a template position (the wrapper's: the body's)."""
        if line < self.first_line:
            return self.line, 1
        shift = self.first_column_shift if line == self.first_line else self.column_shift
        return self.line + line - self.first_line, column + shift


def lintable(macro: Macro) -> Lintable | None:
    """A macro body ready for sqlfluff; None when it holds no SQL of its own (macros that only
    return values, raise errors or pass names on)."""
    if not JINJA.sub("", macro.body).strip():
        return None
    head, newline, rest = macro.body.partition("\n")
    if newline and not head.strip():  # the SQL starts on the line after the opening tag
        body, line = rest, macro.body_line + 1
    else:  # on the tag's line: pad it, so every line's columns are the file's
        body, line = " " * (macro.body_column - 1) + macro.body, macro.body_line
    lines = body.rstrip().split("\n")
    indent = min(len(x) - len(x.lstrip(" ")) for x in lines if x.strip())
    if STATEMENT_START.match(JINJA.sub("", body).strip()):  # a statement, moved to the left margin
        template = "\n".join(x[indent:] for x in lines) + "\n"
        return Lintable(template, 1, line, indent, indent)
    # An expression: the target of a select. The wrapper's line break and indent are the output of
    # an expression, so whitespace control at the start of the body cannot take them away.
    wrapper = "    {{ '' }}"
    first = lines[0].lstrip(" ")
    template = "select\n" + wrapper + "\n".join([first, *lines[1:]]) + "\n"
    return Lintable(template, 2, line, len(lines[0]) - len(first) - len(wrapper), 0)


def lint_macro(macro: Macro, configs: dict[str, FluffConfig]) -> list[Finding]:
    """sqlfluff's findings in one macro, at their place in the macro file."""
    prepared = lintable(macro)
    if prepared is None:
        return []
    # dispatched PostgreSQL implementations in PostgreSQL's dialect, the rest in the project's
    config = configs["postgres" if macro.name.startswith("postgres__") else "project"].copy()
    arguments = {name: name for name in macro.parameters}
    arguments.update({k: repr(v) for k, v in EXAMPLE_ARGUMENTS.get(macro.name, {}).items()})
    for name, value in arguments.items():  # sqlfluff reads context values as Python literals
        config.set_value(["templater", "jinja", "context", name], value)
    linted = Linter(config=config).lint_string(prepared.template, fname=f"{macro.path}::{macro.name}")
    findings = []
    for violation in linted.get_violations():
        line, column = prepared.position(violation.line_no, violation.line_pos)
        findings.append(Finding(macro.path, line, column, violation.rule_code(), violation.desc()))
    return findings


def project_config(**overrides: str) -> FluffConfig:
    """The project's sqlfluff configuration (pyproject.toml) with the jinja templater, dbt's
    builtins, the project's macros and the dbt names of macro_context/."""
    config = FluffConfig.from_path(str(ROOT), overrides={"templater": "jinja", **overrides})
    config.set_value(["templater", "jinja", "apply_dbt_builtins"], "true")
    config.set_value(["templater", "jinja", "load_macros_from_path"], str(MACRO_DIR))
    config.set_value(["templater", "jinja", "library_path"], str(Path(__file__).parent / "macro_context"))
    return config


def macro_files(arguments: list[str]) -> list[Path]:
    paths = [Path(a) for a in arguments] or [MACRO_DIR, ROOT / "dbt_project" / "tests" / "generic"]
    files = []
    for path in paths:
        files += sorted(path.rglob("*.sql")) if path.is_dir() else [path]
    return files


def main(arguments: list[str]) -> int:
    configs = {"project": project_config(), "postgres": project_config(dialect="postgres")}
    findings, linted, skipped = [], 0, 0
    for path in macro_files(arguments):
        for macro in macros_in(path):
            if lintable(macro) is None:
                skipped += 1
                continue
            linted += 1
            findings += lint_macro(macro, configs)
    for finding in findings:
        print(finding)
    print(
        f"macros: {linted} linted, {skipped} without SQL of their own, "
        f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
