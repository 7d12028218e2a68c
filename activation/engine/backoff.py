"""The destination's Retry-After, carried from one sync run to the next.

A destination that still answers 429/503 on a record's last try returns how long it asked to
wait (BatchResults.retry_after). The workers `note` it; at the end of sending the latest such
time is `save`d to the destination's "not before" file (SyncFiles.not_before, one per
destination, whatever the sync). The next run's `hold` waits it out when it is short (up to
`max_wait` seconds) or defers its sends until then (`deferred`, reason `retry_after`, with
`not_before`), so a rate-limited destination is not hammered again at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 86_400  # a Retry-After longer than a day is taken as a day


class Backoff:
    """The "not before" time of one destination: read at the start of a run, noted by the
    workers (thread-safe), saved at the end of sending."""

    def __init__(self, path: Path, max_wait: float):
        self.path, self.max_wait = path, max_wait
        self._not_before = 0.0  # unix time the destination's last Retry-After of this run points at
        self._lock = threading.Lock()

    def hold(self, con: duckdb.DuckDBPyConnection, sync_key: str) -> tuple[float, dt.datetime | None]:
        """(seconds to wait before sending, when sends are held until) from the Retry-After the
        destination gave on the last try of an earlier run. A short wait is waited out; a longer
        one defers this run's sends in `_decided` (reason `retry_after`, not_before that time)."""
        try:
            until = float(self.path.read_text().strip())
        except (OSError, ValueError):  # none, or unreadable: nothing to wait for
            return 0.0, None
        wait = until - time.time()
        if wait <= 0:
            self.path.unlink(missing_ok=True)
            return 0.0, None
        when = dt.datetime.fromtimestamp(until, dt.UTC).replace(tzinfo=None)
        if wait <= self.max_wait:
            return wait, when
        held = con.execute(
            """update _decided set decision = 'defer', reason = 'retry_after', not_before = ?
               where decision = 'send'""",
            [when],
        ).fetchone()
        log.warning(
            "%s: %s sends deferred until %s UTC: the destination asked to wait (Retry-After)",
            sync_key,
            held[0] if held else 0,
            f"{when:%Y-%m-%d %H:%M:%S}",
        )
        return 0.0, when

    def note(self, seconds: float) -> None:
        """The destination asked to wait `seconds` on a record's last try (called by workers)."""
        with self._lock:
            self._not_before = max(self._not_before, time.time() + min(seconds, MAX_BACKOFF_SECONDS))

    def save(self) -> None:
        """Keep the latest Retry-After of this run's last tries for the next run."""
        with self._lock:
            until = self._not_before
        if until <= time.time():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{until:.3f}\n")
        os.replace(tmp, self.path)
