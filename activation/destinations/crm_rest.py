"""CRM destination (kind "crm"): batch upsert and archive of objects over a REST API.

Config (destinations.yml):

    base_url: https://crm.example.com/api/v3/objects   # required, http or https
    token_env: TIDELINE_CRM_TOKEN                      # env var holding the bearer token (required)
    object: contacts                                   # required, one path segment
    id_field: external_id                              # the CRM's external-id property
    max_batch_size: 100
    timeout_seconds: 10
    retry_attempts: 5
    retry_base_seconds: 0.5
    headers: {}                                        # extra static headers (optional)
    delivery_log_dir: .tideline/outbox/http            # optional: the receiver's accepted-keys log

Requests (a batch may mix actions; it is split into at most two calls, each with its own
Idempotency-Key = sha256 hex of that call's sorted record keys, and Authorization: Bearer <token>):

    action upsert -> POST {base_url}/{object}/batch/upsert
                     {"inputs": [{"id": customer_id, "idProperty": id_field,
                                  "idempotency_key": record key, "properties": fields}]}
    action delete -> POST {base_url}/{object}/batch/archive
                     {"inputs": [{"id": customer_id, "idProperty": id_field, "idempotency_key": record key}]}

Every input carries its record's own idempotency key: a batch resent after a crash may be cut
differently (so its Idempotency-Key differs), and the receiver should dedupe on the record key
(docs/activation.md, "For gateway authors").

Any other action ("send") fails that record, not retryable.

Response contract: 2xx (200/201/207) with {"results": [{"id", "status": "ok"|"error", "message"?,
"retryable"?}]} and/or {"errors": [{"id", "message", "retryable"?}]} gives per-record results,
matched on id == customer_id (remote_id = id); records not mentioned count as sent; any other 2xx
body: all sent. 429/5xx/connection errors still failing after the retries: failed, retryable
(a Retry-After on the last try is reported); a try that timed out after the request went out,
with no success after it: unknown (never resent automatically); other statuses (401, 403, 400,
...): failed, not retryable ("HTTP 401: Unauthorized").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from activation.destinations import http_common as hc
from activation.destinations.base import (
    ConfigError,
    DestinationDefaults,
    OutboundRecord,
    RecordResult,
    SyncContext,
    secret,
)
from activation.reconcile import AcceptedKeysLog
from activation.retry import RetryPolicy

RESERVED_HEADERS = ("Content-Type", "Content-Length", "Host", "Idempotency-Key", "Authorization")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


class CrmRestDestination(DestinationDefaults):
    kind = "crm"
    idempotent_delivery = True  # receivers dedupe each input on its idempotency_key
    encoded_batches = False

    def __init__(
        self,
        name: str,
        base_url: str,
        object_name: str,
        *,
        token: str | None,
        token_env: str | None = None,
        id_field: str = "external_id",
        max_batch_size: int = 100,
        timeout_seconds: float = 10.0,
        retry_attempts: int = 5,
        retry_base_seconds: float = 0.5,
        headers: Mapping[str, str] | None = None,
        delivery_log_dir: str | None = None,
    ):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.object = object_name
        self._token = token
        self.token_env = token_env
        self.id_field = id_field
        self.max_batch_size = max_batch_size
        self.timeout_seconds = timeout_seconds
        self.retry_policy = RetryPolicy(attempts=retry_attempts, base_seconds=retry_base_seconds)
        self.headers = dict(headers or {})
        self.delivery_log_dir = delivery_log_dir
        self._session = hc.make_session(url=self.base_url)

    def __repr__(self) -> str:  # never shows the token
        return f"CrmRestDestination(name={self.name!r}, base_url={self.base_url!r}, object={self.object!r})"

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> CrmRestDestination:
        """Build from a config mapping; the bearer token is the value of the environment variable
        `token_env` names, in `env` (the environment the config was loaded with)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"destination {name}: config must be a mapping")
        base_url = hc.check_url(name, "base_url", config.get("base_url"))
        token_env = config.get("token_env")
        if not isinstance(token_env, str) or not token_env.strip():
            raise ConfigError(
                f"destination {name}: token_env is required (the environment variable holding the bearer token)"
            )
        token = secret(name, token_env.strip(), env=env)
        object_name = config.get("object")
        if not isinstance(object_name, str) or not object_name.strip():
            raise ConfigError(f"destination {name}: object is required (the CRM object type, e.g. contacts)")
        id_field = config.get("id_field", "external_id")
        destination = cls(
            name,
            base_url,
            object_name.strip(),
            token=token,
            token_env=token_env.strip(),
            id_field=id_field.strip() if isinstance(id_field, str) else id_field,
            **hc.transport_options(name, config, RESERVED_HEADERS, max_batch_size=100),
        )
        destination.validate()
        return destination

    def validate(self) -> None:
        """ConfigError naming the destination and the field; no network."""
        hc.check_url(self.name, "base_url", self.base_url)
        if not self._token:
            var = self.token_env or "token_env"
            raise ConfigError(f"destination {self.name}: environment variable {var} is not set")
        if not isinstance(self.object, str) or not _SEGMENT.fullmatch(self.object):
            raise ConfigError(
                f"destination {self.name}: object must be one URL path segment (letters, digits, _ . -), "
                f"got {self.object!r}"
            )
        if not isinstance(self.id_field, str) or not self.id_field:
            raise ConfigError(f"destination {self.name}: id_field must be a non-empty string")
        hc.check_transport(
            self.name,
            self.max_batch_size,
            self.timeout_seconds,
            self.retry_policy,
            self.headers,
            RESERVED_HEADERS,
        )

    # --- sending ---------------------------------------------------------------------------------

    def url(self, operation: str) -> str:
        return f"{self.base_url}/{self.object}/batch/{operation}"

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        """Upserts and archives go in separate calls; results come back in the order of `records`."""
        records = list(records)
        if not records:
            return []
        results: list[RecordResult | None] = [None] * len(records)
        groups: dict[str, list[int]] = {"upsert": [], "archive": []}
        for i, r in enumerate(records):
            if r.action == "upsert":
                groups["upsert"].append(i)
            elif r.action == "delete":
                groups["archive"].append(i)
            else:
                results[i] = RecordResult(
                    r.idempotency_key,
                    "failed",
                    retryable=False,
                    error=f"action {r.action!r} is not supported by crm destinations",
                )
        for operation, indexes in groups.items():
            for start in range(0, len(indexes), self.max_batch_size):
                chunk = indexes[start : start + self.max_batch_size]
                for i, result in zip(chunk, self._call(operation, [records[i] for i in chunk]), strict=True):
                    results[i] = result
        return [r for r in results if r is not None]

    def _call(self, operation: str, records: list[OutboundRecord]) -> list[RecordResult]:
        if operation == "upsert":
            inputs = [
                {
                    "id": r.customer_id,
                    "idProperty": self.id_field,
                    "idempotency_key": r.idempotency_key,
                    "properties": r.fields,
                }
                for r in records
            ]
        else:
            inputs = [
                {"id": r.customer_id, "idProperty": self.id_field, "idempotency_key": r.idempotency_key}
                for r in records
            ]
        try:
            body = hc.dumps({"inputs": inputs})
        except TypeError as exc:
            return hc.all_failed(records, f"cannot serialise batch: {hc.scrub(exc)}", retryable=False)
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": hc.batch_idempotency_key(r.idempotency_key for r in records),
            "Authorization": f"Bearer {self._token}",
        }
        outcome = hc.deliver(
            self._session,
            self.url(operation),
            body,
            headers,
            self.timeout_seconds,
            self.retry_policy,
            destination=self.name,
        )
        if not outcome.ok:
            return hc.not_delivered(records, outcome)
        return self._results(records, outcome.payload)

    @staticmethod
    def _results(records: Sequence[OutboundRecord], payload: Any) -> list[RecordResult]:
        if not isinstance(payload, Mapping):
            return hc.all_sent(records)
        entries: dict[str, Mapping[str, Any]] = {}
        failures: dict[str, Mapping[str, Any]] = {}
        results_list = payload.get("results")
        for entry in results_list if isinstance(results_list, list) else []:
            if isinstance(entry, Mapping) and entry.get("id") is not None:
                (failures if hc.entry_failed(entry) else entries)[str(entry["id"])] = entry
        errors_list = payload.get("errors")
        for entry in errors_list if isinstance(errors_list, list) else []:
            if isinstance(entry, Mapping) and entry.get("id") is not None:
                failures[str(entry["id"])] = entry
        out = []
        for r in records:
            failure = failures.get(r.customer_id)
            if failure is not None:
                error = hc.scrub(failure.get("message") or failure.get("error") or "rejected by the CRM")
                out.append(
                    RecordResult(
                        r.idempotency_key, "failed", retryable=hc.entry_retryable(failure), error=error
                    )
                )
                continue
            entry = entries.get(r.customer_id)
            remote_id = hc.optional_str(entry.get("id")) if entry is not None else None
            out.append(RecordResult(r.idempotency_key, "sent", remote_id=remote_id))
        return out

    def delivery_evidence(self) -> tuple[AcceptedKeysLog, ...]:
        """The receiver's accepted-keys log, when delivery_log_dir names one."""
        return hc.accepted_keys_evidence(self.delivery_log_dir)

    def close(self) -> None:
        self._session.close()
