"""A real loopback HTTP receiver for the webhook and CRM destinations (tests, `make run`, benchmarks).

    with HttpSink(out_dir=tmp / "sink", secret="s3cret") as sink:    # or sink.start() / sink.stop()
        url = sink.base_url + "/sms"                                    # real port, 127.0.0.1
        ...
        sink.count_records(), sink.received_keys(), sink.duplicates, sink.requests

Every POST path accepts a JSON body and answers 200 with per-record results:
webhook-shaped bodies ({"records": [...]}) get {"results": [{"idempotency_key", "status": "ok",
"id"}]}; CRM-shaped bodies ({"inputs": [...]}) get {"results": [{"id", "status": "ok"}]} (207 with
an "errors" list when some ids are rejected); any other JSON body gets {"status": "ok"}.
GET /health returns the counters.

Auth: with `secret`, webhook requests (any body but a CRM-shaped one) need a valid
X-Tideline-Signature, else 401; with `token`, CRM-shaped requests need `Authorization: Bearer
<token>`, else 401. So one sink can serve signed webhooks and bearer-auth CRM calls at once.

Order of handling for a POST: injected failure (fail_next, fail_every, storm) -> auth -> dedupe
by (path, Idempotency-Key) -> process, deduplicating each record by (path, its idempotency_key)
-> injected delay (delay_next: the work is done, the response is late, as when a client times out).

Records are deduplicated one by one, as docs/activation.md asks of every gateway: a record whose
`idempotency_key` (webhook records and CRM inputs carry one) was accepted before on that path is
answered "ok" with the same id, as already processed, and not processed again (counted in
`record_duplicates`, its key in received_key_counts() but not in received_keys()). So a batch
resent after a crash, cut differently around a consent change, still delivers each record once.

Only processed requests and records count as deliveries: count_records() and received_keys()
cover them (a deduplicated repeat is counted in `duplicates` or `record_duplicates` instead;
without dedupe a repeat is processed again and its keys appear twice). `requests` holds every
request received, whatever its fate. With `out_dir`, each request is appended as one JSON line to
out_dir/<path-slug>.jsonl (the Authorization header is masked there) and every accepted record key
to out_dir/<path-slug>.accepted, before the response goes out (the log activation.reconcile reads
to settle records whose delivery is unknown). `lean=True` keeps no requests or keys in memory,
only counts, and so does not deduplicate records one by one.

Fault storm (drills, `storm(rate)`): each request is, with probability `rate`, answered 429 with
Retry-After, 500 or 503 unprocessed, hangs past the client's timeout unprocessed (then 503), or is
processed and acknowledged late (past the client's timeout).

Run standalone: python -m tideline.demo.sinks.http_sink --port 8787 --out-dir .tideline/sink
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from requests.structures import CaseInsensitiveDict

from activation.destinations.http_common import dumps, loads
from activation.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass
class SinkRequest:
    method: str
    path: str
    headers: CaseInsensitiveDict
    body: Any  # parsed JSON (None if empty or not JSON)
    raw: bytes  # the body as received (for signature checks)
    status: int = 0  # the status the sink answered
    duplicate: bool = False
    received_at: float = field(default_factory=time.time)


def path_slug(path: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", path.split("?", 1)[0]).strip("_")
    return slug or "root"


def _mask(value: str) -> str:
    scheme, _, rest = value.partition(" ")
    return f"{scheme} ***" if rest else "***"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not make stop() wait
    allow_reuse_address = True

    def __init__(self, address, handler, sink: HttpSink):
        self.sink = sink
        super().__init__(address, handler)

    def handle_error(self, request, client_address):  # a client that hung up is not an error here
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the destinations' pooled sessions expect
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections end after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sink._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/health", "/_sink/stats"):
            self._reply(200, dumps(self.server.sink.stats()))
        else:
            self._reply(404, dumps({"error": "not found"}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        status, payload, extra, delay = self.server.sink._handle(
            "POST", self.path, CaseInsensitiveDict(self.headers.items()), raw
        )
        if delay:
            time.sleep(delay)
        self._reply(status, payload, extra)

    def _not_allowed(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        self._reply(405, dumps({"error": "method not allowed"}), {"Allow": "POST, GET"})

    do_PUT = do_PATCH = do_DELETE = _not_allowed


class HttpSink:
    """A threaded loopback HTTP server that records what the HTTP destinations send."""

    def __init__(
        self,
        out_dir: str | Path | None = None,
        *,
        secret: str | bytes | None = None,
        token: str | None = None,
        dedupe: bool = True,
        lean: bool = False,
        tolerance_seconds: float = 300,
    ):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.secret = secret
        self.token = token
        self.dedupe = dedupe
        self.lean = lean
        self.tolerance_seconds = tolerance_seconds
        self._lock = threading.Lock()
        self._files: dict[str, Any] = {}
        self._file_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.reset()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a daemon thread; returns the base URL with the real port."""
        if self._server is not None:
            return self.base_url
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._server = _Server((host, port), _Handler, self)
        real_host, real_port = self._server.server_address[:2]
        self.base_url = f"http://{real_host}:{real_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-sink", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._file_lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()

    def __enter__(self) -> HttpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "") -> str:
        return self.base_url + ("/" + path.lstrip("/") if path else "")

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # --- test and benchmark controls -------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, counters, injected behaviour and the dedupe memory."""
        with self._lock:
            self._requests: list[SinkRequest] = []
            self._keys: list[str] = []
            self._received: Counter[str] = Counter()
            self._seen: dict[tuple[str, str], tuple[int, bytes]] = {}
            self._accepted: dict[tuple[str, str], str] = {}  # (path, record key) -> the id answered
            self.request_count = 0  # every request received
            self.processed = 0  # requests processed (deliveries)
            self.records = 0  # records processed (a record deduplicated by its key is not counted)
            self.duplicates = 0  # repeated requests answered from the dedupe memory
            self.record_duplicates = 0  # records answered as already processed, by their key
            self._storm: tuple[float, random.Random, float, float, int] | None = None
            self.unauthorized = 0
            self.injected_failures = 0
            self._fail_next: list[tuple[int, float | None]] = []
            self._fail_every: tuple[int, int, float | None] | None = None
            self._fail_every_count = 0
            self._delay_next: list[float] = []
            self._reject: dict[str, tuple[str, bool]] = {}

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """The next n requests get `status` (with Retry-After when given), unprocessed."""
        with self._lock:
            self._fail_next.extend([(status, retry_after)] * n)

    def fail_every(self, k: int, status: int = 429, retry_after: float | None = 1) -> None:
        """Every k-th request from now on gets `status` (k <= 0 turns it off)."""
        with self._lock:
            self._fail_every = (k, status, retry_after) if k > 0 else None
            self._fail_every_count = 0

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n requests are processed, then answered `seconds` late."""
        with self._lock:
            self._delay_next.extend([seconds] * n)

    def storm(
        self,
        rate: float,
        *,
        seed: int = 0,
        hang_seconds: float = 3.0,
        late_seconds: float = 3.0,
        retry_after: int = 1,
    ) -> None:
        """From now on each request is, with probability `rate`, one fault drawn evenly from: 429
        with Retry-After, 500, 503 (unprocessed), a hang of `hang_seconds` then 503 (unprocessed),
        or processed and answered `late_seconds` late. A rate of 0 turns the storm off."""
        with self._lock:
            self._storm = (
                (rate, random.Random(seed), hang_seconds, late_seconds, retry_after) if rate > 0 else None
            )

    def reject_ids(self, ids: Iterable[str], message: str = "rejected", retryable: bool = False) -> None:
        """Per-record errors for these customer ids / CRM ids / idempotency keys."""
        with self._lock:
            for i in ids:
                self._reject[str(i)] = (message, retryable)

    # --- what was received -----------------------------------------------------------------------

    @property
    def requests(self) -> list[SinkRequest]:
        """Every request received (empty in lean mode)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[SinkRequest]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def count_records(self) -> int:
        """Records in processed requests (webhook records + CRM inputs)."""
        with self._lock:
            return self.records

    def received_keys(self) -> list[str]:
        """Record idempotency keys of processed webhook requests, with multiplicity (not in lean mode)."""
        if self.lean:
            raise RuntimeError("HttpSink(lean=True) keeps no keys; use count_records() and duplicates")
        with self._lock:
            return list(self._keys)

    def key_counts(self) -> Counter:
        """Times each record key was processed (1 each when nothing was delivered twice)."""
        return Counter(self.received_keys())

    def received_key_counts(self) -> Counter:
        """Times each record key arrived in an accepted request, repeats answered from the dedupe
        memory included (not in lean mode)."""
        if self.lean:
            raise RuntimeError("HttpSink(lean=True) keeps no keys")
        with self._lock:
            return Counter(self._received)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.request_count,
                "processed": self.processed,
                "records": self.records,
                "duplicates": self.duplicates,
                "record_duplicates": self.record_duplicates,
                "unauthorized": self.unauthorized,
                "injected_failures": self.injected_failures,
            }

    # --- request handling (called from handler threads) ------------------------------------------

    def _authorized(self, headers: CaseInsensitiveDict, raw: bytes, body: Any) -> bool:
        """CRM-shaped bodies (with "inputs") use bearer auth: checked against `token` when set.
        Every other request (webhooks) must carry a valid HMAC signature when `secret` is set."""
        if isinstance(body, dict) and isinstance(body.get("inputs"), list):
            return self.token is None or headers.get("Authorization") == f"Bearer {self.token}"
        return self.secret is None or verify_signature(
            self.secret,
            headers.get(TIMESTAMP_HEADER),
            raw,
            headers.get(SIGNATURE_HEADER),
            self.tolerance_seconds,
        )

    def _handle(
        self, method: str, path: str, headers: CaseInsensitiveDict, raw: bytes
    ) -> tuple[int, bytes, dict[str, str], float]:
        try:
            body = loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        extra: dict[str, str] = {}
        duplicate = False
        delay = 0.0
        accepted: list[str] = []
        with self._lock:
            self.request_count += 1
            if self._delay_next:
                delay = self._delay_next.pop(0)
            failure, storm_delay = self._injected_failure()
            delay = max(delay, storm_delay)
            key = headers.get("Idempotency-Key")
            if failure is not None:
                self.injected_failures += 1
                status, retry_after = failure
                payload = dumps({"error": "injected failure"})
                if retry_after is not None:
                    extra["Retry-After"] = (
                        str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
                    )
            elif not self._authorized(headers, raw, body):
                self.unauthorized += 1
                status, payload = 401, dumps({"error": "unauthorized"})
            elif bad_json:
                status, payload = 400, dumps({"error": "invalid JSON"})
            elif self.dedupe and key and (path, key) in self._seen:
                self.duplicates += 1
                duplicate = True
                status, payload = self._seen[(path, key)]
                self._count_received(body)
            else:
                status, payload = self._process(path, body, accepted)
                if self.dedupe and key:
                    self._seen[(path, key)] = (status, payload)
            request = SinkRequest(method, path, headers, body, raw, status, duplicate)
            if not self.lean:
                self._requests.append(request)
        if self.out_dir is not None:
            self._write(request, accepted)
        return status, payload, extra, delay

    def _injected_failure(self) -> tuple[tuple[int, float | None] | None, float]:
        """(status and Retry-After of an injected failure or None, seconds to hold the answer);
        called with the lock held."""
        if self._fail_next:
            return self._fail_next.pop(0), 0.0
        if self._fail_every is not None:
            self._fail_every_count += 1
            k, status, retry_after = self._fail_every
            if self._fail_every_count % k == 0:
                return (status, retry_after), 0.0
        if self._storm is not None:
            rate, rng, hang, late, retry_after = self._storm
            if rng.random() < rate:
                kind = rng.choice(("429", "500", "503", "hang", "late"))
                if kind == "429":
                    return (429, retry_after), 0.0
                if kind == "hang":
                    return (503, None), hang
                if kind == "late":
                    return None, late
                return (int(kind), None), 0.0
        return None, 0.0

    @staticmethod
    def _items(body: Any) -> tuple[str, list[Any]]:
        """("records", webhook records) or ("inputs", CRM inputs) or ("", [])."""
        for name in ("records", "inputs"):
            if isinstance(body, dict) and isinstance(body.get(name), list):
                return name, body[name]
        return "", []

    def _count_received(self, body: Any) -> None:
        if self.lean:
            return
        for item in self._items(body)[1]:
            key = item.get("idempotency_key") if isinstance(item, dict) else None
            if key:
                self._received[str(key)] += 1

    def _already(self, path: str, key: str) -> str | None:
        """The id answered when this record key was accepted on this path before (per-record dedupe)."""
        if not self.dedupe or self.lean or not key:
            return None
        return self._accepted.get((path, key))

    def _process(self, path: str, body: Any, accepted: list[str]) -> tuple[int, bytes]:
        """Count a delivery and build its response (called with the lock held); the keys of the
        records accepted now are appended to `accepted`."""
        self.processed += 1
        self._count_received(body)
        kind, items = self._items(body)
        if kind == "records":
            results = []
            for rec in items:
                rec = rec if isinstance(rec, dict) else {}
                key = str(rec.get("idempotency_key", ""))
                known = self._already(path, key)
                if known is not None:
                    self.record_duplicates += 1
                    results.append({"idempotency_key": key, "status": "ok", "id": known})
                    continue
                self.records += 1
                if not self.lean:
                    self._keys.append(key)
                reject = self._reject.get(str(rec.get("customer_id"))) or self._reject.get(key)
                if reject:
                    results.append(
                        {
                            "idempotency_key": key,
                            "status": "error",
                            "error": reject[0],
                            "retryable": reject[1],
                        }
                    )
                else:
                    remote_id = "wh-" + key[:12]
                    self._accept(path, key, remote_id, accepted)
                    results.append({"idempotency_key": key, "status": "ok", "id": remote_id})
            return 200, dumps({"results": results})
        if kind == "inputs":
            results, errors = [], []
            for item in items:
                item = item if isinstance(item, dict) else {}
                item_id = item.get("id")
                key = str(item.get("idempotency_key") or "")
                if self._already(path, key) is not None:
                    self.record_duplicates += 1
                    results.append({"id": item_id, "status": "ok"})
                    continue
                self.records += 1
                if not self.lean and key:
                    self._keys.append(key)
                reject = self._reject.get(str(item_id)) or self._reject.get(key)
                if reject:
                    errors.append({"id": item_id, "message": reject[0], "retryable": reject[1]})
                else:
                    self._accept(path, key, str(item_id), accepted)
                    results.append({"id": item_id, "status": "ok"})
            if errors:
                return 207, dumps({"results": results, "errors": errors})
            return 200, dumps({"results": results})
        return 200, dumps({"status": "ok"})

    def _accept(self, path: str, key: str, remote_id: str, accepted: list[str]) -> None:
        if not key:
            return
        if self.dedupe and not self.lean:
            self._accepted[(path, key)] = remote_id
        accepted.append(key)

    def _write(self, request: SinkRequest, accepted: list[str]) -> None:
        headers = {k: (_mask(v) if k.lower() == "authorization" else v) for k, v in request.headers.items()}
        line = dumps(
            {
                "received_at": request.received_at,
                "method": request.method,
                "path": request.path,
                "status": request.status,
                "duplicate": request.duplicate,
                "headers": headers,
                "body": request.body,
            }
        )
        slug = path_slug(request.path)
        with self._file_lock:
            self._append(f"{slug}.jsonl", line + b"\n")
            if accepted:  # the accepted-keys log activation.reconcile reads (AcceptedKeysLog)
                self._append(f"{slug}.accepted", "".join(k + "\n" for k in accepted).encode())

    def _append(self, name: str, data: bytes) -> None:
        """Append to out_dir/name and flush (called with the file lock held)."""
        fh = self._files.get(name)
        if fh is None:
            assert self.out_dir is not None
            fh = self._files[name] = (self.out_dir / name).open("ab")
        fh.write(data)
        fh.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A loopback HTTP sink for the webhook and CRM destinations.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--secret-env", default=None, help="env var holding the HMAC secret to require")
    parser.add_argument("--token-env", default=None, help="env var holding the bearer token to require")
    parser.add_argument("--no-dedupe", action="store_true")
    parser.add_argument("--lean", action="store_true")
    args = parser.parse_args(argv)
    sink = HttpSink(
        args.out_dir,
        secret=os.environ.get(args.secret_env) if args.secret_env else None,
        token=os.environ.get(args.token_env) if args.token_env else None,
        dedupe=not args.no_dedupe,
        lean=args.lean,
    )
    print(f"http sink listening on {sink.start(args.host, args.port)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
