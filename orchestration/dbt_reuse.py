"""What the dbt steps tell Dagster about the nodes they reuse (tideline/dbt_state.py decides which).

A reused model still gets an output (so the steps reading it run) with the metadata `reused` and
`inputs_digest`; a reused test gets its stored outcome as a check result. Dagster takes a
multi-asset's outputs in dependency order, so the built and reused events are merged by depth.
`build_selection` maps the step's selected asset and check keys to dbt unique ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt.asset_utils import (
    get_asset_check_key_for_test,
    get_checks_on_sources_upstream_of_selected_assets,
)

from tideline.dbt_state import BuildPlan, node_depth


def build_selection(
    context: dg.AssetExecutionContext, manifest: Mapping[str, Any], translator: Any, project: Any
) -> tuple[set[str], dict[str, dg.AssetCheckKey]]:
    """The unique ids this step builds (its selected models and seeds, and the tests reading
    them) and the check key of each test Dagster expects a result for."""
    keys = set(context.selected_asset_keys)
    models = {uid for uid, key in _node_keys(manifest, translator, project).items() if key in keys}
    expected = {*context.selected_asset_check_keys}
    expected |= set(get_checks_on_sources_upstream_of_selected_assets(context.assets_def, keys))
    test_keys = _test_keys(manifest, translator, project)
    checks = {uid: key for uid, key in test_keys.items() if key in expected}
    # the tests dbt runs in this step: those Dagster expects, and those with no check key whose
    # every parent is built here (a test reading a model of the other step runs in that one)
    unmapped = {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "test"
        and uid not in test_keys
        and all(p in models or p.startswith("source.") for p in node["depends_on"].get("nodes", []))
    }
    tests = set(checks) | unmapped
    return models | tests, checks


def _node_keys(manifest: Mapping[str, Any], translator: Any, project: Any) -> dict[str, dg.AssetKey]:
    return {
        uid: translator.get_asset_spec(manifest, uid, project).key
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed", "snapshot")
    }


def _test_keys(manifest: Mapping[str, Any], translator: Any, project: Any) -> dict[str, dg.AssetCheckKey]:
    keys = {}
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] == "test":
            key = get_asset_check_key_for_test(manifest, translator, uid, project)
            if key is not None:
                keys[uid] = key
    return keys


def reused_events(
    context: dg.AssetExecutionContext,
    manifest: Mapping[str, Any],
    plan: BuildPlan,
    checks: Mapping[str, dg.AssetCheckKey],
    translator: Any,
    project: Any,
) -> list[dg.Output | dg.AssetCheckResult]:
    """An output for each reused model (so what reads it runs) and each reused test's stored
    outcome, saying since when the inputs are unchanged."""
    node_keys, events = _node_keys(manifest, translator, project), []
    selected = set(context.selected_asset_keys)
    for uid, stored in sorted(plan.reused.items()):
        since = f"inputs unchanged since run {stored.run_id[:8]} at {stored.built_at:%Y-%m-%d %H:%M}"
        metadata = {"reused": dg.MetadataValue.text(since), "unique_id": uid}
        if uid in node_keys and node_keys[uid] in selected:
            events.append(
                dg.Output(
                    None,
                    output_name=context.assets_def.get_output_name_for_asset_key(node_keys[uid]),
                    metadata={**metadata, "inputs_digest": plan.digests[uid]},
                )
            )
        elif uid in checks:
            warned = stored.status == "warn"
            events.append(
                dg.AssetCheckResult(
                    asset_key=checks[uid].asset_key,
                    check_name=checks[uid].name,
                    passed=not warned,
                    severity=dg.AssetCheckSeverity.WARN if warned else dg.AssetCheckSeverity.ERROR,
                    metadata={**metadata, "failures": stored.failures},
                )
            )
    return events


def in_dependency_order(events: list[Any], manifest: Mapping[str, Any]) -> list[Any]:
    """The events sorted by their node's depth in the graph (a stable sort: dbt's own order, which
    is a dependency order, is kept among equals); an event naming no node stays after the one
    before it."""
    depths: dict[str, int] = {}
    keyed, depth = [], 0
    for position, event in enumerate(events):
        unique_id = _event_node(event)
        if unique_id in manifest["nodes"]:
            depth = node_depth(manifest["nodes"], unique_id, depths)
        keyed.append((depth, position, event))
    return [event for _, _, event in sorted(keyed, key=lambda item: item[:2])]


def _event_node(event: Any) -> str | None:
    unique_id = (getattr(event, "metadata", None) or {}).get("unique_id")
    return getattr(unique_id, "value", unique_id)
