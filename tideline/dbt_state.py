"""Skip the dbt nodes whose inputs did not change since they were last built.

A daily run with nothing new (or with new rows in one source) should not rebuild and retest every
table. Before each dbt build, every node gets an *input digest*:

  - the project digest: every file of the dbt project (models, macros, seeds, YAML rules such as
    tags.yml and audiences/), the dbt version and the run's vars but the as-of date, so any code,
    rule or threshold change rebuilds everything;
  - the as-of date (an empty `as_of` is today) for a node whose macros reach `as_of_date`: a new
    day rebuilds what is computed as of a day (RFM, lifecycle, tags...), not what is not (staging);
  - the content fingerprint of each source the node reads (tideline.fingerprint: row count and a
    sum of row hashes: any inserted, deleted or updated row changes it), without the columns its
    `meta: fingerprint_ignores` lists, and not at all for a source whose meta says
    `fingerprint: ignore` (the landing loader's files and loads: they say where rows came from,
    the entity tables say what they are);
  - the digests of the nodes it reads: the one computed now for a node in this build, the stored
    one (what its table holds) for a node built by the other dbt step.

A node is *reused* when its digest equals the one stored at its last successful build, that build
succeeded (a model or seed: `success`; a test: `pass` or `warn`) and, for a model or seed, its
relation is still in the warehouse. Reused nodes are left out of dbt's selection (`--exclude`);
when nothing is left, dbt is not started at all. Dagster still gets an output for each reused
model (metadata `reused` and `inputs_digest`) and a check result for each reused test (its
stored outcome), so downstream steps run and the UI says why nothing was rebuilt. After the
build, each node dbt ran is stored with its digest and status in `tideline_build.dbt_nodes`.
`--full-refresh` (and a failed or skipped node) always builds.

Digests are deterministic given the inputs, so a node that is reused holds what a rebuild would
produce, as long as every model is a function of its sources, its parents, the project and the
vars: models read no files and no clock (only the as-of date), which tests/unit/test_dbt_state.py
checks on the project.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activation.warehouse import quote_identifier
from tideline.fingerprint import digest, table_fingerprint

STATE_SCHEMA = "tideline_build"
STATE_TABLE = "dbt_nodes"
BUILT = frozenset({"success", "pass", "warn"})
SKIPPED_DIRS = frozenset({"target", "logs", "dbt_packages", "__pycache__"})


@dataclass(frozen=True)
class Stored:
    """A node's row in tideline_build.dbt_nodes."""

    digest: str
    status: str
    failures: int
    run_id: str
    built_at: dt.datetime | None


@dataclass
class BuildPlan:
    """What this build runs and what it reuses; `digests` are this build's input digests."""

    digests: dict[str, str]
    reused: dict[str, Stored] = field(default_factory=dict)
    build: set[str] = field(default_factory=set)
    reasons: dict[str, str] = field(default_factory=dict)  # unique_id -> why it is built

    @property
    def nothing_to_build(self) -> bool:
        return not self.build

    def why(self, examples: int = 3) -> str:
        """'; built because: inputs changed 240 (e.g. stg_x, ...), never built 3' for the run log:
        which sources' changes a rebuild traces back to is then one look at the examples."""
        by_reason: dict[str, list[str]] = {}
        for unique_id, reason in sorted(self.reasons.items()):
            key = "read by a test that runs" if reason.startswith("read by ") else reason
            by_reason.setdefault(key, []).append(unique_id.rsplit(".", 1)[-1])
        parts = [
            f"{reason} {len(ids)} (e.g. {', '.join(ids[:examples])})"
            for reason, ids in sorted(by_reason.items(), key=lambda item: -len(item[1]))
        ]
        return "; built because: " + ", ".join(parts) if parts else ""


def project_digest(project_dir: Path, variables: Mapping[str, Any], dbt_version: str) -> str:
    """One hash of the dbt project's files, the dbt version and the vars but the as-of date."""
    sha = hashlib.sha256()
    for path in sorted(_project_files(project_dir)):
        sha.update(str(path.relative_to(project_dir)).encode())
        sha.update(b"\0")
        sha.update(path.read_bytes())
        sha.update(b"\0")
    # where the warehouse is and how much memory dbt may use do not change what a model holds;
    # the as-of date counts only for the nodes that use it (plan_build)
    ignored = {
        "as_of",
        "tideline_warehouse",
        "tideline_memory_limit",
        "tideline_duckdb_threads",
        "tideline_temp_dir",
    }
    resolved = {name: value for name, value in variables.items() if name not in ignored}
    return digest({"files": sha.hexdigest(), "vars": resolved, "dbt": dbt_version})


