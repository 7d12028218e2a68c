"""A local SMTP server that keeps what it receives: for the demo (`make run`) and the tests.

    with SmtpSink(out_dir=Path(".tideline/outbox")) as sink:   # starts on 127.0.0.1, a free port
        host, port = sink.address
        ...                                                     # send mail to it
        sink.messages                                           # list of email.message.EmailMessage

    python -m tideline.demo.sinks.smtp_sink --port 1025 --out-dir .tideline/outbox

A message is stored before it is acknowledged, as a real server queues it before its 250:
with `out_dir`, as `<sha256(Message-ID)[:32]>.eml` (activation.reconcile.outbox_file_name),
written to a temp file and renamed into place. That folder is the outbox activation.reconcile
reads (SmtpOutbox) to settle messages whose delivery is unknown. A message whose Message-ID
was received before is stored again (SMTP cannot deduplicate) and counted in `duplicates`;
`message_id_counts()` says how often each arrived.

Faults for tests: `fail_next(n, code=451)` makes the next n RCPT or DATA commands fail
with that code; `reject_address(addr, code=550)` refuses one recipient for good;
`late_ack_next(n, seconds)` stores the next n messages and acknowledges them `seconds` late;
`hang_next(n, seconds)` holds the next n DATA commands `seconds`, then answers 451 without
storing (a server that lost the message); `data_delay` holds every acknowledgement (stored
first); `storm(rate)` draws one of 451 at DATA, a late acknowledgement or a hang for a share of
the messages (drills). Optional AUTH (LOGIN/PLAIN, without TLS: loopback only) with
`credentials={"user": "password"}`. The server runs its own asyncio loop in a daemon thread;
every method is thread-safe.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import hashlib
import logging
import os
import random
import signal
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from activation.reconcile import outbox_file_name

log = logging.getLogger(__name__)
_aiosmtpd_log = logging.getLogger("mail.log")
if _aiosmtpd_log.level == logging.NOTSET:  # aiosmtpd logs every sender and recipient address at INFO
    _aiosmtpd_log.setLevel(logging.WARNING)

_STAGES = ("rcpt", "data")


class _Handler:
    """aiosmtpd hooks: they run on the sink's loop thread and delegate to the SmtpSink."""

    def __init__(self, sink: SmtpSink):
        self._sink = sink

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        status = self._sink._rcpt_status(address)
        if status is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return "250 OK"
        return status

    async def handle_DATA(self, server, session, envelope) -> str:
        fault = self._sink._take_fault("data")
        if fault is not None:
            return fault
        behaviour, seconds = self._sink._data_behaviour()
        if behaviour == "fail":
            return "451 try again later"
        if behaviour == "hang":  # the message is lost: held past the client's timeout, never stored
            await asyncio.sleep(seconds)
            return "451 timed out"
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        self._sink._store(content, envelope.mail_from, list(envelope.rcpt_tos))
        if seconds:  # stored, acknowledged late (a slow server; tests kill a sync mid-batch)
            await asyncio.sleep(seconds)
        return "250 OK: queued"


