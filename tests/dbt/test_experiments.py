"""Experiment statistics: the SQL normal CDF against scipy, and experiment_results on a small warehouse.

The dbt unit tests (models/marts/experiments/_experiments__models.yml) check the model against
values worked out by hand; here the same numbers come from independent implementations:

- the `normal_cdf` / `normal_two_sided_p` macros are rendered by dbt and evaluated in DuckDB (and in
  PostgreSQL when its binaries are installed) at thousands of z, against scipy.stats.norm;
- experiment_results is built by `dbt build --select experiment_results` on tables holding the
  contract's columns of fct_messages and int_message_conversions (so the test depends on the
  contract, not on how those models are built), and every statistic is compared with scipy:
  the pooled z-test with the chi-square test of the 2×2 table without continuity correction (the
  same test: chi2 = z²), Wilson with binomtest(...).proportion_ci(method="wilson"), the relative-lift
  interval with scipy.stats.contingency.relative_risk (Katz log method).

- the `chi_square_upper_tail` macro (the sample-ratio check's p-value) against scipy.stats.chi2.sf
  for every degree of freedom it computes; Holm's adjustment against a plain implementation here
  (statsmodels is not a dependency); the SRM check against scipy.stats.chisquare; guardrails against
  chi2_contingency.

The warehouse, campaign "spring" (as of 2026-03-10), its design recorded by
activation.experiments.record_design (holdout 0.2, A and B 0.4 each: exactly what was observed):
- email: 400 held out (their variant hash alternates A/B: they still count as holdout), 40 convert;
  variant A 800 sent, 80 convert; variant B 800 sent, 128 convert; 50 skipped for no consent, each
  followed by an order that must not count. Every 4th converter buys twice (amounts vary).
- sms: 300 sent, no variants and no holdout, 33 convert.
Against the holdout (0.10): A 0.10 is no lift (z = 0); B 0.16: P = 168/1200 = 0.14,
se = sqrt(0.14·0.86·(1/800 + 1/400)) = 0.021249, z = 0.06 / se = 2.824, p = 0.0047: significant; all
sent (treated) 208/1600 = 0.13: P = 248/2000 = 0.124, se = sqrt(0.124·0.876·(1/1600 + 1/400)) = 0.018424,
z = 0.03 / se = 1.628, p = 0.10: the headline lift of 3 points is not significant with 400 held out.
B vs A: pooled P = 208/1600 = 0.13, se = sqrt(0.13·0.87·(2/800)) = 0.016815, z = 0.06 / se = 3.568,
p = 0.00036 < 0.05. Three arms are compared (A, B, holdout): Holm over the three tests (A-B 0.00036,
B-holdout 0.0047, A-holdout 1) gives 0.00108, 0.0094 and 1: B is still significant against both, its
guardrails are not worse than A's (unsubscribes 6 vs 4, bounces 12 vs 10, complaints 1 vs 0 of 800),
the sample ratio is exact: B is the winner.

Campaign "summer" (email): holdout 300 (30 convert), A 1000 (100), B 1000 (160), C 700 (70), designed
as holdout 0.1 and a third of the rest each (300, 900, 900, 900): chi-square = (100² + 100² + 200²)/900
= 66.67 on 3 degrees of freedom, p ≈ 2e-14 < 0.001: sample-ratio mismatch, so B, significantly best,
is not the winner. Campaign "autumn" (push, no holdout): A 1000 (100), B 1000 (150), designed 50/50;
B converts significantly better (p = 0.000723) but complains more (12 vs 1 of 1000, p = 0.0022): the
guardrail is breached and there is no winner.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import binomtest, chi2, chi2_contingency, chisquare, norm
from scipy.stats.contingency import relative_risk

from activation.config import SyncBinding
from activation.experiments import DDL as DESIGNS_DDL
from activation.experiments import record_design
from tests.integration.postgres import postgres_dsn  # noqa: F401
from tideline.dbt_manifest import dbt_executable
from tideline.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # every test compiles or builds with dbt (a subprocess each)

AS_OF = "2026-03-10"
SENT_AT = "2026-03-02 09:00:00"
# (campaign, channel, arm, reach, converters); arm None: sent without a variant
ARMS = [
    ("spring", "email", "holdout", 400, 40),
    ("spring", "email", "A", 800, 80),
    ("spring", "email", "B", 800, 128),
    ("spring", "sms", None, 300, 33),
    ("summer", "email", "holdout", 300, 30),
    ("summer", "email", "A", 1000, 100),
    ("summer", "email", "B", 1000, 160),
    ("summer", "email", "C", 700, 70),
    ("autumn", "push", "A", 1000, 100),
    ("autumn", "push", "B", 1000, 150),
]
# (campaign, channel, arm): {event type: customers of the arm whose message drew it}
GUARDRAIL_EVENTS = {
    ("spring", "email", "A"): {"unsubscribed": 4, "bounced": 10},
    ("spring", "email", "B"): {"unsubscribed": 6, "bounced": 12, "complained": 1},
    ("autumn", "push", "A"): {"complained": 1},
    ("autumn", "push", "B"): {"complained": 12},
}
# the designs each campaign's sync recorded: (campaign, channel, holdout share, variant weights)
DESIGNS = [
    ("spring", "email", 0.2, {"A": 0.5, "B": 0.5}),
    ("summer", "email", 0.1, {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}),
    ("autumn", "push", 0.0, {"A": 0.5, "B": 0.5}),
]
Z_LINE = np.concatenate(
    [np.linspace(-40, 40, 8001), [0.0, 1e-9, -1e-9, 1.959964, 7.0710678, 7.0710679, 37, 37.01]]
)


def _dbt(args: list[str], warehouse: Path, variables: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIDELINE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [dbt_executable(), *args, "--profiles-dir", str(DBT_PROJECT_DIR)]
    command += ["--target-path", str(warehouse.parent / "dbt_target")]
    command += ["--vars", json.dumps({"as_of": AS_OF, **(variables or {})})]
    return subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)


def _compile(sql: str, warehouse: Path, variables: dict | None = None) -> str:
    done = _dbt(["compile", "--quiet", "--inline", sql], warehouse, variables)
    if done.returncode != 0:
        raise AssertionError(f"dbt compile failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return done.stdout


# --- the normal CDF macro -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdf_sql(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The macros rendered once by dbt: a query over table zs(z) and the critical values."""
    folder = tmp_path_factory.mktemp("cdf")
    out = _compile(
        "select z, {{ normal_cdf('z') }} as cdf, {{ normal_two_sided_p('z') }} as p_value from zs"
        " /* critical: {% for k, v in experiment_critical_values().items() %}{{ k }}={{ v }};{% endfor %} */",
        folder / "w.duckdb",
    )
    query, critical = out.split("/* critical:")
    values = dict(re.findall(r"([0-9.]+)=([0-9.]+);", critical))
    return {"query": query.strip(), "critical": {float(k): float(v) for k, v in values.items()}}


