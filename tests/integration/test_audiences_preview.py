"""Preview of an audience file on a small warehouse: size, reachable per channel, overlap, sample,
the `--json` entry point and a file that does not compile (exit code 2).

The warehouse is the condition-language fixture (tests/integration/test_conditions_members.py)
with the audiences built (stand-in tables with hand-picked members), the operators' suppression
list, the receiver's consent revocations and the engagement suppressions. The previewed audience
is `country in (DE, AT)`, as of 2026-03-10 (dim_customers.as_of_date). Worked out by hand:
  members: DE c01 c05 c08 c11 c13 c16 c19, AT c02 c09 c14 -> 10
  email opt-in among them: c01 c02 c05 c08 c13 c16; c01 is on the suppression list for email,
    c13 revoked email after consenting, c16 is suppressed for all channels (engagement), c05's
    revocation is older than its consent (a later grant lifts it) -> c02 c05 c08 = 3
  sms opt-in: c02 c13; c02 is on the suppression list for sms (c13 revoked email only) -> c13 = 1
  push opt-in: none of them -> 0
  overlap: vip_early_access (c01 c04 c13) 2 = 20%, win_back_dormant (c08 c09 c12 c14) 3 = 30%,
    high_propensity_buyers (c01 c02) 2 = 20%; marts.recent_buyers is no audience of the project.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from activation.audiences import format_preview, preview
from activation.conditions import ConditionError
from activation.ledger import SCHEMA
from tests.integration.test_conditions_members import build, ts

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = {"c01", "c02", "c05", "c08", "c09", "c11", "c13", "c14", "c16", "c19"}
STAND_INS = {
    "vip_early_access": ["c01", "c04", "c13"],
    "win_back_dormant": ["c08", "c09", "c12", "c14"],
    "high_propensity_buyers": ["c01", "c02"],
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("preview")
    path = folder / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    build(con.execute, con.executemany, "?")
    con.execute("alter table marts.dim_customers add column as_of_date date default '2026-03-10'")
    con.execute("alter table marts.dim_customers add column sms_consent_at timestamp")
    con.execute("alter table marts.dim_customers add column push_consent_at timestamp")
    for name, ids in STAND_INS.items():
        con.execute(f"create table marts.{name} (customer_id varchar)")
        con.executemany(f"insert into marts.{name} values (?)", [(i,) for i in ids])
    con.execute(f"create schema {SCHEMA}")
    con.execute(f"create table {SCHEMA}.suppressions (customer_id varchar, channel varchar, reason varchar)")
    con.execute(f"insert into {SCHEMA}.suppressions values ('c01', 'email', 'manual'), ('c02', 'sms', 'x')")
    con.execute(
        f"create table {SCHEMA}.consent_revocations (customer_id varchar, channel varchar, revoked_at timestamp)"
    )
    con.executemany(
        f"insert into {SCHEMA}.consent_revocations values (?, ?, ?)",
        [("c13", "email", ts("2026-03-01 00:00")), ("c05", "email", ts("2026-01-01 00:00"))],
    )
    con.execute(
        "create table marts.engagement_suppressions (customer_id varchar, channel varchar, reason varchar)"
    )
    con.execute("insert into marts.engagement_suppressions values ('c16', 'all', 'complained')")
    con.close()
    (folder / "dach.yml").write_text(
        "description: Customers in Germany and Austria.\nowner: test\n"
        "where: {attribute: {name: country, in: [DE, AT]}}\nfields: [email]\n"
    )
    yield path


def test_preview_reports_size_reachable_overlap_and_sample(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        result = preview(con, warehouse.parent / "dach.yml", sample_size=4)
    finally:
        con.close()
    assert result["audience"] == "dach" and result["as_of"] == "2026-03-10"
    assert result["size"] == 10
    assert result["reachable"] == {"email": 3, "sms": 1, "push": 0}
    assert result["overlap"] == [
        {"audience": "high_propensity_buyers", "audience_size": 2, "shared": 2, "share": 0.2},
        {"audience": "vip_early_access", "audience_size": 3, "shared": 2, "share": 0.2},
        {"audience": "win_back_dormant", "audience_size": 4, "shared": 3, "share": 0.3},
    ]
    assert len(result["sample"]) == 4 and set(result["sample"]) <= MEMBERS
    text = format_preview(result)
    assert "size 10" in text and "win_back_dormant" in text and "30.0%" in text
    assert "@" not in json.dumps(result) + text  # ids only, never an email


def test_preview_as_of_another_date_moves_the_windows(warehouse: Path, tmp_path: Path) -> None:
    (tmp_path / "viewers.yml").write_text(
        "description: x\nowner: t\nwhere: {event: {type: product_view, within_days: 7}}\n"
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        as_of_data = preview(con, tmp_path / "viewers.yml")
        earlier = preview(con, tmp_path / "viewers.yml", as_of=dt.date(2026, 3, 5))
    finally:
        con.close()
    # [03-04, 03-11): c01 (03-08, 03-09), c02 (03-05), c06 (03-10), c10 (03-09); [02-27, 03-06): c01, c02
    assert (as_of_data["size"], earlier["size"]) == (4, 2)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tideline.cli", "audience", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_cli_json_is_one_object_whose_size_is_the_audience_size(warehouse: Path) -> None:
    done = run_cli("preview", str(warehouse.parent / "dach.yml"), "--json", "--warehouse", str(warehouse))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["size"] == 10
    assert set(result) >= {"audience", "as_of", "size", "reachable", "overlap", "sample"}
    text = run_cli("preview", str(warehouse.parent / "dach.yml"), "--warehouse", str(warehouse))
    assert text.returncode == 0 and "size 10" in text.stdout


def test_a_file_that_does_not_compile_exits_2_naming_file_and_path(warehouse: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("description: x\nowner: t\nwhere: {all: [{tag: vip}, {score: {name: churn, gte: 0.5}}]}\n")
    done = run_cli("preview", str(bad), "--json", "--warehouse", str(warehouse))
    assert done.returncode == 2
    assert f"{bad}: where.all[1].score.name: unknown score 'churn'" in done.stderr
    assert done.stdout == ""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        with pytest.raises(ConditionError, match=r"where.all\[1\].score.name"):
            preview(con, bad)
    finally:
        con.close()


def test_an_audience_not_built_in_the_warehouse_is_named(warehouse: Path, tmp_path: Path) -> None:
    """cart_rescue is an audience of the project, but this warehouse has no marts.cart_rescue."""
    (tmp_path / "rescued.yml").write_text(
        "description: x\nowner: t\nwhere: {all: [{tag: vip}, {not: {audience: cart_rescue}}]}\n"
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        with pytest.raises(
            ConditionError, match=r"where.all\[1\].not.audience: audience 'cart_rescue' is not built"
        ):
            preview(con, tmp_path / "rescued.yml")
    finally:
        con.close()
