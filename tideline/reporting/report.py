"""The campaign report: one self-contained HTML page of charts over the engagement marts (and the
journey marts, when the warehouse has journeys).

`build_campaign_report(warehouse, out_dir)` reads the marts (read-only) and writes
`campaign_report_<as_of>.html` plus a `campaign_report.html` copy. The page inlines plotly.js once,
so it opens offline from a file:// link; it shows ids and aggregates only, never personal data.
Every section whose mart is missing or empty says so instead of failing.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tideline.reporting.formats import (
    STAGE_ORDER,
    fmt_amount,
    fmt_int,
    fmt_money,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_pp,
    fmt_rate,
    fmt_ratio,
    fmt_signed_pct,
    is_missing,
    share,
)

SCHEMA = "marts"
# the journey marts: the Journeys section shows only when they exist and hold a journey
JOURNEY_MARTS = ("journey_performance", "journey_lift")
# the marts the report reads (each also a Dagster dependency of the report asset)
MARTS = (
    "fct_messages",
    "fct_campaign_performance",
    "fct_attribution",
    "channel_roi",
    "experiment_results",
    "customer_lifecycle_history",
    "attribution_models",
    *JOURNEY_MARTS,
)
# the attribution model channel ROI is shown for, then the fallbacks when it is absent
DEFAULT_ROI_MODEL = "data_driven"
FIRST_SEEN = "first seen"  # the "stage before" of a customer's first stage
FLOW_STAGES = [FIRST_SEEN, *STAGE_ORDER]  # the stage flow starts before a customer's first stage
STAGE_COLOURS = {
    FIRST_SEEN: "#94a3b8",
    "prospect": "#a5b4fc",
    "new": "#38bdf8",
    "active": "#22c55e",
    "reactivated": "#14b8a6",
    "at_risk": "#f59e0b",
    "churned": "#ef4444",
}
PALETTE = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#64748b", "#ec4899"]
FUNNEL_SERIES_LIMIT = 9  # campaign/variant funnels shown (largest by messages sent)
JOURNEY_FLOW_LIMIT = 6  # journey × version flows drawn (most entries first)
ENTRY_NODE = "(entry)"  # journey_performance's row for the entry point
FUNNEL_COLUMNS = 3
DAY_MS = 86_400_000  # one day on a plotly date axis
# no toolbar (drag to zoom and double-click to reset still work); charts resize with the window
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Headline:
    messages_sent: int | None
    conversions: int | None
    revenue: float | None
    lift: dict | None  # the 'treated' experiment_results row with the largest reach
    experiments: int  # campaign × channel experiments with a treated row


@dataclass(frozen=True)
class ReportResult:
    path: Path  # the dated report
    latest_path: Path  # the stable campaign_report.html copy
    as_of: str
    charts_rendered: int
    sections: list[str]
    empty_sections: list[str]
    headline: Headline

    def summary_markdown(self) -> str:
        """The headline numbers as a few Markdown lines (Dagster metadata)."""
        h = self.headline
        lines = [
            f"**Campaign report as of {self.as_of}**",
            "",
            f"- Messages sent: {fmt_int(h.messages_sent)}",
            f"- Conversions: {fmt_int(h.conversions)}",
            f"- Revenue: {fmt_money(h.revenue)}",
            f"- Incremental lift vs holdout: {lift_sentence(h.lift)}",
            f"- Charts: {self.charts_rendered} of {len(self.sections)}",
        ]
        if self.empty_sections:
            lines.append(f"- No data yet: {', '.join(self.empty_sections)}")
        return "\n".join(lines)


@dataclass
class Section:
    key: str
    title: str
    intro: str
    figure: go.Figure | None = None
    tables: list[str] = field(default_factory=list)
    empty: str | None = None  # why there is nothing to show


def _level(row: dict) -> str:
    level = row.get("confidence_level")
    return "CI" if is_missing(level) else f"{100 * float(level):g}% CI"


def lift_sentence(lift: dict | None) -> str:
    if not lift:
        return "no experiment yet"
    verdict = "significant" if _true(lift.get("is_significant")) else "not significant"
    return (
        f"{fmt_pp(lift.get('absolute_lift'))} ({_level(lift)} {fmt_pp(lift.get('absolute_lift_ci_low'))} to "
        f"{fmt_pp(lift.get('absolute_lift_ci_high'))}), {fmt_p(lift.get('p_value'))}, {verdict} "
        f"({lift.get('campaign')} · {lift.get('channel')})"
    )


def _true(value: object) -> bool:
    """A nullable boolean column's value: null counts as false."""
    return not is_missing(value) and bool(value)


def _esc(value: object) -> str:
    return html.escape("" if is_missing(value) else str(value))


Cell = str | tuple[str, str]  # formatted text, or (text, a smaller second line such as an interval)


def _cell(cell: Cell) -> str:
    if isinstance(cell, tuple):
        main, detail = cell
        return f'{_esc(main)}<span class="sub">{_esc(detail)}</span>' if detail else _esc(main)
    return _esc(cell)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], numeric: Sequence[bool]) -> str:
    """A small table; cells are already formatted text (escaped here), optionally with a second line."""
    head = "".join(
        f'<th class="{"num" if n else ""}">{_esc(h)}</th>' for h, n in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if n else ""}">{_cell(c)}</td>' for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---------------------------------------------------------------- reading the marts


class Marts:
    """Read-only access to the marts the report uses; a missing table reads as None."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.present = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ?", [SCHEMA]
            ).fetchall()
        }

    def rows(self, table: str) -> int | None:
        if table not in self.present:
            return None
        return int(self.con.execute(f'select count(*) from {SCHEMA}."{table}"').fetchone()[0])

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()


def model_labels(marts: Marts) -> dict[str, str]:
    """Attribution model -> label, in display order, from marts.attribution_models (declared once,
    by the dbt macro attribution_models()); a warehouse without it shows the models' own names."""
    if "attribution_models" not in marts.present:
        return {}
    sql = f"select model, label from {SCHEMA}.attribution_models order by display_order"
    return dict(marts.con.execute(sql).fetchall())


def _no_data(marts: Marts, table: str, what: str) -> str | None:
    """Why a section is empty, or None when its table has rows."""
    rows = marts.rows(table)
    if rows is None:
        return f"No data yet: marts.{table} does not exist in this warehouse ({what})."
    if rows == 0:
        return f"No data yet: marts.{table} is empty ({what})."
    return None


