"""Shared HTTP plumbing for the HTTP destinations (webhook, crm).

    session = make_session()                                     # one per destination, shared by workers
    response = post_json(session, url, body, headers, timeout, policy)   # retries transient failures
    outcome = deliver(session, url, body, headers, timeout, policy, destination=name)

Retries (inside one send_batch call): HTTP 429 and 5xx, connection errors and timeouts,
with exponential backoff and full jitter (activation.retry.RetryPolicy); a Retry-After on
429/503 is honoured. Other 4xx are never retried. Redirects are not followed (a 3xx is a
non-retryable failure: a POST must not silently turn into a GET).

A try that timed out waiting for the response (a read timeout: the request had gone out) may
have been processed. When no later try succeeds, the outcome is `unknown` (Delivery.unknown):
the records are counted as possibly delivered and never resent automatically, rather than
failed, retried on later runs and finally dead-lettered. A connect timeout or a refused
connection sent nothing and stays a retryable failure. A Retry-After on the last try is passed
on (Delivery.retry_after) so the engine can make the next run wait.

Errors are recorded as the status code and a short reason (the HTTP reason phrase or the
exception class), never a request body or header; remote per-record messages go through
`scrub` (emails and phone-like numbers masked, truncated).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import http.cookiejar
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from activation.destinations.base import ConfigError, OutboundRecord, RecordResult
from activation.reconcile import AcceptedKeysLog
from activation.retry import RetryPolicy, parse_retry_after

try:  # orjson is faster; the stdlib is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

log = logging.getLogger("activation.destinations.http")

USER_AGENT = "tideline-activation/0.1"
RETRY_AFTER_STATUSES = (429, 503)
ERROR_LIMIT = 200  # characters kept of an error message


# --- JSON -----------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (orjson when installed)."""
    if _orjson is not None:
        return _orjson.dumps(value, default=_default)
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: bytes | str) -> Any:
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)


# --- keys, scrubbing, config helpers --------------------------------------------------------------


def batch_idempotency_key(keys: Iterable[str]) -> str:
    """sha256 hex of the batch's record idempotency keys, sorted and joined by newlines."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()


_EMAIL = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def scrub(text: Any, limit: int = ERROR_LIMIT) -> str:
    """A remote error message made safe to store: emails and phone-like numbers masked, truncated."""
    out = _PHONE.sub("<number>", _EMAIL.sub("<email>", str(text)))
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def check_url(name: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"destination {name}: {field} is required (an http or https URL)")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"destination {name}: {field} must be an http or https URL, got scheme {parts.scheme!r}"
        )
    return value.strip()


def int_option(name: str, config: Mapping[str, Any], field: str, default: int, minimum: int = 1) -> int:
    value = config.get(field, default)
    if isinstance(value, bool):
        raise ConfigError(f"destination {name}: {field} must be an integer, got {value!r}")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"destination {name}: {field} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ConfigError(f"destination {name}: {field} must be an integer, got {value!r}")
    if number < minimum:
        raise ConfigError(f"destination {name}: {field} must be >= {minimum}, got {number}")
    return number


def float_option(
    name: str, config: Mapping[str, Any], field: str, default: float, *, positive: bool = True
) -> float:
    value = config.get(field, default)
    if isinstance(value, bool):
        raise ConfigError(f"destination {name}: {field} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"destination {name}: {field} must be a number, got {value!r}") from None
    if number != number or number < 0 or (positive and number == 0):
        raise ConfigError(
            f"destination {name}: {field} must be {'> 0' if positive else '>= 0'}, got {value!r}"
        )
    return number


def bool_option(name: str, config: Mapping[str, Any], field: str, default: bool) -> bool:
    value = config.get(field, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ConfigError(f"destination {name}: {field} must be true or false, got {value!r}")


def headers_option(
    name: str, config: Mapping[str, Any], field: str, reserved: Sequence[str]
) -> dict[str, str]:
    """Extra static headers: a mapping of strings that may not override the headers we set."""
    value = config.get(field) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"destination {name}: {field} must be a mapping of header names to values")
    out: dict[str, str] = {}
    lowered = {r.lower() for r in reserved}
    for key, val in value.items():
        if (
            not isinstance(key, str)
            or not key.strip()
            or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", key)
        ):
            raise ConfigError(f"destination {name}: {field} has an invalid header name {key!r}")
        if key.lower() in lowered:
            raise ConfigError(
                f"destination {name}: {field}.{key} is set by the destination and cannot be overridden"
            )
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise ConfigError(f"destination {name}: {field}.{key} must be a string")
        text = str(val)
        if "\n" in text or "\r" in text:
            raise ConfigError(f"destination {name}: {field}.{key} must be a single line")
        out[key] = text
    return out


def path_option(name: str, config: Mapping[str, Any], field: str) -> str | None:
    """An optional folder path (unset or empty: None)."""
    value = config.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ConfigError(f"destination {name}: {field} must be a folder path")
    return value


def transport_options(
    name: str, config: Mapping[str, Any], reserved: Sequence[str], *, max_batch_size: int
) -> dict[str, Any]:
    """The options every HTTP destination reads the same way, as constructor keyword arguments."""
    return {
        "max_batch_size": int_option(name, config, "max_batch_size", max_batch_size),
        "timeout_seconds": float_option(name, config, "timeout_seconds", 10.0),
        "retry_attempts": int_option(name, config, "retry_attempts", 5),
        "retry_base_seconds": float_option(name, config, "retry_base_seconds", 0.5, positive=False),
        "headers": headers_option(name, config, "headers", reserved),
        # where the receiver lists the record keys it accepted (the project's HTTP sink writes
        # *.accepted files): activation.reconcile settles unknown records with it
        "delivery_log_dir": path_option(name, config, "delivery_log_dir"),
    }


def accepted_keys_evidence(delivery_log_dir: str | None) -> tuple[AcceptedKeysLog, ...]:
    return (AcceptedKeysLog(delivery_log_dir),) if delivery_log_dir else ()


def check_transport(
    name: str,
    max_batch_size: Any,
    timeout_seconds: float,
    retry_policy: RetryPolicy,
    headers: Mapping[str, str],
    reserved: Sequence[str],
) -> None:
    """validate() for the options transport_options reads: ConfigError naming the field."""
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ConfigError(f"destination {name}: max_batch_size must be >= 1")
    if timeout_seconds <= 0:
        raise ConfigError(f"destination {name}: timeout_seconds must be > 0")
    if retry_policy.attempts < 1:
        raise ConfigError(f"destination {name}: retry_attempts must be >= 1")
    if retry_policy.base_seconds < 0:
        raise ConfigError(f"destination {name}: retry_base_seconds must be >= 0")
    headers_option(name, {"headers": headers}, "headers", reserved)


# --- session and POST with retries ----------------------------------------------------------------


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Never store cookies: the session is shared by threads and must stay stateless."""

    def set_ok(self, cookie, request):  # noqa: D401 - cookiejar API
        return False


