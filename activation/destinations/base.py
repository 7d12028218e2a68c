"""The one interface every destination implements.

    destination = SomeDestination.from_config(name, config_dict, env)  # secrets from the env vars it names
    destination.validate()                                          # clear ConfigError, no network
    results = destination.send_batch(records, context)              # one RecordResult per record
    destination.close()

The sync engine (activation/engine/) plans, applies policies, writes the delivery
ledger, rate-limits (one token bucket per destination, shared by all workers) and
calls send_batch with at most `max_batch_size` records, from several threads at
once, so send_batch must be thread-safe. A destination never raises for a bad
record: it returns a failed RecordResult (retryable or not) for that record and
carries on with the others; it raises only when the whole destination is unusable
(e.g. bad credentials), which fails the batch and the engine retries it later.

Transient errors (HTTP 429/5xx, timeouts, SMTP 4xx) are retried inside send_batch
with exponential backoff and jitter (activation.retry), honouring Retry-After;
what still fails is returned as failed with retryable=True (and the Retry-After of
the last try, which the engine keeps so the next run waits), and the engine tries
those records again on later runs, up to a limit, then dead-letters them. A record
that went out but got no answer (a timeout after the request or the end of DATA) may
have arrived: it is returned `unknown`, which the engine records and never resends
(activation.reconcile settles it later).

Capabilities are declared, never probed (DestinationDefaults holds the defaults):

    idempotent_delivery  True when a record resent under the same key is deduplicated by the
                         destination (HTTP with per-record keys, table upserts, audience files):
                         a crash then costs a resend. False (SMTP): records are marked in_flight
                         before sending and what a crash leaves unresolved is never resent.
    encoded_batches      True when the destination implements the fast path
                         `send_encoded(batch: EncodedBatch, context) -> BatchResults`: its wire
                         format is the canonical record JSON ({"customer_id", "idempotency_key",
                         "action", "fields"}), so the warehouse encodes the records and results
                         come back as columns, no Python object per record (the webhook does this).
    finalize(context)    called at the end of every sync run (audience files merge their parts;
                         most destinations do nothing).
    delivery_evidence()  what can say, after the fact, whether a record arrived (see
                         activation.reconcile): e.g. the SMTP server's outbox.

Idempotency: every record carries an idempotency key (destination, segment,
customer, content version). HTTP destinations send it with each record (the receiver
dedupes on it) and, per batch, a hash of the batch's record keys as the
`Idempotency-Key` header; email uses it to build a deterministic Message-ID. Never log
personal data (emails, phones): log ids and counts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from activation.reconcile import DeliveryEvidence

ACTIONS = ("upsert", "delete", "send")
# unknown: the record may have reached the destination (no reply after it went out): never resent
STATUSES = ("sent", "failed", "unknown")


class ConfigError(ValueError):
    """A destination's configuration is unusable; the message says which destination and field."""


@dataclass(frozen=True)
class OutboundRecord:
    customer_id: str
    idempotency_key: (
        str  # UUID text: the first 128 bits of sha256(destination|segment|customer|content version)
    )
    action: str  # upsert | delete | send
    fields: Mapping[str, Any]  # mapped fields for this destination (may hold email, phone: never log them)


@dataclass(frozen=True)
class RecordResult:
    idempotency_key: str
    status: str  # sent | failed | unknown (it went out, no reply came back: it may have arrived)
    retryable: bool = False
    error: str | None = None  # the destination's error, without personal data
    remote_id: str | None = None  # e.g. the Message-ID or the CRM's id
    retry_after: float | None = None  # seconds the destination asked to wait, on the last try


@dataclass(frozen=True)
class EncodedBatch:
    """A batch already encoded by the warehouse (the fast path)."""

    keys: list[str]  # the records' idempotency keys, in the order of records_json
    records_json: bytes  # a JSON array of {"customer_id", "idempotency_key", "action", "fields"}
    batch_key: str | None = None  # sha256 hex of the sorted keys joined by newlines, if computed


