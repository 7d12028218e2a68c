"""The campaign report: headline numbers, tables and empty sections, from hand-made marts (see tests/report_data.py)."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from plotly.offline import get_plotlyjs

from orchestration.report import build_campaign_report, fmt_p, fmt_pct, fmt_pp
from orchestration.report_assets import REPORT_KEY, ReportSettings, campaign_report
from orchestration.resources import PipelineSettings, WarehouseResource
from tests.report_data import CUSTOMER_IDS, write_empty_warehouse, write_report_marts

SECTIONS = [
    "Lifecycle stage flow",
    "Campaign funnel",
    "Daily trend",
    "Channel ROI",
    "Attribution models side by side",
    "Experiment lift vs holdout",
]


def _text(page: str) -> str:
    """The visible text of the report (scripts dropped, tags stripped)."""
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section class="card" id="{key}".*?</section>', page, flags=re.S)
    assert match, key
    return _text(match.group(0))


def test_people_formatting() -> None:
    assert fmt_pp(-0.018) == "-1.8 pp" and fmt_pp(0.025) == "+2.5 pp"
    assert fmt_pct(160 / 388) == "41.2%"
    assert fmt_p(0.0004) == "p < 0.001" and fmt_p(0.03) == "p = 0.030"
    assert fmt_pp(None) == "—"


def test_report_from_every_mart(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    result = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")

    assert result.path == tmp_path / "reports" / "campaign_report_2026-03-02.html"
    assert result.latest_path.read_text() == result.path.read_text()
    assert result.charts_rendered == 6 and result.empty_sections == []
    assert result.sections == SECTIONS
    h = result.headline
    assert (h.messages_sent, h.conversions, h.revenue) == (1000, 40, 2240.5)
    assert h.lift["arm"] == "treated" and h.experiments == 1

    page = result.path.read_text()
    header = _text(page.split("<main", 1)[0])
    for expected in ["1,000", "40", "2,240.50", "+2.5 pp", "95% CI +0.4 pp to +4.6 pp", "p = 0.030",
                     "significant", "4.00% of messages sent", "relative +125%"]:  # fmt: skip
        assert expected in header, expected
    # self-contained: plotly.js inlined exactly once, nothing fetched from elsewhere
    assert page.count(get_plotlyjs()[:500]) == 1
    assert page.count("reportChartRendered('chart-") == 6
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src=", page)
    # ids and aggregates only
    assert not any(c in page for c in CUSTOMER_IDS)

    funnel = _section(page, "funnel")
    # spring_sale A: 388 delivered of 400 (97.0%), 160 opens / 388 = 41.2%, 40 clicks / 388 = 10.3%,
    # 12 conversions / 400 = 3.00%, revenue 600.00 = 1.50 per message
    assert "spring_sale A email 400 97.0% 41.2% 10.3% 12 3.00% 600.00 1.50" in funnel
    assert "spring_sale B email 400 98.5% 50.8% 20.3% 24 6.00% 1,440.50 3.60" in funnel
    assert "sent 1,000" in funnel and "holdout (not sent, measured) 100" in funnel
    assert "skipped: no_consent 20" in funnel

    trend = _section(page, "trend")
    # 2026-03-01: 300 + 300 sent, 290 + 295 delivered, 120 + 150 opens, 30 + 60 clicks, 9 + 18 conversions
    assert "2026-03-01 600 585 270 90 27 1,530.50" in trend
    assert "2026-03-02 400 393 90 54 13 710.00" in trend

    roi = _section(page, "roi")
    assert "Credit by the Data-driven (Markov) model." in roi
    assert "email 1.7 170.00 40.00 +325% 4.25×" in roi
    assert "paid_search 0.3 30.00 60.00 -50% 0.50×" in roi

    attribution = _section(page, "attribution")
    # o1 (100.00) split email/paid_search per model, o2 (50.00) all sms: email revenue per model
    assert "email 100.00 0.00 50.00 40.00 50.00 70.00" in attribution
    assert "sms 50.00 50.00 50.00 50.00 50.00 50.00" in attribution

    lifecycle = _section(page, "lifecycle")
    # three first spells start as new; new then splits 1/1 into active and at_risk
    assert "(first spell) new 3 100.0% 1" in lifecycle
    assert "new at_risk 1 50.0% 0" in lifecycle

    experiments = _section(page, "experiments")
    assert "spring_sale email holdout 100 2 2.00% (1.00% – 3.00%) baseline" in experiments
    assert (
        "spring_sale email B 400 24 6.00% (5.00% – 7.00%) +4.00 pp (+0.90 pp to +7.10 pp) +200% p = 0.012 ★ winner"
        in experiments
    )
    assert (
        "A 400 12 3.00% (2.00% – 4.00%) +1.00 pp (-1.80 pp to +3.80 pp) +50% p = 0.470 not significant"
        in experiments
    )


def test_empty_warehouse_says_so_in_every_section(tmp_path: Path) -> None:
    warehouse = write_empty_warehouse(tmp_path / "warehouse.duckdb", with_tables=["channel_roi"])
    result = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")

    assert result.charts_rendered == 0 and result.empty_sections == SECTIONS
    assert result.headline.messages_sent is None and result.headline.lift is None
    page = result.path.read_text()
    assert page.count("reportChartRendered('chart-") == 0
    assert "No data yet: marts.channel_roi is empty" in _section(page, "roi")
    assert "No data yet: marts.fct_attribution does not exist in this warehouse" in _section(
        page, "attribution"
    )
    assert _text(page).count("No data yet:") == 6
    assert "no experiment with a holdout yet" in _text(page.split("<main", 1)[0])
    assert "- Incremental lift vs holdout: no experiment yet" in result.summary_markdown()


def test_other_roi_model_and_missing_warehouse(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    result = build_campaign_report(warehouse, tmp_path, as_of="2026-03-02", roi_model="last_touch")
    roi = _section(result.path.read_text(), "roi")
    assert "Credit by the Last touch model." in roi and "paid_search 1.0 100.00 60.00 +67% 1.67×" in roi
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_campaign_report(tmp_path / "nowhere.duckdb", tmp_path)
    with pytest.raises(ValueError):
        build_campaign_report(warehouse, tmp_path, as_of="2 March")


def test_the_asset_links_the_report_from_its_metadata(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    reports = tmp_path / "home" / "reports"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [campaign_report],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(warehouse)),
                "pipeline": PipelineSettings(raw_dir=str(tmp_path), as_of="2026-03-02"),
                "reports": ReportSettings(reports_dir=str(reports)),
            },
        )
        assert result.success
        metadata = instance.get_latest_materialization_event(REPORT_KEY).asset_materialization.metadata
    path = reports / "campaign_report_2026-03-02.html"
    assert path.exists() and (reports / "campaign_report.html").exists()
    assert metadata["report"].value == str(path)
    assert metadata["open"].value == path.as_uri() and metadata["open"].value.startswith("file:///")
    assert metadata["charts_rendered"].value == 6
    assert metadata["sections_without_data"].value == 0
    summary = metadata["summary"].value
    assert "- Messages sent: 1,000" in summary and "- Revenue: 2,240.50" in summary
    assert "+2.5 pp (95% CI +0.4 pp to +4.6 pp), p = 0.030, significant (spring_sale · email)" in summary
    deps = {k.to_user_string() for k in campaign_report.asset_deps[REPORT_KEY]}
    assert deps == {
        "marts/fct_messages",
        "marts/fct_campaign_performance",
        "marts/fct_attribution",
        "marts/channel_roi",
        "marts/experiment_results",
        "marts/customer_lifecycle_history",
    }
    assert campaign_report.group_names_by_key[REPORT_KEY] == "reports"


def test_the_code_location_writes_reports_under_tideline_home(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions
    from orchestration.settings import Settings

    settings = Settings(home=tmp_path, warehouse=tmp_path / "w.duckdb", raw_dir=tmp_path, as_of="2026-03-02")
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert graph.get(REPORT_KEY).group_name == "reports"
    assert (
        REPORT_KEY in defs.resolve_job_def("tideline_pipeline").asset_layer.asset_graph.get_all_asset_keys()
    )
    # the warehouse's own state folder under TIDELINE_HOME (w.duckdb is not the home's default warehouse)
    assert defs.resources["reports"].reports_dir == str(settings.state_dir / "reports")
    assert settings.state_dir.is_relative_to(tmp_path)