def read_headline(marts: Marts) -> Headline:
    sent = conversions = revenue = None
    if marts.rows("fct_messages"):
        sent = marts.df(f"select count(*) filter (where is_sent) as n from {SCHEMA}.fct_messages")["n"][0]
    if marts.rows("fct_campaign_performance"):
        perf = marts.df(
            f"select sum(sent)::bigint as sent, sum(conversions)::bigint as conversions, sum(revenue)::double as revenue "
            f"from {SCHEMA}.fct_campaign_performance"
        ).iloc[0]
        sent = perf["sent"] if sent is None else sent
        conversions, revenue = perf["conversions"], perf["revenue"]
    lift, experiments = None, 0
    if marts.rows("experiment_results"):
        # only an arm measured against a holdout has a lift to headline
        treated = marts.df(
            f"select * from {SCHEMA}.experiment_results where arm_type = 'treated' and absolute_lift is not null "
            f"order by reach desc, campaign, channel"
        )
        experiments = len(treated)
        lift = treated.iloc[0].to_dict() if len(treated) else None
    return Headline(
        messages_sent=None if is_missing(sent) else int(sent),
        conversions=None if is_missing(conversions) else int(conversions),
        revenue=None if is_missing(revenue) else float(revenue),
        lift=lift,
        experiments=experiments,
    )


# ---------------------------------------------------------------- sections


def _layout(fig: go.Figure, height: int = 420, margin: dict | None = None, **kwargs) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 30, "t": 30, "b": 50} | (margin or {}),
        font={"family": FONT, "size": 13, "color": "#1f2937"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hoverlabel={"font": {"family": FONT}},
        **kwargs,
    )
    return fig


def lifecycle_section(marts: Marts) -> Section:
    section = Section(
        "lifecycle",
        "Lifecycle stage flow",
        "How customers move between lifecycle stages: each band is a stage change (left: the stage before, "
        "right: the stage after), its width the number of such changes up to the as-of date. 'first seen' is "
        "where every customer starts: the stage they were in when they first appeared.",
    )
    section.empty = _no_data(marts, "customer_lifecycle_history", "built by dbt from orders")
    if section.empty:
        return section
    flows = marts.con.execute(
        f"select coalesce(previous_stage, ?) as from_stage, stage as to_stage, "
        f"count(*)::bigint as changes, count(*) filter (where is_current)::bigint as still_there "
        f"from {SCHEMA}.customer_lifecycle_history group by 1, 2",
        [FIRST_SEEN],
    ).df()

    def order(stage: str) -> tuple[int, str]:
        return (FLOW_STAGES.index(stage) if stage in FLOW_STAGES else len(FLOW_STAGES), stage)

    sources = sorted(flows["from_stage"].unique(), key=order)
    targets = sorted(flows["to_stage"].unique(), key=order)
    labels = [*sources, *targets]
    index = {("from", s): i for i, s in enumerate(sources)} | {
        ("to", t): len(sources) + i for i, t in enumerate(targets)
    }
    colours = [STAGE_COLOURS.get(s, "#64748b") for s in labels]
    flows = flows.sort_values(["from_stage", "to_stage"], key=lambda c: c.map(lambda s: order(s)[0]))
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": labels,
                "color": colours,
                "pad": 18,
                "thickness": 18,
                "line": {"width": 0},
                "hovertemplate": "%{label}: %{value:,} changes<extra></extra>",
            },
            link={
                "source": [index[("from", s)] for s in flows["from_stage"]],
                "target": [index[("to", t)] for t in flows["to_stage"]],
                "value": flows["changes"].tolist(),
                "color": [_fade(STAGE_COLOURS.get(t, "#64748b")) for t in flows["to_stage"]],
                "hovertemplate": "%{source.label} → %{target.label}: %{value:,}<extra></extra>",
            },
        )
    )
    _layout(fig, height=440, margin={"l": 20, "r": 20, "t": 40, "b": 20})
    fig.add_annotation(x=0, y=1.07, xref="paper", yref="paper", text="<b>stage before</b>", showarrow=False)
    fig.add_annotation(x=1, y=1.07, xref="paper", yref="paper", text="<b>stage after</b>", showarrow=False)
    section.figure = fig
    totals = flows.groupby("from_stage")["changes"].sum()
    top = flows.sort_values(["changes", "from_stage", "to_stage"], ascending=[False, True, True]).head(12)
    section.tables.append(
        html_table(
            ["From", "To", "Changes", "Share of changes from this stage", "Still in the stage"],
            [
                [
                    r.from_stage,
                    r.to_stage,
                    fmt_int(r.changes),
                    fmt_pct(share(r.changes, totals[r.from_stage])),
                    fmt_int(r.still_there),
                ]
                for r in top.itertuples()
            ],
            [False, False, True, True, True],
        )
    )
    return section


def _fade(hex_colour: str, alpha: float = 0.45) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _perf_totals(marts: Marts, by: str) -> pd.DataFrame:
    return marts.df(
        f"select {by}, sum(sent)::bigint as sent, sum(delivered)::bigint as delivered, "
        f"sum(unique_opens)::bigint as unique_opens, "
        f"coalesce(sum(unique_opens) filter (where channel = 'email'), 0)::bigint as email_opens, "
        f"sum(unique_clicks)::bigint as unique_clicks, "
        f"sum(conversions)::bigint as conversions, sum(revenue)::double as revenue, sum(cost)::double as cost, "
        f"sum(unsubscribes)::bigint as unsubscribes "
        f"from {SCHEMA}.fct_campaign_performance group by {by}"
    )


FUNNEL_STEPS = [
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("unique_opens", "Opened (email only)"),
    ("unique_clicks", "Clicked"),
    ("conversions", "Converted"),
]