def make_session(pool_maxsize: int = 16, url: str | None = None) -> requests.Session:
    """A requests.Session safe to share between the engine's worker threads.

    The connection pool holds `pool_maxsize` keep-alive connections per host; cookies are
    refused so no per-response state is written to the session; urllib3 does no retries of
    its own (post_json does them, with backoff). Given the destination's `url`, the proxy
    (HTTP(S)_PROXY / NO_PROXY) and CA bundle (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE) settings
    of the environment are read once here rather than on every request (a measurable share of
    the CPU at thousands of requests per second); there is no .netrc lookup (auth is ours).
    """
    session = requests.Session()
    if url is not None:
        session.proxies = requests.utils.get_environ_proxies(url)
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0, pool_block=False)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    return session


class TransportError(Exception):
    """No HTTP response at all (timeout, connection error) after the retries, or an unusable request."""

    def __init__(self, reason: str, *, retryable: bool, attempts: int, maybe_delivered: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.attempts = attempts
        self.maybe_delivered = maybe_delivered  # a try timed out after the request went out


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


HeadersArg = Mapping[str, str] | Callable[[], Mapping[str, str]]


def post_json(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: HeadersArg,
    timeout: float,
    retry_policy: RetryPolicy,
    *,
    destination: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """POST a JSON body, retrying 429, 5xx, connection errors and timeouts.

    `headers` may be a callable, called once per attempt (so a signature can carry a fresh
    timestamp). Returns the final response: a success, a non-retryable status (other 4xx,
    3xx), or the last 429/5xx once the attempts ran out (`response.attempts` says how many
    tries were made, `response.maybe_delivered` whether one of them timed out after the request
    went out). Raises TransportError when the last try got no response.
    """
    attempts = max(1, retry_policy.attempts)
    reason = ""
    maybe_delivered = False
    for attempt in range(1, attempts + 1):
        request_headers = dict(headers() if callable(headers) else headers)
        request_headers.setdefault("Content-Type", "application/json")
        retry_after: float | None = None
        try:
            response = session.post(
                url, data=body, headers=request_headers, timeout=timeout, allow_redirects=False
            )
        except requests.ConnectTimeout:  # nothing was sent
            response, reason = None, "connect timeout"
        except requests.Timeout:  # the request went out, the answer did not come: it may have been processed
            response, reason, maybe_delivered = None, "timeout", True
        except requests.ConnectionError:
            response, reason = None, "connection error"
        except requests.RequestException as exc:  # invalid URL, invalid header, ...: retrying cannot help
            raise TransportError(
                f"request failed: {type(exc).__name__}", retryable=False, attempts=attempt
            ) from None
        else:
            response.attempts = attempt  # type: ignore[attr-defined]
            response.maybe_delivered = maybe_delivered  # type: ignore[attr-defined]
            if not is_retryable_status(response.status_code) or attempt == attempts:
                return response
            reason = f"HTTP {response.status_code}"
            if response.status_code in RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()
        if attempt == attempts:
            break
        delay = retry_policy.delay(attempt, retry_after)
        log.warning(
            "destination %s: %s on try %d/%d, retrying in %.2fs",
            destination,
            reason,
            attempt,
            attempts,
            delay,
        )
        sleep(delay)
    raise TransportError(reason, retryable=True, attempts=attempts, maybe_delivered=maybe_delivered)


def http_error(response: requests.Response) -> str:
    """'HTTP 400: Bad Request' - the status and reason phrase, never the body."""
    phrase = scrub(response.reason or "", 80)
    return f"HTTP {response.status_code}: {phrase}" if phrase else f"HTTP {response.status_code}"


MAYBE_DELIVERED = "the receiver may have processed it"


@dataclass(frozen=True)
class Delivery:
    """What became of one POST: ok (2xx, with the parsed JSON body if any) or a whole-request
    failure; `unknown` when a try timed out after the request went out and none succeeded."""

    ok: bool
    status: int | None = None
    payload: Any = None  # the parsed JSON body of a 2xx response (None if empty or not JSON)
    error: str | None = None
    retryable: bool = False
    attempts: int = 1
    unknown: bool = False
    retry_after: float | None = None  # seconds the receiver asked to wait, on the last try


def deliver(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: HeadersArg,
    timeout: float,
    retry_policy: RetryPolicy,
    *,
    destination: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """post_json, classified: 2xx -> ok; 429/5xx/timeouts after the retries -> retryable, or
    unknown when a try timed out after the request went out; anything else -> not retryable."""
    try:
        response = post_json(
            session, url, body, headers, timeout, retry_policy, destination=destination, sleep=sleep
        )
    except TransportError as exc:
        error = f"{exc.reason} after {exc.attempts} tries" if exc.retryable else exc.reason
        if exc.maybe_delivered:
            error = f"{error}: {MAYBE_DELIVERED}"
        log.warning("destination %s: request failed: %s", destination, error)
        return Delivery(
            ok=False,
            error=error,
            retryable=exc.retryable and not exc.maybe_delivered,
            attempts=exc.attempts,
            unknown=exc.maybe_delivered,
        )
    attempts = getattr(response, "attempts", 1)
    status = response.status_code
    if 200 <= status <= 299:
        payload = None
        content = response.content
        if content and content.lstrip()[:1] in (b"{", b"["):
            try:
                payload = loads(content)
            except ValueError:
                payload = None
        return Delivery(ok=True, status=status, payload=payload, attempts=attempts)
    retryable = is_retryable_status(status)
    error = http_error(response)
    retry_after = (
        parse_retry_after(response.headers.get("Retry-After")) if status in RETRY_AFTER_STATUSES else None
    )
    unknown = retryable and getattr(response, "maybe_delivered", False)
    if retryable:
        error = f"{error} after {attempts} tries"
    if unknown:
        error = f"{error}; an earlier try timed out: {MAYBE_DELIVERED}"
    log.warning("destination %s: request failed: %s", destination, error)
    return Delivery(
        ok=False,
        status=status,
        error=error,
        retryable=retryable and not unknown,
        attempts=attempts,
        unknown=unknown,
        retry_after=retry_after,
    )


# --- results --------------------------------------------------------------------------------------


def all_sent(records: Sequence[OutboundRecord]) -> list[RecordResult]:
    return [RecordResult(r.idempotency_key, "sent") for r in records]


def all_failed(
    records: Sequence[OutboundRecord], error: str, retryable: bool, retry_after: float | None = None
) -> list[RecordResult]:
    return [
        RecordResult(r.idempotency_key, "failed", retryable=retryable, error=error, retry_after=retry_after)
        for r in records
    ]


def not_delivered(records: Sequence[OutboundRecord], outcome: Delivery) -> list[RecordResult]:
    """The results of a whole request that did not succeed: unknown or failed."""
    if outcome.unknown:
        return [RecordResult(r.idempotency_key, "unknown", error=outcome.error) for r in records]
    return all_failed(records, outcome.error or "failed", outcome.retryable, outcome.retry_after)


def entry_failed(entry: Mapping[str, Any]) -> bool:
    """A per-record result entry that reports an error (status error/failed/rejected)."""
    return str(entry.get("status", "ok")).strip().lower() in ("error", "failed", "failure", "rejected")


def entry_retryable(entry: Mapping[str, Any]) -> bool:
    value = entry.get("retryable", False)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
