"""Asset checks beyond the dbt tests (in the warehouse dbt builds: DuckDB, or PostgreSQL)."""

import dagster as dg

from orchestration.dbt import model_key
from orchestration.resources import WarehouseResource

REJECTS_KEY = model_key("rejects")
ORDERS_KEY = dg.AssetKey(["landing", "commerce_orders"])


@dg.asset_check(
    asset=REJECTS_KEY, description="Reports rejected input rows by entity and action (warns when any)."
)
def rejects_reported(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    rows = warehouse.query(
        "select entity, action, count(*) from marts.rejects group by entity, action order by 1, 2"
    )
    total = sum(n for _, _, n in rows)
    by = {f"{entity}/{action}": dg.MetadataValue.int(n) for entity, action, n in rows}
    return dg.AssetCheckResult(
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{total} input problem(s); see marts.rejects for file, row, field and reason",
        metadata={"rejects": dg.MetadataValue.int(total), **by},
    )


@dg.asset_check(
    asset=ORDERS_KEY, blocking=True, description="Orders are the one required input: fails without any."
)
def orders_present(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    count = warehouse.query("select count(*) from landing.commerce_orders")[0][0]
    return dg.AssetCheckResult(
        passed=count > 0,
        metadata={"rows": dg.MetadataValue.int(int(count))},
        description=None
        if count
        else "no order rows under <raw>/commerce/orders: nothing to build customers from",
    )
