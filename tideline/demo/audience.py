"""The simulated audience of the demo: recipients who open, click, unsubscribe and buy.

`make run` sends real messages to the local destinations; this module plays everyone on the
other side, through the real HTTP endpoints only:

* the recipients: an email's open pixel (GET, a mail-client User-Agent), its tracked links
  (GET without following: the 302's Location is the shop page, visited with its utm query and
  the visitor's account id in a cookie), its RFC 8058 one-click unsubscribe (POST) and a
  checkout on the demo shop (tideline.demo.shop);
* the mailbox providers' image proxies: a share of delivered emails is fetched at once by
  Gmail's image proxy (a known proxy User-Agent), which the engagement marts flag as bot opens;
* the email and SMS/push providers: signed webhooks (activation.destinations.webhook's signature)
  to the receiver's /webhooks/<provider>: delivered for most, a few hard bounces and complaints
  (email); delivered and clicked (SMS, push). The first delivery webhook is sent twice, as
  providers retry, so the models' deduplication has something to do;
* everyone's own shopping: a small organic purchase rate for every recipient of a campaign,
  the holdout included (read from tideline_sync.delivery_ledger), and for every customer who
  entered a journey, its holdout included (tideline_journeys.entries), so the lift against the
  holdout is real and measurable.

Journey messages are campaign messages to the audience: the tick sends them through the same
destinations with campaign `journey:<journey>` (in the tracking tokens, the X-Tideline-Campaign
header and the webhook body) and the entry's split arm as the variant.

True rates (what the experiments should find; "profile" factors are explained below). An email's
click and purchase rates are those of its template, recognised by the shop page its first tracked
link leads to (the click token carries the original URL); an email whose page is none of these
gets the rates of the win-back template of its variant (A: win_back, B: win_back_discount):

    email  hard bounce 2% of sent; the rest delivered
           proxy open (GoogleImageProxy, within seconds) 25% of delivered
           human open 60% × engagement of delivered
           template (page)              click | open   purchase | click   purchase / delivered
           win_back (/new)                   25%            25%                ~3.8%
           win_back_discount (/comeback)     55%            80%                ~26%
           welcome (/welcome)                30%            30%                ~5.4%
           cart_reminder (/cart)             45%            60%                ~16%
           (purchase | click × loyalty; win_back_discount converts ~7× better than win_back: big
           enough that the ~150 recipients per arm of a 2,000-customer demo find it significant
           on any day's data: with the profile factors ~4% against ~19%, z ≈ 4)
           a purchase uses the coupon in the page's `code` query parameter (WINBACK15: 15% off)
           unsubscribe 2% × (0.5 + churn probability); complaint 0.5% of the other delivered
    sms    delivered 100%; click 10%; purchase given a click 35% (with the coupon its text names,
           e.g. the welcome series' WELCOME15: 15% off)
    push   delivered 100%; click 12%; purchase given a click 35%
    organic purchase, once per customer and campaign (a journey is campaign `journey:<journey>`):
           3% × loyalty, for those sent to, campaign holdouts and every journey entry, held out or not

engagement = 1.3 - 0.6 × churn probability (ml.customer_scores; 0.5 when unknown), between 0.7
and 1.3; loyalty = 0.7 + 0.1 × completed orders (marts.dim_customers), capped at 1.3. Variants
are assigned at random, so profiles scale both arms alike and the ratio between them holds.
Order amounts are the customer's average order value (60 when unknown) × a log-normal factor
(sigma 0.25); the coupon takes 15% off.

Every decision comes from random.Random(f"{seed}|{what}|{message key}"): the same seed and the
same messages give the same actions, whatever the order they are processed in. A state file
(JSON lines of keys acted on) makes a second run act only on messages it has not seen.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import requests

from activation.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from activation.destinations.webhook import sign as sign_webhook
from activation.warehouse import table_exists
from tideline.demo.shop import CUSTOMER_COOKIE

log = logging.getLogger(__name__)

MAIL_CLIENT_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Mail/16.0"
)
PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
EMAIL_PROVIDER = "demo_mail"  # /webhooks/<provider> names
SMS_PROVIDER = "demo_sms"
PUSH_PROVIDER = "demo_push"

BOUNCE_RATE = 0.02
PROXY_OPEN_RATE = 0.25
OPEN_RATE = 0.60
UNSUBSCRIBE_RATE = 0.02
COMPLAINT_RATE = 0.005
SMS_CLICK, PUSH_CLICK, MOBILE_BUY_GIVEN_CLICK = 0.10, 0.12, 0.35
ORGANIC_RATE = 0.03
COUPON_SHARE = 0.15  # what every demo coupon (WINBACK15, WELCOME15) takes off
DEFAULT_ORDER_VALUE = 60.0
# a journey's messages (the tick's ledger rows) carry campaign journey:<journey>
JOURNEY_CAMPAIGN = "journey:"


@dataclass(frozen=True)
class EmailRates:
    """How recipients of one email template act: click given a human open, purchase given a click
    (times loyalty), and the coupon a purchase uses when the page names none."""

    template: str
    click_given_open: float
    buy_given_click: float
    coupon: str | None = None


WIN_BACK = EmailRates("win_back", 0.25, 0.25)
WIN_BACK_DISCOUNT = EmailRates("win_back_discount", 0.55, 0.80, "WINBACK15")
# the templates of config/templates, by the shop page their first link leads to
EMAIL_RATES = {
    "/new": WIN_BACK,
    "/comeback": WIN_BACK_DISCOUNT,
    "/welcome": EmailRates("welcome", 0.30, 0.30),
    "/cart": EmailRates("cart_reminder", 0.45, 0.60),
}
VARIANT_RATES = {"A": WIN_BACK, "B": WIN_BACK_DISCOUNT}  # an email whose page is none of the above
_COUPON_IN_TEXT = re.compile(r"\bcode ([A-Z][A-Z0-9]{3,19})\b")

_TRACKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    """One message as the recipient got it: ids from its tracking tokens, the URLs to act on."""

    key: str  # the ledger's idempotency key
    customer_id: str
    channel: str  # email | sms | push
    campaign: str | None
    variant: str | None
    sent_at: datetime
    pixel_url: str | None = None
    click_urls: tuple[str, ...] = ()
    unsubscribe_url: str | None = None
    page: str | None = None  # email: the path of the shop page its first tracked link leads to
    coupon: str | None = None  # sms/push: the coupon code its text names


@dataclass(frozen=True)
class Profile:
    churn_probability: float = 0.5
    order_count: int = 0
    average_order_value: float = DEFAULT_ORDER_VALUE

    @property
    def engagement(self) -> float:
        return min(1.3, max(0.7, 1.3 - 0.6 * self.churn_probability))

    @property
    def loyalty(self) -> float:
        return min(1.3, 0.7 + 0.1 * self.order_count)


@dataclass
class AudienceResult:
    """What the audience did in one run (counts) and, per campaign × channel × arm, who bought."""

    counts: Counter = field(default_factory=Counter)
    recipients: Counter = field(default_factory=Counter)  # (campaign, channel, arm) -> messages acted on
    buyers: Counter = field(default_factory=Counter)  # (campaign, channel, arm) -> purchases after it
    revenue: float = 0.0
    errors: int = 0
    seconds: float = 0.0

    def purchase_rate(self, campaign: str, channel: str, arm: str) -> float:
        n = self.recipients[(campaign, channel, arm)]
        return self.buyers[(campaign, channel, arm)] / n if n else 0.0

    def describe(self) -> str:
        c = self.counts
        return (
            f"{c['messages']:,} messages acted on ({c['already_acted']:,} already done): "
            f"{c['delivered']:,} delivered, {c['bounced']:,} bounced, {c['opens']:,} opens "
            f"(+{c['proxy_opens']:,} proxy), {c['clicks']:,} clicks, {c['unsubscribes']:,} unsubscribes, "
            f"{c['complaints']:,} complaints, {c['orders']:,} orders after a message and "
            f"{c['organic_orders']:,} organic, revenue {self.revenue:,.2f}"
            + (f"; {self.errors} failed (see the log)" if self.errors else "")
        )


# -- reading what was sent -------------------------------------------------------------------------


def token_payload(url: str) -> dict[str, Any] | None:
    """The (unverified) payload of the tracking token at the end of a receiver URL."""
    token = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gif")
    body = token.split(".", 1)[0]
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def landing_page(click_url: str | None) -> str | None:
    """The path of the page a tracked link leads to (its token's original URL), e.g. `/cart`."""
    original = (token_payload(click_url) or {}).get("u") if click_url else None
    if not isinstance(original, str):
        return None
    return urlsplit(original).path or "/"


def email_rates(m: Message) -> EmailRates:
    """The rates of the email's template (by its page), else of the win-back template of its variant."""
    if m.page in EMAIL_RATES:
        return EMAIL_RATES[m.page]
    return VARIANT_RATES.get(m.variant or "A", WIN_BACK)


def read_email_outbox(email_dir: Path) -> list[Message]:
    """Every .eml the SMTP sink stored, as Messages (those without a tracking token are left out)."""
    messages = []
    for path in sorted(Path(email_dir).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        unsubscribe = next(
            (
                u
                for u in re.findall(r"<([^>]+)>", str(msg.get("List-Unsubscribe", "")))
                if u.startswith("http")
            ),
            None,
        )
        part = msg.get_body(preferencelist=("html",))
        markup = part.get_content() if part is not None else ""
        urls = _TRACKED.findall(markup)
        pixel = next((u for u in urls if "/o/" in u and u.endswith(".gif")), None)
        clicks = tuple(u for u in urls if "/c/" in urlsplit(u).path)
        payload = token_payload(pixel or unsubscribe or "") or {}
        key, customer = payload.get("m"), payload.get("c")
        if not key or not customer:
            continue
        try:
            sent_at = parsedate_to_datetime(str(msg["Date"])).astimezone(UTC)
        except (TypeError, ValueError):
            sent_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        messages.append(
            Message(
                key=str(key),
                customer_id=str(customer),
                channel="email",
                campaign=payload.get("cp") or msg.get("X-Tideline-Campaign"),
                variant=payload.get("v") or msg.get("X-Tideline-Variant"),
                sent_at=sent_at,
                pixel_url=pixel,
                click_urls=clicks,
                unsubscribe_url=unsubscribe,
                page=landing_page(clicks[0] if clicks else None),
            )
        )
    return messages


def read_http_outbox(http_dir: Path) -> list[Message]:
    """The SMS and push messages the HTTP sink accepted (sms.jsonl, push.jsonl), once per key."""
    messages: dict[str, Message] = {}
    for channel in ("sms", "push"):
        path = Path(http_dir) / f"{channel}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            request = json.loads(line)
            body = request.get("body")
            if request.get("status") != 200 or request.get("duplicate") or not isinstance(body, dict):
                continue
            sent_at = datetime.fromtimestamp(float(request.get("received_at") or 0), UTC)
            content = body.get("content") if isinstance(body.get("content"), dict) else {}
            found = _COUPON_IN_TEXT.search(" ".join(str(content.get(k) or "") for k in ("text", "body")))
            for record in body.get("records") or []:
                key = str(record.get("idempotency_key") or "")
                if key and key not in messages and record.get("customer_id"):
                    messages[key] = Message(
                        key=key,
                        customer_id=str(record["customer_id"]),
                        channel=channel,
                        campaign=body.get("campaign") or None,
                        variant=body.get("variant") or None,
                        sent_at=sent_at,
                        coupon=found.group(1) if found else None,
                    )
    return list(messages.values())


def read_profiles(warehouse: Path | None) -> dict[str, Profile]:
    """Per customer: churn probability (ml.customer_scores, latest), completed orders and AOV."""
    if warehouse is None or not Path(warehouse).exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {
            tuple(r)
            for r in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        }
        rows: dict[str, dict[str, Any]] = {}
        if ("marts", "dim_customers") in tables:
            for cid, orders, aov in con.execute(
                "select customer_id, order_count, average_order_value from marts.dim_customers"
            ).fetchall():
                rows[cid] = {"order_count": int(orders or 0), "average_order_value": float(aov or 0)}
        if ("ml", "customer_scores") in tables:
            for cid, churn in con.execute(
                "select customer_id, churn_probability from ml.customer_scores "
                "qualify row_number() over (partition by customer_id order by as_of_date desc) = 1"
            ).fetchall():
                if churn is not None:
                    rows.setdefault(cid, {})["churn_probability"] = float(churn)
    finally:
        con.close()
    profiles = {}
    for cid, values in rows.items():
        aov = values.get("average_order_value") or DEFAULT_ORDER_VALUE
        profiles[cid] = Profile(
            churn_probability=values.get("churn_probability", 0.5),
            order_count=values.get("order_count", 0),
            average_order_value=aov,
        )
    return profiles


def read_campaign_audience(warehouse: Path | None) -> list[tuple[str, str, str]]:
    """(campaign, customer_id, status) of every customer a message campaign reached or held out
    (latest ledger status sent or holdout), once per campaign and customer."""
    if warehouse is None or not Path(warehouse).exists():
        return []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        if not table_exists(con, "tideline_sync", "delivery_ledger"):
            return []
        return con.execute(
            """select campaign, customer_id, min(status) from tideline_sync.delivery_ledger
               where status in ('sent', 'holdout') and campaign is not null and channel is not null
               group by 1, 2 order by 1, 2"""
        ).fetchall()
    finally:
        con.close()


def read_journey_audience(warehouse: Path | None) -> list[tuple[str, str, str]]:
    """(`journey:<journey>`, customer_id, 'holdout' or 'entered') of every customer who entered a
    journey (tideline_journeys.entries), once per journey and customer. Every entry counts, not only
    the held-out ones: lift compares all treated entries with the held-out ones, and a treated
    entry the tick has not sent to (yet) shops on its own like anyone else."""
    if warehouse is None or not Path(warehouse).exists():
        return []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        if not table_exists(con, "tideline_journeys", "entries"):
            return []
        rows = con.execute(
            """select journey, customer_id, bool_or(holdout) from tideline_journeys.entries
               group by 1, 2 order by 1, 2"""
        ).fetchall()
    finally:
        con.close()
    return [(f"{JOURNEY_CAMPAIGN}{j}", c, "holdout" if held else "entered") for j, c, held in rows]


def organic_audience(warehouse: Path | None) -> list[tuple[str, str, str]]:
    """Who may buy on their own, once per campaign (a journey is campaign `journey:<journey>`) and
    customer: campaign recipients and holdouts (the ledger, whose status wins), then journey entries."""
    chosen: dict[tuple[str, str], str] = {}
    for campaign, customer, status in read_campaign_audience(warehouse) + read_journey_audience(warehouse):
        chosen.setdefault((campaign, customer), status)
    return [(campaign, customer, status) for (campaign, customer), status in sorted(chosen.items())]


HUMAN_DELAY_SECONDS = 11.0  # > the engagement marts' bot window (bot_seconds_after_send, 10 s)

# -- state -----------------------------------------------------------------------------------------


def read_state(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


# -- acting ----------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    state_key: str
    counts: Counter = field(default_factory=Counter)
    arm: tuple[str, str, str] | None = None
    bought: bool = False
    revenue: float = 0.0


class Audience:
    """Acts on messages through the receiver (tracking, unsubscribe, webhooks) and the shop."""

    def __init__(
        self,
        *,
        shop_url: str,
        receiver_url: str,
        webhook_secret: str,
        state_path: Path,
        profiles: dict[str, Profile] | None = None,
        seed: int = 42,
        workers: int = 8,
        timeout: float = 10.0,
        human_delay: float = HUMAN_DELAY_SECONDS,
    ):
        self.shop_url = shop_url.rstrip("/")
        self.receiver_url = receiver_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.state_path = Path(state_path)
        self.profiles = profiles or {}
        self.seed = seed
        self.workers = workers
        self.timeout = timeout
        self.human_delay = human_delay
        self._redeliver_key: str | None = None  # this message's delivery webhook is sent twice

    def _rng(self, what: str, key: str) -> random.Random:
        return random.Random(f"{self.seed}|{what}|{key}")

    def run(
        self, messages: Iterable[Message], campaign_audience: Iterable[tuple[str, str, str]] = ()
    ) -> AudienceResult:
        started = time.monotonic()
        result = AudienceResult()
        done = read_state(self.state_path)
        todo: list[tuple[str, Any]] = []
        for message in sorted({m.key: m for m in messages}.values(), key=lambda m: m.key):
            if message.key in done:
                result.counts["already_acted"] += 1
            else:
                todo.append(("message", message))
        self._redeliver_key = next((m.key for kind, m in todo if m.channel == "email"), None)
        # people open and click later than the marts' bot window after the send
        # (dbt var bot_seconds_after_send): wait that long after the newest message first
        newest = max((m.sent_at for kind, m in todo if kind == "message"), default=None)
        if newest is not None:
            wait = (newest - datetime.now(UTC)).total_seconds() + self.human_delay
            time.sleep(min(max(wait, 0.0), self.human_delay))
        seen: set[str] = set()
        for campaign, customer, status in campaign_audience:
            key = f"organic|{campaign}|{customer}"
            if key in seen:  # once per campaign and customer, however often listed
                continue
            seen.add(key)
            if key in done:
                result.counts["already_acted"] += 1
            else:
                todo.append(("organic", (campaign, customer, status)))
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with self.state_path.open("a") as state, ThreadPoolExecutor(self.workers) as pool:
            for outcome in pool.map(self._act_safely, todo):
                if outcome is None:
                    result.errors += 1
                    continue
                result.counts.update(outcome.counts)
                if outcome.arm is not None:
                    result.recipients[outcome.arm] += 1
                    result.buyers[outcome.arm] += outcome.bought
                result.revenue += outcome.revenue
                state.write(json.dumps({"key": outcome.state_key}) + "\n")
                state.flush()
        result.seconds = time.monotonic() - started
        return result

    def _act_safely(self, item: tuple[str, Any]) -> _Outcome | None:
        kind, what = item
        try:
            with requests.Session() as http:
                if kind == "organic":
                    return self._organic(http, *what)
                return self._message(http, what)
        except (requests.RequestException, RuntimeError) as exc:
            log.warning("demo audience: %s %s failed: %s", kind, getattr(what, "key", "organic"), exc)
            return None

    # -- one message ---------------------------------------------------------------------------

    def _message(self, http: requests.Session, message: Message) -> _Outcome:
        out = _Outcome(message.key)
        out.counts["messages"] += 1
        profile = self.profiles.get(message.customer_id, Profile())
        rng = self._rng("message", message.key)
        if message.channel == "email":
            self._email(http, message, profile, rng, out)
        else:
            self._mobile(http, message, profile, rng, out)
        return out

    def _email(
        self, http: requests.Session, m: Message, profile: Profile, rng: random.Random, out: _Outcome
    ) -> None:
        rates = email_rates(m)
        draws = {k: rng.random() for k in ("bounce", "proxy", "open", "click", "buy", "unsub", "complain")}
        amount_factor = math.exp(rng.gauss(0.0, 0.25))
        if draws["bounce"] < BOUNCE_RATE:
            self._webhook(
                http, EMAIL_PROVIDER, m, "bounced", m.sent_at + timedelta(seconds=20), bounce_type="hard"
            )
            out.counts["bounced"] += 1
            return
        out.arm = (m.campaign or "", "email", m.variant or "all")
        self._webhook(http, EMAIL_PROVIDER, m, "delivered", m.sent_at + timedelta(seconds=2))
        out.counts["delivered"] += 1
        if m.pixel_url and draws["proxy"] < PROXY_OPEN_RATE:
            self._get(http, m.pixel_url, PROXY_UA)
            out.counts["proxy_opens"] += 1
        opened = draws["open"] < OPEN_RATE * profile.engagement
        if opened and m.pixel_url:
            self._get(http, m.pixel_url, MAIL_CLIENT_UA)
            out.counts["opens"] += 1
        unsubscribes = draws["unsub"] < UNSUBSCRIBE_RATE * (0.5 + profile.churn_probability)
        if opened and m.click_urls and draws["click"] < rates.click_given_open:
            landing = self._click(http, m.click_urls[0])
            out.counts["clicks"] += 1
            self._visit(http, m.customer_id, landing)
            if not unsubscribes and draws["buy"] < min(1.0, rates.buy_given_click * profile.loyalty):
                coupon = parse_qs(urlsplit(landing).query).get("code", [rates.coupon])[0]
                self._buy(http, m.customer_id, profile, amount_factor, coupon, out)
                out.bought = True
                out.counts["orders"] += 1
        if unsubscribes and m.unsubscribe_url:
            response = http.post(
                m.unsubscribe_url,
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": MAIL_CLIENT_UA},
                timeout=self.timeout,
            )
            _expect(response, 200, "unsubscribe")
            out.counts["unsubscribes"] += 1
        elif draws["complain"] < COMPLAINT_RATE:
            self._webhook(http, EMAIL_PROVIDER, m, "complained", datetime.now(UTC))
            out.counts["complaints"] += 1

    def _mobile(
        self, http: requests.Session, m: Message, profile: Profile, rng: random.Random, out: _Outcome
    ) -> None:
        provider = SMS_PROVIDER if m.channel == "sms" else PUSH_PROVIDER
        click, buy, amount_factor = rng.random(), rng.random(), math.exp(rng.gauss(0.0, 0.25))
        out.arm = (m.campaign or "", m.channel, m.variant or "all")
        self._webhook(http, provider, m, "delivered", m.sent_at + timedelta(seconds=1))
        out.counts["delivered"] += 1
        if click < (SMS_CLICK if m.channel == "sms" else PUSH_CLICK) * profile.engagement:
            query = f"utm_source={m.channel}&utm_medium={m.channel}&utm_campaign={m.campaign or ''}"
            landing = f"https://shop.example.com/?{query}"
            self._webhook(http, provider, m, "clicked", datetime.now(UTC), url=landing)
            out.counts["clicks"] += 1
            self._visit(http, m.customer_id, landing)
            if buy < min(1.0, MOBILE_BUY_GIVEN_CLICK * profile.loyalty):
                self._buy(http, m.customer_id, profile, amount_factor, m.coupon, out)
                out.bought = True
                out.counts["orders"] += 1

    def _organic(self, http: requests.Session, campaign: str, customer: str, _status: str) -> _Outcome:
        out = _Outcome(f"organic|{campaign}|{customer}")
        profile = self.profiles.get(customer, Profile())
        rng = self._rng("organic", f"{campaign}|{customer}")
        buys, amount_factor = rng.random(), math.exp(rng.gauss(0.0, 0.25))
        out.counts["organic_considered"] += 1
        if buys < ORGANIC_RATE * profile.loyalty:
            self._visit(http, customer, "https://shop.example.com/")
            self._buy(http, customer, profile, amount_factor, None, out)
            out.counts["organic_orders"] += 1
        return out

    # -- HTTP ----------------------------------------------------------------------------------

    def _get(self, http: requests.Session, url: str, agent: str) -> None:
        _expect(http.get(url, headers={"User-Agent": agent}, timeout=self.timeout), 200, "open pixel")

    def _click(self, http: requests.Session, url: str) -> str:
        response = http.get(
            url, headers={"User-Agent": BROWSER_UA}, allow_redirects=False, timeout=self.timeout
        )
        _expect(response, 302, "click")
        return response.headers["Location"]

    def _visit(self, http: requests.Session, customer: str, public_url: str) -> None:
        """The shop page a link points at, on the demo shop (same path and query)."""
        parts = urlsplit(public_url)
        url = self.shop_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        http.cookies.set(CUSTOMER_COOKIE, customer)
        _expect(http.get(url, headers={"User-Agent": BROWSER_UA}, timeout=self.timeout), 200, "shop page")

    def _buy(
        self,
        http: requests.Session,
        customer: str,
        profile: Profile,
        factor: float,
        coupon: str | None,
        out: _Outcome,
    ) -> None:
        gross = round(max(5.0, profile.average_order_value * factor), 2)
        body: dict[str, Any] = {"amount": gross, "currency": "EUR"}
        if coupon:
            discount = round(gross * COUPON_SHARE, 2)
            body.update(amount=round(gross - discount, 2), coupon_code=coupon, discount_amount=discount)
        http.cookies.set(CUSTOMER_COOKIE, customer)
        response = http.post(f"{self.shop_url}/checkout", json=body, timeout=self.timeout)
        _expect(response, 201, "checkout")
        out.revenue += body["amount"]

    def _webhook(
        self,
        http: requests.Session,
        provider: str,
        m: Message,
        kind: str,
        at: datetime,
        *,
        bounce_type: str | None = None,
        url: str | None = None,
    ) -> None:
        entry = {
            "event_id": f"{kind}-{m.key}",
            "type": kind,
            "message_key": m.key,
            "customer_id": m.customer_id,
            "channel": m.channel,
            "occurred_at": min(at, datetime.now(UTC)).isoformat(),
        }
        if bounce_type:
            entry["bounce_type"] = bounce_type
        if url:
            entry["url"] = url
        body = json.dumps({"events": [entry]}, separators=(",", ":")).encode()
        # providers retry: one delivery webhook comes twice (same event id), to be counted once
        times = 2 if kind == "delivered" and m.key == self._redeliver_key else 1
        for _ in range(times):
            stamp = str(int(time.time()))
            response = http.post(
                f"{self.receiver_url}/webhooks/{provider}",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign_webhook(self.webhook_secret, stamp, body),
                },
                timeout=self.timeout,
            )
            _expect(response, 200, f"{provider} webhook")


def _expect(response: requests.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} (expected {status})")


def run_audience(
    home: Path,
    *,
    shop_url: str,
    receiver_url: str,
    webhook_secret: str,
    warehouse: Path | None = None,
    seed: int = 42,
    human_delay: float = HUMAN_DELAY_SECONDS,
) -> AudienceResult:
    """The demo's audience on everything the local destinations under `home`/outbox received."""
    outbox = Path(home) / "outbox"
    messages = read_email_outbox(outbox / "email") + read_http_outbox(outbox / "http")
    audience = Audience(
        shop_url=shop_url,
        receiver_url=receiver_url,
        webhook_secret=webhook_secret,
        state_path=Path(home) / "demo" / "audience_state.jsonl",
        profiles=read_profiles(warehouse),
        seed=seed,
        human_delay=human_delay,
    )
    return audience.run(messages, organic_audience(warehouse))