def as_of_date(variables: Mapping[str, Any]) -> str:
    """The as-of date a build computes for: the `as_of` var, or today when it is empty."""
    value = str(variables.get("as_of") or "").strip()
    return value or dt.date.today().isoformat()


AS_OF_MACRO = "macro.tideline.as_of_date"


def uses_as_of(manifest: Mapping[str, Any], unique_id: str) -> bool:
    """Whether a node's macros (and the macros they call) reach the as-of date."""
    macros, seen = manifest.get("macros", {}), set()
    pending = list(manifest["nodes"][unique_id]["depends_on"].get("macros", []))
    while pending:
        name = pending.pop()
        if name in seen or name not in macros:
            continue
        seen.add(name)
        pending += macros[name]["depends_on"].get("macros", [])
    return AS_OF_MACRO in seen


def _project_files(project_dir: Path) -> Iterable[Path]:
    for path in project_dir.rglob("*"):
        relative = path.relative_to(project_dir).parts
        if path.is_file() and not SKIPPED_DIRS.intersection(relative) and not path.name.startswith("."):
            yield path


def plan_build(
    con: Any,
    manifest: Mapping[str, Any],
    selected: Iterable[str],
    project: str,
    full_refresh: bool = False,
    as_of: str = "",
) -> BuildPlan:
    """Which of the `selected` unique ids (models, seeds, tests) to build and which to reuse;
    `as_of` is the date the build computes for (as_of_date)."""
    selected = set(selected)
    nodes = manifest["nodes"]
    relations = _relations(con)
    stored = load_state(con, relations)
    digests: dict[str, str] = {}
    fingerprints: dict[str, str] = {}

    def node_digest(unique_id: str) -> str:
        if unique_id in digests:
            return digests[unique_id]
        if unique_id not in selected and unique_id in stored:  # built by the other dbt step
            digests[unique_id] = stored[unique_id].digest
            return digests[unique_id]
        parents = []
        for parent in sorted(nodes[unique_id]["depends_on"].get("nodes", [])):
            if parent.startswith("source."):
                parents.append((parent, source_fingerprint(parent)))
            elif parent in nodes:
                parents.append((parent, node_digest(parent)))
        dated = as_of if uses_as_of(manifest, unique_id) else None
        digests[unique_id] = digest(
            {"project": project, "node": unique_id, "parents": parents, "as_of": dated}
        )
        return digests[unique_id]

    def source_fingerprint(unique_id: str) -> str:
        if unique_id not in fingerprints:
            source = manifest["sources"][unique_id]
            table = source.get("identifier") or source["name"]
            meta = source.get("meta") or source.get("config", {}).get("meta") or {}
            if meta.get("fingerprint") == "ignore":  # bookkeeping that says where, not what
                fingerprints[unique_id] = "ignored"
            else:
                ignore = meta.get("fingerprint_ignores") or ()
                fingerprints[unique_id] = table_fingerprint(con, source["schema"], table, ignore)
        return fingerprints[unique_id]

    plan = BuildPlan(digests=digests)
    for unique_id in sorted(selected, key=lambda u: node_depth(nodes, u)):
        node = nodes[unique_id]
        wanted = node_digest(unique_id)
        previous = stored.get(unique_id)
        reason = _why_build(node, wanted, previous, relations, full_refresh)
        if reason:
            plan.build.add(unique_id)
            plan.reasons[unique_id] = reason
        else:
            plan.reused[unique_id] = previous
    _build_parents_of_tests_that_run(nodes, plan)
    return plan


def plan_everything(selected: Iterable[str], reason: str) -> BuildPlan:
    """A plan that builds every selected node, for `reason`: a warehouse where the reuse does not
    run (the postgres target: the fingerprints are DuckDB SQL, see docs/scaling.md)."""
    selected = set(selected)
    return BuildPlan(digests={}, build=selected, reasons=dict.fromkeys(selected, reason))


