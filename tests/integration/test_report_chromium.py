"""The campaign report rendered by a real browser: Debian's headless Chromium, offline.

The page's own script marks each chart once plotly has drawn it and collects JavaScript errors
(window errors, unhandled rejections, console.error) into #js-errors; the DOM Chromium dumps after
its virtual time budget tells us both. CI installs chromium (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.report_data import write_empty_warehouse, write_report_marts
from tideline.reporting.report import build_campaign_report

CHROMIUM = shutil.which("chromium")
# skipped on a machine without it; in CI (CI=true, which installs it) a missing browser fails
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (apt-get install chromium; CI does)",
    ),
    pytest.mark.slow,  # a real headless browser per test (seconds each)
]


class Dom(HTMLParser):
    """Start tags with their attributes, and the text inside #js-errors."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.errors = ""
        self._in_errors = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        self._in_errors = attributes.get("id") == "js-errors"

    def handle_endtag(self, tag: str) -> None:
        self._in_errors = False

    def handle_data(self, data: str) -> None:
        if self._in_errors:
            self.errors += data

    def find(self, tag: str, **attrs: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def with_class(self, tag: str, cls: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


def render(page: Path, tmp_path: Path, height: int = 5200, width: int = 1280) -> tuple[Dom, Path]:
    """Open the page in headless Chromium (no network at all), dump the DOM and take a screenshot."""
    screenshot = tmp_path / f"{page.stem}.png"
    command = [
        CHROMIUM or "chromium",  # CI without it: FileNotFoundError, not a silent skip
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # every host name fails to resolve: the report must work offline
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=15000",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"screenshot: {screenshot}")
    return Dom(done.stdout), screenshot


def _body(dom: Dom) -> dict:
    bodies = dom.find("body")
    assert len(bodies) == 1
    return bodies[0]


def test_every_chart_renders_without_errors(tmp_path: Path) -> None:
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    report = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    dom, screenshot = render(report.path, tmp_path)

    body = _body(dom)
    assert body["data-render-complete"] == "true"
    assert body["data-charts-expected"] == "6"
    assert body["data-charts-rendered"] == "6"
    plots = dom.with_class("div", "js-plotly-plot")
    assert sorted(p["id"] for p in plots) == sorted(
        f"chart-{key}" for key in ["lifecycle", "funnel", "trend", "roi", "attribution", "experiments"]
    )
    assert all(p.get("data-rendered") == "true" for p in plots)
    assert len(dom.with_class("svg", "main-svg")) >= 6  # plotly drew an svg for every chart
    assert dom.find("g", **{"class": "sankey"}), "the lifecycle flow is a Sankey"
    assert body["data-js-errors"] == "0" and dom.errors.strip() == ""
    assert all(s.get("data-empty") == "false" for s in dom.find("section"))
    assert screenshot.stat().st_size > 100_000  # a page full of charts, not a blank one


def test_empty_warehouse_renders_its_no_data_notes_without_errors(tmp_path: Path) -> None:
    warehouse = write_empty_warehouse(tmp_path / "warehouse.duckdb", with_tables=["fct_campaign_performance"])
    report = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    dom, screenshot = render(report.path, tmp_path, height=1600)

    body = _body(dom)
    assert body["data-render-complete"] == "true"
    assert (body["data-charts-expected"], body["data-charts-rendered"]) == ("0", "0")
    assert dom.with_class("div", "js-plotly-plot") == []
    sections = dom.find("section")
    assert len(sections) == 6 and all(s["data-empty"] == "true" for s in sections)
    assert len(dom.with_class("div", "empty")) == 6
    assert body["data-js-errors"] == "0" and dom.errors.strip() == ""
    assert screenshot.stat().st_size > 20_000


# Measures, once the page has loaded, which sections' tables need a horizontal scroll and where the
# experiment table's Verdict header ends; injected by the test only (the report has no such script).
LAYOUT_PROBE = """
<script>
window.addEventListener('load', function () {
  var wide = [];
  document.querySelectorAll('section.card').forEach(function (section) {
    section.querySelectorAll('.tables').forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) wide.push(section.id);
    });
  });
  var verdict = Array.prototype.filter.call(document.querySelectorAll('th'), function (th) {
    return th.textContent === 'Verdict';
  })[0];
  document.body.setAttribute('data-scrolling-tables', wide.join(','));
  document.body.setAttribute('data-verdict-right', verdict ? String(verdict.getBoundingClientRect().right) : '');
  document.body.setAttribute('data-viewport-width', String(window.innerWidth));
});
</script>
"""


def _add_demo_sized_rows(warehouse: Path) -> None:
    """Experiment arms and channel ROI rows as wide as the demo's: long campaign names, two-digit
    lifts with their intervals, six-figure revenue and cost, fractions of a cent."""
    con = duckdb.connect(str(warehouse))
    try:
        for period, start, days in [("recent", "2026-02-01", 30), ("all_time", "2024-03-02", 731)]:
            for channel, conversions, revenue, messages, spend, fees, basis, roi, roas, per_conversion in [
                ("paid_social", 522.2, 60444.70, 0, 73100.0, 0.0, "spend", -0.173124, 0.826876, 139.985637),
                ("social", 403.3, 46540.93, 0, 0.0, 0.0, "none", None, None, None),
                ("push", 1.0, 228.42, 23, 0.0, 0.0046, "sending_fees_only", None, None, 0.0046),
                ("affiliate", 2421.0, 280783.17, 0, 0.0, 0.0, "none", None, None, None),
            ]:
                con.execute(
                    f"insert into marts.channel_roi values ({', '.join(['?'] * 16)})",
                    [channel, "data_driven", period, start, "2026-03-02", days, conversions, revenue, messages,
                     spend, fees, spend + fees, basis, roi, roas, per_conversion],
                )  # fmt: skip
        for arm, arm_type, reach, converters, rate, lift, low, high, p in [
            ("holdout", "holdout", 29, 0, 0.0, None, None, None, None),
            ("A", "variant", 153, 15, 0.098039, 0.098039, -0.024901, 0.155499, 0.078),
            ("B", "variant", 181, 43, 0.237569, 0.237569, 0.107841, 0.304577, 0.003),
            ("treated", "treated", 334, 58, 0.173653, 0.173653, 0.051022, 0.217949, 0.014),
        ]:
            con.execute(
                "insert into marts.experiment_results (campaign, channel, arm, arm_type, reach, converters, "
                "conversion_rate, conversion_rate_ci_low, conversion_rate_ci_high, absolute_lift, "
                "absolute_lift_ci_low, absolute_lift_ci_high, relative_lift, p_value, is_significant, is_winner, "
                "confidence_level) values ('win_back_reactivation_2026q4', 'email', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "null, ?, ?, ?, 0.95)",
                [arm, arm_type, reach, converters, rate, max(rate - 0.05, 0), rate + 0.07, lift, low, high, p,
                 None if p is None else p < 0.05, arm == "B"],
            )  # fmt: skip
    finally:
        con.close()


def test_every_table_fits_a_1400_px_window(tmp_path: Path) -> None:
    """A marketer on a laptop sees every column, the experiment table's Verdict included, without
    scrolling a table sideways."""
    warehouse = write_report_marts(tmp_path / "warehouse.duckdb")
    _add_demo_sized_rows(warehouse)
    report = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    probed = tmp_path / "probed.html"
    probed.write_text(report.path.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom, _ = render(probed, tmp_path, width=1400)

    body = _body(dom)
    assert body["data-viewport-width"] == "1400"
    assert body["data-scrolling-tables"] == ""
    assert 0 < float(body["data-verdict-right"]) <= 1400


def test_the_error_collector_reports_a_failing_script(tmp_path: Path) -> None:
    """The 'no errors' assertions above mean something: a script that throws is caught and shown."""
    warehouse = write_empty_warehouse(tmp_path / "warehouse.duckdb")
    report = build_campaign_report(warehouse, tmp_path / "reports", as_of="2026-03-02")
    broken = tmp_path / "broken.html"
    broken.write_text(
        report.path.read_text().replace(
            "</body>", "<script>console.error('bad data'); undefinedReportFunction();</script></body>"
        )
    )
    dom, _ = render(broken, tmp_path, height=600)

    assert _body(dom)["data-js-errors"] == "2"
    assert "console.error: bad data" in dom.errors
    assert "undefinedReportFunction is not defined" in dom.errors
