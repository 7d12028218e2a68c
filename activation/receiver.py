"""The engagement receiver: an ASGI app (Starlette, served by uvicorn) that records what recipients
and email providers tell us, as JSON lines in the landing zone.

    python -m activation.receiver --landing-dir .tideline/landing --host 127.0.0.1 --port 8090
    app = create_app(landing_dir)          # or serve(landing_dir, host, port)

Routes (config/activation.yml points emails at http://127.0.0.1:8090/t and .../u):

    GET  /t/c/{token}        click: 302 to the URL signed in the token, records `clicked`.
                             A forged, tampered, malformed or non-click token: 400, nothing recorded.
    GET  /t/o/{token}.gif    open pixel: a 1x1 transparent GIF, never cached; records `opened` with
                             the User-Agent (proxy and prefetch opens are told apart downstream).
                             A bad token still gets the GIF, but nothing is recorded.
    GET  /u/{token}          unsubscribe confirmation page with a POST button; records NOTHING
                             (link scanners and prefetchers follow GET links).
    POST /u/{token}          RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the page's
                             button: records `unsubscribed` and a consent revocation. Bad token: 400.
    POST /webhooks/{provider}  provider events, JSON {"events": [{"event_id", "type" (delivered |
                             bounced | complained | opened | clicked), "message_key", "customer_id",
                             "occurred_at" (ISO 8601 with a timezone), "bounce_type"? (hard | soft),
                             "url"?, "channel"? (email | sms | push; default email)}]},
                             signed like our own webhooks (activation.destinations.webhook:
                             X-Tideline-Timestamp / X-Tideline-Signature, HMAC-SHA256 over
                             "timestamp.body") with the secret in TIDELINE_RECEIVER_WEBHOOK_SECRET
                             (unset: 503). Bad or stale signature: 401. A body nested more than
                             MAX_WEBHOOK_DEPTH (32) levels: 400. An invalid entry: 400 naming
                             its index and field, and nothing of that request is recorded. A
                             `complained` event also revokes consent on its channel (source
                             "complaint").
    GET  /health             200 "ok".

Tokens are verified with activation.tokens (TIDELINE_TRACKING_SECRET), strictly: one canonical
spelling per token. Rejected tokens are counted in the log, never logged themselves; uvicorn's
access log (which shows paths, hence tokens) is off in `serve`.

Secrets: the receiver refuses to start (create_app raises tokens.SecretError; `python -m
activation.receiver` and `tideline receiver` exit with status 2 and say what to set) when
TIDELINE_TRACKING_SECRET is unset, empty or weaker than tokens.check_secret allows (at least 32
bytes), or when TIDELINE_RECEIVER_WEBHOOK_SECRET is set but as weak. There is no default secret:
one known to others would let anyone forge redirects and unsubscribe any customer.

Files (JSON lines, append-only; a file is never rewritten, a restarted receiver starts new ones):

    {landing}/engagement/events/{YYYY-MM-DD}/receiver-{start}-{pid}-{n}.jsonl   engagement events
    {landing}/crm/consents/receiver-{start}-{pid}-{n}.jsonl                     consent revocations

{start} is the process start (UTC, 20250301T101500Z), {n} counts the files of this process from
1; a file rotates when it would pass `max_bytes` (16 MB) or the UTC date changes. Consent lines
are the landing entity crm_consents: {customer_id, channel: "email", status: "revoked",
consented_at, source: "unsubscribe link" | "complaint"}.

Event line fields (all always present, null when not applicable):

    event_id      uuid4 hex (tracking, unsubscribe) or "{provider}:{provider event id}" (webhooks:
                  a re-delivered webhook is recorded again with the same id; the dbt models
                  deduplicate by event_id)
    event_type    clicked | opened | unsubscribed | delivered | bounced | complained
    occurred_at   UTC ISO 8601 with Z: when it happened (the provider's time for webhooks)
    received_at   UTC ISO 8601 with Z: when the receiver got it
    source        tracking | unsubscribe | webhook
    provider      the {provider} path segment of a webhook, else null
    message_key, customer_id, campaign, variant, segment (unsubscribe), channel (email for
                  tracking and unsubscribes, the webhook entry's channel for webhooks),
    link_index, url (clicks), user_agent (opens and clicks, first 200 characters), bounce_type

Guarantees: every line is written with one os.write on an O_APPEND descriptor and fsynced (the
directory too, for a new file) before the HTTP response goes out, so a 302, a confirmation page
or a webhook 200 means the event is on disk. If the write fails the client gets 503 and can
retry (a click's 503 page still links on to the destination). Opens are best effort: the GIF is
served either way. One writer lock per process; run one process per landing zone and host (or
several: file names carry the pid). Client IPs, emails and phone numbers are never recorded.
A process killed (SIGKILL, power loss) in the middle of a write can leave that one line torn at
the end of its file; it was never acknowledged, a restart writes to new files, and the loader
rejects the fragment ("line is not valid JSON", with file and line) instead of guessing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import logging
import os
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from activation import tokens
from activation.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

log = logging.getLogger(__name__)

WEBHOOK_SECRET_ENV = "TIDELINE_RECEIVER_WEBHOOK_SECRET"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_USER_AGENT = 200
MAX_WEBHOOK_BODY = 5 * 1024 * 1024
MAX_FORM_BODY = 64 * 1024
# A webhook document is {"events": [{...}]}: 3 levels; providers' extra fields get room up to this.
# Deeper bodies are refused with 400 (json.loads recurses once per level: 50,000 levels would
# otherwise exhaust the stack and answer 500).
MAX_WEBHOOK_DEPTH = 32
EVENT_FIELDS = (
    "event_id",
    "event_type",
    "occurred_at",
    "received_at",
    "source",
    "provider",
    "message_key",
    "customer_id",
    "campaign",
    "variant",
    "segment",
    "channel",
    "link_index",
    "url",
    "user_agent",
    "bounce_type",
)
WEBHOOK_TYPES = ("delivered", "bounced", "complained", "opened", "clicked")
BOUNCE_TYPES = ("hard", "soft")
CHANNELS = ("email", "sms", "push")  # a webhook entry's optional `channel` (default email)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PROVIDER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ID = 256


def utc_iso(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z: 2025-03-01T10:15:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AppendOnlyFiles:
    """JSON lines into files `{directory}/{prefix}-{n}.jsonl`: never reopened, rotated by size or date."""

    def __init__(self, root: Path, prefix: str, max_bytes: int, dated: bool):
        self.root = root
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.dated = dated  # one folder per UTC date under root
        self._fd: int | None = None
        self._day: str | None = None
        self._size = 0
        self._n = 0
        self.paths: list[Path] = []  # files this process created, oldest first

    def write(self, data: bytes, day: str) -> None:
        if self._fd is not None and (
            day != self._day or (self._size and self._size + len(data) > self.max_bytes)
        ):
            self.close()
        if self._fd is None:
            self._open(day)
        assert self._fd is not None
        try:
            view = memoryview(data)
            while view:  # a regular file takes it in one write; loop in case it does not
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written
            os.fsync(self._fd)
        except OSError:
            self.close()  # never append after a possibly partial line: the next write starts a new file
            raise

    def _open(self, day: str) -> None:
        directory = self.root / day if self.dated else self.root
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            self._n += 1
            path = directory / f"{self.prefix}-{self._n}.jsonl"
            try:  # O_EXCL: a restarted receiver (same second, same pid in a container) never reuses a file
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            break
        _fsync_dir(directory)
        self._fd, self._day, self._size = fd, day, 0
        self.paths.append(path)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


class EngagementLog:
    """Durable, append-only JSON lines for engagement events and consent revocations (thread-safe)."""

    def __init__(self, landing_dir: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.landing_dir = Path(landing_dir)
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        prefix = f"receiver-{started}-{os.getpid()}"
        self._events = AppendOnlyFiles(self.landing_dir / "engagement" / "events", prefix, max_bytes, True)
        self._consents = AppendOnlyFiles(self.landing_dir / "crm" / "consents", prefix, max_bytes, False)
        self._lock = threading.Lock()

    @property
    def event_files(self) -> list[Path]:
        return list(self._events.paths)

    @property
    def consent_files(self) -> list[Path]:
        return list(self._consents.paths)

    def append(
        self,
        events: Sequence[Mapping[str, Any]],
        consents: Sequence[Mapping[str, Any]] = (),
        *,
        now: datetime | None = None,
    ) -> None:
        """Write the events (missing fields as null) and consent lines; durable when this returns.

        `now` picks the dated folder and the rotation day (default: the current UTC time).
        """
        day = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
        event_data = b"".join(_line({f: e.get(f) for f in EVENT_FIELDS}) for e in events)
        consent_data = b"".join(_line(c) for c in consents)
        with self._lock:
            if event_data:
                self._events.write(event_data, day)
            if consent_data:
                self._consents.write(consent_data, day)

    def close(self) -> None:
        with self._lock:
            self._events.close()
            self._consents.close()


def _line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# -- validation ------------------------------------------------------------------------------------


def _an_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID


def _token_payload(token: str, secret: bytes, kind: str) -> dict[str, Any] | None:
    """The verified payload of a `kind` token with usable ids, or None."""
    try:
        payload = tokens.verify(token, secret)
    except tokens.InvalidToken:
        return None
    if payload.get("k") != kind or not _an_id(payload.get("m")) or not _an_id(payload.get("c")):
        return None
    if kind == "click":
        index = payload.get("i")
        if not tokens.is_http_url(payload.get("u")) or (
            index is not None and (isinstance(index, bool) or not isinstance(index, int))
        ):
            return None
    return payload


def _optional_text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _user_agent(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:MAX_USER_AGENT] if agent else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class _BadEntry(ValueError):
    pass


def _webhook_event(
    provider: str, index: int, entry: Any, received_at: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One webhook entry as an event line (plus a consent line for a complaint); _BadEntry if invalid."""

    def bad(field: str, problem: str) -> _BadEntry:
        return _BadEntry(f"events[{index}].{field}: {problem}")

    if not isinstance(entry, dict):
        raise _BadEntry(f"events[{index}]: must be a JSON object")
    ids: dict[str, str] = {}
    for field in ("event_id", "message_key", "customer_id"):
        value = entry.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not _an_id(value):
            raise bad(field, f"required, a non-empty string of at most {_MAX_ID} characters")
        ids[field] = value
    if "@" in ids["customer_id"]:
        raise bad("customer_id", "must be the account id, not an email address")
    kind = entry.get("type")
    if kind not in WEBHOOK_TYPES:
        raise bad("type", f"must be one of {', '.join(WEBHOOK_TYPES)}")
    occurred = _parse_time(entry.get("occurred_at"))
    if occurred is None:
        raise bad("occurred_at", "required, an ISO 8601 timestamp with a timezone (2025-03-01T10:15:00Z)")
    bounce_type = entry.get("bounce_type")
    if bounce_type is not None and bounce_type not in BOUNCE_TYPES:
        raise bad("bounce_type", "must be hard or soft when given")
    url = entry.get("url")
    if url is not None and not tokens.is_http_url(url):
        raise bad("url", "must be an http(s) URL when given")
    channel = entry.get("channel", "email")
    if channel not in CHANNELS:
        raise bad("channel", f"must be one of {', '.join(CHANNELS)} when given (default email)")
    occurred_at = utc_iso(occurred)
    event = {
        "event_id": f"{provider}:{ids['event_id']}",
        "event_type": kind,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "source": "webhook",
        "provider": provider,
        "message_key": ids["message_key"],
        "customer_id": ids["customer_id"],
        "channel": channel,
        "url": url if kind == "clicked" else None,
        "bounce_type": bounce_type if kind == "bounced" else None,
    }
    consent = None
    if kind == "complained":
        consent = _revocation(ids["customer_id"], occurred_at, "complaint", channel)
    return event, consent


