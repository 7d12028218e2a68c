"""The demo loop's simulated audience against real servers on loopback: real emails (the SMTP
destination with the win-back templates into an SmtpSink), SMS through the webhook destination
into an HttpSink, the real engagement receiver (uvicorn) and the real demo shop."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from activation.config import resolve_content
from activation.destinations.base import OutboundRecord, SyncContext
from activation.destinations.smtp_email import SmtpEmailDestination
from activation.destinations.webhook import WebhookDestination
from activation.journeys.store import SCHEMA as JOURNEY_SCHEMA
from activation.journeys.store import ensure_schema as ensure_journey_schema
from activation.ledger import SCHEMA, ensure_schema
from tideline.demo.audience import PROXY_UA, run_audience
from tideline.demo.local import running_receiver
from tideline.demo.shop import DemoShop
from tideline.demo.sinks.http_sink import HttpSink
from tideline.demo.sinks.smtp_sink import SmtpSink
from tideline.landing.loader import load_landing_zone

CAMPAIGN = "win_back_2026q4"
N_EMAIL, N_HOLDOUT, N_SMS = 300, 40, 60
TRACKING_SECRET = "audience-test-tracking-secret-0123456789"  # >= 32 bytes
HOOK_SECRET = "audience-test-webhook-secret-0123456789"


def key(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]))


def read_lines(root: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(root.rglob("*.jsonl")) for line in p.read_text().splitlines()]


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", TRACKING_SECRET)
    monkeypatch.setenv("TIDELINE_RECEIVER_WEBHOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("TEST_SMS_SECRET", "sms-secret")
    home, landing = tmp_path / "home", tmp_path / "home" / "demo" / "raw"
    with (
        SmtpSink(out_dir=home / "outbox" / "email") as smtp,
        HttpSink(out_dir=home / "outbox" / "http", secret="sms-secret") as http,
        running_receiver(landing, TRACKING_SECRET, HOOK_SECRET) as receiver_url,
        DemoShop(landing) as shop,
    ):
        yield home, landing, smtp, http, receiver_url, shop


def send_campaign(home: Path, smtp: SmtpSink, http: HttpSink, receiver_url: str) -> dict[str, str]:
    """300 win-back emails (odd customers A, even B), 60 SMS, and a ledger with 40 holdouts.
    Returns message key -> variant ('sms' for the SMS)."""
    host, port = smtp.address
    email = SmtpEmailDestination.from_config(
        "email",
        {
            "host": host,
            "port": port,
            "from_address": "hello@shop.example.com",
            "unsubscribe_base_url": f"{receiver_url}/u",
            "tracking_base_url": f"{receiver_url}/t",
            "max_batch_size": 100,
        },
    )
    sms = WebhookDestination.from_config("sms", {"url": http.url("/sms"), "secret_env": "TEST_SMS_SECRET"})
    sent: dict[str, str] = {}
    for variant, template in (("A", "win_back"), ("B", "win_back_discount")):
        records = [
            OutboundRecord(f"c{i:04d}", key("email", f"c{i:04d}"), "send", {"email": f"c{i}@example.com"})
            for i in range(1, N_EMAIL + 1)
            if (i % 2 == 1) == (variant == "A")
        ]
        context = SyncContext(
            sync_id=f"sync-{variant}",
            segment="win_back_dormant",
            destination="email",
            mode="message",
            content_version="v1",
            content=resolve_content({"template": template}),
            campaign=CAMPAIGN,
            variant=variant,
        )
        results = email.send_batch(records, context)
        assert {r.status for r in results} == {"sent"}
        sent.update({r.idempotency_key: variant for r in records})
    sms_records = [
        OutboundRecord(f"c{i:04d}", key("sms", f"c{i:04d}"), "send", {"phone": f"+4470000{i:04d}"})
        for i in range(1, N_SMS + 1)
    ]
    sms_context = SyncContext(
        sync_id="sync-sms",
        segment="win_back_dormant",
        destination="sms",
        mode="message",
        content_version="v1",
        content={"text": "We miss you"},
        campaign=CAMPAIGN,
    )
    assert {r.status for r in sms.send_batch(sms_records, sms_context)} == {"sent"}
    sent.update({r.idempotency_key: "sms" for r in sms_records})

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    ensure_schema(con)
    rows = [
        (k, "email" if v != "sms" else "sms", v if v != "sms" else None, "sent") for k, v in sent.items()
    ] + [
        (key("email", f"h{i:04d}"), "email", "A" if i % 2 else "B", "holdout")
        for i in range(1, N_HOLDOUT + 1)
    ]
    customers = {k: f"c{i:04d}" for i in range(1, N_EMAIL + 1) for k in (key("email", f"c{i:04d}"),)}
    customers |= {key("sms", f"c{i:04d}"): f"c{i:04d}" for i in range(1, N_SMS + 1)}
    customers |= {key("email", f"h{i:04d}"): f"h{i:04d}" for i in range(1, N_HOLDOUT + 1)}
    for k, channel, variant, status in rows:
        con.execute(
            f"""insert into {SCHEMA}.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
                status, channel, campaign, variant, content_version, recorded_at)
                values (?, ?, 's', ?, 'send', ?, ?, ?, ?, 'v1', now()::timestamp)""",
            [k, f"win_back_dormant__{channel}", customers[k], status, channel, CAMPAIGN, variant],
        )
    con.execute("create schema marts")
    con.execute(
        "create table marts.dim_customers as select 'c' || lpad(cast(i as varchar), 4, '0') as customer_id, "
        "3 as order_count, 50.0 as average_order_value from range(1, 301) t(i)"
    )
    con.close()
    return sent


@pytest.mark.slow  # generates a demo world and runs the simulated audience against it
def test_audience_acts_through_the_real_endpoints(loop) -> None:
    home, landing, smtp, http, receiver_url, shop = loop
    sent = send_campaign(home, smtp, http, receiver_url)
    assert len(list((home / "outbox" / "email").glob("*.eml"))) == N_EMAIL

    result = run_audience(
        home,
        shop_url=shop.base_url,
        receiver_url=receiver_url,
        webhook_secret=HOOK_SECRET,
        warehouse=home / "warehouse.duckdb",
        seed=42,
        human_delay=0,  # no marts read these events: no need to wait out the bot window
    )
    c = result.counts
    assert result.errors == 0
    assert c["messages"] == N_EMAIL + N_SMS
    # organic purchases are drawn once per campaign recipient: 300 emailed (60 of them also got the
    # SMS: the same customers) and the 40 held out
    assert c["organic_considered"] == N_EMAIL + N_HOLDOUT

    events = read_lines(landing / "engagement" / "events")
    by_type = Counter(e["event_type"] for e in events)
    email_keys = {k for k, v in sent.items() if v != "sms"}
    # every tracked event names a message that was sent, and its customer
    for e in events:
        assert e["message_key"] in sent, e
    opens = [e for e in events if e["event_type"] == "opened"]
    proxy = [e for e in opens if e["user_agent"] == PROXY_UA]
    assert len(opens) == c["opens"] + c["proxy_opens"] and len(proxy) == c["proxy_opens"] > 0
    assert c["opens"] > 0 and {e["message_key"] for e in opens} <= email_keys
    clicks = [e for e in events if e["event_type"] == "clicked"]
    assert len(clicks) == c["clicks"] > 0
    unsubscribes = [e for e in events if e["event_type"] == "unsubscribed"]
    assert len(unsubscribes) == c["unsubscribes"] > 0
    # provider webhooks: one delivery or bounce per message; the first delivery re-sent once
    delivered = [e for e in events if e["event_type"] == "delivered"]
    assert len(delivered) == c["delivered"] + 1
    assert len({e["event_id"] for e in delivered}) == c["delivered"]
    assert c["delivered"] + c["bounced"] == N_EMAIL + N_SMS and by_type["bounced"] == c["bounced"]
    assert {e["provider"] for e in delivered} == {"demo_mail", "demo_sms"}

    # unsubscribes (and complaints) became consent revocations for those customers
    consents = read_lines(landing / "crm" / "consents")
    revoked = {x["customer_id"] for x in consents if x["status"] == "revoked"}
    complained = {e["customer_id"] for e in events if e["event_type"] == "complained"}
    assert revoked == {e["customer_id"] for e in unsubscribes} | complained

    # the shop's orders and page views load into the landing schema without a reject
    con = duckdb.connect()
    report = load_landing_zone(landing, con)
    assert report.rejects == 0
    orders = con.execute(
        "select customer_id, amount, coupon_code, channel, status from landing.commerce_orders"
    ).fetchall()
    assert len(orders) == c["orders"] + c["organic_orders"]
    assert {(ch, st) for *_, ch, st in orders} == {("web", "completed")}
    views = con.execute(
        "select utm_medium, utm_campaign, count(*) from landing.events where event_type = 'page_view' group by all"
    ).fetchall()
    email_clicks = sum(1 for e in clicks if e["source"] == "tracking")
    assert dict(((m, cp), n) for m, cp, n in views)[("email", CAMPAIGN)] == email_clicks
    con.close()

    # the discount variant truly converts better: every coupon order is a B click-through
    buyers_b = result.buyers[(CAMPAIGN, "email", "B")]
    assert sum(1 for *_, coupon, _ch, _st in orders if coupon == "WINBACK15") == buyers_b
    rate_a = result.purchase_rate(CAMPAIGN, "email", "A")
    rate_b = result.purchase_rate(CAMPAIGN, "email", "B")
    assert rate_b > 2 * rate_a > 0

    # a second run has nothing new to act on and writes nothing
    lines_before = len(events)
    again = run_audience(
        home,
        shop_url=shop.base_url,
        receiver_url=receiver_url,
        webhook_secret=HOOK_SECRET,
        warehouse=home / "warehouse.duckdb",
        seed=42,
    )
    assert again.counts["messages"] == 0 and again.counts["organic_orders"] == 0
    assert again.counts["already_acted"] == N_EMAIL + N_SMS + N_EMAIL + N_HOLDOUT
    assert len(read_lines(landing / "engagement" / "events")) == lines_before


# -- journeys ---------------------------------------------------------------------------------------
# The tick sends a journey's messages through the same destinations with campaign journey:<journey>
# (activation/journeys contract); here they are sent the same way, straight through the destinations.

CART, WELCOME = "journey:cart_abandonment", "journey:welcome_series"
N_JOURNEY_EMAIL, N_JOURNEY_MOBILE, N_JOURNEY_HOLDOUT = 240, 120, 400
WELCOME_SMS = "Welcome to Demo Shop! 15% off your first order with code WELCOME15. Reply STOP to opt out."


def email_destination(smtp: SmtpSink, receiver_url: str) -> SmtpEmailDestination:
    host, port = smtp.address
    return SmtpEmailDestination.from_config(
        "email",
        {
            "host": host,
            "port": port,
            "from_address": "hello@shop.example.com",
            "unsubscribe_base_url": f"{receiver_url}/u",
            "tracking_base_url": f"{receiver_url}/t",
            "max_batch_size": 100,
        },
    )


Sent = dict[str, tuple[str, str, str]]  # message key -> (campaign, channel, customer)


def send_journey_messages(
    home: Path,
    smtp: SmtpSink,
    http: HttpSink,
    receiver_url: str,
    n_email: int = N_JOURNEY_EMAIL,
    n_mobile: int = N_JOURNEY_MOBILE,
) -> Sent:
    """Cart reminders (email, then push) and welcome emails (then the coupon SMS) as the journeys'
    send steps make them, to customers j0001...; the ledger rows the tick would write; profiles."""
    email = email_destination(smtp, receiver_url)
    sent: Sent = {}
    for campaign, template, step in (
        (CART, "cart_reminder", "reminder_email"),
        (WELCOME, "welcome", "welcome_email"),
    ):
        records = [
            OutboundRecord(
                f"j{i:04d}", key(campaign, step, f"j{i:04d}"), "send", {"email": f"j{i}@example.com"}
            )
            for i in range(1, n_email + 1)
        ]
        context = SyncContext(
            sync_id=f"tick-{step}",
            segment=f"journey__{campaign[8:]}__{step}",
            destination="email",
            mode="message",
            content_version=f"abc123def456:{step}",
            content=resolve_content({"template": template}),
            campaign=campaign,
        )
        assert {r.status for r in email.send_batch(records, context)} == {"sent"}
        sent.update({r.idempotency_key: (campaign, "email", r.customer_id) for r in records})
    for campaign, channel, content in (
        (CART, "push", {"title": "Your cart is waiting", "body": "We kept your picks for you."}),
        (WELCOME, "sms", {"text": WELCOME_SMS}),
    ):
        mobile = WebhookDestination.from_config(
            channel, {"url": http.url(f"/{channel}"), "secret_env": "TEST_SMS_SECRET"}
        )
        records = [
            OutboundRecord(f"j{i:04d}", key(campaign, channel, f"j{i:04d}"), "send", {"first_name": "Ann"})
            for i in range(1, n_mobile + 1)
        ]
        context = SyncContext(
            sync_id=f"tick-{channel}",
            segment=f"journey__{campaign[8:]}__{channel}",
            destination=channel,
            mode="message",
            content_version=f"abc123def456:{channel}",
            content=content,
            campaign=campaign,
        )
        assert {r.status for r in mobile.send_batch(records, context)} == {"sent"}
        sent.update({r.idempotency_key: (campaign, channel, r.customer_id) for r in records})
    write_journey_ledger(home, sent)
    return sent


def write_journey_ledger(home: Path, sent: Sent) -> None:
    """The ledger rows the tick writes for these messages (campaign journey:<journey>), and profiles."""
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    ensure_schema(con)
    for k, (campaign, channel, customer) in sent.items():
        con.execute(
            f"""insert into {SCHEMA}.delivery_log (idempotency_key, sync_key, sync_id, customer_id, action,
                status, channel, campaign, variant, content_version, recorded_at)
                values (?, ?, 't', ?, 'send', 'sent', ?, ?, null, 'abc123def456:x', now()::timestamp)""",
            [k, f"journey__{campaign[8:]}__x__{channel}", customer, channel, campaign],
        )
    con.execute("create schema if not exists marts")
    con.execute(
        "create table marts.dim_customers as select 'j' || lpad(cast(i as varchar), 4, '0') as customer_id, "
        "3 as order_count, 50.0 as average_order_value from range(1, 1001) t(i)"
    )
    con.close()


def add_journey_entries(warehouse: Path) -> set[tuple[str, str]]:
    """Entries as the tick records them: cart abandonment with N_JOURNEY_HOLDOUT customers held out
    (h0001...; every tenth of them entered twice: re-entry), the treated ones j0001... (sent to
    above); welcome series entries of the same held-out customers, treated. Returns (campaign,
    customer) of every entry."""
    con = duckdb.connect(str(warehouse))
    ensure_journey_schema(con)
    rows = []
    for i in range(1, N_JOURNEY_HOLDOUT + 1):
        h = f"h{i:04d}"
        rows.append(("cart_abandonment", h, True, f"t{i}"))
        if i % 10 == 0:
            rows.append(("cart_abandonment", h, True, f"t{i}-again"))
        rows.append(("welcome_series", h, False, f"s{i}"))
    rows += [("cart_abandonment", f"j{i:04d}", False, f"c{i}") for i in range(1, N_JOURNEY_EMAIL + 1)]
    for journey, customer, holdout, trigger in rows:
        con.execute(
            f"""insert into {JOURNEY_SCHEMA}.entries_live (entry_id, journey, version, customer_id, trigger_id,
                entered_at, holdout, current_node, exited_at, exit_reason, tick_id)
                values (?, ?, 'abc123def456', ?, ?, now()::timestamp, ?, null, now()::timestamp, ?, 'tick-1')""",
            [
                key(journey, customer, trigger),
                journey,
                customer,
                trigger,
                holdout,
                "holdout" if holdout else None,
            ],
        )
    con.execute(
        "insert into marts.dim_customers select 'h' || lpad(cast(i as varchar), 4, '0'), 6, 50.0 "
        f"from range(1, {N_JOURNEY_HOLDOUT + 1}) t(i)"
    )
    con.close()
    return {(f"journey:{j}", c) for j, c, _h, _t in rows}


@pytest.mark.slow  # real SMTP, HTTP, receiver and shop on loopback
def test_journey_messages_get_engagement_and_purchases_by_template(loop) -> None:
    home, landing, smtp, http, receiver_url, shop = loop
    sent = send_journey_messages(home, smtp, http, receiver_url)
    result = run_audience(
        home,
        shop_url=shop.base_url,
        receiver_url=receiver_url,
        webhook_secret=HOOK_SECRET,
        warehouse=home / "warehouse.duckdb",
        seed=42,
        human_delay=0,
    )
    assert result.errors == 0 and result.counts["messages"] == len(sent)
    events = read_lines(landing / "engagement" / "events")
    for e in events:
        assert e["message_key"] in sent, e
    # the journeys' emails are opened and clicked, their campaign read from the tracking tokens
    for campaign in (CART, WELCOME):
        keys = {k for k, (cp, ch, _c) in sent.items() if cp == campaign and ch == "email"}
        tracked = [e for e in events if e["message_key"] in keys and e["source"] == "tracking"]
        kinds = Counter(e["event_type"] for e in tracked)
        assert kinds["opened"] > 0 and kinds["clicked"] > 0, (campaign, kinds)
        assert {e["campaign"] for e in tracked} == {campaign}
    # SMS and push: delivered and clicked through the providers' webhooks
    mobile = Counter(
        (sent[e["message_key"]][1], e["event_type"]) for e in events if sent[e["message_key"]][1] != "email"
    )
    assert mobile[("sms", "delivered")] == mobile[("push", "delivered")] == N_JOURNEY_MOBILE
    assert mobile[("sms", "clicked")] > 0 and mobile[("push", "clicked")] > 0

    con = duckdb.connect()
    load_landing_zone(landing, con)
    views = dict(
        con.execute(
            "select utm_campaign, count(*) from landing.events where event_type = 'page_view' group by 1"
        ).fetchall()
    )
    cart_clicks = sum(
        1 for e in events if e["event_type"] == "clicked" and sent[e["message_key"]][:2] == (CART, "email")
    )
    assert views[CART] >= cart_clicks > 0  # the email clicks, and the push clicks' visits too
    coupons = Counter(c for (c,) in con.execute("select coupon_code from landing.commerce_orders").fetchall())
    con.close()
    # the welcome SMS's coupon is used by its buyers; the cart reminder and welcome emails name none
    assert coupons["WELCOME15"] == result.buyers[(WELCOME, "sms", "all")] > 0
    assert coupons[None] >= result.buyers[(CART, "email", "all")] + result.buyers[(WELCOME, "email", "all")]

    # rates per template: the cart reminder converts far better than the welcome email
    cart = result.purchase_rate(CART, "email", "all")
    welcome = result.purchase_rate(WELCOME, "email", "all")
    assert cart > 2 * welcome > 0


@pytest.mark.slow  # real receiver and shop on loopback
def test_journey_entries_held_out_buy_organically_once_per_journey(loop) -> None:
    home, landing, smtp, http, receiver_url, shop = loop
    # the treated cart entries were sent the reminder (in the ledger; no outbox needed here)
    sent = {key(CART, f"j{i:04d}"): (CART, "email", f"j{i:04d}") for i in range(1, N_JOURNEY_EMAIL + 1)}
    write_journey_ledger(home, sent)
    entries = add_journey_entries(home / "warehouse.duckdb")
    result = run_audience(
        home,
        shop_url=shop.base_url,
        receiver_url=receiver_url,
        webhook_secret=HOOK_SECRET,
        warehouse=home / "warehouse.duckdb",
        seed=42,
        human_delay=0,
    )
    assert result.errors == 0
    ledger = {(cp, customer) for cp, _ch, customer in sent.values()}
    # once per journey (campaign) and customer: re-entries and ledger recipients are not drawn twice
    assert result.counts["organic_considered"] == len(entries | ledger)
    con = duckdb.connect()
    load_landing_zone(landing, con)
    buyers = Counter(c for (c,) in con.execute("select customer_id from landing.commerce_orders").fetchall())
    con.close()
    held_out = {c for cp, c in entries if cp == CART and c.startswith("h")}
    organic_held_out = {c for c in buyers if c in held_out}
    assert len(organic_held_out) >= 5
    # a held-out customer is drawn once for each journey entered (cart and welcome): at most two orders
    assert max(buyers[c] for c in organic_held_out) <= 2
    assert result.counts["messages"] == 0
    assert sum(buyers.values()) == result.counts["organic_orders"]


@pytest.mark.slow  # real SMTP, HTTP, receiver and shop on loopback
def test_journey_audience_is_deterministic(loop, tmp_path: Path) -> None:
    """The same seed acts the same on the same journey messages and entries, whatever ran before;
    another seed acts differently."""
    home, landing, smtp, http, receiver_url, shop = loop
    send_journey_messages(home, smtp, http, receiver_url, n_email=80, n_mobile=40)
    add_journey_entries(home / "warehouse.duckdb")
    outcomes = []
    for run, seed in enumerate((42, 42, 43)):
        run_home = tmp_path / f"run{run}"
        shutil.copytree(home / "outbox", run_home / "outbox")
        before = orders_in(landing)
        result = run_audience(
            run_home,
            shop_url=shop.base_url,
            receiver_url=receiver_url,
            webhook_secret=HOOK_SECRET,
            warehouse=home / "warehouse.duckdb",
            seed=seed,
            human_delay=0,
        )
        assert result.errors == 0
        orders = orders_in(landing) - before
        outcomes.append((dict(result.counts), dict(result.buyers), round(result.revenue, 2), orders))
    # it acted on the journeys' messages and on their held-out entries (h...: organic orders)
    assert outcomes[0][1][(CART, "email", "all")] > 0
    assert any(customer.startswith("h") for customer, _amount, _coupon in outcomes[0][3])
    assert outcomes[0] == outcomes[1]
    assert outcomes[2] != outcomes[0]


def orders_in(landing: Path) -> Counter:
    """(customer, amount, coupon) of every order the shop wrote so far."""
    return Counter(
        (o["customer_id"], o["amount"], o.get("coupon_code"))
        for o in read_lines(landing / "commerce" / "orders")
    )