def _check_cdf(rows: list[tuple]) -> None:
    z = np.array([r[0] for r in rows], dtype=float)
    cdf = np.array([r[1] for r in rows], dtype=float)
    p = np.array([r[2] for r in rows], dtype=float)
    assert len(z) == len(Z_LINE)
    np.testing.assert_allclose(cdf, norm.cdf(z), rtol=0, atol=1e-14)
    expected_p = 2 * norm.sf(np.abs(z))
    np.testing.assert_allclose(p, expected_p, rtol=0, atol=1e-14)
    # the tails keep their relative accuracy too (where the macro does not round to 0 past |z| = 37)
    tail = np.abs(z) <= 37
    np.testing.assert_allclose(p[tail], expected_p[tail], rtol=1e-7, atol=0)
    # spot values known by heart
    at = dict(zip(z.tolist(), p.tolist(), strict=True))
    assert at[0.0] == pytest.approx(1.0, abs=1e-15)
    assert at[1.959964] == pytest.approx(0.05, abs=1e-7)


def test_normal_cdf_macro_matches_scipy_in_duckdb(cdf_sql: dict) -> None:
    con = duckdb.connect()
    z_values = pa.table({"z": Z_LINE})  # noqa: F841 (read by DuckDB)
    con.execute("create table zs as select z from z_values")
    _check_cdf(con.execute(cdf_sql["query"] + " order by z").fetchall())
    con.execute("delete from zs")
    con.execute("insert into zs values (null)")
    assert con.execute(cdf_sql["query"]).fetchall() == [(None, None, None)]


