"""The demo's staff, owners and CRM lead stages (docs/staff.md): their shape, that they refer to
what exists, and that their hash streams changed no other draw of the generator."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from tideline.demo import data
from tideline.demo.data import DemoDataSummary, generate_demo_data

CUSTOMERS = 1200
NEW_DIRS = ("crm/staff", "crm/customer_owners", "crm/lead_status")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataSummary:
    return generate_demo_data(tmp_path_factory.mktemp("demo"), customers=CUSTOMERS, seed=7)


def _csvs(root: Path, rel: str) -> pd.DataFrame:
    files = sorted((root / rel).glob("*.csv"))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)


def test_a_sales_team_of_two_managers_and_six_reps(demo: DemoDataSummary) -> None:
    staff = _csvs(demo.out_dir, "crm/staff")
    assert len(staff) == 8 and staff.staff_id.is_unique
    managers = staff[staff.manager_id == ""]
    assert sorted(managers.staff_id) == ["stf_m1", "stf_m2"]
    assert set(staff.manager_id) - {""} == {"stf_m1", "stf_m2"}
    for row in staff.itertuples():
        assert row.handle in (f"http://127.0.0.1:8091/staff/{row.staff_id}", row.email)
        assert row.email.endswith("@shop.example.com")
    assert set(staff.handle.str.startswith("http")) == {True, False}  # both kinds
    assert list(staff[staff.active == "false"].staff_id) == ["stf_06"]


def test_owners_for_about_half_of_the_leads_and_some_buyers(demo: DemoDataSummary) -> None:
    root = demo.out_dir
    truth = pd.read_parquet(root / "_truth/customers.parquet")
    contacts = _csvs(root, "crm/contacts")
    owners = _csvs(root, "crm/customer_owners")
    staff = set(_csvs(root, "crm/staff").staff_id)
    reps = staff - {"stf_m1", "stf_m2"}
    assert set(owners.staff_id) <= reps and set(contacts.owner_id) - {""} <= reps
    assert set(owners.customer_id) <= set(truth.customer_id)
    assert not owners.duplicated(["customer_id", "staff_id"]).any()
    linked = pd.to_datetime(owners.linked_at)
    assert linked.max() < pd.Timestamp(demo.end_date + dt.timedelta(days=1), tz="UTC")
    owned = set(owners.customer_id) | set(contacts[contacts.owner_id != ""].customer_id)
    lead = truth.purchases_in_window == 0
    lead_share = truth[lead].customer_id.isin(owned).mean()
    buyer_share = truth[~lead].customer_id.isin(owned).mean()
    assert 0.4 < lead_share < 0.6 and 0.05 < buyer_share < 0.15
    per_customer = pd.concat([owners[["customer_id", "staff_id"]],
                              contacts[contacts.owner_id != ""][["customer_id", "owner_id"]]
                              .rename(columns={"owner_id": "staff_id"})])  # fmt: skip
    two = per_customer.groupby("customer_id").staff_id.nunique()
    assert (two == 2).sum() > 10 and two.max() == 2


def test_crm_stages_follow_the_signals_of_leads_in_order(demo: DemoDataSummary) -> None:
    root = demo.out_dir
    truth = pd.read_parquet(root / "_truth/customers.parquet").set_index("customer_id")
    status = _csvs(root, "crm/lead_status")
    assert set(status.stage) == {"sales_accepted", "opportunity", "deal", "lost"}
    assert (truth.loc[status.customer_id, "lead_signals"] > 0).all()
    assert (truth.loc[status.customer_id, "purchases_in_window"] == 0).all()
    order = {"sales_accepted": 0, "opportunity": 1, "deal": 2, "lost": 2}
    for _, rows in status.groupby("customer_id"):
        rows = rows.sort_values("changed_at")
        assert list(rows.stage.map(order)) == list(range(len(rows)))
    assert pd.to_datetime(status.changed_at).max() < pd.Timestamp(
        demo.end_date + dt.timedelta(days=1), tz="UTC"
    )
    counts = json.loads((root / "_truth/demo.json").read_text())["counts"]
    assert counts["lead_status"] == len(status) and counts["staff"] == 8


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not str(p.relative_to(root)).startswith(NEW_DIRS) and p.name != "demo.json"
    }


def test_the_new_streams_change_no_other_draw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other file is byte-identical with the staff part switched off (contacts without owner_id)."""
    with_staff = tmp_path / "with"
    generate_demo_data(with_staff, customers=400, seed=3)
    original_plan = data._plan_owners

    def nobody(ctx, acc, orders):
        plan = original_plan(ctx, acc, orders)
        plan.has[:] = False
        plan.on_contact[:] = False
        plan.second[:] = -1
        return plan

    monkeypatch.setattr(data, "_plan_owners", nobody)
    monkeypatch.setattr(data, "_write_owners", lambda *a: None)
    monkeypatch.setattr(data, "_write_lead_status", lambda *a: None)
    monkeypatch.setattr(data, "_write_staff", lambda out_dir: 0)
    without = tmp_path / "without"
    generate_demo_data(without, customers=400, seed=3)
    a, b = _hashes(with_staff), _hashes(without)
    contacts = [k for k in a if k.startswith("crm/contacts")]
    assert contacts and {k: v for k, v in a.items() if k not in contacts} == {
        k: v for k, v in b.items() if k not in contacts
    }
    for rel in contacts:
        got = pd.read_csv(with_staff / rel, dtype=str, keep_default_na=False)
        expected = pd.read_csv(without / rel, dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(got.drop(columns="owner_id"), expected.drop(columns="owner_id"))
        assert set(expected.owner_id) == {""}
