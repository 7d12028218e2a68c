"""Webhook destination (kind "webhook"): signed JSON batches for SMS/push gateways and staff alerts.

Config (destinations.yml):

    url: https://gateway.example.com/hooks/tideline   # required, http or https
    secret_env: TIDELINE_SMS_WEBHOOK_SECRET           # env var holding the HMAC secret (required unless unsigned: true)
    unsigned: false
    max_batch_size: 500
    timeout_seconds: 10
    retry_attempts: 5          # tries in all, the first included
    retry_base_seconds: 0.5
    headers: {X-Team: growth}  # extra static headers (cannot override the ones below)
    delivery_log_dir: .tideline/outbox/http   # optional: the receiver's accepted-keys log (see below)

One POST per batch, body:

    {"sync_id", "segment", "destination", "mode", "campaign", "variant", "content_version",
     "content": {...}, "records": [{"customer_id", "idempotency_key", "action", "fields"}, ...]}

headers: Content-Type: application/json; Idempotency-Key: sha256 hex of the batch's sorted record
keys; X-Tideline-Timestamp: unix seconds; X-Tideline-Signature: sha256=<hex HMAC-SHA256(secret,
timestamp + "." + body)> (re-signed with a fresh timestamp on each retry; the key stays the same).
Receivers check it with `verify_signature`.

With `delivery_log_dir` (a folder of `*.accepted` files listing the record keys the receiver
accepted, as the project's HTTP sink writes), records whose delivery is unknown are settled by
activation.reconcile at the start of the next run.

Receivers dedupe on each record's `idempotency_key`, not only on the batch's Idempotency-Key:
a batch resent after a crash may be cut differently (docs/activation.md, "For gateway authors").

Response contract: 2xx with JSON {"results": [{"idempotency_key", "status": "ok"|"error", "error"?,
"retryable"?, "id"?}]} gives per-record results (records the response does not mention count as
sent; "id" becomes remote_id); 2xx with any other body: all sent; 429/5xx/connection errors still
failing after the retries: all failed, retryable (a Retry-After on the last try is reported); a try
that timed out after the request went out, with no success after it: all unknown (possibly
delivered, never resent automatically); any other status: all failed, not retryable ("HTTP 400:
Bad Request").
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

from activation.destinations import http_common as hc
from activation.destinations.base import (
    BatchResults,
    ConfigError,
    DestinationDefaults,
    EncodedBatch,
    OutboundRecord,
    RecordResult,
    SyncContext,
    secret,
)
from activation.reconcile import AcceptedKeysLog
from activation.retry import RetryPolicy

SIGNATURE_HEADER = "X-Tideline-Signature"
_OK_STATUSES = {"ok", "OK", "sent", "success", "accepted", None}
TIMESTAMP_HEADER = "X-Tideline-Timestamp"
RESERVED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Host",
    "Idempotency-Key",
    TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def sign(secret_value: str | bytes, timestamp: str | int, body: bytes | str) -> str:
    """The X-Tideline-Signature value: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>."""
    message = _as_bytes(str(timestamp)) + b"." + _as_bytes(body)
    return "sha256=" + hmac.new(_as_bytes(secret_value), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int | None,
    body: bytes | str,
    signature_header: str | None,
    tolerance_seconds: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True when the signature matches the raw body and the timestamp is recent.

    `signature_header` may list several comma-separated `sha256=...` values (secret rotation).
    """
    if not secret or timestamp is None or not signature_header:
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    expected = sign(secret, ts, body)
    candidates = [c.strip() for c in signature_header.split(",") if c.strip()]
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