def test_normal_cdf_macro_matches_scipy_in_postgres(cdf_sql: dict, postgres_dsn: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("create temp table zs (z double precision)")
        cur.executemany("insert into zs values (%s)", [[float(v)] for v in Z_LINE])
        cur.execute(cdf_sql["query"] + " order by z")
        _check_cdf(cur.fetchall())


def test_critical_values_are_the_normal_quantiles(cdf_sql: dict) -> None:
    critical = cdf_sql["critical"]
    assert 0.95 in critical and critical[0.95] == 1.959964
    for level, z in critical.items():
        assert z == round(norm.ppf((1 + level) / 2), 6), level


def test_an_undocumented_confidence_level_is_refused(tmp_path: Path) -> None:
    done = _dbt(
        ["compile", "--quiet", "--inline", "select {{ experiment_z_critical() }}"],
        tmp_path / "w.duckdb",
        {"experiment_confidence_level": 0.93},
    )
    assert done.returncode != 0
    assert "experiment_confidence_level must be one of 0.8, 0.9, 0.95" in done.stdout + done.stderr
    assert "got '0.93'" in done.stdout + done.stderr


# --- the chi-square upper tail macro ---------------------------------------------------------------

CHI_X = np.concatenate([np.linspace(0, 120, 1201), [1e-9, 0.5, 3.84, 66.666667, 300.0, 1399.0, 1401.0]])


@pytest.fixture(scope="module")
def chi_square_sql(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The macro rendered once by dbt over table cs(x, df), and its largest degrees of freedom."""
    out = _compile(
        "select x, df, {{ chi_square_upper_tail('x', 'df') }} as p from cs"
        " /* max_df={{ chi_square_max_df() }} */",
        tmp_path_factory.mktemp("chi") / "w.duckdb",
    )
    query, rest = out.split("/* max_df=")
    return {"query": query.strip(), "max_df": int(rest.split("*/")[0])}


def _chi_square_inputs(max_df: int) -> list[tuple[float, int]]:
    return [(float(x), df) for x in CHI_X for df in range(0, max_df + 2)]


def _check_chi_square(rows: list[tuple], max_df: int) -> None:
    assert len(rows) == len(CHI_X) * (max_df + 2)
    for x, df, p in rows:
        if not 1 <= df <= max_df:
            assert p is None, (x, df)
            continue
        expected = chi2.sf(x, df)
        assert p == pytest.approx(expected, abs=1e-6, rel=0), (x, df)  # the brief's bound
        assert abs(p - expected) <= 1e-12 + 1e-7 * expected, (x, df)  # and far better in fact
    at = {(x, df): p for x, df, p in rows}
    assert at[(0.0, 1)] == pytest.approx(1.0, abs=1e-15) and at[(0.0, 4)] == pytest.approx(1.0, abs=1e-15)
    assert at[(3.84, 1)] == pytest.approx(0.05004, abs=1e-5)  # the textbook 5% point of df 1


def test_chi_square_macro_matches_scipy_in_duckdb(chi_square_sql: dict) -> None:
    assert chi_square_sql["max_df"] == 19
    con = duckdb.connect()
    con.execute("create table cs (x double, df integer)")
    con.executemany("insert into cs values (?, ?)", _chi_square_inputs(chi_square_sql["max_df"]))
    _check_chi_square(con.execute(chi_square_sql["query"]).fetchall(), chi_square_sql["max_df"])
    con.execute("delete from cs")
    con.execute("insert into cs values (null, 2), (-1, 2)")
    assert con.execute(chi_square_sql["query"]).fetchall() == [(None, 2, None), (-1.0, 2, None)]


def test_chi_square_macro_matches_scipy_in_postgres(chi_square_sql: dict, postgres_dsn: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("create temp table cs (x double precision, df integer)")
        cur.executemany("insert into cs values (%s, %s)", _chi_square_inputs(chi_square_sql["max_df"]))
        cur.execute(chi_square_sql["query"])
        _check_chi_square(cur.fetchall(), chi_square_sql["max_df"])


# --- the designs table: Python's DDL and dbt's stand-in ---------------------------------------------


def test_the_dbt_stand_in_for_experiment_designs_has_the_ddl_columns(tmp_path: Path) -> None:
    compiled = _compile(
        "select * from {{ experiment_designs_relation() }} as designs", tmp_path / "fresh.duckdb"
    )
    assert "where 1 = 0" in compiled  # the warehouse never synced: the stand-in
    con = duckdb.connect()
    for statement in DESIGNS_DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    declared = [(n, t) for n, t, *_ in con.execute("describe tideline_sync.experiment_designs").fetchall()]
    stand_in = [(n, t) for n, t, *_ in con.execute(f"describe {compiled}").fetchall()]
    assert stand_in == declared, (
        "dbt_project/macros/experiment_designs.sql and activation/experiments.py differ"
    )


# --- experiment_results on a small warehouse ----------------------------------------------------

Key = tuple[str, str, str]  # (campaign, channel, arm)


def _amount(i: int) -> float:
    return 10.0 + 5 * (i % 7)


def _inputs() -> tuple[list[tuple], list[tuple], list[tuple], dict]:
    """fct_messages, int_message_conversions and fct_message_events rows, and the revenue expected
    per arm."""
    messages, conversions, events, revenue = [], [], [], {}
    for campaign, channel, arm, reach, converters in ARMS:
        label = arm or "sent"
        total = 0.0
        guardrails = GUARDRAIL_EVENTS.get((campaign, channel, arm), {})
        for i in range(reach):
            key = f"{campaign}-{channel}-{label}-{i:04d}"
            customer = f"{campaign}-{label}-{i:04d}"
            holdout = arm == "holdout"
            variant = ("A" if i % 2 else "B") if holdout else arm
            messages.append(
                (key, f"{campaign}_segment__{channel}", f"{campaign}_segment", campaign, channel, variant,
                 customer, "v1", "holdout" if holdout else "sent", None, not holdout, holdout, SENT_AT,
                 None if holdout else SENT_AT, SENT_AT, SENT_AT[:10], None)
            )  # fmt: skip
            if i < converters:
                orders = 2 if i % 4 == 0 else 1
                for k in range(orders):
                    amount = _amount(i + k)
                    total += amount
                    conversions.append(
                        (key, customer, campaign, variant, channel, holdout, SENT_AT, f"o-{key}-{k}",
                         f"2026-03-0{4 + k} 12:00:00", amount, 2.0 + k)
                    )  # fmt: skip
            for event_type, n in guardrails.items():
                # the last n customers of the arm (not the converters); an unsubscribe delivered twice
                if i >= reach - n:
                    for copy in range(2 if event_type == "unsubscribed" else 1):
                        events.append(_event(f"{key}-{event_type}-{copy}", key, customer, campaign, variant,
                                             channel, event_type))  # fmt: skip
        revenue[(campaign, channel, arm or "treated")] = total
    for campaign, channel in (("spring", "email"), ("summer", "email"), ("autumn", "push")):
        revenue[(campaign, channel, "treated")] = sum(
            v for (c, ch, a), v in revenue.items() if (c, ch) == (campaign, channel) and a not in ("holdout",)
        )
    for i in range(50):  # skipped (never exposed), yet an order and an unsubscribe follow: not counted
        key, customer = f"spring-email-skipped-{i:04d}", f"spring-skipped-{i:04d}"
        messages.append(
            (key, "spring_segment__email", "spring_segment", "spring", "email", "A", customer, "v1",
             "skipped", "no_consent", False, False, SENT_AT, None, None, None, None)
        )  # fmt: skip
        conversions.append(
            (key, customer, "spring", "A", "email", False, None, f"o-{key}", "2026-03-04 12:00:00", 99.0, None)
        )  # fmt: skip
        events.append(_event(f"{key}-unsubscribed", key, customer, "spring", "A", "email", "unsubscribed"))
    for i in range(60):  # a winner roll-out's sends to the rest (chosen, not randomised), all converting:
        key, customer = f"spring-email-rollout-{i:04d}", f"spring-rollout-{i:04d}"  # not counted
        messages.append(
            (key, "spring_segment__email", "spring_segment", "spring", "email", "B", customer, "v1",
             "sent", None, True, False, SENT_AT, SENT_AT, SENT_AT, SENT_AT[:10], "rollout")
        )  # fmt: skip
        conversions.append(
            (key, customer, "spring", "B", "email", False, SENT_AT, f"o-{key}", "2026-03-04 12:00:00", 99.0, 1.0)
        )  # fmt: skip
    return messages, conversions, events, revenue


def _event(event_id: str, key: str, customer: str, campaign: str, variant, channel: str, kind: str) -> tuple:
    return (
        event_id, key, customer, campaign, variant, channel, kind, "2026-03-03 10:00:00", "2026-03-03 10:00:01",
        "webhook", "test", None, None, "hard" if kind == "bounced" else None, None, False, None, True, 90000,
        1, True,
    )  # fmt: skip


MESSAGES_DDL = """create table marts.fct_messages (
    message_key varchar, sync_key varchar, segment varchar, campaign varchar, channel varchar,
    variant varchar, customer_id varchar, content_version varchar, status varchar,
    skip_reason varchar, is_sent boolean, is_holdout boolean, planned_at timestamp,
    sent_at timestamp, exposed_at timestamp, send_date date, launch_stage varchar)"""
CONVERSIONS_DDL = """create table intermediate.int_message_conversions (
    message_key varchar, customer_id varchar, campaign varchar, variant varchar,
    channel varchar, is_holdout boolean, exposed_at timestamp, order_id varchar,
    ordered_at timestamp, order_amount decimal(18, 2), days_to_convert double precision)"""
EVENTS_DDL = """create table marts.fct_message_events (
    event_id varchar, message_key varchar, customer_id varchar, campaign varchar, variant varchar,
    channel varchar, event_type varchar, occurred_at timestamp, received_at timestamp, source varchar,
    provider varchar, url varchar, link_index integer, bounce_type varchar, user_agent varchar,
    is_bot boolean, bot_reason varchar, is_human boolean, seconds_since_sent bigint, deliveries bigint,
    is_known_message boolean)"""


def _record_designs(con: duckdb.DuckDBPyConnection) -> None:
    """The designs, as the sync engine records them."""
    for campaign, channel, holdout, weights in DESIGNS:
        binding = SyncBinding(
            segment=f"{campaign}_segment", relation=f"marts.{campaign}_segment", destination=channel,
            mode="message", channel=channel, fields={"email": "email"}, campaign=campaign,
            holdout_share=holdout, variants={v: {} for v in weights}, variant_weights=weights,
        )  # fmt: skip
        assert record_design(con, binding, dt.datetime(2026, 3, 2, 9, 0))


def _write_inputs(warehouse: Path) -> dict:
    messages, conversions, events, revenue = _inputs()
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create schema marts")
        con.execute("create schema intermediate")
        for ddl in (MESSAGES_DDL, CONVERSIONS_DDL, EVENTS_DDL):
            con.execute(ddl)
        for table, rows in (
            ("marts.fct_messages", messages),
            ("intermediate.int_message_conversions", conversions),
            ("marts.fct_message_events", events),
        ):
            names = [c[0] for c in con.execute(f"describe {table}").fetchall()]
            batch = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})  # noqa: F841
            con.execute(f"insert into {table} select * from batch")
        _record_designs(con)
    finally:
        con.close()
    return revenue


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    warehouse = tmp_path_factory.mktemp("experiments") / "warehouse.duckdb"
    revenue = _write_inputs(warehouse)
    # build runs the models with their data tests, the consistency test and the unit tests
    done = _dbt(
        ["build", "--select", "stg_tideline_experiments__experiment_designs", "experiment_results"], warehouse
    )
    if done.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    assert re.search(r"PASS=(\d+)", done.stdout) and "ERROR=0" in done.stdout
    compiled = next(
        (warehouse.parent / "dbt_target" / "compiled").rglob("experiment_results.sql")
    ).read_text()
    return {"warehouse": warehouse, "revenue": revenue, "rows": _results(warehouse), "compiled": compiled}


def _results(warehouse: Path) -> dict[Key, dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cur = con.execute("select * from marts.experiment_results")
        names = [d[0] for d in cur.description]
        return {
            (r["campaign"], r["channel"], r["arm"]): r
            for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())
        }
    finally:
        con.close()


def _f(value) -> float | None:
    return None if value is None else float(value)


def _counts() -> dict[Key, tuple[int, int]]:
    """(reach, converters) of every arm, 'treated' being all variants together."""
    counts: dict[Key, tuple[int, int]] = {}
    for campaign, channel, arm, n, x in ARMS:
        counts[(campaign, channel, arm or "treated")] = (n, x)
        if arm not in (None, "holdout"):
            n0, x0 = counts.get((campaign, channel, "treated"), (0, 0))
            counts[(campaign, channel, "treated")] = (n0 + n, x0 + x)
    return counts


def _pooled_p(x: int, n: int, x0: int, n0: int) -> float:
    """The pooled two-proportion z-test's p: the 2×2 chi-square test without continuity correction."""
    return chi2_contingency([[x, n - x], [x0, n0 - x0]], correction=False)[1]


def _holm(p_values: dict) -> dict:
    """Holm's step-down adjustment, written out: the i-th smallest of m p-values becomes
    max over j <= i of min(1, (m - j + 1) p_(j))."""
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    adjusted, running = {}, 0.0
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - i) * p))
        adjusted[name] = running
    return adjusted