def _build_parents_of_tests_that_run(nodes: Mapping[str, Any], plan: BuildPlan) -> None:
    """dbt drops a test when any node it reads is excluded (a relationships test between a reused
    and a rebuilt model would silently not run), so a reused node read by a test that runs is
    built again (from the same inputs: the same content)."""
    for unique_id in sorted(plan.build):
        if nodes[unique_id]["resource_type"] != "test":
            continue
        for parent in nodes[unique_id]["depends_on"].get("nodes", []):
            if parent in plan.reused:
                del plan.reused[parent]
                plan.build.add(parent)
                plan.reasons[parent] = f"read by {nodes[unique_id]['name']}, which runs"


def _why_build(
    node: Mapping[str, Any],
    wanted: str,
    previous: Stored | None,
    relations: set[tuple[str, str]],
    full_refresh: bool,
) -> str:
    """'' when the node can be reused, else why it is built."""
    if full_refresh:
        return "full refresh"
    if previous is None:
        return "never built"
    if previous.status not in BUILT:
        return f"last build {previous.status}"
    if previous.digest != wanted:
        return "inputs changed"
    relation = (node["schema"].lower(), (node.get("alias") or node["name"]).lower())
    materialized = node["resource_type"] in ("model", "seed", "snapshot")
    if materialized and node["config"].get("materialized") != "ephemeral" and relation not in relations:
        return "table missing"
    # a parent built now (e.g. its table was missing) is rebuilt from the same inputs: same content
    return ""


def node_depth(nodes: Mapping[str, Any], unique_id: str, seen: dict[str, int] | None = None) -> int:
    """1 + the depth of the deepest node it reads (sources and seeds' parents count 0)."""
    seen = {} if seen is None else seen
    if unique_id not in seen:
        parents = [p for p in nodes[unique_id]["depends_on"].get("nodes", []) if p in nodes]
        seen[unique_id] = 1 + max((node_depth(nodes, p, seen) for p in parents), default=0)
    return seen[unique_id]


def _relations(con: Any) -> set[tuple[str, str]]:
    rows = con.execute(
        "select lower(table_schema), lower(table_name) from information_schema.tables"
    ).fetchall()
    return {(schema, name) for schema, name in rows}


def load_state(con: Any, relations: set[tuple[str, str]] | None = None) -> dict[str, Stored]:
    """The stored digest and outcome of every node built before ({} on a new warehouse).
    `relations`: the warehouse's (schema, table) names when the caller has them already."""
    relations = _relations(con) if relations is None else relations
    if (STATE_SCHEMA, STATE_TABLE) not in relations:
        return {}
    rows = con.execute(
        f"select unique_id, digest, status, failures, run_id, built_at from {_state_relation()}"
    ).fetchall()
    return {row[0]: Stored(row[1], row[2], row[3] or 0, row[4], row[5]) for row in rows}


def save_state(con: Any, plan: BuildPlan, results: Iterable[Mapping[str, Any]], run_id: str) -> int:
    """Stores each node dbt ran (its digest from the plan, its status); returns how many."""
    rows = [
        (
            r["unique_id"],
            plan.digests[r["unique_id"]],
            r.get("status") or "",
            int(r.get("failures") or 0),
            run_id,
        )
        for r in results
        if r.get("unique_id") in plan.digests
    ]
    con.execute(f"create schema if not exists {quote_identifier(STATE_SCHEMA)}")
    con.execute(
        f"""create table if not exists {_state_relation()} (
            unique_id varchar primary key, digest varchar not null, status varchar not null,
            failures bigint, run_id varchar, built_at timestamp)"""
    )
    if rows:
        con.executemany(
            f"""insert or replace into {_state_relation()}
                (unique_id, digest, status, failures, run_id, built_at)
                values (?, ?, ?, ?, ?, current_timestamp)""",
            rows,
        )
    return len(rows)


def _state_relation() -> str:
    return f"{quote_identifier(STATE_SCHEMA)}.{quote_identifier(STATE_TABLE)}"


def exclude_argument(manifest: Mapping[str, Any], unique_ids: Iterable[str]) -> str:
    """dbt's --exclude value naming these nodes (by their fully qualified names)."""
    return " ".join(sorted("fqn:" + ".".join(manifest["nodes"][u]["fqn"]) for u in unique_ids))