def _revocation(customer_id: str, at: str, source: str, channel: str = "email") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "channel": channel,
        "status": "revoked",
        "consented_at": at,
        "source": source,
    }


class _TooDeep(ValueError):
    pass


def _parse_json(body: bytes, max_depth: int) -> Any:
    """`body` parsed as JSON; _TooDeep when arrays and objects nest more than `max_depth` levels,
    ValueError when it is not JSON. Deep nesting never reaches the caller as a RecursionError."""
    problem = f"body is nested more than {max_depth} levels deep"
    try:
        document = json.loads(body)
    except RecursionError:  # far deeper than max_depth: the parser gave up before the stack did
        raise _TooDeep(problem) from None
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:  # iterative, so checking depth cannot recurse either
        value, level = pending.pop()
        if isinstance(value, dict | list):
            if level > max_depth:
                raise _TooDeep(problem)
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, level + 1) for child in children)
    return document


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# -- pages -----------------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    markup = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="robots" content="noindex"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="font-family:sans-serif;max-width:32em;margin:3em auto">{body}</body></html>'
    )
    return HTMLResponse(markup, status_code=status, headers={"Cache-Control": "no-store"})


def _bad_link() -> HTMLResponse:
    return _page(
        "Invalid link",
        "<h1>This link is not valid</h1><p>It may have been cut short or changed. "
        "Please use the link exactly as it appears in the email.</p>",
        400,
    )