def _variants(campaign: str, channel: str) -> list[str]:
    return [a for c, ch, a, _, _ in ARMS if (c, ch) == (campaign, channel) and a not in (None, "holdout")]


def _check_against_scipy(rows: dict, level: float) -> None:
    counts = _counts()
    assert sorted(rows) == sorted(counts)
    for key, (n, x) in counts.items():
        row = rows[key]
        campaign, channel, arm = key
        assert (row["reach"], row["converters"]) == (n, x), key
        assert _f(row["conversion_rate"]) == pytest.approx(x / n, abs=1e-6)
        wilson = binomtest(x, n).proportion_ci(confidence_level=level, method="wilson")
        assert _f(row["conversion_rate_ci_low"]) == pytest.approx(wilson.low, abs=2e-6), key
        assert _f(row["conversion_rate_ci_high"]) == pytest.approx(wilson.high, abs=2e-6), key
        assert _f(row["confidence_level"]) == level
        if (campaign, channel, "holdout") not in counts or arm == "holdout":  # nothing to compare with
            assert row["baseline_arm"] is None and row["p_value"] is None and row["is_significant"] is None
            assert row["absolute_lift"] is None and row["relative_lift_ci_low"] is None
            continue
        n0, x0 = counts[(campaign, channel, "holdout")]
        p1, p0 = x / n, x0 / n0
        chi, p_value, _, _ = chi2_contingency([[x, n - x], [x0, n0 - x0]], correction=False)
        assert row["baseline_arm"] == "holdout"
        assert _f(row["z_score"]) == pytest.approx(math.copysign(math.sqrt(chi), p1 - p0), abs=1e-4), key
        assert _f(row["p_value"]) == pytest.approx(p_value, abs=1e-6), key
        # Newcombe's hybrid score interval from scipy's Wilson intervals of the two arms
        arm_ci = binomtest(x, n).proportion_ci(confidence_level=level, method="wilson")
        base = binomtest(x0, n0).proportion_ci(confidence_level=level, method="wilson")
        low = p1 - p0 - math.hypot(p1 - arm_ci.low, base.high - p0)
        high = p1 - p0 + math.hypot(arm_ci.high - p1, p0 - base.low)
        assert _f(row["absolute_lift"]) == pytest.approx(p1 - p0, abs=1e-6)
        assert _f(row["absolute_lift_ci_low"]) == pytest.approx(low, abs=2e-6), key
        assert _f(row["absolute_lift_ci_high"]) == pytest.approx(high, abs=2e-6), key
        ratio = relative_risk(x, n, x0, n0)
        katz = ratio.confidence_interval(confidence_level=level)
        assert _f(row["relative_lift"]) == pytest.approx(ratio.relative_risk - 1, abs=1e-6)
        assert _f(row["relative_lift_ci_low"]) == pytest.approx(katz.low - 1, abs=2e-6), key
        assert _f(row["relative_lift_ci_high"]) == pytest.approx(katz.high - 1, abs=2e-6), key
    _check_holm(rows, level)
    _check_srm(rows)
    _check_guardrails(rows, level)


