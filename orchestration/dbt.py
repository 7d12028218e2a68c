"""The dbt project as Dagster assets.

Models, seeds and snapshots become assets keyed [schema, name] (e.g. marts/dim_customers)
and grouped by layer; dbt sources in the `landing` schema are the landing_zone
asset's outputs; dbt data tests become asset checks, and error-severity tests are
blocking, so a failing one stops everything downstream. After dbt finishes, every
materialisation gets a row count and a preview (DuckDB allows no reader while dbt
writes, so metadata is added once the dbt process has exited).
"""

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.metadata import table_metadata
from orchestration.resources import PipelineSettings, WarehouseResource
from orchestration.settings import DBT_PROJECT_DIR

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


def dbt_vars(settings: PipelineSettings) -> dict[str, str]:
    return {"as_of": settings.as_of} if settings.as_of else {}


# dbt models downstream of the ML scores (source ml.customer_scores) build after the
# Python scoring asset, in a second dbt invocation; everything else builds before it.
SCORED_SELECTION = "source:ml+"


def _run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
) -> Iterator[Any]:
    # The profile reads the warehouse path from the environment of the dbt process.
    os.environ["TIDELINE_WAREHOUSE"] = warehouse.path
    args = ["build"]
    variables = dbt_vars(pipeline)
    if variables:
        args += ["--vars", json.dumps(variables)]
    invocation = dbt.cli(args, context=context, raise_on_error=False)
    events = list(invocation.stream())
    manifest = invocation.manifest
    with warehouse.connect(read_only=True) as con:
        for event in events:
            yield _with_table_metadata(event, manifest, con)
    if not invocation.is_successful():
        raise dg.Failure(
            description="dbt build failed: see the failed models and error-severity checks above",
            metadata={"dbt_log": dg.MetadataValue.path(str(invocation.target_path / "dbt.log"))},
        )


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    exclude=SCORED_SELECTION,
    pool="warehouse",
)
def tideline_dbt_assets(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
) -> Iterator[Any]:
    """Staging, intermediate and marts that do not need the ML scores."""
    yield from _run_dbt(context, dbt, warehouse, pipeline)


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
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
) -> Iterator[Any]:
    """Marts that read the ML scores (customer_tags, tag_health)."""
    yield from _run_dbt(context, dbt, warehouse, pipeline)


def _with_table_metadata(event: Any, manifest: Mapping[str, Any], con: Any) -> Any:
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return event
    unique_id = (event.metadata or {}).get("unique_id")
    unique_id = getattr(unique_id, "value", unique_id)
    node = manifest.get("nodes", {}).get(unique_id) if unique_id else None
    if not node or node.get("config", {}).get("materialized") == "ephemeral":
        return event
    try:
        extra = table_metadata(con, node["schema"], node["alias"])
    except Exception:  # metadata is best effort; never fail a successful build over it
        return event
    return event.with_metadata({**(event.metadata or {}), **extra})
