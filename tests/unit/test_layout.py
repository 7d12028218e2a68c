"""The layout's import rules (docs/architecture.md, "Where the code lives"), read from the code.

Every .py file of the repository is parsed (ast), with every import it makes, at the top or inside
a function, and the rules are checked:

- nothing outside tideline/demo/, the CLI's demo command (tideline/commands/demo.py), tests/ and
  bench/ imports the demo world (tideline.demo);
- activation/ and models_ml/ import nothing from orchestration/ or tideline/;
- tideline/'s core (all but the CLI: tideline/cli.py, tideline/commands/) imports no orchestration;
- every module under orchestration/ imports dagster, and none is over 400 lines;
- no code writes os.environ except the CLI entry point (tideline/cli.py); tests use monkeypatch;
- only the two entry points read os.environ in tideline/ and orchestration/: tideline/cli.py and
  the Dagster code location (orchestration/definitions.py); the rest gets settings as values.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", ".git", ".tideline", "dbt_packages", "target", "logs", "node_modules", "__pycache__"}
MAX_ORCHESTRATION_LINES = 400
DEMO_IMPORTERS = ("tideline/demo/", "tideline/commands/demo.py", "tests/", "bench/")
ENV_WRITERS = {"tideline/cli.py"}
# the entry points: the CLI, the Dagster code location, and the HTTP sink's own command line
# (`python -m tideline.demo.sinks.http_sink --secret-env NAME`)
ENV_READERS = {"tideline/cli.py", "orchestration/definitions.py", "tideline/demo/sinks/http_sink.py"}
_ENV_MUTATORS = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"}


@dataclass
class Module:
    path: str  # relative to the repository, with forward slashes
    name: str  # dotted module name
    lines: int
    imports: set[str] = field(default_factory=set)  # every module it imports (dotted, absolute)
    env_writes: list[int] = field(default_factory=list)  # line numbers
    env_reads: list[int] = field(default_factory=list)


def _python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name not in SKIPPED_DIRS and not path.name.startswith("."):
            yield from _python_files(path)
        elif path.suffix == ".py":
            yield path


def _module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_os_environ(node: ast.AST, aliases: set[str]) -> bool:
    """`os.environ`, or a name bound by `from os import environ [as x]` (`aliases`)."""
    if isinstance(node, ast.Attribute) and node.attr == "environ":
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in aliases


def parse(path: Path) -> Module:
    relative = path.relative_to(REPO)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(relative))
    module = Module(relative.as_posix(), _module_name(relative), len(source.splitlines()))
    package = module.name if path.name == "__init__.py" else module.name.rpartition(".")[0]
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name == "environ"
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            module.imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            module.imports.add(base)
            module.imports.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            if any(isinstance(t, ast.Subscript) and _is_os_environ(t.value, aliases) for t in targets):
                module.env_writes.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if _is_os_environ(func.value, aliases) and func.attr in _ENV_MUTATORS:
                module.env_writes.append(node.lineno)
            elif isinstance(func.value, ast.Name) and func.value.id == "os":
                if func.attr in ("putenv", "unsetenv"):
                    module.env_writes.append(node.lineno)
                elif func.attr == "getenv":
                    module.env_reads.append(node.lineno)
        if _is_os_environ(node, aliases):
            module.env_reads.append(node.lineno)
    module.env_writes.sort()
    module.env_reads.sort()
    return module


@pytest.fixture(scope="module")
def modules() -> list[Module]:
    return [parse(path) for path in _python_files(REPO)]


def _imports_package(module: Module, package: str) -> list[str]:
    return sorted(name for name in module.imports if name == package or name.startswith(package + "."))


def test_the_tree_has_the_documented_homes(modules: list[Module]) -> None:
    names = {m.name for m in modules}
    for expected in (
        "tideline.cli",
        "tideline.settings",
        "tideline.serving",
        "tideline.dbt_manifest",
        "tideline.landing.loader",
        "tideline.reporting.formats",
        "tideline.reporting.report",
        "tideline.reporting.summary",
        "tideline.demo.data",
        "tideline.demo.audience",
        "tideline.demo.shop",
        "tideline.demo.sinks.smtp_sink",
        "tideline.demo.local",
        "tideline.demo.loop",
        "orchestration.definitions",
        "orchestration.resources",
    ):
        assert expected in names, f"{expected} is missing: docs/architecture.md says it is there"
    architecture = (REPO / "docs" / "architecture.md").read_text()
    for module in modules:
        if module.path.startswith(("tideline/", "orchestration/")) and not module.path.endswith(
            "__init__.py"
        ):
            assert Path(module.path).name in architecture, (
                f"{module.path} is not in docs/architecture.md's tree"
            )


def test_only_the_demo_command_and_tests_import_the_demo_world(modules: list[Module]) -> None:
    offenders = {
        m.path: _imports_package(m, "tideline.demo")
        for m in modules
        if not m.path.startswith(DEMO_IMPORTERS) and _imports_package(m, "tideline.demo")
    }
    assert offenders == {}, "product code imports the demo world"


def test_activation_and_models_ml_import_no_orchestration_nor_tideline(modules: list[Module]) -> None:
    offenders = {
        m.path: _imports_package(m, "orchestration") + _imports_package(m, "tideline")
        for m in modules
        if m.path.startswith(("activation/", "models_ml/"))
        and (_imports_package(m, "orchestration") or _imports_package(m, "tideline"))
    }
    assert offenders == {}


def test_tideline_core_imports_no_orchestration(modules: list[Module]) -> None:
    offenders = {
        m.path: _imports_package(m, "orchestration")
        for m in modules
        if m.path.startswith("tideline/")
        and m.path != "tideline/cli.py"
        and not m.path.startswith("tideline/commands/")
        and _imports_package(m, "orchestration")
    }
    assert offenders == {}, "only the CLI runs the Dagster code location"


def test_every_orchestration_module_is_dagster_wiring_of_at_most_400_lines(modules: list[Module]) -> None:
    wiring = [
        m for m in modules if m.path.startswith("orchestration/") and m.path != "orchestration/__init__.py"
    ]
    assert len(wiring) >= 10
    without_dagster = [m.path for m in wiring if not _imports_package(m, "dagster")]
    assert without_dagster == [], (
        "a module of the Dagster layer that does not import dagster belongs elsewhere"
    )
    too_long = {m.path: m.lines for m in wiring if m.lines > MAX_ORCHESTRATION_LINES}
    assert too_long == {}


def test_only_the_cli_entry_point_writes_the_environment(modules: list[Module]) -> None:
    writers = {m.path: m.env_writes for m in modules if m.env_writes and m.path not in ENV_WRITERS}
    assert writers == {}, "set environment variables with monkeypatch (tests) or pass values as data"


def test_settings_are_read_from_the_environment_at_the_entry_points_only(modules: list[Module]) -> None:
    readers = {
        m.path: m.env_reads
        for m in modules
        if m.path.startswith(("tideline/", "orchestration/")) and m.env_reads and m.path not in ENV_READERS
    }
    assert readers == {}, "resolve settings once (Settings.from_env at an entry point) and pass them on"


def test_the_rules_see_what_they_check(tmp_path: Path) -> None:
    """The parser finds lazy and relative imports and every way of writing the environment."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "mod.py"
    source.write_text(
        "import os\n"
        "from os import environ\n"
        "from . import sibling\n"
        "def f():\n"
        "    from tideline.demo.data import generate_demo_data\n"
        "    os.environ['A'] = '1'\n"
        "    os.environ.update(B='2')\n"
        "    environ.setdefault('C', '3')\n"
        "    del os.environ['A']\n"
        "    os.putenv('D', '4')\n"
        "    return os.getenv('E'), os.environ.get('F')\n"
    )
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        module = parse(source)
    finally:
        REPO = saved
    assert "tideline.demo.data" in module.imports and "pkg.sibling" in module.imports
    assert module.env_writes == [6, 7, 8, 9, 10]
    assert 11 in module.env_reads
