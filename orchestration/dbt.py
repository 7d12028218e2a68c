"""The dbt project as Dagster assets.

Models, seeds and snapshots become assets keyed [schema, name] (e.g. marts/dim_customers)
and grouped by layer; dbt sources in the `landing` schema are the landing_zone
asset's outputs; dbt data tests become asset checks, and error-severity tests are
blocking, so a failing one stops everything downstream. After dbt finishes, every
materialisation gets a row count and a preview (DuckDB allows no reader while dbt
writes, so metadata is added once the dbt process has exited). dbt's own output goes to the
run's log file (RunLog), with a progress message every few seconds for the console.

The warehouse path and the as-of date reach dbt as `--vars` of each invocation (the profile reads
`var('tideline_warehouse')`), never through this process's environment. On the postgres target
dbt runs with `--target postgres` (the profile's output, TIDELINE_PG_* from the environment dbt
inherits); the reuse of unchanged nodes is off there (its fingerprints are DuckDB SQL: every
selected node is built, and the run log says why) and materialisations get a row count only.
"""

import functools
import io
import json
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import IO, Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)

from activation.warehouse import quote_identifier
from orchestration.dbt_reuse import build_selection, in_dependency_order, reused_events
from orchestration.metadata import table_metadata
from orchestration.resources import PipelineSettings, RunLog, WarehouseResource
from tideline.dbt_state import (
    as_of_date,
    exclude_argument,
    plan_build,
    plan_everything,
    project_digest,
    save_state,
)
from tideline.reporting.console import ANSI, progress_message
from tideline.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` / `make ui` rebuild the manifest when models change; elsewhere it is
# built once by `make manifest` (dbt parse) and read from target/.
dbt_project.prepare_if_dev()

LAYER_GROUPS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}


class TidelineTranslator(DagsterDbtTranslator):
    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        resource_type = props["resource_type"]
        if resource_type == "source":
            return spec.replace_attributes(key=dg.AssetKey([props["schema"], props["name"]]))
        key = dg.AssetKey([props["schema"], props["name"]])
        fqn = props.get("fqn", [])
        group = (
            "reference"
            if resource_type == "seed"
            else LAYER_GROUPS.get(fqn[1] if len(fqn) > 2 else "", "marts")
        )
        meta = props.get("config", {}).get("meta", {}) or props.get("meta", {})
        owner = meta.get("owner")
        return spec.replace_attributes(
            key=key,
            group_name=group,
            owners=[f"team:{owner}"] if owner else spec.owners,
            kinds={"dbt", "duckdb"},
        )


translator = TidelineTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def dbt_vars(settings: PipelineSettings, warehouse: WarehouseResource) -> dict[str, str]:
    """The --vars of a build: the warehouse the profile opens (dbt_project/profiles.yml), DuckDB's
    memory limit, threads and spill folder (the warehouse resource's), and the as-of date ('' =
    dbt's default, today)."""
    variables = {"tideline_warehouse": warehouse.path}
    for name, value in (
        ("tideline_memory_limit", warehouse.memory_limit),
        ("tideline_duckdb_threads", str(warehouse.threads or "")),
        ("tideline_temp_dir", warehouse.temp_directory),
    ):
        if value:
            variables[name] = value
    return {**variables, "as_of": settings.as_of} if settings.as_of else variables


# why the postgres target builds every selected node (docs/scaling.md, "Running on PostgreSQL")
NO_REUSE_ON_POSTGRES = (
    "reuse of unchanged nodes is off on PostgreSQL (its fingerprints are DuckDB SQL; issue 18)"
)

# dbt models downstream of the ML scores (source ml.customer_scores) build after the
# Python scoring asset, in a second dbt invocation; everything else builds before it.
SCORED_SELECTION = "source:ml+"


class DbtBuildConfig(dg.Config):
    """Run config of both dbt assets: `full_refresh` rebuilds the incremental models whole
    (`dbt build --full-refresh`; `tideline run --full-refresh` sets it)."""

    full_refresh: bool = False


def _run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    run_log: RunLog,
    full_refresh: bool = False,
) -> Iterator[Any]:
    variables = dbt_vars(pipeline, warehouse)
    manifest = _manifest()
    selected, checks = build_selection(context, manifest, translator, dbt_project)
    if warehouse.on_postgres:
        plan = plan_everything(selected, NO_REUSE_ON_POSTGRES)
    else:
        warehouse.wait_until_free()  # dbt opens the file itself: a BI tool holding it would fail the build
        with warehouse.connect() as con:
            plan = plan_build(
                con, manifest, selected, _project_digest(variables), full_refresh, as_of_date(variables)
            )
    context.log.info(
        f"dbt: {len(plan.build)} models and tests to build, {len(plan.reused)} reused "
        f"(their inputs have not changed since they were built){plan.why()}"
    )
    events, results, invocation = [], [], None
    if plan.build:
        args = ["build", "--vars", json.dumps(variables), *(["--full-refresh"] if full_refresh else [])]
        if plan.reused:
            args += ["--exclude", exclude_argument(manifest, plan.reused)]
        log_path = run_log.path(context.run_id)
        invocation = dbt.cli(args, context=context, raise_on_error=False)
        # dagster-dbt prints each of dbt's log lines to stdout (about 1,200 per run): they go to the
        # run log, and to stdout as well only when asked (the UI's captured stdout, `--verbose`)
        with _dbt_output(log_path, context.op_def.name, echo=run_log.echo) as out:
            progress = _Progress(context, len(plan.build))
            for event in invocation.stream():
                events.append(event)
                progress.update(event)
            out.flush()
        results = _run_results(invocation)
    events += reused_events(context, manifest, plan, checks, translator, dbt_project)
    if warehouse.on_postgres:
        with warehouse.connect_postgres() as pg:
            for event in in_dependency_order(events, manifest):
                yield _with_table_metadata(event, manifest, pg, _row_count)
    else:
        with warehouse.connect() as con:
            save_state(con, plan, results, context.run_id)
            # Dagster takes a multi-asset's outputs in dependency order: built and reused ones merged
            for event in in_dependency_order(events, manifest):
                yield _with_table_metadata(event, manifest, con)
    if invocation is not None and not invocation.is_successful():
        raise dg.Failure(
            description=f"dbt build failed: {_failed_nodes(invocation)}",
            metadata={
                "run_log": dg.MetadataValue.path(str(run_log.path(context.run_id))),
                "dbt_log": dg.MetadataValue.path(str(invocation.target_path / "dbt.log")),
            },
        )


@functools.cache
def _manifest_at(path: str, mtime_ns: int) -> Mapping[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _manifest() -> Mapping[str, Any]:
    """The parsed manifest the dbt assets were defined from (read once per version of the file)."""
    path = Path(dbt_project.manifest_path)
    return _manifest_at(str(path), path.stat().st_mtime_ns)


def _project_digest(variables: Mapping[str, Any]) -> str:
    from dbt.version import __version__ as dbt_version

    return project_digest(Path(DBT_PROJECT_DIR), variables, dbt_version)


def _run_results(invocation: Any) -> list[Mapping[str, Any]]:
    try:
        return list(invocation.get_artifact("run_results.json").get("results", []))
    except Exception:  # no artefact when dbt failed before running anything
        return []


class _Progress:
    """Logs 'progress n/total models and tests done' every few seconds while dbt runs (the console
    shows it)."""

    EVERY_SECONDS = 5.0

    def __init__(self, context: dg.AssetExecutionContext, total: int):
        self.context, self.total, self.done = context, total, 0
        self.last = time.monotonic()

    def update(self, event: Any) -> None:
        if not isinstance(event, dg.Output | dg.AssetMaterialization | dg.AssetCheckResult):
            return
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.EVERY_SECONDS or self.done == self.total:
            self.last = now
            self.context.log.info(progress_message(self.done, self.total, "models and tests done"))


class _Tee(io.TextIOBase):
    """stdout for the dbt invocation: every line to the run log without colour codes, and to the
    real stdout when echoing."""

    def __init__(self, log: IO[str], echo: IO[str] | None):
        self.log, self.echo = log, echo

    def write(self, text: str) -> int:
        self.log.write(ANSI.sub("", text))
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()


@contextmanager
def _dbt_output(log_path: Path, name: str, echo: bool) -> Iterator[IO[str]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"---- dbt output of {name} ----\n")
        tee = _Tee(log, sys.stdout if echo else None)
        with redirect_stdout(tee):
            yield tee
        log.write(f"---- end of dbt output of {name} ----\n")


def _failed_nodes(invocation: Any, limit: int = 3) -> str:
    """'model marts.x: <dbt message>; test y: Got 3 results ...' from run_results.json."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artefact when dbt failed before running anything
        results = []
    failed = [r for r in results if r.get("status") in ("error", "fail", "runtime error")]
    if not failed:
        return "dbt stopped before building (see the run log for dbt's error)"
    parts = []
    for r in failed[:limit]:
        node = r.get("unique_id", "?").split(".", 2)
        kind, name = node[0], node[-1]
        message = " ".join(str(r.get("message") or r.get("status")).split())[:300]
        parts.append(f"{kind} {name}: {message}")
    more = f" (and {len(failed) - limit} more)" if len(failed) > limit else ""
    return "; ".join(parts) + more


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    exclude=SCORED_SELECTION,
    pool="warehouse",
)
def tideline_dbt_assets(
    context: dg.AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    run_log: RunLog,
) -> Iterator[Any]:
    """Staging, intermediate and marts that do not need the ML scores."""
    yield from _run_dbt(context, dbt, warehouse, pipeline, run_log, config.full_refresh)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    select=SCORED_SELECTION,
    name="tideline_dbt_scored_assets",
    pool="warehouse",
)
def tideline_dbt_scored_assets(
    context: dg.AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    run_log: RunLog,
) -> Iterator[Any]:
    """Marts that read the ML scores (customer_tags, tag_health)."""
    yield from _run_dbt(context, dbt, warehouse, pipeline, run_log, config.full_refresh)


def _row_count(pg: Any, schema: str, table: str) -> dict:
    """dagster/row_count of a PostgreSQL table (the previews are DuckDB-only so far)."""
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    count = pg.execute(f"select count(*) from {relation}").fetchone()[0]
    return {"dagster/row_count": dg.MetadataValue.int(int(count))}


def _with_table_metadata(
    event: Any, manifest: Mapping[str, Any], con: Any, describe: Any = table_metadata
) -> Any:
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return event
    unique_id = (event.metadata or {}).get("unique_id")
    unique_id = getattr(unique_id, "value", unique_id)
    node = manifest.get("nodes", {}).get(unique_id) if unique_id else None
    if not node or "reused" in (event.metadata or {}):
        return event
    # a view's row count would run the view's whole query (at 1M customers, minutes for the
    # staging views over the events): views and ephemeral models get no count or preview
    if node.get("config", {}).get("materialized") in ("ephemeral", "view"):
        return event
    try:
        extra = describe(con, node["schema"], node["alias"])
    except Exception:  # metadata is best effort; never fail a successful build over it
        return event
    return event.with_metadata({**(event.metadata or {}), **extra})


@functools.cache
def model_key(model: str) -> dg.AssetKey:
    """The asset key of the dbt model `model`, from the manifest (the translator's [schema, name]):
    what other assets depend on, so a model moved to another schema moves its dependants along.
    Both dbt assets read the same manifest with the same translator; either one answers for all."""
    return get_asset_key_for_model([tideline_dbt_assets], model)