@dataclass
class BatchResults:
    """The per-record results of one batch as columns, in the batch's record order."""

    status: list[str]  # sent | failed | unknown
    retryable: list[bool]
    error: list[str | None]
    remote_id: list[str | None]
    retry_after: float | None = None  # seconds the destination asked to wait, on the last try

    def __len__(self) -> int:
        return len(self.status)

    @classmethod
    def uniform(
        cls,
        n: int,
        status: str,
        *,
        retryable: bool = False,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> BatchResults:
        return cls([status] * n, [retryable] * n, [error] * n, [None] * n, retry_after)

    @classmethod
    def from_records(cls, keys: Sequence[str], results: Sequence[RecordResult]) -> BatchResults:
        """Align RecordResults with keys; a key without a result failed (retryable)."""
        by_key = {r.idempotency_key: r for r in results}
        missing = RecordResult("", "failed", retryable=True, error="destination returned no result")
        ordered = [by_key.get(k, missing) for k in keys]
        waits = [r.retry_after for r in results if r.retry_after is not None]
        return cls(
            [r.status for r in ordered],
            [r.retryable for r in ordered],
            [r.error for r in ordered],
            [r.remote_id for r in ordered],
            max(waits) if waits else None,
        )


@dataclass(frozen=True)
class SyncContext:
    sync_id: str  # the sync run's id
    segment: str  # dbt model name of the segment
    destination: str  # destination name from the config
    mode: str  # upsert | mirror | insert | message
    content_version: str = ""  # for message mode: the campaign content version
    content: Mapping[str, Any] = field(default_factory=dict)  # template and variables for message channels
    campaign: str = ""
    variant: str = ""
    # Destinations that deliver record by record (SMTP) call on_attempt(key) just before handing
    # one record over and on_sent(key, remote_id) as soon as it is accepted; the engine journals
    # both to disk, so after a crash only records caught between the two are `unknown`, records
    # never handed over are planned again, and accepted ones are `sent`. Cheap and thread-safe.
    on_attempt: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    on_sent: Callable[[str, str | None], None] | None = field(default=None, compare=False, repr=False)


@runtime_checkable
class Destination(Protocol):
    name: str
    kind: str
    max_batch_size: int
    idempotent_delivery: bool  # declared capabilities: see the module docstring
    encoded_batches: bool

    def validate(self) -> None: ...

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]: ...

    def send_encoded(self, batch: EncodedBatch, context: SyncContext) -> BatchResults: ...

    def finalize(self, context: SyncContext) -> Any: ...

    def delivery_evidence(self) -> Sequence[DeliveryEvidence]: ...

    def close(self) -> None: ...


class DestinationDefaults:
    """The capabilities a destination has unless it declares otherwise: idempotent delivery, no
    pre-encoded fast path, nothing to finalise, no evidence of delivery to reconcile with."""

    idempotent_delivery = True
    encoded_batches = False

    def send_encoded(self, batch: EncodedBatch, context: SyncContext) -> BatchResults:
        raise NotImplementedError(f"{type(self).__name__} declares encoded_batches = False")

    def finalize(self, context: SyncContext) -> Any:
        return None

    def delivery_evidence(self) -> Sequence[DeliveryEvidence]:
        return ()


_ENV = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings (recursively in dicts and lists) from `env`
    (the caller's resolved environment; the process's own when not given)."""
    env = os.environ if env is None else env
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def secret(
    name: str, env_var: str | None, *, required: bool = True, env: Mapping[str, str] | None = None
) -> str | None:
    """A secret from the environment variable a config names (never from the config file itself),
    looked up in `env` (the resolved environment the config was loaded with; the process's own when
    not given)."""
    if not env_var:
        if required:
            raise ConfigError(f"destination {name}: no secret_env given")
        return None
    value = (os.environ if env is None else env).get(env_var)
    if required and not value:
        raise ConfigError(f"destination {name}: environment variable {env_var} is not set")
    return value
