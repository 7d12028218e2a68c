"""The SMTP delivery journal (activation.engine.journal.DeliveryJournal): what is made durable
before a message is handed over, and that workers handing over at once do not queue for the disk.

An `A` line (about to hand a record over) must be on disk before the send: a machine crash that
lost it would make the next run release the record and send it twice. So each attempt is fsynced,
but outside the journal's lock, so that concurrent attempts share the disk's flushes instead of
queueing behind one another (with the lock held, four workers were capped at one fsync each in
turn). An `S` line (accepted) is only flushed: losing it takes a machine crash and leaves the
record `unknown`, never resent.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from activation.engine import journal as journal_module
from activation.engine.journal import DeliveryJournal

KEYS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(3)]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """os.fsync as the journal calls it, recorded; each call waits until three are in progress at
    once (so it fails, BrokenBarrierError, when the journal holds its lock while it syncs)."""
    calls: list[int] = []
    barrier = threading.Barrier(3, timeout=5)
    real = journal_module.os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        barrier.wait()
        real(fd)

    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    return calls


def _in_threads(action, keys: list[str]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            action(key)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return errors


def test_concurrent_attempts_are_fsynced_together_not_one_after_another(tmp_path: Path, fsyncs) -> None:
    journal = DeliveryJournal(tmp_path / "sync.journal")
    errors = _in_threads(journal.attempt, KEYS)
    journal.close()
    assert errors == []  # all three attempts were syncing at the same time
    assert len(fsyncs) == 3
    attempted, sent = DeliveryJournal.read(tmp_path / "sync.journal")
    assert attempted == set(KEYS) and sent == {}


def test_an_acceptance_is_written_for_the_next_run_without_an_fsync(tmp_path: Path, fsyncs) -> None:
    journal = DeliveryJournal(tmp_path / "sync.journal")
    for key in KEYS:
        journal.record(key, f"<{key}@shop.example.com>")
    # read while the journal is still open, as the next run after a SIGKILL would: flushed lines
    attempted, sent = DeliveryJournal.read(tmp_path / "sync.journal")
    journal.close()
    assert fsyncs == []
    assert attempted == set() and sent == {key: f"<{key}@shop.example.com>" for key in KEYS}
