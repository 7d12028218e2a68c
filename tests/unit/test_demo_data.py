"""Tests for the demo data generator: determinism, contract conformance, shapes and planted defects."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tideline.demo.data import DEFAULT_END_DATE, DemoDataSummary, black_friday, generate_demo_data
from tideline.landing.contract import ENGAGEMENT_EVENTS, ENTITIES, ENTITIES_BY_NAME

CUSTOMERS = 1500
CALLING = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31", "ES": "34"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataSummary:
    return generate_demo_data(tmp_path_factory.mktemp("demo"), customers=CUSTOMERS, seed=7)


def _reader(path: Path, varchar: bool = True) -> str:
    """A duckdb table function reading one landing file (JSON Lines as text columns unless told)."""
    p = str(path).replace("'", "''")
    if path.suffix == ".csv":
        return f"read_csv('{p}', all_varchar=true, header=true)"
    if path.suffix == ".parquet":
        return f"read_parquet('{p}', hive_partitioning=false)"
    if not varchar:
        return f"read_json('{p}', format='newline_delimited')"
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in ENTITIES_BY_NAME["events"].column_names)
    return f"read_json('{p}', format='newline_delimited', columns={{{columns}}})"


def _entity_files(root: Path, rel: str) -> list[Path]:
    return sorted(p for p in (root / rel).rglob("*") if p.is_file())


def _rows(path: Path) -> pd.DataFrame:
    return duckdb.sql(f"select * from {_reader(path)}").df()


def _all(root: Path, entity: str) -> pd.DataFrame:
    files = _entity_files(root, ENTITIES_BY_NAME[entity].path)
    return pd.concat([_rows(f) for f in files], ignore_index=True)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def normalise_phone(raw: str | None, country: str | None) -> str | None:
    """The dbt model's rules, written independently of the generator."""
    if raw is None or pd.isna(raw):
        return None
    s = "".join(ch for ch in str(raw).strip() if ch not in " -.()")
    if s.startswith("+"):
        return s
    if s.startswith("00"):
        return "+" + s[2:]
    if country in ("GB", "DE", "FR", "NL") and s.startswith("0"):
        return "+" + CALLING[country] + s[1:]
    if country == "US" and len(s) == 10:
        return "+1" + s
    if country == "US" and len(s) == 11 and s.startswith("1"):
        return "+" + s
    if country == "ES" and len(s) == 9:
        return "+34" + s
    return None


def _norm_email(e: object) -> str | None:
    return None if e is None or pd.isna(e) else str(e).strip().lower()


def test_same_arguments_give_identical_files_and_seed_changes_data(tmp_path: Path) -> None:
    a = generate_demo_data(tmp_path / "a", customers=300, days=200, seed=3)
    b = generate_demo_data(tmp_path / "b", customers=300, days=200, seed=3)
    c = generate_demo_data(tmp_path / "c", customers=300, days=200, seed=4)
    ha, hb, hc = _hashes(a.out_dir), _hashes(b.out_dir), _hashes(c.out_dir)
    assert ha == hb
    assert ha != hc
    assert a.end_date == DEFAULT_END_DATE and a.start_date == DEFAULT_END_DATE - dt.timedelta(days=199)


def test_rerun_into_same_dir_replaces_previous_demo(tmp_path: Path) -> None:
    generate_demo_data(tmp_path, customers=200, days=400, seed=1)
    again = generate_demo_data(tmp_path, customers=200, days=100, seed=1)
    months = {p.parent.name for p in _entity_files(tmp_path, "commerce/orders")}
    assert min(months) >= f"month={again.start_date:%Y-%m}"


def test_refuses_foreign_non_empty_entity_folder(tmp_path: Path) -> None:
    (tmp_path / "commerce" / "orders").mkdir(parents=True)
    (tmp_path / "commerce" / "orders" / "mine.csv").write_text("order_id\n")
    with pytest.raises(FileExistsError):
        generate_demo_data(tmp_path, customers=10)