def _family(campaign: str, channel: str) -> dict[tuple[str, str], float]:
    """The p-values of a campaign × channel's comparisons: each variant against the holdout, each
    unordered pair of variants."""
    counts = _counts()
    variants = _variants(campaign, channel)
    family = {}
    if (campaign, channel, "holdout") in counts:
        n0, x0 = counts[(campaign, channel, "holdout")]
        for v in variants:
            family[(v, "holdout")] = _pooled_p(*reversed(counts[(campaign, channel, v)]), x0, n0)
    for i, a in enumerate(variants):
        for b in variants[i + 1 :]:
            (na, xa), (nb, xb) = counts[(campaign, channel, a)], counts[(campaign, channel, b)]
            family[(a, b)] = _pooled_p(xa, na, xb, nb)
    return family


def _check_holm(rows: dict, level: float) -> None:
    for campaign, channel in {(c, ch) for c, ch, *_ in ARMS}:
        family = _family(campaign, channel)
        arms = len(_variants(campaign, channel)) + ((campaign, channel, "holdout") in rows)
        adjusted = _holm(family) if arms > 2 else family
        for arm in _variants(campaign, channel):
            row = rows[(campaign, channel, arm)]
            if (arm, "holdout") in family:
                assert _f(row["p_value_adjusted"]) == pytest.approx(adjusted[(arm, "holdout")], abs=1e-6), arm
                assert row["is_significant"] == (adjusted[(arm, "holdout")] < 1 - level)
            else:
                assert row["p_value_adjusted"] is None
        for key in ((campaign, channel, "treated"), (campaign, channel, "holdout")):
            if key in rows:  # the treated headline is not in the family; the holdout is no test
                assert rows[key]["p_value_adjusted"] == rows[key]["p_value"]


