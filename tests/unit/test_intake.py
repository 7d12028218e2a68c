"""activation.intake: the receiver's consent revocations, taken into the warehouse once each.

Lines are written by the receiver's own writer (EngagementLog: append, fsync, rotate), so the
files look exactly like the landing zone's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from activation.intake import IntakeResult, take_in_revocations
from activation.receiver import EngagementLog

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def _revocation(customer: str, at: str = "2026-03-02T10:00:00.000Z", channel: str = "email") -> dict:
    return {"customer_id": customer, "channel": channel, "status": "revoked", "consented_at": at,
            "source": "unsubscribe link"}  # fmt: skip


def _recorded(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "select customer_id, channel, revoked_at, source from tideline_sync.consent_revocations order by 1, 2"
    ).fetchall()


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(tmp_path / "w.duckdb"))


def test_new_lines_are_taken_in_once(tmp_path: Path, con) -> None:
    landing = tmp_path / "landing"
    log = EngagementLog(landing)
    log.append([], [_revocation("c1"), _revocation("c2", channel="sms")])
    assert take_in_revocations(con, landing, NOW) == IntakeResult(files=1, lines=2, revocations=2, skipped=0)
    assert _recorded(con) == [
        ("c1", "email", dt.datetime(2026, 3, 2, 10, 0), "unsubscribe link"),
        ("c2", "sms", dt.datetime(2026, 3, 2, 10, 0), "unsubscribe link"),
    ]
    assert take_in_revocations(con, landing, NOW) == IntakeResult()  # nothing new: nothing read
    log.append([], [_revocation("c3", at="2026-03-02T12:30:00+02:00")])  # the same file grows
    assert take_in_revocations(con, landing, NOW).revocations == 1
    assert _recorded(con)[-1] == ("c3", "email", dt.datetime(2026, 3, 2, 10, 30), "unsubscribe link")
    log.close()


def test_a_line_being_written_waits_for_the_next_sync(tmp_path: Path, con) -> None:
    folder = tmp_path / "landing" / "crm" / "consents"
    folder.mkdir(parents=True)
    path = folder / "receiver-20260302T100000Z-1-1.jsonl"
    path.write_bytes(
        b'{"customer_id": "c1", "channel": "email", "status": "revoked", "consented_at": "2026-03-02T10:00:00Z"}\n{"customer_id": "c2", "cha'
    )
    assert take_in_revocations(con, tmp_path / "landing", NOW).revocations == 1
    with path.open("ab") as fh:
        fh.write(b'nnel": "email", "status": "revoked", "consented_at": "2026-03-02T10:01:00Z"}\n')
    assert take_in_revocations(con, tmp_path / "landing", NOW) == IntakeResult(1, 1, 1, 0)
    assert [r[0] for r in _recorded(con)] == ["c1", "c2"]


def test_unusable_lines_are_skipped_and_the_rest_is_taken_in(tmp_path: Path, con) -> None:
    folder = tmp_path / "landing" / "crm" / "consents"
    folder.mkdir(parents=True)
    lines = [
        "not json",
        '["an", "array"]',
        '{"customer_id": "", "channel": "email", "status": "revoked", "consented_at": "2026-03-02T10:00:00Z"}',
        '{"customer_id": "c1", "channel": "fax", "status": "revoked", "consented_at": "2026-03-02T10:00:00Z"}',
        '{"customer_id": "c1", "channel": "email", "status": "revoked", "consented_at": "yesterday"}',
        '{"customer_id": "c1", "channel": "email", "status": "granted", "consented_at": "2026-03-02T10:00:00Z"}',
        '{"customer_id": "c9", "channel": "push", "status": "revoked", "consented_at": "2026-03-02T10:00:00Z"}',
    ]
    (folder / "receiver-x-1-1.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "crm_export.jsonl").write_text(lines[-1].replace("c9", "c8") + "\n")  # not the receiver's
    assert take_in_revocations(con, tmp_path / "landing", NOW) == IntakeResult(1, 7, 1, 6)
    assert [r[:2] for r in _recorded(con)] == [("c9", "push")]


def test_taking_a_file_in_again_records_nothing_twice(tmp_path: Path, con) -> None:
    landing = tmp_path / "landing"
    log = EngagementLog(landing)
    log.append([], [_revocation("c1"), _revocation("c2")])
    log.close()
    take_in_revocations(con, landing, NOW)
    con.execute("delete from tideline_sync.consent_intake_files")  # e.g. an older backup of the offsets
    assert take_in_revocations(con, landing, NOW) == IntakeResult(1, 2, 0, 0)
    [path] = log.consent_files
    path.write_text(path.read_text().splitlines()[0] + "\n")  # replaced by a shorter file: read from 0
    assert take_in_revocations(con, landing, NOW) == IntakeResult(1, 1, 0, 0)
    assert [r[0] for r in _recorded(con)] == ["c1", "c2"]


def test_no_landing_folder_is_nothing_to_take_in(tmp_path: Path, con) -> None:
    assert take_in_revocations(con, tmp_path / "nowhere", NOW) == IntakeResult()