def funnel_section(marts: Marts) -> Section:
    section = Section(
        "funnel",
        "Campaign funnel",
        "From sent to converted, per campaign and variant: opens count people who opened (bot and "
        "mail-privacy prefetch opens left out), conversions are orders within the conversion window.",
    )
    section.empty = _no_data(marts, "fct_campaign_performance", "built by dbt from the delivery ledger")
    if section.empty:
        return section
    perf = _perf_totals(marts, "campaign, variant, channel").sort_values(
        ["sent", "campaign", "variant", "channel"], ascending=[False, True, True, True]
    )
    shown = perf.head(FUNNEL_SERIES_LIMIT).sort_values(["campaign", "channel", "variant"])
    cols = min(len(shown), FUNNEL_COLUMNS)
    rows = -(-len(shown) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        vertical_spacing=0.12 / rows,
        subplot_titles=[f"{r.campaign} · {r.variant} ({r.channel})" for r in shown.itertuples()],
    )
    for i, r in enumerate(shown.itertuples()):
        # only email has an open pixel: an SMS or push funnel goes from delivered to clicked
        steps = [s for s in FUNNEL_STEPS if r.channel == "email" or s[0] != "unique_opens"]
        values = [int(getattr(r, col) or 0) for col, _ in steps]
        # small bars get their label outside, where it can be read
        inside = [v >= 0.3 * max(values[0], 1) for v in values]
        fig.add_trace(
            go.Funnel(
                name=f"{r.campaign} · {r.variant} ({r.channel})",
                y=[label for _, label in steps],
                x=values,
                textinfo="value+percent initial",
                textposition=["inside" if i else "outside" for i in inside],
                textfont={"color": ["#ffffff" if i else "#1f2937" for i in inside]},
                constraintext="none",
                cliponaxis=False,
                marker={"color": PALETTE[i % len(PALETTE)]},
                connector={"fillcolor": "#e0e7ff", "line": {"width": 0}},
                showlegend=False,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(categoryorder="array", categoryarray=[label for _, label in FUNNEL_STEPS])
    _layout(fig, height=60 + 300 * rows, margin={"l": 120, "t": 40})
    section.figure = fig
    note = (
        f" Showing the {FUNNEL_SERIES_LIMIT} largest of {len(perf)}."
        if len(perf) > FUNNEL_SERIES_LIMIT
        else ""
    )
    section.intro += note
    section.tables.append(
        html_table(
            [
                "Campaign",
                "Variant",
                "Channel",
                "Sent",
                "Delivered",
                "Open rate",
                "Click rate",
                "Conversions",
                "Conv. rate",
                "Revenue",
                "Revenue / msg",
            ],
            [
                [
                    r.campaign,
                    r.variant,
                    r.channel,
                    fmt_int(r.sent),
                    fmt_pct(share(r.delivered, r.sent)),
                    fmt_pct(share(r.unique_opens, r.delivered) if r.channel == "email" else None),
                    fmt_pct(share(r.unique_clicks, r.delivered)),
                    fmt_int(r.conversions),
                    fmt_pct(share(r.conversions, r.sent), 2),
                    fmt_money(r.revenue),
                    fmt_money(share(r.revenue, r.sent)),
                ]
                for r in perf.sort_values(["campaign", "channel", "variant"]).itertuples()
            ],
            [False, False, False, True, True, True, True, True, True, True, True],
        )
    )
    section.tables.append(
        '<p class="note">Delivered is a share of sent; open and click rates are shares of delivered; '
        "conversion rate and revenue per message are per message sent.</p>"
    )
    if marts.rows("fct_messages"):
        statuses = marts.df(
            f"select case when is_holdout then 'holdout (not sent, measured)' "
            f"when skip_reason is not null then status || ': ' || skip_reason else status end as status, "
            f"count(*)::bigint as messages from {SCHEMA}.fct_messages group by 1 order by messages desc, 1"
        )
        section.tables.append(
            "<h3>Every planned message by ledger status</h3>"
            + html_table(
                ["Status", "Messages"],
                [[r.status, fmt_int(r.messages)] for r in statuses.itertuples()],
                [False, True],
            )
        )
    return section


def trend_section(marts: Marts) -> Section:
    section = Section(
        "trend",
        "Daily trend",
        "Messages sent per send day (bars, left axis) and what they earned: human opens of the emails, "
        "clicks and conversions of all the messages sent that day (lines, right axis). Only email has an "
        "open pixel, so opens count emails only.",
    )
    section.empty = _no_data(marts, "fct_campaign_performance", "built by dbt from the delivery ledger")
    if section.empty:
        return section
    daily = _perf_totals(marts, "send_date").sort_values("send_date")
    daily["send_date"] = pd.to_datetime(daily["send_date"])
    fig = go.Figure()
    fig.add_trace(go.Bar(x=daily["send_date"], y=daily["sent"], name="Sent", marker={"color": "#c7d2fe"}))
    for col, name, colour in [
        ("email_opens", "Opened (email)", "#0ea5e9"),
        ("unique_clicks", "Clicked", "#10b981"),
        ("conversions", "Converted", "#ef4444"),
    ]:
        fig.add_trace(
            go.Scatter(
                x=daily["send_date"],
                y=daily[col],
                name=name,
                mode="lines+markers",
                yaxis="y2",
                line={"color": colour, "width": 2.5},
            )
        )
    _layout(
        fig,
        yaxis={"title": {"text": "messages sent"}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "opens, clicks, conversions"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
        xaxis={"type": "date", "tickformat": "%b %d", **({"dtick": DAY_MS} if len(daily) <= 14 else {})},
        bargap=0.35,
    )
    section.figure = fig
    section.tables.append(
        html_table(
            ["Send date", "Sent", "Delivered", "Opened (email)", "Clicked", "Converted", "Revenue"],
            [
                [
                    r.send_date.date().isoformat(),
                    fmt_int(r.sent),
                    fmt_int(r.delivered),
                    fmt_int(r.email_opens),
                    fmt_int(r.unique_clicks),
                    fmt_int(r.conversions),
                    fmt_money(r.revenue),
                ]
                for r in daily.sort_values("send_date", ascending=False).head(14).itertuples()
            ],
            [False, True, True, True, True, True, True],
        )
    )
    if len(daily) > 14:
        section.tables.append(f'<p class="note">The table lists the last 14 of {len(daily)} send days.</p>')
    return section


CHANNEL_LABELS = {"unattributed": "unattributed (no touch)"}
COST_BASIS_LABELS = {
    "spend": "spend",
    "sending_fees_only": "sending fees only",
    "none": "no cost recorded",
}
ROI_NOTE = (
    "ROI and ROAS are shown only for channels with spend (ad spend, or a daily platform cost, in the "
    "channel_costs seed). Email, SMS and push carry only their sending fees (about 0.001 per email), "
    "against which any order looks like a return of thousands of percent, so they show what sending cost "
    "per credited conversion instead; a campaign's own revenue per message is in the funnel table above. "
    "Add a per_day cost for a channel to see its ROI (docs/attribution.md)."
)


def period_label(period: str, start: object, end: object, days: object) -> str:
    """'Last 30 days (2026-11-08 to 2026-12-07)' or 'All time (… to …)'."""
    name = f"Last {fmt_int(days)} days" if period == "recent" else "All time"
    return f"{name} ({_date(start)} to {_date(end)})"


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _date(value: object) -> str:
    return "—" if is_missing(value) else pd.Timestamp(value).date().isoformat()


def roi_section(marts: Marts, model: str = DEFAULT_ROI_MODEL) -> Section:
    section = Section(
        "roi",
        "Channel ROI",
        "Attributed revenue against cost per channel. ROI = (revenue − cost) / cost; ROAS = revenue / cost.",
    )
    section.empty = _no_data(marts, "channel_roi", "built by dbt from attribution and channel costs")
    if section.empty:
        return section
    models = set(marts.df(f"select distinct model from {SCHEMA}.channel_roi")["model"])
    labels_of = model_labels(marts)
    chosen = next((m for m in [model, "last_touch", *labels_of] if m in models), sorted(models)[0])
    roi = marts.con.execute(
        f"select channel, period, period_start, period_end, period_days, conversions::double as conversions, "
        f"attributed_revenue::double as revenue, messages_sent, cost::double as cost, cost_basis, "
        f"roi::double as roi, roas::double as roas, cost_per_conversion::double as cost_per_conversion "
        f"from {SCHEMA}.channel_roi where model = ? "
        f"order by case period when 'recent' then 0 else 1 end, channel = 'unattributed', "
        f"attributed_revenue desc nulls last, channel",
        [chosen],
    ).df()
    periods = roi.drop_duplicates("period")
    labels = {
        p.period: period_label(p.period, p.period_start, p.period_end, p.period_days)
        for p in periods.itertuples()
    }
    charted = "recent" if "recent" in labels else periods["period"].iloc[0]
    shown = ("the " if charted == "recent" else "") + _lower(labels[charted])
    section.intro += f" Credit by the {labels_of.get(chosen, chosen)} model. The chart shows {shown}."
    if len(labels) > 1:
        section.intro += (
            " The tables show each period; the all-time figures are those of the attribution section below."
        )
    section.figure = _roi_figure(roi[roi["period"] == charted], labels[charted])
    for period, label in labels.items():
        section.tables.append(f"<h3>{_esc(label)}</h3>" + _roi_table(roi[roi["period"] == period]))
    section.tables.append(f'<p class="note">{_esc(ROI_NOTE)}</p>')
    return section


def _roi_figure(roi: pd.DataFrame, label: str) -> go.Figure:
    channels = [CHANNEL_LABELS.get(c, c) for c in roi["channel"]]
    bar_text = [
        f"ROAS {fmt_ratio(r.roas)}"
        if not is_missing(r.roas)
        else ("fees only" if r.cost_basis == "sending_fees_only" else "")
        for r in roi.itertuples()
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=channels,
            y=roi["revenue"],
            name="Attributed revenue",
            # revenue no channel earned (orders without a touch) in grey
            marker={"color": ["#94a3b8" if c == "unattributed" else "#4f46e5" for c in roi["channel"]]},
            text=bar_text,
            textposition="outside",
            textfont={"size": 12},
            constraintext="none",
            cliponaxis=False,
        )
    )
    fig.add_trace(go.Bar(x=channels, y=roi["cost"], name="Cost", marker={"color": "#f59e0b"}))
    _layout(
        fig,
        barmode="group",
        yaxis={"title": {"text": "revenue and cost"}, "tickformat": ",.0f"},
        xaxis={"title": {"text": label}},
    )
    return fig


def _roi_table(roi: pd.DataFrame) -> str:
    """Per channel; the cost basis under the cost and ROAS under ROI, so the table fits a laptop."""
    return html_table(
        [
            "Channel",
            "Credited conversions",
            "Attributed revenue",
            "Messages sent",
            "Cost (basis)",
            "ROI (ROAS)",
            "Cost / conversion",
        ],
        [
            [
                CHANNEL_LABELS.get(r.channel, r.channel),
                fmt_num(r.conversions),
                fmt_money(r.revenue),
                fmt_int(r.messages_sent) if r.messages_sent else "—",
                (fmt_amount(r.cost), COST_BASIS_LABELS.get(r.cost_basis, r.cost_basis)),
                (fmt_signed_pct(r.roi), "" if is_missing(r.roas) else f"ROAS {fmt_ratio(r.roas)}"),
                fmt_amount(r.cost_per_conversion),
            ]
            for r in roi.itertuples()
        ],
        [False, True, True, True, True, True, True],
    )


def attribution_section(marts: Marts) -> Section:
    section = Section(
        "attribution",
        "Attribution models side by side",
        "Revenue credited to each channel by each attribution model. Where the models disagree, the "
        "channel's role depends on where in the journey it appears (first-touch favours openers, "
        "last-touch closers; data-driven uses each channel's Markov removal effect).",
    )
    section.empty = _no_data(marts, "fct_attribution", "built by dbt from touchpoints and orders")
    if section.empty:
        return section
    credit = marts.df(
        f"select channel, model, sum(weight)::double as conversions, sum(attributed_revenue)::double as revenue "
        f"from {SCHEMA}.fct_attribution group by channel, model"
    )
    period = _all_time_label(marts)
    section.intro += (
        f" Period: {_lower(period)}, every order up to the as-of date (the Channel ROI section's all-time "
        "table shows the same credit next to its cost)."
    )
    labels_of = model_labels(marts)
    models = [m for m in labels_of if m in set(credit["model"])] + sorted(
        set(credit["model"]) - set(labels_of)
    )
    channels = list(credit.groupby("channel")["revenue"].sum().sort_values(ascending=False).index)
    revenue = credit.pivot(index="channel", columns="model", values="revenue").reindex(channels)
    conversions = credit.pivot(index="channel", columns="model", values="conversions").reindex(channels)
    fig = go.Figure()
    for i, m in enumerate(models):
        fig.add_trace(
            go.Bar(
                x=channels,
                y=revenue[m].fillna(0),
                name=labels_of.get(m, m),
                marker={"color": PALETTE[i % len(PALETTE)]},
                customdata=conversions[m].fillna(0),
                hovertemplate="%{x}: %{y:,.2f} revenue, %{customdata:,.1f} conversions<extra>%{fullData.name}</extra>",
            )
        )
    _layout(fig, barmode="group", yaxis={"title": {"text": "attributed revenue"}, "tickformat": ",.0f"})
    section.figure = fig
    section.tables.append(
        f"<h3>Attributed revenue · {_esc(_lower(period))}</h3>"
        + html_table(
            ["Channel", *[labels_of.get(m, m) for m in models]],
            [[c, *[fmt_money(revenue.at[c, m]) for m in models]] for c in channels],
            [False, *[True] * len(models)],
        )
    )
    section.tables.append(
        f"<h3>Conversions credited · {_esc(_lower(period))}</h3>"
        + html_table(
            ["Channel", *[labels_of.get(m, m) for m in models]],
            [[c, *[fmt_num(conversions.at[c, m]) for m in models]] for c in channels],
            [False, *[True] * len(models)],
        )
    )
    return section


def _all_time_label(marts: Marts) -> str:
    """The all-time period as channel_roi states it, else the span of the attributed orders."""
    if marts.rows("channel_roi"):
        rows = marts.df(
            f"select min(period_start) as period_start, max(period_end) as period_end, max(period_days) as days "
            f"from {SCHEMA}.channel_roi where period = 'all_time'"
        ).iloc[0]
        if not is_missing(rows["period_start"]):
            return period_label("all_time", rows["period_start"], rows["period_end"], rows["days"])
    span = marts.df(
        f"select min(ordered_at) as first, max(ordered_at) as last from {SCHEMA}.fct_attribution"
    ).iloc[0]
    return period_label("all_time", span["first"], span["last"], None)


NO_HOLDOUT = "no holdout"


def experiment_section(marts: Marts) -> Section:
    section = Section(
        "experiments",
        "Experiment lift vs holdout",
        "Conversion-rate lift of each arm over its holdout group, in percentage points, with its "
        "confidence interval (bars crossing zero are not significant). 'treated' is every variant together: "
        "the incremental lift of sending at all. ★ marks the winning variant.",
    )
    section.empty = _no_data(
        marts, "experiment_results", "built by dbt from the ledger's variants and holdouts"
    )
    if section.empty:
        return section
    arms = marts.df(
        f"select * from {SCHEMA}.experiment_results "
        f"order by campaign, channel, case arm_type when 'holdout' then 0 when 'treated' then 2 else 1 end, arm"
    )
    controlled = {(r.campaign, r.channel) for r in arms.itertuples() if r.arm_type == "holdout"}
    arms["has_holdout"] = [(r.campaign, r.channel) in controlled for r in arms.itertuples()]
    lifts = arms[(arms["arm_type"] != "holdout") & arms["has_holdout"]].reset_index(drop=True)
    uncontrolled = sorted({f"{r.campaign} · {r.channel}" for r in arms.itertuples() if not r.has_holdout})
    if len(lifts):
        section.figure = _lift_figure(lifts)
        if uncontrolled:
            section.tables.append(
                f'<p class="note">Not drawn, as they have {NO_HOLDOUT} to measure a lift against: '
                f"{_esc(', '.join(uncontrolled))}. Their conversion rates are in the table.</p>"
            )
    else:
        section.empty = (
            "No lift to show yet: no campaign has a holdout group (set holdout_share on a segment's "
            "activation, docs/experiments.md); the conversion rates are in the table."
        )
    section.tables.append(_experiment_table(arms))
    return section


def _lift_figure(lifts: pd.DataFrame) -> go.Figure:
    """Lift of each arm that has a holdout, with its confidence interval, one row per arm."""
    labels = [f"{r.campaign} · {r.channel} · {r.arm}" for r in lifts.itertuples()]
    colours = [
        "#16a34a" if _true(r.is_winner) else ("#4f46e5" if _true(r.is_significant) else "#94a3b8")
        for r in lifts.itertuples()
    ]
    x = [100 * (v or 0) for v in lifts["absolute_lift"].fillna(0)]
    hi = (lifts["absolute_lift_ci_high"] - lifts["absolute_lift"]).fillna(0) * 100
    lo = (lifts["absolute_lift"] - lifts["absolute_lift_ci_low"]).fillna(0) * 100
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=labels,
            mode="markers+text",
            marker={
                "color": colours,
                "size": [20 if _true(w) else 12 for w in lifts["is_winner"]],
                "symbol": ["star" if _true(w) else "circle" for w in lifts["is_winner"]],
            },
            error_x={
                "type": "data",
                "symmetric": False,
                "array": hi,
                "arrayminus": lo,
                "thickness": 2.5,
                "width": 6,
                "color": "#475569",
            },
            text=[
                ("★ winner · " if _true(r.is_winner) else "")
                + f"{fmt_pp(r.absolute_lift)} · {fmt_p(r.p_value)}"
                for r in lifts.itertuples()
            ],
            textposition="top center",
            customdata=[
                [fmt_pp(r.absolute_lift_ci_low), fmt_pp(r.absolute_lift_ci_high)] for r in lifts.itertuples()
            ],
            hovertemplate="%{y}<br>lift %{x:+.2f} pp (CI %{customdata[0]} to %{customdata[1]})<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_vline(
        x=0,
        line={"color": "#ef4444", "dash": "dash"},
        annotation_text="holdout",
        annotation_position="top",
    )
    _layout(
        fig,
        height=max(300, 140 + 70 * len(lifts)),
        margin={"l": 220, "t": 40},
        xaxis={
            "title": {"text": "absolute lift in conversion rate vs holdout (percentage points)"},
            "zeroline": False,
            "ticksuffix": " pp",
        },
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return fig


def _experiment_table(arms: pd.DataFrame) -> str:
    """Every arm; intervals on a second line so the verdict stays in view on a laptop screen."""
    rows = []
    for r in arms.to_dict("records"):
        compared = r["arm_type"] != "holdout" and r["has_holdout"]
        rate = (
            fmt_pct(r["conversion_rate"], 2),
            f"{fmt_pct(r['conversion_rate_ci_low'], 2)} – {fmt_pct(r['conversion_rate_ci_high'], 2)}",
        )
        if r["arm_type"] == "holdout":
            lift: Cell = "baseline"
        elif not compared:
            lift = NO_HOLDOUT
        else:
            lift = (
                fmt_pp(r["absolute_lift"], 2),
                f"{fmt_pp(r['absolute_lift_ci_low'], 2)} to {fmt_pp(r['absolute_lift_ci_high'], 2)}",
            )
        rows.append(
            [
                (r["campaign"], r["channel"]),
                r["arm"],
                f"{fmt_int(r['converters'])} of {fmt_int(r['reach'])}",
                rate,
                lift,
                fmt_signed_pct(r["relative_lift"]) if compared else "",
                fmt_p(r["p_value"]) if compared else "",
                _verdict(r),
            ]
        )
    return html_table(
        [
            "Campaign (channel)",
            "Arm",
            "Converted of reached",
            "Conversion rate (CI)",
            "Lift vs holdout (CI)",
            "Relative lift",
            "p-value",
            "Verdict",
        ],
        rows,
        [False, False, True, True, True, True, True, False],
    )


def _verdict(arm: dict) -> str:
    if arm["arm_type"] == "holdout":
        return ""
    if _true(arm["is_winner"]):
        return "★ winner"
    if not arm["has_holdout"]:
        return NO_HOLDOUT
    return "significant" if _true(arm["is_significant"]) else "not significant"


# ---------------------------------------------------------------- journeys

JOURNEY_BARS = [  # journey_performance column, label, colour
    ("reached", "Reached", "#4f46e5"),
    ("sent", "Sent", "#0ea5e9"),
    ("converted", "Converted", "#10b981"),
    ("exited", "Left here", "#f59e0b"),
]
EXIT_REASONS = ["completed", "converted", "exit_condition", "holdout", "archived"]


def journey_section(marts: Marts) -> Section | None:
    """Per journey × version, the flow with counts per node and the lift over the journey holdout;
    None (no section at all) while the warehouse has no journey marts or no journey entered yet."""
    if marts.rows("journey_performance") in (None, 0):
        return None
    section = Section(
        "journeys",
        "Journeys",
        "Each journey's flow, node by node in the order entries reach them: how many treated entries "
        "reached the node, what it sent, how many of those who reached it converted (the goal within its "
        "window) and how many left the journey there. 'entry' counts every entry, held-out ones included "
        "(they leave there). Lift is the conversion of treated entries against the journey's holdout, "
        "with its confidence interval.",
    )
    nodes = marts.df(
        f"select journey, version, node, node_depth, reached, sent, skipped, deferred, failed, converted, "
        f"exited, {', '.join(f'exited_{r}' for r in EXIT_REASONS)}, "
        f"median_hours_to_next_node::double as median_hours from {SCHEMA}.journey_performance"
    )
    lift = _journey_lift(marts)
    entries = nodes[nodes["node"] == ENTRY_NODE].set_index(["journey", "version"])["reached"]
    flows = sorted(entries.index, key=lambda k: (-int(entries[k]), k))
    shown = flows[:JOURNEY_FLOW_LIMIT]
    if len(flows) > len(shown):
        section.intro += f" Showing the {len(shown)} largest of {len(flows)} journey versions."
    section.figure = _journey_figure(nodes, shown)
    for journey, version in shown:
        flow = _flow(nodes, journey, version)
        row = lift.get((journey, version))
        section.tables.append(
            f"<h3>{_esc(journey)} · version {_esc(version)}</h3>"
            + f'<p class="note">{_esc(_journey_headline(row, int(entries[(journey, version)])))}</p>'
            + _flow_table(flow)
        )
    if lift:
        section.tables.append("<h3>Lift against the journey holdout</h3>" + _journey_lift_table(lift, flows))
    return section


def _journey_lift(marts: Marts) -> dict[tuple[str, str], dict]:
    if not marts.rows("journey_lift"):
        return {}
    rows = marts.df(f"select * from {SCHEMA}.journey_lift").to_dict("records")
    return {(r["journey"], r["version"]): r for r in rows}


def _flow(nodes: pd.DataFrame, journey: str, version: str) -> pd.DataFrame:
    """One journey version's nodes in flow order: the entry point, then by depth (unreached last)."""
    flow = nodes[(nodes["journey"] == journey) & (nodes["version"] == version)].copy()
    flow["order"] = flow["node_depth"].fillna(10**6)
    return flow.sort_values(["order", "node"]).reset_index(drop=True)


def _node_label(node: str) -> str:
    return "entry" if node == ENTRY_NODE else node


def _journey_figure(nodes: pd.DataFrame, shown: list[tuple[str, str]]) -> go.Figure:
    """Horizontal bars per node (the flow reads top to bottom), one panel per journey version."""
    flows = [_flow(nodes, j, v) for j, v in shown]
    heights = [max(len(f), 1) for f in flows]
    fig = make_subplots(
        rows=len(flows),
        cols=1,
        row_heights=heights,
        vertical_spacing=0.25 / len(flows) if len(flows) > 1 else 0.0,
        subplot_titles=[f"{j} · version {v}" for j, v in shown],
    )
    for i, flow in enumerate(flows):
        labels = [_node_label(n) for n in flow["node"]]
        for col, name, colour in JOURNEY_BARS:
            fig.add_trace(
                go.Bar(
                    y=labels,
                    x=flow[col].fillna(0).astype(int),
                    name=name,
                    orientation="h",
                    marker={"color": colour},
                    text=[fmt_int(v) if v else "" for v in flow[col].fillna(0)],
                    textposition="outside",
                    cliponaxis=False,
                    legendgroup=name,
                    showlegend=i == 0,
                    hovertemplate="%{y}: %{x:,} " + name.lower() + "<extra></extra>",
                ),
                row=i + 1,
                col=1,
            )
        fig.update_yaxes(autorange="reversed", type="category", row=i + 1, col=1)
    fig.update_xaxes(rangemode="tozero", showticklabels=False)
    height = 120 + sum(36 * h + 60 for h in heights)
    _layout(fig, height=height, margin={"l": 150, "t": 100}, barmode="group")
    fig.update_layout(legend={"y": 1 + 50 / (height - 150)})  # above the first panel's title
    return fig


def _journey_headline(row: dict | None, entries: int) -> str:
    if row is None:
        return f"{fmt_int(entries)} entries."
    treated = (
        f"treated {fmt_int(row['treated_converters'])} of {fmt_int(row['treated_entries'])} converted "
        f"({fmt_pct(row['treated_conversion_rate'], 1)})"
    )
    if not row["holdout_entries"]:
        return f"{fmt_int(entries)} entries: {treated}; no holdout, so no lift to measure."
    holdout = (
        f"held out {fmt_int(row['holdout_converters'])} of {fmt_int(row['holdout_entries'])} "
        f"({fmt_pct(row['holdout_conversion_rate'], 1)})"
    )
    return (
        f"{fmt_int(entries)} entries: {treated}, {holdout}; lift {fmt_pp(row['absolute_lift'])} "
        f"({_level(row)} {fmt_pp(row['absolute_lift_ci_low'])} to {fmt_pp(row['absolute_lift_ci_high'])}), "
        f"{fmt_p(row['p_value'])}, {'significant' if _true(row['is_significant']) else 'not significant'}."
    )


def _flow_table(flow: pd.DataFrame) -> str:
    rows = []
    for r in flow.to_dict("records"):
        reasons = ", ".join(
            f"{reason} {fmt_int(r[f'exited_{reason}'])}" for reason in EXIT_REASONS if r[f"exited_{reason}"]
        )
        rows.append(
            [
                _node_label(r["node"]),
                fmt_int(r["reached"]),
                fmt_int(r["sent"]),
                fmt_int(r["skipped"]),
                fmt_int(r["deferred"]),
                fmt_int(r["failed"]),
                (fmt_int(r["converted"]), fmt_rate(r["converted"], r["reached"])),
                (fmt_int(r["exited"]), reasons),
                fmt_num(r["median_hours"]),
            ]
        )
    return html_table(
        [
            "Node",
            "Reached",
            "Sent",
            "Skipped",
            "Deferred",
            "Failed",
            "Converted",
            "Left here",
            "Median hours to next",
        ],
        rows,
        [False, True, True, True, True, True, True, True, True],
    )


def _journey_lift_table(lift: dict[tuple[str, str], dict], flows: list[tuple[str, str]]) -> str:
    rows = []
    for key in flows:
        r = lift.get(key)
        if r is None:
            continue
        measured = bool(r["holdout_entries"]) and not is_missing(r["absolute_lift"])
        rows.append(
            [
                (key[0], f"version {key[1]}"),
                fmt_int(r["entries"]),
                fmt_int(r["messages_sent"]),
                (
                    f"{fmt_int(r['treated_converters'])} of {fmt_int(r['treated_entries'])}",
                    fmt_pct(r["treated_conversion_rate"], 2),
                ),
                (
                    f"{fmt_int(r['holdout_converters'])} of {fmt_int(r['holdout_entries'])}",
                    fmt_pct(r["holdout_conversion_rate"], 2),
                ),
                (
                    fmt_pp(r["absolute_lift"], 2),
                    f"{fmt_pp(r['absolute_lift_ci_low'], 2)} to {fmt_pp(r['absolute_lift_ci_high'], 2)}",
                )
                if measured
                else NO_HOLDOUT,
                fmt_p(r["p_value"]) if measured else "",
                ("significant" if _true(r["is_significant"]) else "not significant")
                if measured
                else NO_HOLDOUT,
            ]
        )
    return html_table(
        ["Journey (version)", "Entries", "Messages sent", "Treated converted", "Held out converted",
         "Lift vs holdout (CI)", "p-value", "Verdict"],
        rows,
        [False, True, True, True, True, True, True, False],
    )  # fmt: skip


SECTIONS: list[Callable[[Marts], Section]] = [
    lifecycle_section,
    funnel_section,
    trend_section,
    roi_section,
    attribution_section,
    experiment_section,
]


# ---------------------------------------------------------------- the page


def _kpi(label: str, value: str, detail: str = "", badge: str = "") -> str:
    return (
        f'<div class="kpi"><div class="kpi-label">{_esc(label)}</div>'
        f'<div class="kpi-value">{_esc(value)}{badge}</div>'
        f'<div class="kpi-detail">{_esc(detail)}</div></div>'
    )


def _header_html(headline: Headline, as_of: str, generated: str) -> str:
    lift = headline.lift
    if lift:
        significant = _true(lift.get("is_significant"))
        badge = (
            f'<span class="badge {"good" if significant else "muted"}">'
            f"{'significant' if significant else 'not significant'}</span>"
        )
        detail = (
            f"{_level(lift)} {fmt_pp(lift.get('absolute_lift_ci_low'))} to "
            f"{fmt_pp(lift.get('absolute_lift_ci_high'))} · "
            + (
                ""
                if is_missing(lift.get("relative_lift"))
                else f"relative {fmt_signed_pct(lift.get('relative_lift'))} · "
            )
            + f"{fmt_p(lift.get('p_value'))} · {lift.get('campaign')} ({lift.get('channel')}), "
            f"{fmt_int(lift.get('reach'))} treated"
        )
        if headline.experiments > 1:
            detail += f" · largest of {headline.experiments} experiments"
        lift_card = _kpi("Incremental lift vs holdout", fmt_pp(lift.get("absolute_lift")), detail, badge)
    else:
        lift_card = _kpi("Incremental lift vs holdout", "—", "no experiment with a holdout yet")
    rate = share(headline.conversions, headline.messages_sent)
    return (
        '<header class="top"><div class="wrap">'
        f'<h1>Campaign report</h1><p class="sub">As of {_esc(as_of)} · generated {_esc(generated)} UTC</p>'
        '<div class="kpis">'
        + _kpi("Messages sent", fmt_int(headline.messages_sent), "email, SMS and push")
        + _kpi("Conversions", fmt_int(headline.conversions), f"{fmt_pct(rate, 2)} of messages sent")
        + _kpi("Revenue", fmt_money(headline.revenue), "orders within the conversion window")
        + lift_card
        + "</div></div></header>"
    )


# Collects JavaScript errors (and console.error calls) into #js-errors; installed before anything else runs.
ERROR_COLLECTOR = """
<script>
(function () {
  var errors = [];
  function show() {
    var box = document.getElementById('js-errors');
    if (!box) return;
    box.textContent = errors.join('\\n');
    box.hidden = errors.length === 0;
    document.body.setAttribute('data-js-errors', String(errors.length));
  }
  function record(message) { errors.push(String(message)); show(); }
  window.addEventListener('error', function (e) {
    record('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'unknown'));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    record('unhandled rejection: ' + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    record('console.error: ' + Array.prototype.slice.call(arguments).join(' '));
    return consoleError.apply(console, arguments);
  };
  document.addEventListener('DOMContentLoaded', show);
})();
</script>
"""

# Marks each chart once plotly has drawn it, then the page as done (read by the Chromium test).
RENDER_TRACKER = """
<script>
function reportChartRendered(id) {
  var el = document.getElementById(id);
  if (el && el.querySelector('svg.main-svg')) el.setAttribute('data-rendered', 'true');
  var done = document.querySelectorAll('.js-plotly-plot[data-rendered="true"]').length;
  document.body.setAttribute('data-charts-rendered', String(done));
}
window.addEventListener('load', function () {
  var expected = Number(document.body.getAttribute('data-charts-expected'));
  var started = Date.now();
  (function settle() {
    var done = Number(document.body.getAttribute('data-charts-rendered') || '0');
    if (done >= expected || Date.now() - started > 15000) {
      document.body.setAttribute('data-render-complete', 'true');
    } else {
      setTimeout(settle, 50);
    }
  })();
});
</script>
"""

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f4f6fb; --card:#fff; --accent:#4f46e5; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font-family:__FONT__; font-size:15px; line-height:1.5; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header.top { background: linear-gradient(135deg, #1e1b4b 0%, #312e81 55%, #4338ca 100%); color:#fff;
  padding: 28px 0 34px; }
header.top h1 { margin:0; font-size: 28px; letter-spacing: -0.01em; }
header.top .sub { margin: 4px 0 22px; color: #c7d2fe; }
.kpis { display:grid; grid-template-columns: repeat(3, minmax(0, 1fr)) minmax(0, 1.6fr); gap: 14px; }
.kpi { background: rgba(255,255,255,0.1); border: 1px solid rgba(255,255,255,0.18); border-radius: 12px;
  padding: 14px 16px; }
.kpi-label { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color:#c7d2fe; }
.kpi-value { font-size: 32px; font-weight: 700; margin-top: 2px; font-variant-numeric: tabular-nums; }
.kpi-detail { font-size: 13px; color:#e0e7ff; margin-top: 2px; }
.badge { display:inline-block; font-size: 12px; font-weight:600; vertical-align: middle; margin-left: 10px;
  padding: 2px 8px; border-radius: 999px; }
.badge.good { background:#22c55e; color:#052e16; }
.badge.muted { background:#e5e7eb; color:#374151; }
nav.toc { margin: 18px 0 0; display:flex; flex-wrap:wrap; gap: 8px; }
nav.toc a { color: var(--accent); background:#fff; border:1px solid var(--line); border-radius: 999px;
  padding: 4px 12px; text-decoration:none; font-size: 13px; }
section.card { background: var(--card); border:1px solid var(--line); border-radius: 14px; margin: 18px 0;
  padding: 20px 22px; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
section.card h2 { margin: 0 0 4px; font-size: 20px; }
section.card h3 { margin: 18px 0 6px; font-size: 15px; color: var(--muted); }
p.intro { margin: 0 0 10px; color: var(--muted); max-width: 900px; }
p.note { margin: 6px 0 0; color: var(--muted); font-size: 13px; }
.empty { border: 1px dashed #cbd5e1; background:#f8fafc; color:#475569; border-radius: 10px; padding: 18px;
  margin-top: 8px; }
.tables { overflow-x:auto; }
table.data { border-collapse: collapse; width: 100%; margin-top: 10px; font-size: 13px; }
table.data th { text-align:left; font-weight:600; color: var(--muted); border-bottom: 2px solid var(--line);
  padding: 6px 8px; vertical-align: bottom; }
table.data td { border-bottom: 1px solid var(--line); padding: 6px 8px; }
table.data tr:nth-child(even) td { background: #fafbff; }
table.data .num { text-align:right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.data .sub { display:block; font-size: 12px; color: var(--muted); }
#js-errors { background:#fef2f2; color:#991b1b; border:1px solid #fecaca; border-radius:10px; padding:12px;
  white-space: pre-wrap; }
footer { color: var(--muted); font-size: 13px; padding: 10px 0 40px; }
@media (max-width: 900px) { .kpis { grid-template-columns: 1fr 1fr; } }
""".replace("__FONT__", FONT)


def _section_html(section: Section, chart_html: str) -> str:
    body = f'<div class="empty">{_esc(section.empty)}</div>' if section.empty else ""
    return (
        f'<section class="card" id="{section.key}" data-section="{section.key}" '
        f'data-empty="{"true" if section.empty else "false"}">'
        f'<h2>{_esc(section.title)}</h2><p class="intro">{_esc(section.intro)}</p>'
        f"{body}{chart_html}"
        f'<div class="tables">{"".join(section.tables)}</div></section>'
    )


def render_html(sections: list[Section], headline: Headline, as_of: str, generated: str, source: str) -> str:
    charts = [s for s in sections if s.figure is not None]
    parts = []
    for s in sections:
        chart = ""
        if s.figure is not None:
            chart = s.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{s.key}",
                config=PLOT_CONFIG,
                post_script="reportChartRendered('{plot_id}');",
            )
        parts.append(_section_html(s, chart))
    toc = "".join(f'<a href="#{s.key}">{_esc(s.title)}</a>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Campaign report — {_esc(as_of)}</title><style>{CSS}</style></head>"
        f'<body data-charts-expected="{len(charts)}" data-charts-rendered="0" data-js-errors="0">'
        f"{ERROR_COLLECTOR}"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f"{RENDER_TRACKER}"
        f"{_header_html(headline, as_of, generated)}"
        f'<main class="wrap"><nav class="toc">{toc}</nav>'
        '<pre id="js-errors" hidden></pre>'
        f"{''.join(parts)}"
        f"<footer>Built from the {', '.join('marts.' + m for m in MARTS)} tables of {_esc(source)}. "
        "Ids and aggregates only; no personal data.</footer></main></body></html>\n"
    )


def build_campaign_report(
    warehouse: Path | str,
    out_dir: Path | str,
    as_of: str | None = None,
    roi_model: str = DEFAULT_ROI_MODEL,
) -> ReportResult:
    """Write campaign_report_<as_of>.html (and a campaign_report.html copy) into out_dir."""
    warehouse = Path(warehouse)
    if not warehouse.exists():
        raise FileNotFoundError(
            f"warehouse {warehouse} does not exist: build the pipeline first (tideline run)"
        )
    as_of = as_of or dt.datetime.now(dt.UTC).date().isoformat()
    dt.date.fromisoformat(as_of)  # a clear error for anything but YYYY-MM-DD
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        marts = Marts(con)
        headline = read_headline(marts)
        sections = [
            roi_section(marts, roi_model) if build is roi_section else build(marts) for build in SECTIONS
        ]
        journeys = journey_section(marts)  # no section at all without journeys
        if journeys is not None:
            sections.append(journeys)
    finally:
        con.close()
    page = render_html(sections, headline, as_of, generated, warehouse.name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"campaign_report_{as_of}.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    latest = out_dir / "campaign_report.html"
    shutil.copyfile(path, latest)
    return ReportResult(
        path=path,
        latest_path=latest,
        as_of=as_of,
        charts_rendered=sum(s.figure is not None for s in sections),
        sections=[s.title for s in sections],
        empty_sections=[s.title for s in sections if s.figure is None],
        headline=headline,
    )