def _check_srm(rows: dict) -> None:
    designs = {(c, ch): (h, w) for c, ch, h, w in DESIGNS}
    for (campaign, channel, arm), row in rows.items():
        if (campaign, channel) not in designs:
            assert row["srm_p_value"] is None and row["srm_mismatch"] is None
            continue
        holdout, weights = designs[(campaign, channel)]
        arms = (["holdout"] if holdout else []) + sorted(weights)
        shares = ([holdout] if holdout else []) + [(1 - holdout) * weights[a] for a in sorted(weights)]
        observed = [rows[(campaign, channel, a)]["reach"] for a in arms]
        expected = [sum(observed) * s for s in shares]
        p = chisquare(observed, expected).pvalue
        assert _f(row["srm_p_value"]) == pytest.approx(p, abs=1e-6), (campaign, arm)
        assert row["srm_mismatch"] == (p < 0.001)


def _check_guardrails(rows: dict, level: float) -> None:
    names = {"unsubscribed": "unsubscribe_rate", "complained": "complaint_rate", "bounced": "bounce_rate"}
    for (campaign, channel, arm), row in rows.items():
        if arm == "holdout":  # held-out customers got no message: no message outcomes
            assert [row[c] for c in names.values()] == [None, None, None]
            assert row["guardrail_breached"] is None
            continue
        members = _variants(campaign, channel) if arm == "treated" else [arm]
        for event, column in names.items():
            k = sum(GUARDRAIL_EVENTS.get((campaign, channel, a), {}).get(event, 0) for a in members)
            assert _f(row[column]) == pytest.approx(k / row["reach"], abs=1e-6), (campaign, arm, column)
        if arm == "treated":
            assert row["guardrail_breached"] is None
            continue
        breached = False
        for other in set(_variants(campaign, channel)) - {arm}:
            n, n_other = rows[(campaign, channel, arm)]["reach"], rows[(campaign, channel, other)]["reach"]
            for event in names:
                k = GUARDRAIL_EVENTS.get((campaign, channel, arm), {}).get(event, 0)
                k_other = GUARDRAIL_EVENTS.get((campaign, channel, other), {}).get(event, 0)
                if (
                    k + k_other
                    and k / n > k_other / n_other
                    and _pooled_p(k, n, k_other, n_other) < 1 - level
                ):
                    breached = True
        assert row["guardrail_breached"] == breached, (campaign, arm)


