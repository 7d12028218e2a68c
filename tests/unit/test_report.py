"""The campaign report: headline numbers, tables and empty sections, from hand-made marts (see tests/report_data.py)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from orchestration.report import REPORT_KEY, ReportSettings, campaign_report
from orchestration.resources import PipelineSettings, WarehouseResource
from tests.report_data import CUSTOMER_IDS, write_empty_warehouse, write_report_marts
from tideline.reporting.formats import (
    fmt_amount,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_pp,
    fmt_rate,
    fmt_ratio,
    fmt_signed_pct,
)
from tideline.reporting.report import Marts, build_campaign_report, experiment_section, journey_section

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


def _tables(page: str, key: str) -> list[list[list[str]]]:
    """The section's tables as rows of cell texts (a cell's second line joined with a space)."""
    match = re.search(rf'<section class="card" id="{key}".*?</section>', page, flags=re.S)
    assert match, key
    return [
        [
            [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell))).strip() for cell in cells]
            for cells in (
                re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)
            )
        ]
        for table in re.findall(r"<table.*?</table>", match.group(0), flags=re.S)
    ]


def test_people_formatting() -> None:
    assert fmt_pp(-0.018) == "-1.8 pp" and fmt_pp(0.025) == "+2.5 pp"
    assert fmt_pct(160 / 388) == "41.2%"
    assert fmt_p(0.0004) == "p < 0.001" and fmt_p(0.03) == "p = 0.030"
    assert fmt_pp(None) == "—"
    # sending fees are fractions of a cent: not rounded to 0.00
    assert (fmt_amount(0.0046), fmt_amount(0.33), fmt_amount(0), fmt_amount(1234.5)) == (
        "0.0046",
        "0.33",
        "0.00",
        "1,234.50",
    )
    # the one set the console summary uses too: a rate of nothing and pandas' NA are missing, in
    # the summary's spelling when it asks for it
    assert fmt_rate(3, 0) == "—" and fmt_rate(None, 4, missing="-") == "-" and fmt_rate(1, 8) == "12.5%"
    assert fmt_int(pd.NA) == "—" and fmt_int(1234.4) == "1,234" and fmt_ratio(2.5) == "2.50×"
    assert fmt_signed_pct(2.66) == "+266%" and fmt_pp(-0.018, unit="pts", missing="-") == "-1.8 pts"


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
    # 2026-03-02: opens of the emails only (40 + 50), not the 7 the SMS reported
    assert "Send date Sent Delivered Opened (email) Clicked" in trend
    assert "2026-03-02 400 393 90 54 13 710.00" in trend

    roi = _section(page, "roi")
    assert "Credit by the Data-driven (Markov) model." in roi
    assert "The chart shows the last 30 days (2026-02-01 to 2026-03-02)." in roi
    assert (
        "Last 30 days (2026-02-01 to 2026-03-02) Channel" in roi
        and "All time (2025-01-01 to 2026-03-02)" in roi
    )
    # columns: conversions, revenue, messages sent, cost (basis), ROI (ROAS), cost / conversion
    assert "email 0.7 70.00 800 0.80 sending fees only — 1.14 sms" in roi  # no ROI on sending fees
    assert "paid_search 0.3 30.00 — 60.00 spend -50% ROAS 0.50× 200.00 unattributed" in roi
    assert "unattributed (no touch) 1.0 40.00 — 0.00 no cost recorded — — ROI and ROAS" in roi
    assert "ROI and ROAS are shown only for channels with spend" in roi

    attribution = _section(page, "attribution")
    # o1 (100.00) split email/paid_search per model, o2 (50.00) all sms: email revenue per model
    assert "Period: all time (2025-01-01 to 2026-03-02), every order up to the as-of date" in attribution
    assert "Attributed revenue · all time (2025-01-01 to 2026-03-02)" in attribution
    assert "email 100.00 0.00 50.00 40.00 50.00 70.00" in attribution
    assert "sms 50.00 50.00 50.00 50.00 50.00 50.00" in attribution

    lifecycle = _section(page, "lifecycle")
    # three customers first seen as new; new then splits 1/1 into active and at_risk
    assert "first seen new 3 100.0% 1" in lifecycle
    assert "new at_risk 1 50.0% 0" in lifecycle
    assert "spell" not in page

    experiments = _section(page, "experiments")
    assert "spring_sale email holdout 2 of 100 2.00% 1.00% – 3.00% baseline" in experiments
    assert (
        "spring_sale email B 24 of 400 6.00% 5.00% – 7.00% +4.00 pp +0.90 pp to +7.10 pp +200% p = 0.012 ★ winner"
        in experiments
    )
    assert (
        "A 12 of 400 3.00% 2.00% – 4.00% +1.00 pp -1.80 pp to +3.80 pp +50% p = 0.470 not significant"
        in experiments
    )
    # winback has no holdout: said so, not a lift of 0 that is "not significant"
    assert "winback sms treated 9 of 900 1.00% 0.50% – 1.50% no holdout no holdout" in experiments
    assert "Not drawn, as they have no holdout to measure a lift against: winback · sms." in experiments


def test_roi_all_time_agrees_with_the_attribution_section(tmp_path: Path) -> None:
    """The ROI section's all-time table and the attribution section show the same period and, for
    the ROI's model, the same revenue and conversions per channel."""
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    page = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02").path.read_text()
    _recent, all_time, *_ = _tables(page, "roi")
    revenue, conversions = _tables(page, "attribution")
    data_driven = revenue[0].index("Data-driven (Markov)")
    by_channel = {row[0]: (row[1], row[2]) for row in all_time[1:]}
    attributed = {
        row[0]: (conv[data_driven], row[data_driven])
        for row, conv in zip(revenue[1:], conversions[1:], strict=True)
    }
    assert attributed == {"email": ("0.7", "70.00"), "sms": ("1.0", "50.00"), "paid_search": ("0.3", "30.00")}
    assert {c: v for c, v in by_channel.items() if c in attributed} == attributed
    assert "All time (2025-01-01 to 2026-03-02)" in _section(page, "roi")
    assert "all time (2025-01-01 to 2026-03-02)" in _section(page, "attribution")


