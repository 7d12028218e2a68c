"""The end-of-run summary a marketer can read."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from activation.warehouse import columns_of, table_exists
from tideline.reporting.formats import (
    STAGE_ORDER,
    fmt_money,
    fmt_p,
    fmt_pct,
    fmt_pp,
    fmt_rate,
    fmt_signed_pct,
)

NONE = "-"  # a missing number in the plain-text summary (the report's is an em dash)
LAUNCH_HOLDS = ("pilot:", "rollout:", "approval:")  # skip reasons of the launch gate (activation.launches)


def _pct(n: int, total: int) -> str:
    """n of total as a percentage (0.0% of nothing)."""
    return fmt_rate(n, total, missing="0.0%")


def _rate(n: float | None, d: float | None) -> str:
    return fmt_rate(n or 0, d, missing=NONE)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def build_summary(
    warehouse: Path | str,
    top_tags: int = 8,
    home: Path | str | None = None,
    bi_path: Path | str | None = None,
    ui_command: str = "make ui",
    read_from: Path | str | None = None,
) -> str:
    """Customers per lifecycle stage and RFM segment, top tags, campaign results, journeys, rejects and where
    to look next (the campaign report under `home`/reports when it is there; `home` is the
    warehouse's state folder; `read_from` another copy of it, the BI copy while a run holds the
    warehouse). The last line starts 'Open in BI:' with the BI copy's path."""
    con = duckdb.connect(str(read_from or warehouse), read_only=True)
    try:
        as_of, customers, buyers, revenue = _rows(
            con,
            "select max(as_of_date), count(*), count(*) filter (where is_buyer), sum(revenue) from marts.dim_customers",
        )[0]
        stages = dict(_rows(con, "select lifecycle_stage, count(*) from marts.customer_lifecycle group by 1"))
        segments = _rows(
            con, "select rfm_segment, count(*) n from marts.customer_rfm group by 1 order by n desc, 1"
        )
        tags = _rows(
            con,
            f"select tag, customers_tagged, coverage_share from marts.tag_health "
            f"order by customers_tagged desc, tag limit {int(top_tags)}",
        )
        rejects = dict(_rows(con, "select action, count(*) from marts.rejects group by 1"))
        reject_entities = _rows(
            con, "select entity, count(*) n from marts.rejects group by 1 order by n desc, 1 limit 5"
        )
        merged = _rows(con, "select count(*) filter (where merged_accounts > 1) from marts.dim_customers")[0][
            0
        ]
        scores = _lead_lines(con) + _score_lines(con, str(as_of))
        activations = _activation_lines(con)
        launches = _launch_lines(con)
        campaigns = _campaign_lines(con)
        journeys = _journey_lines(con) + _staff_lines(con)
    finally:
        con.close()

    lines = [
        f"Tideline summary — as of {as_of}",
        "",
        f"Customers: {customers:,} ({buyers:,} buyers, {merged:,} merged from duplicate accounts), "
        f"revenue {fmt_money(revenue or 0)}",
        "",
        "Lifecycle stage          customers   share",
    ]
    for stage in STAGE_ORDER:
        n = int(stages.get(stage, 0))
        lines.append(f"  {stage:<22}{n:>9,}  {_pct(n, customers):>6}")
    lines += ["", "RFM segment              customers   share"]
    for name, n in segments:
        lines.append(f"  {name:<22}{n:>9,}  {_pct(n, buyers):>6}")
    lines += ["", "Top tags                 customers coverage"]
    for tag, n, share in tags:
        lines.append(f"  {tag:<22}{n:>9,}  {100 * float(share):>5.1f}%")
    lines += scores
    lines += activations
    lines += launches
    lines += campaigns
    lines += journeys
    report = Path(home) / "reports" / "campaign_report.html" if home else None
    if report is not None and report.exists():
        lines += ["", f"Campaign report: {report.resolve()}"]
    total_rejects = sum(rejects.values())
    lines += [
        "",
        f"Rejected input: {total_rejects:,} "
        f"(rows rejected {rejects.get('row_rejected', 0):,}, fields cleared {rejects.get('field_cleared', 0):,}, "
        f"files rejected {rejects.get('file_rejected', 0):,})"
        + (" — by entity: " + ", ".join(f"{e} {n:,}" for e, n in reject_entities) if reject_entities else ""),
        "  details with file, row, field and reason: table marts.rejects",
        "",
        f"Warehouse: {Path(warehouse).resolve()}  (DuckDB, the pipeline's own file; schemas landing, "
        "staging, intermediate, marts)",
        f"Dagster UI: {ui_command}  → http://127.0.0.1:3000 (runs, assets, checks and metadata of this run)",
    ]
    if bi_path is not None:
        published = "" if Path(bi_path).exists() else "  (published by the next successful run)"
        lines.append(f"Open in BI: {Path(bi_path).resolve()}{published}")
    return "\n".join(lines)


