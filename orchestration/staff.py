"""The staff notifications asset `staff/notifications`: a thin wrapper over
activation.staff.run.run_staff_notifications (docs/leads.md, "Staff notifications").

It runs in the pipeline job after the marts and the scores it reads (lead scores, owners, staff,
churn and CLV scores), sharing the `warehouse` pool (DuckDB has one writer). The rules file is
`staff_notifications.yml` next to the activation config (config/staff_notifications.yml by
default); without one there is nothing to notify and the asset says so. Its metadata: the
notifications made by rule, sent, deferred, and every notification so far by status (ids and
counts only, never a handle).
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.
import datetime as dt
from pathlib import Path

import dagster as dg

from activation.journeys.clock import parse_clock
from activation.staff.config import load_staff_config, staff_config_path
from activation.staff.deliver import Sender
from activation.staff.run import run_staff_notifications
from orchestration.activation import launched_by
from orchestration.dbt import model_key
from orchestration.ml import SCORES_KEY
from orchestration.resources import ActivationConfigResource, PipelineSettings, WarehouseResource

STAFF_KEY = dg.AssetKey(["staff", "notifications"])


@dg.asset(
    key=STAFF_KEY,
    deps=[model_key("lead_scores"), model_key("dim_customers"), SCORES_KEY],
    group_name="staff",
    kinds={"python"},
    pool="warehouse",
    description=(
        "Staff notifications (config/staff_notifications.yml): new leads assigned, leads reaching MQL, "
        "valuable customers at risk of churning, large orders, forms submitted, routed to the linked "
        "employee, their manager or the team channel, sent once through the activation ledger."
    ),
)
def staff_notifications(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    activation: ActivationConfigResource,
    pipeline: PipelineSettings,
) -> dg.MaterializeResult:
    path = staff_config_path(activation.config_path)
    if not path.exists():
        return dg.MaterializeResult(metadata={"status": f"no rules file {path.name}: nothing to notify"})
    config = activation.config()
    staff = load_staff_config(path, destinations=config.destinations, env=activation.resolved_environment())
    sender = Sender(
        config,
        Path(pipeline.raw_dir),
        activation.duckdb_limits(),
        workers=min(activation.workers, 2),
        launched_by=launched_by(context.run.tags),
    )
    as_of = dt.date.fromisoformat(pipeline.as_of) if pipeline.as_of else dt.date.today()
    with warehouse.connect() as con:
        result = run_staff_notifications(con, staff, sender, as_of, parse_clock(activation.journey_clock))
    for error in result.delivered.errors:
        context.log.warning("staff notifications: %s", error)
    return dg.MaterializeResult(
        metadata={
            "made": result.planned.created,
            "made_by_rule": dg.MetadataValue.json(result.planned.by_rule or {}),
            "digests": result.digests,
            "deferred_quiet_hours": result.delivered.deferred,
            "queued": sum(result.delivered.by_destination.values()),
            "by_status": dg.MetadataValue.json(result.by_status),
        }
    )