def test_experiment_results_match_scipy(built: dict) -> None:
    rows = built["rows"]
    assert {k: r["arm_type"] for k, r in rows.items() if k[0] == "spring"} == {
        ("spring", "email", "A"): "variant", ("spring", "email", "B"): "variant",
        ("spring", "email", "holdout"): "holdout", ("spring", "email", "treated"): "treated",
        ("spring", "sms", "treated"): "treated",
    }  # fmt: skip
    _check_against_scipy(rows, 0.95)
    # by hand (module docstring): z = 0, 2.824 and 1.628 against the holdout
    spring = {a: rows[("spring", "email", a)] for a in ("A", "B", "treated", "holdout")}
    assert [_f(spring[a]["z_score"]) for a in ("A", "B", "treated")] == [0.0, 2.8237, 1.6283]
    assert [spring[a]["is_significant"] for a in ("A", "B", "treated")] == [False, True, False]
    for key, total in built["revenue"].items():
        assert _f(rows[key]["revenue"]) == pytest.approx(total), key
        assert _f(rows[key]["revenue_per_recipient"]) == pytest.approx(total / rows[key]["reach"], abs=1e-4)


def test_holm_adjusts_the_comparisons_of_three_or_more_arms(built: dict) -> None:
    spring = {a: built["rows"][("spring", "email", a)] for a in ("A", "B")}
    # by hand: 3 · 0.00036 = 0.00108 (A-B), 2 · 0.0047 = 0.0094 (B-holdout), 1 · 1 = 1 (A-holdout)
    assert _f(spring["B"]["p_value_adjusted"]) == pytest.approx(2 * _f(spring["B"]["p_value"]), abs=2e-6)
    assert _f(spring["B"]["p_value_adjusted"]) == pytest.approx(0.0094, abs=1e-4)
    assert _f(spring["A"]["p_value_adjusted"]) == 1.0
    # two arms only (autumn: A and B, no holdout): nothing to adjust, and no test against a holdout
    assert built["rows"][("autumn", "push", "B")]["p_value_adjusted"] is None


def test_the_sample_ratio_check_flags_an_unbalanced_split(built: dict) -> None:
    rows = built["rows"]
    # summer: observed 300/1000/1000/700 against 300/900/900/900: chi-square 66.67 on 3 df
    assert _f(rows[("summer", "email", "B")]["srm_p_value"]) == pytest.approx(chi2.sf(600 / 9, 3), abs=1e-6)
    assert chi2.sf(600 / 9, 3) < 1e-12
    assert {r["srm_mismatch"] for k, r in rows.items() if k[0] == "summer"} == {True}
    assert {r["srm_mismatch"] for k, r in rows.items() if k[0] in ("spring", "autumn") and k[1] != "sms"} == {
        False
    }
    assert _f(rows[("spring", "email", "A")]["srm_p_value"]) == 1.0  # exactly as designed
    assert rows[("spring", "sms", "treated")]["srm_p_value"] is None  # no design recorded