def test_every_entity_readable_with_required_columns(demo: DemoDataSummary) -> None:
    for entity in ENTITIES:
        if entity is ENGAGEMENT_EVENTS:  # written by the engagement receiver, not by the generator
            continue
        files = _entity_files(demo.out_dir, entity.path)
        assert files, entity.name
        for f in files:
            cols = {c.lower() for c in duckdb.sql(f"select * from {_reader(f, varchar=False)}").columns}
            assert set(entity.required_columns) <= cols, (f, entity.required_columns)
            if f.suffix != ".jsonl":  # JSON lines omit empty fields
                assert set(entity.column_names) <= cols, f
    truth = demo.truth_dir
    assert {p.name for p in truth.iterdir()} == {
        "customers.parquet",
        "malformed.csv",
        "duplicates.csv",
        "demo.json",
    }
    customers = pd.read_parquet(truth / "customers.parquet")
    assert len(customers) == CUSTOMERS == demo.customers
    contacts = _all(demo.out_dir, "crm_contacts")
    assert len(contacts) == demo.contacts_rows
    assert set(contacts["customer_id"].dropna()) == set(customers["customer_id"])


def test_timestamps_and_ids_have_expected_formats(demo: DemoDataSummary) -> None:
    events = _all(demo.out_dir, "events")
    assert events["occurred_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert events["anonymous_id"].str.fullmatch(r"anon_[0-9a-f]{16}").all()
    assert events["event_id"].is_unique
    assert set(events["event_type"]) <= {
        "page_view",
        "product_view",
        "add_to_cart",
        "checkout_started",
        "signup",
        "login",
        "app_open",
        "form_submit",
    }
    assert events["occurred_at"].min() >= demo.start_date.isoformat()
    assert events["occurred_at"].max() < (demo.end_date + dt.timedelta(days=1)).isoformat()
    contacts = _all(demo.out_dir, "crm_contacts")
    created = contacts["created_at"].dropna()
    assert created.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d").any()
    assert created.str.endswith("Z").mean() > 0.5
    orders = _all(demo.out_dir, "commerce_orders")
    assert orders["order_id"].dropna().is_unique
    assert orders["customer_id"].dropna().str.fullmatch(r"cus_\d{7}").all()


def test_phones_normalise_to_valid_e164(demo: DemoDataSummary) -> None:
    contacts = _all(demo.out_dir, "crm_contacts").dropna(subset=["phone"])
    assert 0.6 < len(contacts) / demo.contacts_rows < 0.8
    e164 = [normalise_phone(p, c) for p, c in zip(contacts["phone"], contacts["country"], strict=True)]
    assert all(e is not None and e[1:].isdigit() and 10 <= len(e) - 1 <= 13 for e in e164)
    assert (
        contacts["phone"].str.startswith("00").any() and contacts["phone"].str.contains(r"^\(\d{3}\) ").any()
    )
    truth = pd.read_parquet(demo.truth_dir / "customers.parquet").set_index("customer_id")
    expected = truth.loc[contacts["customer_id"], "phone_e164"].tolist()
    assert e164 == expected


def test_heavy_tail_of_revenue(demo: DemoDataSummary) -> None:
    orders = _all(demo.out_dir, "commerce_orders")
    valid = orders[
        orders["status"].eq("completed")
        & orders["customer_id"].notna()
        & orders["amount"].str.fullmatch(r"\d+\.\d\d").fillna(False)
    ]
    revenue = valid.assign(a=valid["amount"].astype(float)).groupby("customer_id")["a"].sum().sort_values()
    top = revenue.iloc[-max(1, len(revenue) // 10) :].sum()
    assert top / revenue.sum() > 0.40
    truth = pd.read_parquet(demo.truth_dir / "customers.parquet")
    assert 0.15 < (truth["persona"] == "prospect").mean() < 0.4
    assert (truth["orders_in_window"] == 0).mean() > 0.2


def test_lapse_and_reactivation(demo: DemoDataSummary) -> None:
    truth = pd.read_parquet(demo.truth_dir / "customers.parquet")
    buyers = truth[truth["purchases_in_window"] > 0]
    assert (~buyers["alive_at_end"]).sum() > 50
    assert buyers["alive_at_end"].sum() > 50
    assert truth["reactivated"].sum() >= 5
    assert truth["churned_next_90d"].sum() > 10
    assert truth["purchases_next_90d"].sum() > 0 and truth["revenue_next_90d"].sum() > 0
    # lapsed customers buy less in the next 90 days than live ones
    alive_rate = buyers.loc[buyers["alive_at_end"], "purchases_next_90d"].mean()
    dead_rate = buyers.loc[~buyers["alive_at_end"], "purchases_next_90d"].mean()
    assert alive_rate > 3 * dead_rate


def test_black_friday_spike(demo: DemoDataSummary) -> None:
    orders = _all(demo.out_dir, "commerce_orders")
    day = pd.to_datetime(orders["ordered_at"], errors="coerce", utc=True).dropna().dt.date
    daily = day.value_counts().reindex(pd.date_range(demo.start_date, demo.end_date).date, fill_value=0)
    weekly_mean = daily.groupby([pd.Timestamp(d).to_period("W") for d in daily.index]).mean()
    bf = black_friday(2025)
    week = [bf + dt.timedelta(days=k) for k in range(-4, 4)]
    assert daily.loc[week].mean() > 1.8 * weekly_mean.median()
    in_week = orders[pd.to_datetime(orders["ordered_at"], errors="coerce", utc=True).dt.date.isin(week)]
    assert in_week["coupon_code"].notna().mean() > 2 * orders["coupon_code"].notna().mean() * 0.8
    assert (in_week["coupon_code"] == "BF2025").any()


def test_cart_abandoners_and_anonymous_history(demo: DemoDataSummary) -> None:
    root = demo.out_dir
    con = duckdb.connect()
    con.execute(
        f"create view ev as select * from read_json('{root}/events/*/*.jsonl', format='newline_delimited')"
    )
    con.execute(
        f"create view ord as select * from read_parquet('{root}/commerce/orders/*/*.parquet', "
        "hive_partitioning=false) where try_cast(ordered_at as timestamp) is not null"
    )
    abandoned = con.execute("""
        select count(distinct e.session_id) from ev e
        where e.event_type = 'add_to_cart' and e.customer_id is not null
          and not exists (select 1 from ord o where o.customer_id = e.customer_id
                          and o.ordered_at::timestamp between e.occurred_at::timestamp
                              and e.occurred_at::timestamp + interval 3 day)""").fetchone()[0]
    assert abandoned > 50
    stitched = con.execute("""
        select count(distinct s.customer_id) from ev s
        join ev a on a.anonymous_id = s.anonymous_id and a.customer_id is null
                  and a.occurred_at < s.occurred_at
        where s.event_type = 'signup'""").fetchone()[0]
    assert stitched > 50
    logins = con.execute(
        "select count(*) from ev where event_type = 'login' and customer_id is not null "
        "and anonymous_id is not null"
    ).fetchone()[0]
    assert logins > 20
    never = con.execute("""select count(distinct anonymous_id) from ev where anonymous_id not in
        (select anonymous_id from ev where customer_id is not null)""").fetchone()[0]
    assert never > 100
    utm = con.execute("select count(distinct utm_source) from ev").fetchone()[0]
    assert utm >= 4


def test_each_order_is_preceded_by_a_checkout(demo: DemoDataSummary) -> None:
    con = duckdb.connect()
    root = demo.out_dir
    row = con.execute(f"""
        with o as (select * from read_parquet('{root}/commerce/orders/*/*.parquet', hive_partitioning=false)
                   where channel <> 'store' and try_cast(ordered_at as timestamp) is not null
                     and customer_id is not null
                     and ordered_at > '{demo.start_date}T01')
        select count(*), count(*) filter (where exists (
            select 1 from read_json('{root}/events/*/*.jsonl', format='newline_delimited') e
            where e.customer_id = o.customer_id and e.event_type = 'checkout_started'
              and e.occurred_at::timestamp between o.ordered_at::timestamp - interval 1 hour
                                              and o.ordered_at::timestamp))
        from o""").fetchone()
    assert row[0] > 0 and row[1] / row[0] > 0.97


def test_planted_duplicates_share_email_or_phone(demo: DemoDataSummary) -> None:
    dups = pd.read_csv(demo.truth_dir / "duplicates.csv")
    assert 0.01 < len(dups) / CUSTOMERS < 0.06 and len(dups) == demo.duplicates_planted
    contacts = _all(demo.out_dir, "crm_contacts").dropna(subset=["customer_id"]).set_index("customer_id")
    assert dups["shared"].isin(["email", "phone", "both"]).all()
    for row in dups.itertuples():
        dup, orig = contacts.loc[row.customer_id], contacts.loc[row.duplicate_of]
        assert int(row.customer_id[4:]) > int(row.duplicate_of[4:])
        assert dup["created_at"] > orig["created_at"][:10] or dup["created_at"] >= orig["created_at"]
        same_email = _norm_email(dup["email"]) == _norm_email(orig["email"]) is not None
        same_phone = normalise_phone(dup["phone"], dup["country"]) == normalise_phone(
            orig["phone"], orig["country"]
        )
        same_phone = same_phone and not pd.isna(dup["phone"])
        if row.shared in ("email", "both"):
            assert same_email and dup["email"] != orig["email"], row
        if row.shared in ("phone", "both"):
            assert same_phone and dup["phone"] != orig["phone"], row
    truth = pd.read_parquet(demo.truth_dir / "customers.parquet")
    assert truth["duplicate_of"].notna().sum() == len(dups)
    # emails and phones of different people never collide
    people = contacts[~contacts.index.isin(dups["customer_id"])]
    assert people["email"].dropna().map(_norm_email).is_unique
    phones = [normalise_phone(p, c) for p, c in zip(people["phone"], people["country"], strict=True) if p]
    assert len(set(phones)) == len([p for p in phones if p])


def test_planted_malformed_rows_hold_their_bad_values(demo: DemoDataSummary) -> None:
    bad = pd.read_csv(demo.truth_dir / "malformed.csv", dtype=str, keep_default_na=False)
    assert len(bad) == demo.malformed_planted
    kinds = set(bad["kind"])
    assert {
        "bad_timestamp",
        "non_numeric_amount",
        "negative_amount",
        "missing_id",
        "bad_email",
        "unknown_customer",
        "unknown_order",
    } <= kinds
    assert set(bad["entity"]) <= set(ENTITIES_BY_NAME)
    cache: dict[str, pd.DataFrame] = {}
    for row in bad.itertuples():
        if row.file not in cache:
            cache[row.file] = _rows(demo.out_dir / row.file)
        value = cache[row.file].iloc[int(row.row) - 1][row.field]
        if row.value == "":
            assert value is None or pd.isna(value) or value == "", row
        else:
            assert str(value) == row.value, row
    customers = set(pd.read_parquet(demo.truth_dir / "customers.parquet")["customer_id"])
    for row in bad[bad["kind"] == "unknown_customer"].itertuples():
        assert row.value not in customers
    orders = _all(demo.out_dir, "commerce_orders")
    for row in bad[bad["kind"] == "unknown_order"].itertuples():
        assert row.value not in set(orders["order_id"].dropna())
    contacts_share = (bad["entity"] == "crm_contacts").sum() / CUSTOMERS
    assert 0.002 < contacts_share < 0.02


def test_truth_matches_landing_orders(demo: DemoDataSummary) -> None:
    bad = pd.read_csv(demo.truth_dir / "malformed.csv", dtype=str, keep_default_na=False)
    bad_orders = bad[bad["entity"] == "commerce_orders"]
    orders = _all(demo.out_dir, "commerce_orders")
    assert len(orders) == demo.orders
    valid = orders.dropna(subset=["customer_id", "order_id"])
    parsed = pd.to_datetime(valid["ordered_at"], format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")
    valid = valid[parsed.notna() & valid["amount"].str.fullmatch(r"\d+\.\d\d")]
    assert len(orders) - len(valid) == len(bad_orders)
    truth = pd.read_parquet(demo.truth_dir / "customers.parquet").set_index("customer_id")
    counts = valid.groupby("customer_id").size()
    assert counts.sum() == truth["orders_in_window"].sum()
    assert (truth.loc[counts.index, "orders_in_window"] == counts).all()
    done = valid[valid["status"] == "completed"]
    revenue = done.assign(a=done["amount"].astype(float)).groupby("customer_id")["a"].sum()
    assert (truth.loc[revenue.index, "revenue_in_window"] - revenue).abs().max() < 0.01
    coupons = valid[valid["coupon_code"].notna()]
    assert (coupons["discount_amount"] > 0).all()
    assert 0.2 < valid["email"].notna().mean() < 0.4
    statuses = valid["status"].value_counts(normalize=True)
    assert 0.01 < statuses["cancelled"] < 0.06 and 0.005 < statuses["refunded"] < 0.04


def test_chunking_writes_several_parts(tmp_path: Path) -> None:
    summary = generate_demo_data(tmp_path, customers=1000, days=365, chunk_size=300, seed=11)
    parts = _entity_files(tmp_path, "crm/contacts")
    assert [p.name for p in parts] == [f"part-{k:05d}.csv" for k in range(4)]
    contacts = pd.concat([_rows(p) for p in parts])
    assert contacts["customer_id"].dropna().nunique() == 1000 == summary.customers
    truth = pd.read_parquet(tmp_path / "_truth" / "customers.parquet")
    assert truth["customer_id"].is_unique and len(truth) == 1000
    assert {p.name for p in _entity_files(tmp_path, "commerce/orders")} >= {
        "part-00000.parquet",
        "part-00003.parquet",
    }
    events = duckdb.sql(
        f"select count(*), count(distinct event_id) from read_json('{tmp_path}/events/*/*.jsonl', "
        "format='newline_delimited')"
    ).fetchone()
    assert events[0] == events[1] == summary.events


def test_last_days_start_the_demo_journeys(demo: DemoDataSummary) -> None:
    """The welcome series, cart abandonment and 30-day win-back journeys (config/journeys/) start
    on the last days' sign-ups, checkouts left without an order and buyers 30-45 days past their
    last order: tens of each, the sign-ups in the CRM with consents, the counts as in the truth."""
    root, truth = demo.out_dir, demo.truth_dir
    recent = json.loads((truth / "demo.json").read_text())["recent"]
    first = dt.date.fromisoformat(recent["first_day"])
    assert recent["last_day"] == demo.end_date.isoformat() and first == demo.end_date - dt.timedelta(days=1)
    con = duckdb.connect()
    con.execute(f"create view ev as select * from {_reader(root / 'events' / '*' / '*.jsonl')}")
    con.execute(
        f"create view ord as select customer_id, ordered_at::timestamp as ordered_at from "
        f"read_parquet('{root}/commerce/orders/*/*.parquet', hive_partitioning=false) "
        "where try_cast(ordered_at as timestamp) is not null and customer_id is not null"
    )
    con.execute(f"create view contacts as select * from {_reader(root / 'crm' / 'contacts' / '*.csv')}")
    con.execute(f"create view consents as select * from {_reader(root / 'crm' / 'consents' / '*.csv')}")
    since = f"timestamp '{first}'"
    signups = con.execute(
        f"select customer_id from ev where event_type = 'signup' and occurred_at::timestamp >= {since}"
    ).fetchall()
    assert len(signups) == recent["signups"] >= 20
    new = {c for (c,) in signups}
    assert new <= {c for (c,) in con.execute("select customer_id from contacts").fetchall()}
    email_ok = {
        c
        for (c,) in con.execute(
            "select customer_id from consents where channel = 'email' and status = 'granted'"
        ).fetchall()
    }
    assert len(new & email_ok) >= len(new) / 2
    left = con.execute(f"""
        select count(*), count(distinct customer_id) from ev e
        where e.event_type = 'checkout_started' and e.customer_id is not null
          and e.occurred_at::timestamp >= {since}
          and not exists (select 1 from ord o where o.customer_id = e.customer_id
                          and o.ordered_at >= e.occurred_at::timestamp)""").fetchone()
    assert left[0] == recent["abandoned_checkouts"] and left[1] >= 20
    customers = pd.read_parquet(truth / "customers.parquet")
    last = pd.to_datetime(customers["last_purchase_at"], utc=True).dt.tz_localize(None)
    end = pd.Timestamp(demo.end_date + dt.timedelta(days=1))
    lapsed = (last < end - pd.Timedelta(days=30)) & (last >= end - pd.Timedelta(days=45))
    assert lapsed.sum() >= 20
