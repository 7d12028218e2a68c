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

The warehouse, campaign "spring" (as of 2026-03-10):
- email: 400 held out (their variant hash alternates A/B: they still count as holdout), 40 convert;
  variant A 800 sent, 80 convert; variant B 800 sent, 128 convert; 50 skipped for no consent, each
  followed by an order that must not count. Every 4th converter buys twice (amounts vary).
- sms: 300 sent, no variants and no holdout, 33 convert.
Against the holdout (0.10): A 0.10 is no lift (z = 0); B 0.16: P = 168/1200 = 0.14,
se = sqrt(0.14·0.86·(1/800 + 1/400)) = 0.021249, z = 0.06 / se = 2.824, p = 0.0047: significant; all
sent (treated) 208/1600 = 0.13: P = 248/2000 = 0.124, se = sqrt(0.124·0.876·(1/1600 + 1/400)) = 0.018424,
z = 0.03 / se = 1.628, p = 0.10: the headline lift of 3 points is not significant with 400 held out.
B vs A: pooled P = 208/1600 = 0.13, se = sqrt(0.13·0.87·(2/800)) = 0.016815, z = 0.06 / se = 3.568,
p = 0.00036 < 0.05: B is the winner.
"""

from __future__ import annotations

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
from scipy.stats import binomtest, chi2_contingency, norm
from scipy.stats.contingency import relative_risk

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


# --- experiment_results on a small warehouse ----------------------------------------------------


def _amount(i: int) -> float:
    return 10.0 + 5 * (i % 7)


def _inputs() -> tuple[list[tuple], list[tuple], dict]:
    """fct_messages and int_message_conversions rows, and the revenue expected per arm."""
    messages, conversions, revenue = [], [], {}
    for campaign, channel, arm, reach, converters in ARMS:
        label = arm or "sent"
        total = 0.0
        for i in range(reach):
            key = f"{channel}-{label}-{i:04d}"
            customer = f"{label}-{i:04d}"
            holdout = arm == "holdout"
            variant = ("A" if i % 2 else "B") if holdout else arm
            messages.append(
                (key, f"spring_segment__{channel}", "spring_segment", campaign, channel, variant, customer,
                 "v1", "holdout" if holdout else "sent", None, not holdout, holdout, SENT_AT,
                 None if holdout else SENT_AT, SENT_AT, SENT_AT[:10])
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
        revenue[(channel, arm or "treated")] = total
    revenue[("email", "treated")] = revenue[("email", "A")] + revenue[("email", "B")]
    for i in range(50):  # skipped (never exposed), yet an order follows: not counted anywhere
        key, customer = f"email-skipped-{i:04d}", f"skipped-{i:04d}"
        messages.append(
            (key, "spring_segment__email", "spring_segment", "spring", "email", "A", customer, "v1",
             "skipped", "no_consent", False, False, SENT_AT, None, None, None)
        )  # fmt: skip
        conversions.append(
            (key, customer, "spring", "A", "email", False, None, f"o-{key}", "2026-03-04 12:00:00", 99.0, None)
        )  # fmt: skip
    return messages, conversions, revenue


def _write_inputs(warehouse: Path) -> dict:
    messages, conversions, revenue = _inputs()
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create schema marts")
        con.execute("create schema intermediate")
        con.execute(
            """create table marts.fct_messages (
                message_key varchar, sync_key varchar, segment varchar, campaign varchar, channel varchar,
                variant varchar, customer_id varchar, content_version varchar, status varchar,
                skip_reason varchar, is_sent boolean, is_holdout boolean, planned_at timestamp,
                sent_at timestamp, exposed_at timestamp, send_date date)"""
        )
        con.execute(
            """create table intermediate.int_message_conversions (
                message_key varchar, customer_id varchar, campaign varchar, variant varchar,
                channel varchar, is_holdout boolean, exposed_at timestamp, order_id varchar,
                ordered_at timestamp, order_amount decimal(18, 2), days_to_convert double)"""
        )
        for table, rows in (
            ("marts.fct_messages", messages),
            ("intermediate.int_message_conversions", conversions),
        ):
            names = [c[0] for c in con.execute(f"describe {table}").fetchall()]
            batch = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})  # noqa: F841
            con.execute(f"insert into {table} select * from batch")
    finally:
        con.close()
    return revenue


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    warehouse = tmp_path_factory.mktemp("experiments") / "warehouse.duckdb"
    revenue = _write_inputs(warehouse)
    # build runs the model with its data tests, the consistency test and the unit tests
    done = _dbt(["build", "--select", "experiment_results"], warehouse)
    if done.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    assert re.search(r"PASS=(\d+)", done.stdout) and "ERROR=0" in done.stdout
    compiled = next(
        (warehouse.parent / "dbt_target" / "compiled").rglob("experiment_results.sql")
    ).read_text()
    return {"warehouse": warehouse, "revenue": revenue, "rows": _results(warehouse), "compiled": compiled}


def _results(warehouse: Path) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cur = con.execute("select * from marts.experiment_results")
        names = [d[0] for d in cur.description]
        return {
            (r["channel"], r["arm"]): r
            for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())
        }
    finally:
        con.close()


def _f(value) -> float | None:
    return None if value is None else float(value)


def _check_against_scipy(rows: dict, level: float) -> None:
    counts = {(ch, arm or "treated"): (n, x) for _, ch, arm, n, x in ARMS}
    counts[("email", "treated")] = (1600, 208)
    for key, (n, x) in counts.items():
        row = rows[key]
        assert (row["reach"], row["converters"]) == (n, x), key
        assert _f(row["conversion_rate"]) == pytest.approx(x / n, abs=1e-6)
        wilson = binomtest(x, n).proportion_ci(confidence_level=level, method="wilson")
        assert _f(row["conversion_rate_ci_low"]) == pytest.approx(wilson.low, abs=2e-6), key
        assert _f(row["conversion_rate_ci_high"]) == pytest.approx(wilson.high, abs=2e-6), key
        assert _f(row["confidence_level"]) == level
        if key[0] == "sms" or key[1] == "holdout":  # nothing to compare with
            assert row["baseline_arm"] is None and row["p_value"] is None and row["is_significant"] is None
            assert row["absolute_lift"] is None and row["relative_lift_ci_low"] is None
            continue
        n0, x0 = counts[("email", "holdout")]
        p1, p0 = x / n, x0 / n0
        chi2, p_value, _, _ = chi2_contingency([[x, n - x], [x0, n0 - x0]], correction=False)
        assert row["baseline_arm"] == "holdout"
        assert _f(row["z_score"]) == pytest.approx(math.copysign(math.sqrt(chi2), p1 - p0), abs=1e-4), key
        assert _f(row["p_value"]) == pytest.approx(p_value, abs=1e-6), key
        assert row["is_significant"] == (p_value < 1 - level), key
        # Newcombe's hybrid score interval from scipy's Wilson intervals of the two arms
        arm = binomtest(x, n).proportion_ci(confidence_level=level, method="wilson")
        base = binomtest(x0, n0).proportion_ci(confidence_level=level, method="wilson")
        low = p1 - p0 - math.hypot(p1 - arm.low, base.high - p0)
        high = p1 - p0 + math.hypot(arm.high - p1, p0 - base.low)
        assert _f(row["absolute_lift"]) == pytest.approx(p1 - p0, abs=1e-6)
        assert _f(row["absolute_lift_ci_low"]) == pytest.approx(low, abs=2e-6), key
        assert _f(row["absolute_lift_ci_high"]) == pytest.approx(high, abs=2e-6), key
        ratio = relative_risk(x, n, x0, n0)
        katz = ratio.confidence_interval(confidence_level=level)
        assert _f(row["relative_lift"]) == pytest.approx(ratio.relative_risk - 1, abs=1e-6)
        assert _f(row["relative_lift_ci_low"]) == pytest.approx(katz.low - 1, abs=2e-6), key
        assert _f(row["relative_lift_ci_high"]) == pytest.approx(katz.high - 1, abs=2e-6), key


def test_experiment_results_match_scipy(built: dict) -> None:
    rows = built["rows"]
    assert sorted(rows) == [
        ("email", "A"), ("email", "B"), ("email", "holdout"), ("email", "treated"), ("sms", "treated"),
    ]  # fmt: skip
    assert {k: r["arm_type"] for k, r in rows.items()} == {
        ("email", "A"): "variant", ("email", "B"): "variant", ("email", "holdout"): "holdout",
        ("email", "treated"): "treated", ("sms", "treated"): "treated",
    }  # fmt: skip
    _check_against_scipy(rows, 0.95)
    # by hand (module docstring): z = 0, 2.824 and 1.628 against the holdout
    assert [_f(rows[("email", a)]["z_score"]) for a in ("A", "B", "treated")] == [0.0, 2.8237, 1.6283]
    assert [rows[("email", a)]["is_significant"] for a in ("A", "B", "treated")] == [False, True, False]
    for key, total in built["revenue"].items():
        assert _f(rows[key]["revenue"]) == pytest.approx(total), key
        assert _f(rows[key]["revenue_per_recipient"]) == pytest.approx(total / rows[key]["reach"], abs=1e-4)


def test_the_better_variant_wins_only_when_significant_against_the_other(built: dict) -> None:
    rows = built["rows"]
    _, p_b_vs_a, _, _ = chi2_contingency([[128, 672], [80, 720]], correction=False)
    assert p_b_vs_a == pytest.approx(0.00036, abs=1e-5) and p_b_vs_a < 0.05
    assert [k for k, r in rows.items() if r["is_winner"]] == [("email", "B")]


def test_the_model_runs_unchanged_on_postgres(built: dict, postgres_dsn: str) -> None:  # noqa: F811
    """The SQL dbt compiled for DuckDB, on PostgreSQL with the same inputs, gives the same table."""
    import psycopg

    messages, conversions, _ = _inputs()
    query = built["compiled"].replace('"warehouse".', "")
    columns = list(built["rows"][("email", "A")])
    with psycopg.connect(postgres_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("drop schema if exists marts cascade; drop schema if exists intermediate cascade")
        cur.execute("create schema marts; create schema intermediate")
        cur.execute(
            """create table marts.fct_messages (
                message_key text, sync_key text, segment text, campaign text, channel text, variant text,
                customer_id text, content_version text, status text, skip_reason text, is_sent boolean,
                is_holdout boolean, planned_at timestamp, sent_at timestamp, exposed_at timestamp,
                send_date date)"""
        )
        cur.execute(
            """create table intermediate.int_message_conversions (
                message_key text, customer_id text, campaign text, variant text, channel text,
                is_holdout boolean, exposed_at timestamp, order_id text, ordered_at timestamp,
                order_amount numeric(18, 2), days_to_convert double precision)"""
        )
        cur.executemany("insert into marts.fct_messages values (" + ", ".join(["%s"] * 16) + ")", messages)
        cur.executemany(
            "insert into intermediate.int_message_conversions values (" + ", ".join(["%s"] * 11) + ")",
            conversions,
        )
        cur.execute(query)
        names = [d.name for d in cur.description]
        rows = {
            (r["channel"], r["arm"]): r
            for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())
        }
        cur.execute("drop schema marts cascade; drop schema intermediate cascade")
    assert names == columns
    assert rows == built["rows"]


def test_a_stricter_confidence_level_widens_every_interval(built: dict) -> None:
    """The same warehouse at 99%: intervals follow scipy at 0.99 and B still wins (p = 0.00036 < 0.01)."""
    done = _dbt(
        ["run", "--select", "experiment_results"], built["warehouse"], {"experiment_confidence_level": 0.99}
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = _results(built["warehouse"])
    _check_against_scipy(rows, 0.99)
    assert rows[("email", "B")]["is_significant"] is True  # p = 0.0047 < 0.01
    assert [k for k, r in rows.items() if r["is_winner"]] == [("email", "B")]
    assert _f(rows[("email", "B")]["conversion_rate_ci_low"]) < _f(
        built["rows"][("email", "B")]["conversion_rate_ci_low"]
    )