class SmtpSink:
    """An aiosmtpd server on a background thread that stores every message it accepts."""

    def __init__(
        self,
        out_dir: str | Path | None = None,
        *,
        credentials: Mapping[str, str] | None = None,
        hostname: str = "tideline-sink",
    ):
        self.out_dir = Path(out_dir) if out_dir else None
        self._credentials = dict(credentials or {})
        self._hostname = hostname  # given, so aiosmtpd never calls socket.getfqdn() (slow without DNS)
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._messages: list[EmailMessage] = []
        self._envelopes: list[tuple[str, list[str]]] = []
        self._faults: list[list[Any]] = []  # [remaining, status, stages]
        self._rejected: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None
        self.data_delay = 0.0  # seconds every acknowledgement is held (the message is stored first)
        self._late: list[float] = []
        self._hangs: list[float] = []
        self._storm: tuple[float, random.Random, float, float] | None = None
        self._message_ids: Counter[str] = Counter()
        self.duplicates = 0  # messages whose Message-ID arrived before

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on host:port (0 picks a free port) and return the address really bound."""
        if self._thread is not None:
            raise RuntimeError("SmtpSink is already running")
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(loop.create_server(lambda: self._protocol(loop), host, port))
        except BaseException:
            loop.close()
            raise
        self._loop, self._server = loop, server
        bound = server.sockets[0].getsockname()
        self.address = (bound[0], bound[1])
        self._thread = threading.Thread(target=self._run, name=f"smtp-sink-{bound[1]}", daemon=True)
        self._thread.start()
        log.info("smtp sink listening on %s:%d", *self.address)
        return self.address

    def stop(self) -> None:
        """Stop listening, drop open connections and end the loop thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
        except Exception:  # the loop is going away regardless
            log.debug("smtp sink shutdown did not finish cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        self._loop = self._server = self._thread = None
        self.address = None

    def __enter__(self) -> SmtpSink:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _protocol(self, loop: asyncio.AbstractEventLoop) -> SMTP:
        kwargs: dict[str, Any] = {}
        if self._credentials:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        return SMTP(_Handler(self), hostname=self._hostname, loop=loop, **kwargs)

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:  # open client connections
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _authenticate(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in self._credentials and self._credentials[login] == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # -- what arrived ----------------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        """(MAIL FROM, RCPT TOs) of each message received, in the order of `messages`."""
        with self._lock:
            return [(sender, list(rcpts)) for sender, rcpts in self._envelopes]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least `count` messages have arrived (or the timeout passes); return them."""
        with self._received:
            self._received.wait_for(lambda: len(self._messages) >= count, timeout=timeout)
            return list(self._messages)

    def message_id_counts(self) -> Counter[str]:
        """How many times each Message-ID was received (more than 1: a duplicate)."""
        with self._lock:
            return Counter(self._message_ids)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()
            self._message_ids.clear()
            self.duplicates = 0

    def _store(self, content: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        ident = str(message.get("Message-ID", "")).strip()
        if self.out_dir:
            _write_atomically(
                self.out_dir / outbox_file_name(ident or hashlib.sha256(content).hexdigest()), content
            )
        with self._received:
            if ident:
                self.duplicates += 1 if self._message_ids[ident] else 0
                self._message_ids[ident] += 1
            self._messages.append(message)
            self._envelopes.append((mail_from, rcpt_tos))
            self._received.notify_all()

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        code: int = 451,
        message: str = "try again later",
        *,
        stages: Iterable[str] = _STAGES,
    ) -> None:
        """Make the next n RCPT or DATA commands (or only the given stages) fail with `code message`."""
        stages = tuple(stages)
        if not set(stages) <= set(_STAGES) or not stages:
            raise ValueError(f"stages must be a subset of {_STAGES}")
        if not 400 <= code <= 599:
            raise ValueError("code must be an SMTP error code (4xx or 5xx)")
        if n > 0:
            with self._lock:
                self._faults.append([n, f"{code} {message}", stages])

    def reject_address(self, addr: str, code: int = 550, message: str = "mailbox unavailable") -> None:
        """Refuse RCPT TO:<addr> from now on (the reply names the address, as real servers do)."""
        with self._lock:
            self._rejected[addr.strip().lower()] = f"{code} {message}: <{addr}>"

    def late_ack_next(self, n: int, seconds: float) -> None:
        """Store the next n messages, then acknowledge each `seconds` late."""
        with self._lock:
            self._late.extend([seconds] * n)

    def hang_next(self, n: int, seconds: float) -> None:
        """Hold the next n DATA commands `seconds`, then answer 451 without storing the message."""
        with self._lock:
            self._hangs.extend([seconds] * n)

    def storm(
        self, rate: float, *, seed: int = 0, late_seconds: float = 2.0, hang_seconds: float = 4.0
    ) -> None:
        """From now on each message is, with probability `rate`, one fault drawn evenly from: 451
        at DATA, stored and acknowledged `late_seconds` late, or held `hang_seconds` and lost."""
        with self._lock:
            self._storm = (rate, random.Random(seed), late_seconds, hang_seconds) if rate > 0 else None

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rejected.clear()
            self._late.clear()
            self._hangs.clear()
            self._storm = None

    def _data_behaviour(self) -> tuple[str, float]:
        """("store", seconds to hold the acknowledgement), ("hang", seconds) or ("fail", 0)."""
        with self._lock:
            if self._hangs:
                return "hang", self._hangs.pop(0)
            if self._late:
                return "store", self._late.pop(0)
            if self._storm is not None:
                rate, rng, late, hang = self._storm
                if rng.random() < rate:
                    kind = rng.choice(("fail", "late", "hang"))
                    return (
                        (kind, hang)
                        if kind == "hang"
                        else ("store", late)
                        if kind == "late"
                        else ("fail", 0.0)
                    )
            return "store", self.data_delay

    def _take_fault(self, stage: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if stage in fault[2]:
                    fault[0] -= 1
                    if fault[0] <= 0:
                        self._faults.remove(fault)
                    return fault[1]
        return None

    def _rcpt_status(self, address: str) -> str | None:
        fault = self._take_fault("rcpt")
        if fault is not None:
            return fault
        with self._lock:
            return self._rejected.get(address.strip().lower())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: a reader never sees half a message."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SMTP sink: keeps every message it receives.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--out-dir", default=None, help="write each message as <hash of Message-ID>.eml here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    sink = SmtpSink(out_dir=args.out_dir)
    host, port = sink.start(args.host, args.port)
    print(f"smtp sink listening on {host}:{port}" + (f", writing to {args.out_dir}" if args.out_dir else ""))
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