def _not_saved(detail: str = "") -> HTMLResponse:
    return _page("Please try again", f"<h1>Something went wrong</h1><p>Please try again.</p>{detail}", 503)


# -- the app ---------------------------------------------------------------------------------------


def create_app(
    landing_dir: Path | str,
    *,
    tracking_secret: bytes | None = None,
    webhook_secret: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Starlette:
    """The receiver app writing under `landing_dir` (secrets default to the environment, see module doc).

    Raises tokens.SecretError, before anything is opened, when the tracking secret is missing or
    too weak, or a webhook secret is given but too weak (no webhook secret: webhooks answer 503)."""
    secret = (
        tokens.check_secret(tokens.TRACKING_SECRET_ENV, tracking_secret)
        if tracking_secret is not None
        else tokens.tracking_secret()
    )
    hook_secret = webhook_secret if webhook_secret is not None else os.environ.get(WEBHOOK_SECRET_ENV)
    if hook_secret:
        tokens.check_secret(WEBHOOK_SECRET_ENV, hook_secret)
    else:
        log.warning("receiver: %s is not set: provider webhooks will answer 503", WEBHOOK_SECRET_ENV)
    engagement = EngagementLog(landing_dir, max_bytes=max_bytes)
    rejected: Counter[str] = Counter()

    def reject(what: str) -> None:
        rejected[what] += 1
        log.warning("receiver: rejected %s (%d so far)", what, rejected[what])

    async def record(events: list[dict[str, Any]], consents: list[dict[str, Any]], now: datetime) -> bool:
        try:
            await run_in_threadpool(engagement.append, events, consents, now=now)
        except OSError as exc:
            log.error("receiver: could not write %d event(s): %s", len(events), type(exc).__name__)
            return False
        return True

    def tracking_event(kind: str, payload: Mapping[str, Any], now: datetime, request: Request) -> dict:
        at = utc_iso(now)
        return {
            "event_id": uuid.uuid4().hex,
            "event_type": kind,
            "occurred_at": at,
            "received_at": at,
            "source": "tracking",
            "message_key": payload["m"],
            "customer_id": payload["c"],
            "campaign": _optional_text(payload, "cp"),
            "variant": _optional_text(payload, "v"),
            "channel": "email",
            "link_index": payload.get("i"),
            "url": payload.get("u") if kind == "clicked" else None,
            "user_agent": _user_agent(request),
        }

    async def click(request: Request) -> Response:
        payload = _token_payload(request.path_params["token"], secret, "click")
        if payload is None:
            reject("click token")
            return _bad_link()
        now = datetime.now(UTC)
        url = payload["u"]
        if not await record([tracking_event("clicked", payload, now, request)], [], now):
            link = html.escape(url, quote=True)
            return _not_saved(f'<p><a href="{link}">Continue to the page</a></p>')
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    async def open_pixel(request: Request) -> Response:
        payload = _token_payload(request.path_params["token"], secret, "open")
        if payload is None:
            reject("open token")
        else:
            now = datetime.now(UTC)
            await record([tracking_event("opened", payload, now, request)], [], now)
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def unsubscribe_page(request: Request) -> Response:
        if _token_payload(request.path_params["token"], secret, "unsubscribe") is None:
            reject("unsubscribe token")
            return _bad_link()
        return _page(
            "Unsubscribe",
            "<h1>Unsubscribe from these emails?</h1>"
            '<form method="post"><input type="hidden" name="confirm" value="yes">'
            '<button type="submit">Unsubscribe</button></form>',
        )

    async def unsubscribe(request: Request) -> Response:
        payload = _token_payload(request.path_params["token"], secret, "unsubscribe")
        if payload is None:
            reject("unsubscribe token")
            return _bad_link()
        # The body is `List-Unsubscribe=One-Click` (RFC 8058) or the page's form: any POST with a
        # valid token is a deliberate unsubscribe; it is read only to keep the connection clean.
        if await _read_body(request, MAX_FORM_BODY) is None:
            return PlainTextResponse("request body too large", status_code=413)
        now = datetime.now(UTC)
        at = utc_iso(now)
        event = {
            "event_id": uuid.uuid4().hex,
            "event_type": "unsubscribed",
            "occurred_at": at,
            "received_at": at,
            "source": "unsubscribe",
            "message_key": payload["m"],
            "customer_id": payload["c"],
            "segment": _optional_text(payload, "s"),
            "channel": "email",
        }
        if not await record([event], [_revocation(payload["c"], at, "unsubscribe link")], now):
            return _not_saved()
        return _page(
            "Unsubscribed",
            "<h1>You are unsubscribed</h1><p>You will not get these emails any more.</p>",
        )

    async def webhook(request: Request) -> Response:
        provider = request.path_params["provider"]
        if not _PROVIDER.match(provider):
            return PlainTextResponse("unknown provider", status_code=404)
        if not hook_secret:
            return PlainTextResponse(
                f"webhooks are disabled: set {WEBHOOK_SECRET_ENV} on the receiver", status_code=503
            )
        body = await _read_body(request, MAX_WEBHOOK_BODY)
        if body is None:
            return PlainTextResponse(f"body larger than {MAX_WEBHOOK_BODY} bytes", status_code=413)
        if not verify_signature(
            hook_secret,
            request.headers.get(TIMESTAMP_HEADER),
            body,
            request.headers.get(SIGNATURE_HEADER),
        ):
            reject(f"{provider} webhook signature")
            return PlainTextResponse(
                f"invalid, missing or stale {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}", status_code=401
            )
        try:
            document = _parse_json(body, MAX_WEBHOOK_DEPTH)
        except _TooDeep as exc:
            reject(f"{provider} webhook nesting")
            return PlainTextResponse(f"{exc}; nothing from this request was recorded", status_code=400)
        except ValueError:  # UnicodeDecodeError included
            return PlainTextResponse("body is not valid JSON", status_code=400)
        entries = document.get("events") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            return PlainTextResponse('body must be a JSON object with an "events" list', status_code=400)
        now = datetime.now(UTC)
        received_at = utc_iso(now)
        events: list[dict[str, Any]] = []
        consents: list[dict[str, Any]] = []
        try:
            for index, entry in enumerate(entries):
                event, consent = _webhook_event(provider, index, entry, received_at)
                events.append(event)
                if consent is not None:
                    consents.append(consent)
        except _BadEntry as exc:
            log.warning(
                "receiver: %s webhook with an invalid entry rejected (%d entries)", provider, len(entries)
            )
            return PlainTextResponse(f"{exc}; nothing from this request was recorded", status_code=400)
        if not await record(events, consents, now):
            return PlainTextResponse("could not record the events; retry later", status_code=503)
        return Response(json.dumps({"recorded": len(events)}), media_type="application/json", status_code=200)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("receiver: writing under %s", engagement.landing_dir)
        try:
            yield
        finally:
            engagement.close()

    app = Starlette(
        routes=[
            Route("/t/c/{token}", click, methods=["GET"]),
            Route("/t/o/{token}.gif", open_pixel, methods=["GET"]),
            Route("/u/{token}", unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", unsubscribe, methods=["POST"]),
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.engagement = engagement
    app.state.rejected = rejected
    return app


def serve(
    landing_dir: Path | str,
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    tracking_secret: bytes | None = None,
    webhook_secret: str | None = None,
) -> None:
    """Run the receiver with uvicorn until interrupted (access log off: paths carry tokens).
    tokens.SecretError, before listening, without adequate secrets (see create_app: given, or from
    the environment when not)."""
    import uvicorn

    app = create_app(landing_dir, tracking_secret=tracking_secret, webhook_secret=webhook_secret)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Tideline engagement receiver (clicks, opens, unsubscribes, webhooks)."
    )
    parser.add_argument("--landing-dir", required=True, help="the landing zone to write events into")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        serve(args.landing_dir, host=args.host, port=args.port)
    except tokens.SecretError as exc:
        print(f"activation.receiver: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
