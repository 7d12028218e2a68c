"""The landing-zone asset: brings the warehouse's landing schema up to date with the raw files
(incrementally: tideline/landing/loader.py). On the postgres target the loader reads into its
DuckDB workspace and ships every change to the database (tideline/landing/postgres.py)."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration.resources import PipelineSettings, WarehouseResource
from tideline.landing.contract import ENTITIES
from tideline.landing.loader import SCHEMA, load_landing_zone
from tideline.landing.postgres import PostgresMirror

ENTITY_KEYS = {e.name: dg.AssetKey([SCHEMA, e.name]) for e in ENTITIES}


class LandingConfig(dg.Config):
    """`full_refresh`: read every landing file again, not only the new and changed ones
    (`tideline run --full-refresh`; in the UI's launchpad: ops: landing_zone: config)."""

    full_refresh: bool = False


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
    context: dg.AssetExecutionContext,
    config: LandingConfig,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
) -> Iterator[dg.MaterializeResult]:
    """Bring the landing tables up to date with the landing files (CSV, Parquet, JSON Lines, read as
    text with file and row): only new and changed files, and the new lines of grown JSON Lines
    files, are read (landing.files is the manifest); `full_refresh` reads every file again."""
    with ExitStack() as stack:
        con = stack.enter_context(warehouse.connect())
        mirror = None
        if warehouse.on_postgres:  # DuckDB reads the files, every change is shipped to the database
            pg = stack.enter_context(warehouse.connect_postgres())
            mirror = PostgresMirror(pg, Path(warehouse.path).parent / "landing_shipping")
        report = load_landing_zone(pipeline.raw_dir, con, full_refresh=config.full_refresh, mirror=mirror)
    if mirror is not None:
        context.log.info(
            "landing: %s changed files and %s rows copied to PostgreSQL; %s files brought level at the end",
            len(mirror.shipped),
            mirror.shipped_rows,
            len(report.mirror_repaired),
        )
    actions = report.actions()
    context.log.info(
        "landing: %s files (%s), %s rows (%s new), %s unreadable files/lines in %.1fs",
        report.total_files,
        ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) or "none",
        report.total_rows,
        report.rows_added,
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
            "full_refresh": dg.MetadataValue.bool(report.full_refresh),
            "rows_added": dg.MetadataValue.int(report.rows_added),
            "warehouse": dg.MetadataValue.text("postgres" if warehouse.on_postgres else "duckdb"),
            **{f"files_{action}": dg.MetadataValue.int(n) for action, n in sorted(actions.items())},
            "deleted_preview": dg.MetadataValue.md(
                "\n".join(f"- {f}" for f in report.deleted[:20]) if report.deleted else "_none_"
            ),
        },
    )