def _score_lines(con: duckdb.DuckDBPyConnection, as_of: str) -> list[str]:
    """The predictive-scores section, true to what happened: which scores exist (who is at risk, who is
    worth most, how good each model is) and which model was skipped and why."""
    if not table_exists(con, "ml", "customer_scores"):
        return []
    scored, at_risk, clv_total = _rows(
        con,
        "select count(*) filter (where churn_probability is not null or purchase_propensity is not null "
        "or predicted_clv is not null), count(*) filter (where churn_probability >= 0.5), "
        "coalesce(sum(predicted_clv), 0) from ml.customer_scores where as_of_date = cast(? as date)",
        [as_of],
    )[0]
    models = _score_models(con, as_of)
    if not models:
        return []
    used = {name: version for name, (status, version, _note) in models.items() if status == "scored"}
    if not used:
        lines = [
            "",
            "Predictive scores: none (no model could be used; tags and segments that need no score are built)",
        ]
    else:
        headline = f"Predictive scores: {scored:,} customers scored"
        if "churn" in used:
            headline += f"; {at_risk:,} likely to churn (probability ≥ 50%)"
            if "clv" in used and table_exists(con, "marts", "customer_tags"):
                high_value = _rows(
                    con, "select count(*) from marts.customer_tags where tag = 'high_value_at_risk'"
                )[0][0]
                headline += f", {high_value:,} of them high-value (top 20% predicted CLV)"
        lines = ["", headline]
        if "clv" in used:
            lines.append(f"  predicted 12-month value of the base: {float(clv_total):,.2f}")
    runs = _model_runs_by_version(con, list(used.values()))
    for name in sorted(models):
        status, version, note = models[name]
        if status != "scored":
            reason = note or "no model"
            lines.append(f"  {name:<11} {reason if reason.startswith('not ') else 'not scored: ' + reason}")
            continue
        metrics, baseline, dropped = runs.get(version, ({}, {}, {}))
        lines.append(f"  {name:<11} {_model_quality(metrics, baseline)}")
        if dropped:
            lines.append(f"  {'':<11} left out (empty or constant for everyone): {', '.join(dropped)}")
        if note:
            lines.append(f"  {'':<11} {note}")
    return lines


def _score_models(
    con: duckdb.DuckDBPyConnection, as_of: str
) -> dict[str, tuple[str, str | None, str | None]]:
    """Per model: (scored | skipped, version, reason or note) of the latest scoring run on the as-of date
    (ml.score_models); for a warehouse scored before that table existed, the versions named in
    ml.customer_scores.model_version."""
    if table_exists(con, "ml", "score_models"):
        rows = _rows(
            con,
            "select model, status, version, reason from ml.score_models where as_of_date = cast(? as date) "
            "qualify scored_at = max(scored_at) over () order by model",
            [as_of],
        )
        if rows:
            return {model: (status, version, reason) for model, status, version, reason in rows}
    labels = _rows(
        con,
        "select model_version from ml.customer_scores where as_of_date = cast(? as date) "
        "and model_version is not null limit 1",
        [as_of],
    )
    if not labels or not labels[0][0]:
        return {}
    found = dict(label.split(":", 1) for label in labels[0][0].split(";") if ":" in label)
    return {name: ("scored", version, None) for name, version in found.items()}


