"""The demo shop: a real HTTP server on loopback standing in for the customer's website.

`make run` starts it next to the engagement receiver; the simulated audience
(tideline.demo.audience) lands on it from a clicked email or SMS and buys there.
What it records goes into the landing zone as new JSON-lines files, exactly like a
shop's export would, so the next pipeline run loads it:

    GET  /<any path>?utm_source=..&utm_medium=..&utm_campaign=..
         a landing page. Appends a `page_view` event (landing entity `events`):
         event_id, event_type, occurred_at (now), customer_id, anonymous_id, session_id,
         url (the public URL, https://shop.example.com/<path>?<query>), utm_source,
         utm_medium, utm_campaign. Answers 200 with a small HTML page.
    POST /checkout   JSON {"amount": 42.5, "currency"?: "EUR", "coupon_code"?, "discount_amount"?}
         appends a `checkout_started` event and a completed order (landing entity
         `commerce/orders`: order_id, customer_id, ordered_at = now, amount, currency,
         status completed, coupon_code, discount_amount, channel web). Answers 201 with
         {"order_id": ...}. 400 for a bad body or no known visitor.
    GET  /health     200 "ok".

The visitor is the cookie `tideline_customer` (or the header X-Customer-Id): the account id,
never an email. A session is the cookie `tideline_session`, set on the first page view.

Files (append-only, one fsynced write per line, never rewritten; a new shop process starts new
files; names start with `shop-` so they never collide with the generated demo data):

    {landing}/events/shop/{YYYY-MM-DD}/shop-{start}-{pid}-{n}.jsonl
    {landing}/commerce/orders/shop/shop-{start}-{pid}-{n}.jsonl
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activation.receiver import DEFAULT_MAX_BYTES, AppendOnlyFiles, utc_iso

log = logging.getLogger(__name__)

PUBLIC_URL = "https://shop.example.com"  # the site the shop stands in for (demo_data.SHOP_URL)
CUSTOMER_COOKIE = "tideline_customer"
SESSION_COOKIE = "tideline_session"
CUSTOMER_HEADER = "X-Customer-Id"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
MAX_BODY = 16 * 1024
_MAX_ID = 128


class ShopLog:
    """The shop's two append-only outputs: behaviour events and completed orders (thread-safe)."""

    def __init__(self, landing_dir: Path | str):
        self.landing_dir = Path(landing_dir)
        prefix = f"shop-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
        self._events = AppendOnlyFiles(self.landing_dir / "events" / "shop", prefix, DEFAULT_MAX_BYTES, True)
        self._orders = AppendOnlyFiles(
            self.landing_dir / "commerce" / "orders" / "shop", prefix, DEFAULT_MAX_BYTES, False
        )
        self._lock = threading.Lock()

    def append(self, events: list[dict[str, Any]], orders: list[dict[str, Any]], now: datetime) -> None:
        day = now.strftime("%Y-%m-%d")
        with self._lock:
            if events:
                self._events.write(b"".join(_line(e) for e in events), day)
            if orders:
                self._orders.write(b"".join(_line(o) for o in orders), day)

    @property
    def files(self) -> list[Path]:
        return list(self._events.paths) + list(self._orders.paths)

    def close(self) -> None:
        with self._lock:
            self._events.close()
            self._orders.close()


def _line(record: dict[str, Any]) -> bytes:
    # nulls are left out, as in the generated demo events
    clean = {k: v for k, v in record.items() if v is not None}
    return (json.dumps(clean, separators=(",", ":")) + "\n").encode("utf-8")


def _an_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID and "@" not in value and value.isprintable()