def test_arms_without_a_holdout_are_not_drawn_and_the_header_shows_a_measured_lift(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        section = experiment_section(Marts(con))
    finally:
        con.close()
    drawn = list(section.figure.data[0].y)
    assert drawn == ["spring_sale · email · A", "spring_sale · email · B", "spring_sale · email · treated"]
    # winback's treated arm reaches 900, more than spring_sale's 800, but has no lift to headline
    result = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    assert (result.headline.lift["campaign"], result.headline.experiments) == ("spring_sale", 1)


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
    assert "Credit by the Last touch model." in roi
    assert "paid_search 1.0 100.00 — 60.00 spend +67% ROAS 1.67× 60.00" in roi
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
        "marts/attribution_models",
        "marts/journey_performance",
        "marts/journey_lift",
    }
    assert campaign_report.group_names_by_key[REPORT_KEY] == "reports"


def test_the_code_location_writes_reports_under_tideline_home(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions
    from tideline.settings import Settings

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


# --- the Journeys section ----------------------------------------------------------------------------

JOURNEY_DDL = {
    "journey_performance": """
        journey varchar, version varchar, node varchar, node_depth bigint, reached bigint, sent bigint,
        skipped bigint, deferred bigint, failed bigint, converted bigint, exited bigint,
        exited_completed bigint, exited_converted bigint, exited_exit_condition bigint, exited_holdout bigint,
        exited_archived bigint, median_hours_to_next_node decimal(18, 4), as_of_date date""",
    "journey_lift": """
        journey varchar, version varchar, entries bigint, treated_entries bigint, holdout_entries bigint,
        treated_converters bigint, holdout_converters bigint, undecided_entries bigint, messages_sent bigint,
        first_entered_at timestamp, last_entered_at timestamp, treated_conversion_rate decimal(18, 6),
        treated_conversion_rate_ci_low decimal(18, 6), treated_conversion_rate_ci_high decimal(18, 6),
        holdout_conversion_rate decimal(18, 6), holdout_conversion_rate_ci_low decimal(18, 6),
        holdout_conversion_rate_ci_high decimal(18, 6), absolute_lift decimal(18, 6),
        absolute_lift_ci_low decimal(18, 6), absolute_lift_ci_high decimal(18, 6), relative_lift decimal(18, 6),
        z_score decimal(18, 4), p_value decimal(18, 6), is_significant boolean, confidence_level decimal(4, 3),
        as_of_date date""",
}
# welcome a1b2c3 (tests/dbt/test_journey_marts.py's figures): 11 entries, 4 held out; nodes listed out
# of flow order on purpose. cart 9f8e7d: no holdout. node, depth, reached, sent, skipped, deferred,
# failed, converted, exited, completed, converted, exit_condition, holdout, archived, median hours
JOURNEY_NODES = {
    ("welcome", "a1b2c3"): [
        ("coupon_sms", 4, 3, 3, 0, 1, 0, 1, 3, 3, 0, 0, 0, 0, None),
        ("(entry)", 0, 11, 0, 0, 0, 0, 3, 4, 0, 0, 0, 4, 0, None),
        ("two_days", 2, 7, 0, 0, 0, 0, 2, 2, 0, 1, 1, 0, 0, 49.5),
        ("welcome_email", 1, 7, 5, 1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0.0),
        ("bought", 3, 4, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0.0),
    ],
    ("cart", "9f8e7d"): [
        ("(entry)", 0, 20, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, None),
        ("reminder", 1, 20, 18, 2, 0, 0, 2, 20, 20, 0, 0, 0, 0, None),
    ],
}
JOURNEY_LIFT = [
    # journey, version, entries, treated, held out, treated conv, holdout conv, undecided, sent, rates, lift...
    ("welcome", "a1b2c3", 11, 7, 4, 2, 1, 3, 8, 0.285714, 0.082189, 0.641124, 0.25, 0.045587, 0.699358,
     0.035714, -0.466154, 0.456633, 0.142857, 0.1279, 0.898198, False),
    ("cart", "9f8e7d", 20, 20, 0, 2, 0, 0, 18, 0.1, 0.027866, 0.301029, None, None, None,
     None, None, None, None, None, None, None),
]  # fmt: skip


def write_journey_marts(path: Path, rows: bool = True) -> None:
    con = duckdb.connect(str(path))
    try:
        for name, ddl in JOURNEY_DDL.items():
            con.execute(f"create table marts.{name} ({ddl})")
        if not rows:
            return
        for (journey, version), nodes in JOURNEY_NODES.items():
            con.executemany(
                f"insert into marts.journey_performance values (?, ?, {', '.join(['?'] * 15)}, date '2026-03-02')",
                [(journey, version, *node) for node in nodes],
            )
        con.executemany(
            f"insert into marts.journey_lift values ({', '.join(['?'] * 9)}, timestamp '2026-03-01', "
            f"timestamp '2026-03-02', {', '.join(['?'] * 13)}, 0.95, date '2026-03-02')",
            JOURNEY_LIFT,
        )
    finally:
        con.close()


def test_the_journeys_section_shows_each_flow_and_its_lift(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    write_journey_marts(warehouse)
    result = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    assert result.sections == [*SECTIONS, "Journeys"] and result.charts_rendered == 7
    page = result.path.read_text()
    assert page.count("reportChartRendered('chart-") == 7
    # the largest journey first; each flow from the entry point in depth order, 'entry' for (entry)
    flows = _tables(page, "journeys")
    cart, welcome, lift = flows[0], flows[1], flows[2]
    assert [row[0] for row in welcome] == [
        "Node",
        "entry",
        "welcome_email",
        "two_days",
        "bought",
        "coupon_sms",
    ]
    assert welcome[1] == ["entry", "11", "0", "0", "0", "0", "3 27.3%", "4 holdout 4", "—"]
    assert welcome[2] == ["welcome_email", "7", "5", "1", "0", "1", "2 28.6%", "0", "0.0"]
    assert welcome[3] == [
        "two_days",
        "7",
        "0",
        "0",
        "0",
        "0",
        "2 28.6%",
        "2 converted 1, exit_condition 1",
        "49.5",
    ]
    assert welcome[5] == ["coupon_sms", "3", "3", "0", "1", "0", "1 33.3%", "3 completed 3", "—"]
    assert [row[0] for row in cart] == ["Node", "entry", "reminder"]
    text = _section(page, "journeys")
    assert text.index("cart · version 9f8e7d") < text.index("welcome · version a1b2c3")
    assert (
        "11 entries: treated 2 of 7 converted (28.6%), held out 1 of 4 (25.0%); lift +3.6 pp "
        "(95% CI -46.6 pp to +45.7 pp), p = 0.898, not significant." in text
    )
    assert "20 entries: treated 2 of 20 converted (10.0%); no holdout, so no lift to measure." in text
    assert lift[1:] == [
        ["cart version 9f8e7d", "20", "18", "2 of 20 10.00%", "0 of 0 —", "no holdout", "", "no holdout"],
        ["welcome version a1b2c3", "11", "8", "2 of 7 28.57%", "1 of 4 25.00%", "+3.57 pp -46.62 pp to +45.66 pp",
         "p = 0.898", "not significant"],
    ]  # fmt: skip
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        figure = journey_section(Marts(con)).figure
    finally:
        con.close()
    reached = [t for t in figure.data if t.name == "Reached"]
    assert [list(t.y) for t in reached] == [
        ["entry", "reminder"],
        ["entry", "welcome_email", "two_days", "bought", "coupon_sms"],
    ]
    assert list(reached[1].x) == [11, 7, 7, 4, 3]
    assert [list(t.x) for t in figure.data if t.name == "Left here"][1] == [4, 0, 2, 1, 3]


def test_no_journeys_no_section(tmp_path: Path) -> None:
    """Without the journey marts (the other tests' warehouse) or with them empty, the report has no
    Journeys section at all, not a 'no data' note."""
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    write_journey_marts(warehouse, rows=False)
    result = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    assert result.sections == SECTIONS and result.empty_sections == []
    assert 'id="journeys"' not in result.path.read_text()
