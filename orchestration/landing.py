"""The landing-zone asset: snapshots the raw files into the warehouse's landing schema."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from orchestration.resources import PipelineSettings, WarehouseResource
from tideline.landing.contract import ENTITIES
from tideline.landing.loader import SCHEMA, load_landing_zone

ENTITY_KEYS = {e.name: dg.AssetKey([SCHEMA, e.name]) for e in ENTITIES}
REJECTS_KEY = dg.AssetKey([SCHEMA, "load_rejects"])
FILES_KEY = dg.AssetKey([SCHEMA, "files"])


def _spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, group_name="landing", kinds={"duckdb"})


@dg.multi_asset(
    name="landing_zone",
    specs=[
        *[_spec(ENTITY_KEYS[e.name], f"{e.path}/**: {e.meaning}") for e in ENTITIES],
        _spec(
            REJECTS_KEY,
            "Landing files and lines that could not be read at all, and files that belong to no entity.",
        ),
        _spec(FILES_KEY, "Inventory of every landing file read, with rows and status."),
    ],
    pool="warehouse",
)
def landing_zone(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineSettings
) -> Iterator[dg.MaterializeResult]:
    """Read every landing file (CSV, Parquet, JSON Lines) as text, with file and row."""
    with warehouse.connect() as con:
        report = load_landing_zone(pipeline.raw_dir, con)
    context.log.info(
        "landing: %s files, %s rows, %s unreadable files/lines in %.1fs",
        report.total_files,
        report.total_rows,
        report.rejects,
        report.seconds,
    )
    for entity in ENTITIES:
        result = report.entities[entity.name]
        files = [f for f in report.files if f.entity == entity.name]
        table = pd.DataFrame(
            [{"file": f.file, "format": f.format, "rows": f.rows, "status": f.status} for f in files[:20]]
        )
        yield dg.MaterializeResult(
            asset_key=ENTITY_KEYS[entity.name],
            metadata={
                "dagster/row_count": dg.MetadataValue.int(result.rows),
                "files": dg.MetadataValue.int(result.files),
                "rejected_files": dg.MetadataValue.int(result.rejected_files),
                "rejected_lines": dg.MetadataValue.int(result.rejected_rows),
                "raw_dir": dg.MetadataValue.path(f"{report.raw_dir}/{entity.path}"),
                "files_preview": dg.MetadataValue.md(
                    table.to_markdown(index=False) if len(table) else "_no files_"
                ),
            },
        )
    stray = pd.DataFrame([{"file": f.file, "reason": f.reason} for f in report.no_entity[:20]])
    yield dg.MaterializeResult(
        asset_key=REJECTS_KEY,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(report.rejects),
            "files_in_no_entity": dg.MetadataValue.int(len(report.no_entity)),
            "files_in_no_entity_preview": dg.MetadataValue.md(
                stray.to_markdown(index=False) if len(stray) else "_none_"
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key=FILES_KEY,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(report.files)),
            "seconds": dg.MetadataValue.float(round(report.seconds, 2)),
        },
    )
