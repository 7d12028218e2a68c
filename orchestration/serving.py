"""The BI copy as the last asset of every pipeline run: a thin wrapper over tideline.serving.

`serving/bi_warehouse` is downstream of every other asset's leaves, so it runs only when they all
succeeded, and publishes the copy BI tools open (see tideline/serving.py for why a copy).
"""

from collections.abc import Sequence

import dagster as dg

from orchestration.resources import WarehouseResource
from tideline.serving import publish_bi_copy

BI_KEY = dg.AssetKey(["serving", "bi_warehouse"])


def bi_warehouse_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publishing asset, downstream of `upstream` (the other assets' leaves)."""

    @dg.asset(
        key=BI_KEY,
        deps=list(upstream),
        group_name="serving",
        kinds={"duckdb"},
        pool="warehouse",
        description="A copy of the warehouse for BI tools, published atomically after every successful "
        "run: point BI tools at the path in this asset's metadata, never at the warehouse itself.",
    )
    def bi_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        published = publish_bi_copy(  # to <state folder>/bi/<warehouse file name>
            warehouse.path,
            warehouse.bi_path,
            wait_seconds=warehouse.lock_wait_seconds,
            on_wait=context.log.warning,
        )
        context.log.info("BI copy published to %s in %.1fs", published.path, published.seconds)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(published.path)),
                "size_mb": dg.MetadataValue.float(round(published.bytes / 1e6, 1)),
                "seconds": dg.MetadataValue.float(round(published.seconds, 2)),
            }
        )

    return bi_warehouse