def _money(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1_000_000:
        return None
    return round(float(value), 2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], shop: DemoShop):
        self.shop = shop
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):  # a client that hung up is not an error here
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: paths carry the visitor's utm only
        pass

    def _reply(self, status: int, body: bytes, content_type: str, cookies: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (cookies or {}).items():
            self.send_header("Set-Cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax")
        self.end_headers()
        self.wfile.write(body)

    def _visitor(self) -> tuple[str | None, str | None]:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:  # a malformed cookie header is an anonymous visitor
            cookie = SimpleCookie()
        customer = self.headers.get(CUSTOMER_HEADER) or (
            cookie[CUSTOMER_COOKIE].value if CUSTOMER_COOKIE in cookie else None
        )
        session = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else None
        return (customer if _an_id(customer) else None), (session if _an_id(session) else None)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/health":
            self._reply(200, b"ok", "text/plain")
            return
        customer, session = self._visitor()
        new_session = session is None
        session = session or "ses_" + uuid.uuid4().hex[:20]
        query = parse_qs(parts.query)
        utm = {f: (query.get(f) or [None])[0] for f in UTM_FIELDS}
        now = datetime.now(UTC)
        url = PUBLIC_URL + parts.path + (f"?{parts.query}" if parts.query else "")
        event = {
            "event_id": "shop_" + uuid.uuid4().hex,
            "event_type": "page_view",
            "occurred_at": utc_iso(now),
            "customer_id": customer,
            "anonymous_id": None if customer else "anon_" + session,
            "session_id": session,
            "url": url,
            **utm,
        }
        try:
            self.server.shop.log.append([event], [], now)
        except OSError:
            self._reply(503, b"please try again", "text/plain")
            return
        self._reply(
            200,
            b'<!doctype html><html><body><h1>Demo Shop</h1><form method="post" action="/checkout">'
            b"<button>Buy</button></form></body></html>",
            "text/html; charset=utf-8",
            {SESSION_COOKIE: session} if new_session else None,
        )

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, b"body too large", "text/plain")
            return
        raw = self.rfile.read(length) if length > 0 else b""
        if parts.path != "/checkout":
            self._reply(404, b"not found", "text/plain")
            return
        customer, session = self._visitor()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        amount = _money(body.get("amount")) if isinstance(body, dict) else None
        if customer is None or amount is None:
            self._reply(400, b"checkout needs a known visitor and an amount (a number >= 0)", "text/plain")
            return
        currency = body.get("currency") if isinstance(body.get("currency"), str) else "EUR"
        coupon = body.get("coupon_code") if _an_id(body.get("coupon_code")) else None
        discount = _money(body.get("discount_amount")) if coupon else None
        now = datetime.now(UTC)
        at = utc_iso(now)
        order_id = "web_" + uuid.uuid4().hex[:24]
        session = session or "ses_" + uuid.uuid4().hex[:20]
        event = {
            "event_id": "shop_" + uuid.uuid4().hex,
            "event_type": "checkout_started",
            "occurred_at": at,
            "customer_id": customer,
            "session_id": session,
            "url": PUBLIC_URL + "/checkout",
        }
        order = {
            "order_id": order_id,
            "customer_id": customer,
            "ordered_at": at,
            "amount": f"{amount:.2f}",
            "currency": currency[:3].upper(),
            "status": "completed",
            "discount_amount": f"{discount:.2f}" if discount is not None else None,
            "coupon_code": coupon,
            "channel": "web",
        }
        try:
            self.server.shop.log.append([event], [order], now)
        except OSError:
            self._reply(503, b'{"error": "please try again"}', "application/json")
            return
        self._reply(201, json.dumps({"order_id": order_id}).encode(), "application/json")


class DemoShop:
    """The shop on a daemon thread: `with DemoShop(landing) as shop: shop.base_url`."""

    def __init__(self, landing_dir: Path | str):
        self.log = ShopLog(landing_dir)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is None:
            self._server = _Server((host, port), self)
            real_host, real_port = self._server.server_address[:2]
            self.base_url = f"http://{real_host}:{real_port}"
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="demo-shop",
                daemon=True,
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self.log.close()

    def __enter__(self) -> DemoShop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