def _model_runs_by_version(
    con: duckdb.DuckDBPyConnection, versions: list[str]
) -> dict[str, tuple[dict, dict, list]]:
    """(metrics, baseline metrics, features left out) of the given model versions, from ml.model_runs."""
    if not versions or not table_exists(con, "ml", "model_runs"):
        return {}
    dropped = "dropped_features" if "dropped_features" in columns_of(con, "ml.model_runs") else "'{}'"
    rows = _rows(
        con,
        f"select version, metrics, baseline_metrics, {dropped} from ml.model_runs "
        "where list_contains(?, version)",
        [versions],
    )
    return {v: (json.loads(m), json.loads(b), list(json.loads(d or "{}"))) for v, m, b, d in rows}


def _model_quality(metrics: dict, baseline: dict) -> str:
    if "roc_auc" in metrics:
        return (
            f"ROC AUC {metrics['roc_auc']:.3f} (baseline {baseline.get('roc_auc', float('nan')):.3f}), "
            f"lift in top decile {metrics['lift_top_decile']:.2f}"
        )
    if "mae" in metrics:
        return f"held-out purchases MAE {metrics['mae']:.3f} (naive rate {metrics['baseline_mae']:.3f})"
    return "scored (no metrics recorded)"


def _activation_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Per activation (segment × destination), the latest real run: the audience, what it sent,
    what earlier runs had already sent (from the delivery ledger: a rerun that sends nothing new
    must read as such, not as a failure), failures and skips by reason. Journey steps' runs
    (sync keys journey__...) are left to the Journeys block, staff notifications (staff_notifications__...)
    to theirs."""
    if not table_exists(con, "tideline_sync", "sync_runs"):
        return []
    runs = _rows(
        con,
        "select sync_key, sync_id, segment_rows, sent, skipped_by_reason, failed, dead_letters "
        "from tideline_sync.sync_runs where not dry_run and not starts_with(sync_key, 'journey__') "
        "and not starts_with(sync_key, 'staff_notifications__') "
        "qualify row_number() over (partition by sync_key order by started_at desc, finished_at desc) = 1 "
        "order by sync_key",
    )
    if not runs:
        return []
    lines = [
        "",
        "Activation (latest run)                  audience  sent now  sent before   failed  skipped by reason",
    ]
    for key, sync_id, audience, sent, reasons, failed, dead in runs:
        before, unknown = _ledger_counts(con, key, sync_id)
        notes = [f"{r} {n:,}" for r, n in sorted(json.loads(reasons).items(), key=lambda i: -i[1])]
        notes += [f"dead letters {dead:,}"] if dead else []
        notes += [f"unknown {unknown:,} (no answer yet: see the unknown_deliveries check)"] if unknown else []
        lines.append(
            f"  {key:<37}{int(audience or 0):>11,}{int(sent or 0):>10,}{before:>13,}{int(failed or 0):>9,}"
            f"  {', '.join(notes) or '-'}"
        )
    lines.append(
        "  audience: customers in the segment; sent now: by this run; sent before: by earlier runs of the "
        "same activation (delivery ledger), never sent again"
    )
    return lines


def _launch_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Staged launches (activation.launches, docs/launches.md): per activation with one, its stage in
    its latest real run and the latest gate or roll-out decision with its numbers; then what waits
    for an approval, with the command that gives it. Nothing before any staged launch ran."""
    if "launch_stage" not in columns_of(con, "tideline_sync.sync_runs"):
        return []
    runs = _rows(
        con,
        "select sync_key, content_version, launch_stage, segment_rows, skipped_by_reason "
        "from tideline_sync.sync_runs where not dry_run and not starts_with(sync_key, 'journey__') "
        "qualify row_number() over (partition by sync_key order by started_at desc, finished_at desc) = 1 "
        "order by sync_key",
    )
    runs = [r for r in runs if r[2] is not None]
    if not runs:
        return []
    lines = ["", "Launches (pilot, roll-out, approval: docs/launches.md)"]
    waiting: list[str] = []
    for key, version, stage, audience, reasons in runs:
        decision = _rows(
            con,
            "select detail, decided_by, decided_at from tideline_sync.launch_decisions "
            "where sync_key = ? and content_version = ? and metric is null and stage in ('pilot', 'rollout') "
            "order by decided_at desc, rowid desc limit 1",
            [key, version],
        )
        said = (
            f"{decision[0][0]} ({decision[0][1]}, {decision[0][2]:%Y-%m-%d %H:%M})"
            if decision
            else "no decision yet"
        )
        held = {r: n for r, n in json.loads(reasons or "{}").items() if r.startswith(LAUNCH_HOLDS)}
        holding = ", ".join(f"{r} {n:,}" for r, n in held.items())
        lines.append(f"  {key:<37}{stage:<19}{said}" + (f"; holding {holding}" if holding else ""))
        if stage == "awaiting_approval":
            waiting.append(
                f"  waiting for approval: {key} ({int(audience or 0):,} customers, content {version}): "
                f"tideline approve {key} --by NAME"
            )
    return lines + waiting


