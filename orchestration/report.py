"""The campaign report asset: a thin wrapper around tideline.reporting.report (plain, tested Python)."""

import dagster as dg

from orchestration.dbt import model_key
from orchestration.resources import PipelineSettings, WarehouseResource
from tideline.reporting.report import DEFAULT_ROI_MODEL, MARTS, build_campaign_report

REPORT_KEY = dg.AssetKey(["reports", "campaign_report"])


class ReportSettings(dg.ConfigurableResource):
    """Where reports are written ($TIDELINE_HOME/reports) and which attribution model channel ROI shows."""

    reports_dir: str
    roi_model: str = DEFAULT_ROI_MODEL


@dg.asset(
    key=REPORT_KEY,
    deps=[model_key(name) for name in MARTS],
    group_name="reports",
    kinds={"html"},
    pool="warehouse",  # reads the DuckDB file, which allows no reader while dbt writes
    description="The campaign report: one self-contained HTML page (headline numbers, lifecycle flow, "
    "campaign funnel, daily trend, channel ROI, attribution models, experiment lift). Open the link in "
    "this asset's metadata.",
)
def campaign_report(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    pipeline: PipelineSettings,
    reports: ReportSettings,
) -> dg.MaterializeResult:
    result = build_campaign_report(
        warehouse.path, reports.reports_dir, as_of=pipeline.as_of or None, roi_model=reports.roi_model
    )
    context.log.info(
        "campaign report %s: %d of %d charts (no data yet: %s)",
        result.path,
        result.charts_rendered,
        len(result.sections),
        ", ".join(result.empty_sections) or "none",
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(result.path)),
            "open": dg.MetadataValue.url(result.path.resolve().as_uri()),
            "latest": dg.MetadataValue.path(str(result.latest_path)),
            "charts_rendered": dg.MetadataValue.int(result.charts_rendered),
            "sections_without_data": dg.MetadataValue.int(len(result.empty_sections)),
            "summary": dg.MetadataValue.md(result.summary_markdown()),
        }
    )
