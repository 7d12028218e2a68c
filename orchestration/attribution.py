"""The data-driven attribution asset: Markov removal effects per channel (models_ml/attribution.py).

It fits the chain on the paths of marts.fct_attribution_paths (built by the first dbt
invocation, which holds the path rules and the lookback), writes ml.channel_removal_effects,
and the second dbt invocation (models downstream of source:ml) builds fct_attribution and
channel_roi from it.
"""

import datetime as dt

import dagster as dg

from models_ml.attribution import load_paths, removal_effects, write_removal_effects
from orchestration.dbt import model_key
from orchestration.resources import PipelineSettings, WarehouseResource

REMOVAL_EFFECTS_KEY = dg.AssetKey(["ml", "channel_removal_effects"])
PATHS_KEY = model_key("fct_attribution_paths")


@dg.asset(
    key=REMOVAL_EFFECTS_KEY,
    deps=[PATHS_KEY],
    group_name="ml",
    kinds={"duckdb", "numpy"},
    pool="warehouse",
    description="Markov-chain removal effect per channel from the paths of marts.fct_attribution_paths "
    "(converting and not), solved exactly; fct_attribution's data_driven model splits credit by these shares.",
)
def channel_removal_effects(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineSettings
) -> dg.MaterializeResult:
    as_of = dt.date.fromisoformat(pipeline.as_of) if pipeline.as_of else dt.date.today()
    with warehouse.connect(read_only=True) as con:
        paths = load_paths(con)
    effects = removal_effects(paths)
    with warehouse.connect() as con:
        write_removal_effects(con, effects, as_of, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    converting = sum(p.converted for p in paths)
    context.log.info(
        "removal effects for %d channels from %d paths (%d converting)", len(effects), len(paths), converting
    )
    table = (
        effects.sort_values("removal_share", ascending=False).round(4).to_markdown(index=False)
        if len(effects)
        else "_no converting path: data_driven falls back to linear_"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(effects)),
            "as_of": str(as_of),
            "paths": len(paths),
            "converting_paths": converting,
            "removal_effects": dg.MetadataValue.md(table),
        }
    )