class WebhookDestination(DestinationDefaults):
    kind = "webhook"
    idempotent_delivery = True  # receivers dedupe each record on its idempotency_key
    encoded_batches = True  # send_encoded: the body is the canonical record JSON

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret_value: str | None = None,
        unsigned: bool = False,
        max_batch_size: int = 500,
        timeout_seconds: float = 10.0,
        retry_attempts: int = 5,
        retry_base_seconds: float = 0.5,
        headers: Mapping[str, str] | None = None,
        delivery_log_dir: str | None = None,
        secret_env: str | None = None,
    ):
        self.name = name
        self.url = url
        self._secret = secret_value
        self.secret_env = secret_env
        self.unsigned = unsigned
        self.max_batch_size = max_batch_size
        self.timeout_seconds = timeout_seconds
        self.retry_policy = RetryPolicy(attempts=retry_attempts, base_seconds=retry_base_seconds)
        self.headers = dict(headers or {})
        self.delivery_log_dir = delivery_log_dir
        self._session = hc.make_session(url=url)

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookDestination(name={self.name!r}, url={self.url!r}, signed={not self.unsigned})"

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> WebhookDestination:
        """Build from a config mapping; the HMAC secret is the value of the environment variable
        `secret_env` names, in `env` (the environment the config was loaded with)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"destination {name}: config must be a mapping")
        url = hc.check_url(name, "url", config.get("url"))
        unsigned = hc.bool_option(name, config, "unsigned", False)
        secret_env = config.get("secret_env")
        if secret_env is not None and (not isinstance(secret_env, str) or not secret_env.strip()):
            raise ConfigError(f"destination {name}: secret_env must be the name of an environment variable")
        secret_value = None
        if not unsigned:
            if not secret_env:
                raise ConfigError(
                    f"destination {name}: secret_env is required (the environment variable holding the "
                    "HMAC secret), or set unsigned: true"
                )
            secret_value = secret(name, secret_env.strip(), env=env)
        destination = cls(
            name,
            url,
            secret_value=secret_value,
            unsigned=unsigned,
            **hc.transport_options(name, config, RESERVED_HEADERS, max_batch_size=500),
            secret_env=secret_env.strip() if secret_env else None,
        )
        destination.validate()
        return destination

    def validate(self) -> None:
        """ConfigError naming the destination and the field; no network."""
        hc.check_url(self.name, "url", self.url)
        if not self.unsigned and not self._secret:
            var = self.secret_env or "secret_env"
            raise ConfigError(f"destination {self.name}: environment variable {var} is not set")
        hc.check_transport(
            self.name,
            self.max_batch_size,
            self.timeout_seconds,
            self.retry_policy,
            self.headers,
            RESERVED_HEADERS,
        )

    # --- sending ---------------------------------------------------------------------------------

    @staticmethod
    def _envelope(context: SyncContext, name: str) -> dict[str, Any]:
        return {
            "sync_id": context.sync_id,
            "segment": context.segment,
            "destination": context.destination or name,
            "mode": context.mode,
            "campaign": context.campaign,
            "variant": context.variant,
            "content_version": context.content_version,
            "content": context.content,
        }

    def body(self, records: Sequence[OutboundRecord], context: SyncContext) -> bytes:
        return hc.dumps(
            {
                **self._envelope(context, self.name),
                "records": [
                    {
                        "customer_id": r.customer_id,
                        "idempotency_key": r.idempotency_key,
                        "action": r.action,
                        "fields": r.fields,
                    }
                    for r in records
                ],
            }
        )

    def _headers(self, body: bytes, idempotency_key: str):
        static = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self.unsigned or not self._secret:
            return static

        def signed() -> dict[str, str]:
            timestamp = str(int(time.time()))
            return {
                **static,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            }

        return signed

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        """One POST per batch (batches over max_batch_size are split); one RecordResult per record."""
        records = list(records)
        if not records:
            return []
        if len(records) > self.max_batch_size:
            out: list[RecordResult] = []
            for start in range(0, len(records), self.max_batch_size):
                out.extend(self.send_batch(records[start : start + self.max_batch_size], context))
            return out
        try:
            body = self.body(records, context)
        except TypeError as exc:  # a field the mapping produced cannot be serialised: no retry helps
            return hc.all_failed(records, f"cannot serialise batch: {hc.scrub(exc)}", retryable=False)
        key = hc.batch_idempotency_key(r.idempotency_key for r in records)
        outcome = self._post(body, key)
        if not outcome.ok:
            return hc.not_delivered(records, outcome)
        return self._results([r.idempotency_key for r in records], outcome.payload)

    def _post(self, body: bytes, batch_key: str) -> hc.Delivery:
        """One signed POST of a batch body, with the retries of the destination's policy."""
        return hc.deliver(
            self._session,
            self.url,
            body,
            self._headers(body, batch_key),
            self.timeout_seconds,
            self.retry_policy,
            destination=self.name,
        )

    def send_encoded(self, batch: EncodedBatch, context: SyncContext) -> BatchResults:
        """The fast path: the same request as send_batch, from records the warehouse encoded."""
        n = len(batch.keys)
        if n == 0:
            return BatchResults([], [], [], [])
        head = hc.dumps({**self._envelope(context, self.name), "records": []})
        body = head[: -len(b"[]}")] + batch.records_json + b"}"
        key = batch.batch_key or hc.batch_idempotency_key(batch.keys)
        outcome = self._post(body, key)
        if not outcome.ok:
            if outcome.unknown:
                return BatchResults.uniform(n, "unknown", error=outcome.error)
            return BatchResults.uniform(
                n,
                "failed",
                retryable=outcome.retryable,
                error=outcome.error or "failed",
                retry_after=outcome.retry_after,
            )
        entries = outcome.payload.get("results") if isinstance(outcome.payload, Mapping) else None
        if not isinstance(entries, list):
            return BatchResults.uniform(n, "sent")
        if (
            len(entries) == n
            and all(type(e) is dict for e in entries)
            and {e.get("status", "ok") for e in entries} <= _OK_STATUSES
            and [e.get("idempotency_key") for e in entries] == batch.keys
        ):  # every record accepted, results in order: no per-record lookups
            ids = [e.get("id") for e in entries]
            if not all(type(i) is str and i for i in ids):
                ids = [hc.optional_str(i) for i in ids]
            return BatchResults(["sent"] * n, [False] * n, [None] * n, ids)
        return BatchResults.from_records(batch.keys, self._results(batch.keys, outcome.payload))

    @staticmethod
    def _results(keys: Sequence[str], payload: Any) -> list[RecordResult]:
        entries = payload.get("results") if isinstance(payload, Mapping) else None
        if not isinstance(entries, list):
            return [RecordResult(k, "sent") for k in keys]
        by_key: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("idempotency_key") is not None:
                by_key[str(entry["idempotency_key"])] = entry
        results = []
        for k in keys:
            entry = by_key.get(k)
            if entry is None:
                results.append(RecordResult(k, "sent"))
            elif hc.entry_failed(entry):
                error = hc.scrub(entry.get("error") or entry.get("message") or "rejected by the receiver")
                results.append(
                    RecordResult(
                        k,
                        "failed",
                        retryable=hc.entry_retryable(entry),
                        error=error,
                        remote_id=hc.optional_str(entry.get("id")),
                    )
                )
            else:
                results.append(RecordResult(k, "sent", remote_id=hc.optional_str(entry.get("id"))))
        return results

    def delivery_evidence(self) -> tuple[AcceptedKeysLog, ...]:
        """The receiver's accepted-keys log, when delivery_log_dir names one."""
        return hc.accepted_keys_evidence(self.delivery_log_dir)

    def close(self) -> None:
        self._session.close()