def _ledger_counts(con: duckdb.DuckDBPyConnection, sync_key: str, sync_id: str) -> tuple[int, int]:
    """From the delivery ledger, for one activation: the records runs before `sync_id` sent, and the
    records still `unknown` (possibly delivered, no answer yet: whichever run left them, a person
    decides; docs/activation.md, "Unknown deliveries")."""
    if not table_exists(con, "tideline_sync", "delivery_ledger"):
        return 0, 0
    before, unknown = _rows(
        con,
        "select count(*) filter (where status = 'sent' and sync_id <> ?), "
        "count(*) filter (where status = 'unknown') "
        "from tideline_sync.delivery_ledger where sync_key = ?",
        [sync_id, sync_key],
    )[0]
    return int(before), int(unknown)


def _campaign_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Campaign results: per campaign × variant × channel (marts.fct_campaign_performance, all days)
    and each experiment's headline lift against its holdout (marts.experiment_results)."""
    lines: list[str] = []
    if table_exists(con, "marts", "fct_campaign_performance"):
        rows = _rows(
            con,
            "select campaign, variant, channel, sum(sent), sum(delivered), sum(unique_opens), "
            "sum(unique_clicks), sum(conversions), sum(revenue) from marts.fct_campaign_performance "
            "group by 1, 2, 3 order by 1, 3, 2",
        )
        if rows:
            lines += [
                "",
                "Campaign results              variant channel     sent  open rate  click rate  conversions"
                "     revenue",
            ]
            for campaign, variant, channel, sent, delivered, opens, clicks, conversions, revenue in rows:
                base = delivered or sent  # rates of delivered (of sent when nothing reports delivery)
                opened = _rate(opens, base) if channel == "email" else "-"  # only email has a pixel
                lines.append(
                    f"  {campaign:<28}{variant:<8}{channel:<8}{int(sent or 0):>8,}{opened:>11}"
                    f"{_rate(clicks, base):>12}{int(conversions or 0):>13,}{fmt_money(revenue or 0):>12}"
                )
            lines.append("  rates of delivered messages; conversions: orders within the conversion window")
    if table_exists(con, "marts", "experiment_results"):
        arms = _rows(
            con,
            "select campaign, channel, arm, arm_type, reach, conversion_rate, absolute_lift, "
            "absolute_lift_ci_low, absolute_lift_ci_high, relative_lift, p_value, is_winner, "
            "confidence_level from marts.experiment_results order by campaign, channel, "
            "case arm_type when 'variant' then 0 when 'holdout' then 1 else 2 end, arm",
        )
        experiments: dict[tuple[str, str], list[tuple]] = {}
        for row in arms:
            experiments.setdefault((row[0], row[1]), []).append(row)
        for (campaign, channel), rows in experiments.items():
            treated = next((r for r in rows if r[3] == "treated"), None)
            holdout = next((r for r in rows if r[3] == "holdout"), None)
            variants = [r for r in rows if r[3] == "variant"]
            if holdout is None and len(variants) < 2:
                continue  # no control group and nothing to compare: not an experiment
            lines += ["", f"Experiment {campaign} ({channel}):"]
            if treated is not None and holdout is not None and treated[6] is not None:
                level = float(treated[12] or 0.95)
                relative = "" if treated[9] is None else f"relative {fmt_signed_pct(treated[9])}, "
                lines.append(
                    f"  incremental lift vs holdout: {_pts(treated[6])} "
                    f"({100 * level:.0f}% CI {_pts(treated[7])} to {_pts(treated[8])}), "
                    f"{relative}{fmt_p(treated[10], missing='p = -')}"
                )
            lines.append(
                "  "
                + ", ".join(
                    f"{arm} {fmt_pct(rate, missing=NONE)} of {int(reach or 0):,}"
                    for _c, _ch, arm, _t, reach, rate, *_rest in rows
                )
                + " converted"
            )
            if len(variants) >= 2:
                winners = [r[2] for r in variants if r[11]]
                lines.append(
                    f"  winner: {', '.join(winners)} (significantly better than every other variant)"
                    if winners
                    else "  winner: none significant yet"
                )
    return lines