def test_the_winner_is_significant_within_its_guardrails_and_sample_ratio(built: dict) -> None:
    rows = built["rows"]
    _, p_b_vs_a, _, _ = chi2_contingency([[128, 672], [80, 720]], correction=False)
    assert p_b_vs_a == pytest.approx(0.00036, abs=1e-5) and 3 * p_b_vs_a < 0.05
    assert [k for k, r in rows.items() if r["is_winner"]] == [("spring", "email", "B")]
    # summer B beats A and C after Holm, yet the split is off: no winner
    summer = _holm(_family("summer", "email"))
    assert summer[("A", "B")] < 0.05 and summer[("B", "C")] < 0.05
    assert rows[("summer", "email", "B")]["is_significant"] is True
    # autumn B converts better (p = 0.000723) but complains more (12 vs 1 of 1000): breached
    assert _pooled_p(150, 1000, 100, 1000) == pytest.approx(0.000723, abs=1e-6)
    assert _pooled_p(12, 1000, 1, 1000) == pytest.approx(0.0022, abs=1e-4)
    assert rows[("autumn", "push", "B")]["guardrail_breached"] is True
    assert rows[("autumn", "push", "A")]["guardrail_breached"] is False
    assert rows[("spring", "email", "B")]["guardrail_breached"] is False


def test_the_model_runs_unchanged_on_postgres(built: dict, postgres_dsn: str) -> None:  # noqa: F811
    """The SQL dbt compiled for DuckDB, on PostgreSQL with the same inputs, gives the same table."""
    import psycopg

    messages, conversions, events, _ = _inputs()
    query = built["compiled"].replace('"warehouse".', "")
    columns = list(built["rows"][("spring", "email", "A")])
    source = duckdb.connect(str(built["warehouse"]), read_only=True)
    designs = source.execute("select * from staging.stg_tideline_experiments__experiment_designs").fetchall()
    source.close()
    pg = {"varchar": "text", "double": "double precision", "decimal(18, 2)": "numeric(18, 2)"}
    with psycopg.connect(postgres_dsn, autocommit=True) as conn, conn.cursor() as cur:
        for schema in ("marts", "intermediate", "staging"):
            cur.execute(f"drop schema if exists {schema} cascade; create schema {schema}")
        for ddl in (MESSAGES_DDL, CONVERSIONS_DDL, EVENTS_DDL):
            cur.execute(re.sub(r"\b(varchar|decimal\(18, 2\))", lambda m: pg[m.group(1)], ddl))
        cur.execute(
            """create table staging.stg_tideline_experiments__experiment_designs (
                campaign text, channel text, content_version text, arm text, expected_share double precision,
                recorded_at timestamp)"""
        )
        for table, rows in (
            ("marts.fct_messages", messages),
            ("intermediate.int_message_conversions", conversions),
            ("marts.fct_message_events", events),
            ("staging.stg_tideline_experiments__experiment_designs", designs),
        ):
            cur.executemany(f"insert into {table} values ({', '.join(['%s'] * len(rows[0]))})", rows)
        cur.execute(query)
        names = [d.name for d in cur.description]
        rows = {
            (r["campaign"], r["channel"], r["arm"]): r
            for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())
        }
        cur.execute(
            "drop schema marts cascade; drop schema intermediate cascade; drop schema staging cascade"
        )
    assert names == columns
    assert rows == built["rows"]


def test_a_stricter_confidence_level_widens_every_interval(built: dict) -> None:
    """The same warehouse at 99%: intervals follow scipy at 0.99 and B still wins (Holm-adjusted
    0.00108 against A and 0.0094 against the holdout, both < 0.01)."""
    done = _dbt(
        ["run", "--select", "experiment_results"], built["warehouse"], {"experiment_confidence_level": 0.99}
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = _results(built["warehouse"])
    _check_against_scipy(rows, 0.99)
    assert rows[("spring", "email", "B")]["is_significant"] is True
    assert [k for k, r in rows.items() if r["is_winner"]] == [("spring", "email", "B")]
    assert _f(rows[("spring", "email", "B")]["conversion_rate_ci_low"]) < _f(
        built["rows"][("spring", "email", "B")]["conversion_rate_ci_low"]
    )