def _journey_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Journeys (marts.journey_lift): per journey, its entries, the messages sent and the conversions
    of treated and held-out entries (all versions together), then each version's lift against its
    holdout; nothing without the journey marts or any entry."""
    if not table_exists(con, "marts", "journey_lift"):
        return []
    versions = _rows(
        con,
        "select journey, version, entries, messages_sent, treated_entries, treated_converters, holdout_entries, "
        "holdout_converters, absolute_lift, absolute_lift_ci_low, absolute_lift_ci_high, p_value, confidence_level "
        "from marts.journey_lift order by journey, last_entered_at desc, version",
    )
    if not versions:
        return []
    lines = [
        "",
        "Journeys                          entries      sent  treated converted       held out converted",
    ]
    by_journey: dict[str, list[tuple]] = {}
    for row in versions:
        by_journey.setdefault(row[0], []).append(row)
    for journey, rows in by_journey.items():
        entries, sent, treated, treated_conv, held, held_conv = (
            sum(int(r[i] or 0) for r in rows) for i in range(2, 8)
        )
        holdout = f"{held_conv:,} of {held:,} ({_pct(held_conv, held)})" if held else "no holdout"
        lines.append(
            f"  {journey:<30}{entries:>9,}{sent:>10,}  "
            f"{f'{treated_conv:,} of {treated:,} ({_pct(treated_conv, treated)})':<24}{holdout}"
        )
        for _j, version, *_counts, lift, low, high, p, level in rows:
            if lift is None:
                continue
            lines.append(
                f"    version {version}: lift vs holdout {_pts(lift)} ({100 * float(level or 0.95):.0f}% CI "
                f"{_pts(low)} to {_pts(high)}), {fmt_p(p, missing='p = -')}"
            )
    lines.append(
        "  treated: entries that went through the journey; held out: kept out at entry; converted: the goal "
        "within its window"
    )
    return lines


SCORE_STAGES = ("raw_lead", "nurtured", "marketing_qualified")  # before marts.lead_stages had a source
LEAD_SCORERS = {
    "lead_score": "lead score",
    "recency": "recency",
    "purchase_propensity": "purchase propensity",
}


def _lead_stage_order(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(stage, source) in stage order: the score's stages, then the CRM's (marts.lead_stages)."""
    if table_exists(con, "marts", "lead_stages") and "source" in columns_of(con, "marts.lead_stages"):
        return [
            (str(s), str(src))
            for s, src in _rows(con, "select lead_stage, source from marts.lead_stages order by stage_order")
        ]
    return [(stage, "score") for stage in SCORE_STAGES]


def _lead_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Leads (marts.lead_scores, marts.lead_score_backtest): leads per stage, how many crossed the
    MQL threshold in the last 30 days, and the backtest's ROC AUC of each scorer; nothing without
    the lead marts."""
    if not table_exists(con, "marts", "lead_scores"):
        return []
    stages = dict(_rows(con, "select lead_stage, count(*) from marts.lead_scores group by 1"))
    leads = sum(stages.values())
    new_mqls = _rows(
        con,
        "select count(*) from marts.lead_scores where is_mql and mql_first_on > as_of_date - interval 30 day",
    )[0][0]
    lines = [
        "",
        f"Lead stage               leads   share   ({new_mqls:,} first reached MQL in the last 30 days)",
    ]
    for stage, source in _lead_stage_order(con):
        n = int(stages.get(stage, 0))
        if source == "crm" and not n:
            continue  # a CRM stage nobody is in (no crm/lead_status files): not worth a line
        lines.append(f"  {stage:<22}{n:>7,}  {_pct(n, leads):>6}" + ("   (CRM)" if source == "crm" else ""))
    if not table_exists(con, "marts", "lead_score_backtest"):
        return lines
    rows = _rows(
        con,
        "select scorer, cutoff_on, horizon_days, leads, buyers, roc_auc, note "
        "from marts.lead_score_backtest order by scorer_order",
    )
    if rows:
        _, cutoff, horizon, n_leads, buyers, _, _ = rows[0]
        aucs = ", ".join(
            f"{LEAD_SCORERS.get(name, name)} {auc:.3f}"
            if auc is not None
            else f"{LEAD_SCORERS.get(name, name)} {NONE}"
            for name, *_rest, auc, _note in rows
        )
        lines.append(
            f"  backtest: {n_leads:,} leads on {cutoff}, {buyers:,} made a first purchase within {horizon} days; "
            f"ROC AUC {aucs}"
        )
        lines += [f"    {LEAD_SCORERS.get(name, name)}: {note}" for name, *_rest, note in rows if note]
    lines.append("  top reasons per lead: table marts.lead_scores; rules: dbt_project/lead_scoring.yml")
    return lines


def _pts(value: float | None) -> str:
    return fmt_pp(value, missing=NONE, unit="pts")


def _staff_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Staff notifications by rule and status (tideline_staff.notifications, what the staff
    notifications asset has made so far: the mart marts.fct_staff_notifications follows at the next
    dbt build); nothing before the first notification run."""
    if not table_exists(con, "tideline_staff", "notifications"):
        return []
    rows = _rows(
        con,
        """select rule, count(*), count(*) filter (where status in ('sent', 'unknown')),
                  count(*) filter (where status in ('pending', 'deferred', 'in_digest', 'failed')),
                  count(*) filter (where status = 'dead'), count(*) filter (where fell_back)
           from tideline_staff.notifications where rule_kind <> 'digest' group by 1 order by 1""",
    )
    if not rows:
        return []
    lines = ["", "Staff notifications      made     sent  waiting     dead  to team (fallback)"]
    for rule, made, sent, waiting, dead, fell_back in rows:
        lines.append(f"  {rule:<22}{made:>5,}{sent:>9,}{waiting:>9,}{dead:>9,}{fell_back:>9,}")
    lines.append(
        "  waiting: quiet hours, the daily digest or a retry; details: table marts.fct_staff_notifications"
    )
    return lines
