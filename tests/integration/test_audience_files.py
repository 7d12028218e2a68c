"""AudienceFilesDestination writing real files: hashes, no raw identifiers, atomic idempotent parts, manifest."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from pathlib import Path

import pytest

from activation.destinations.audience_files import AudienceFilesDestination, normalize_phone
from activation.destinations.base import ConfigError, Destination, OutboundRecord, SyncContext

CONTEXT = SyncContext(sync_id="sync-42", segment="high_propensity_buyers", destination="ads", mode="mirror")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rec(customer_id: str, action: str = "upsert", **fields) -> OutboundRecord:
    key = sha(f"ads|high_propensity_buyers|{customer_id}|{action}")
    return OutboundRecord(customer_id=customer_id, idempotency_key=key, action=action, fields=fields)


def make(tmp_path: Path, **config) -> AudienceFilesDestination:
    destination = AudienceFilesDestination.from_config(
        "ads", {"directory": str(tmp_path / "audiences"), **config}
    )
    destination.validate()
    return destination


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_is_a_destination(tmp_path):
    d = make(tmp_path)
    assert isinstance(d, Destination)
    assert d.kind == "audience_files" and d.max_batch_size == 5000


def test_hashes_match_independently_normalised_values(tmp_path):
    d = make(tmp_path)
    results = d.send_batch(
        [
            rec("c1", email=" Ada@Example.COM ", phone="+44 (0)20 7946 0958"),
            rec("c2", email="first.last+promo@gmail.com", phone=" +1 (415) 555-0100 "),
            rec("c3", email=None, phone="0044 20 7946 0000 ext. 12"),
            rec("c4", email="bob@example.org"),
        ],
        CONTEXT,
    )
    assert [r.status for r in results] == ["sent"] * 4
    manifest = d.finalize(CONTEXT)
    folder = tmp_path / "audiences" / "high_propensity_buyers" / "sync-42"
    assert (folder / "add.csv").read_text().splitlines()[0] == "email_sha256,phone_sha256"
    rows = read_csv(folder / "add.csv")
    assert rows == [
        {"email_sha256": sha("ada@example.com"), "phone_sha256": sha("442079460958")},
        # gmail dots and +tags are kept; the phone is E.164 digits without the "+"
        {"email_sha256": sha("first.last+promo@gmail.com"), "phone_sha256": sha("14155550100")},
        {"email_sha256": "", "phone_sha256": sha("442079460000")},
        {"email_sha256": sha("bob@example.org"), "phone_sha256": ""},
    ]
    assert manifest["files"]["add"]["rows"] == 4 and manifest["files"]["remove"]["rows"] == 0


def test_no_raw_identifier_anywhere_in_the_output(tmp_path):
    d = make(tmp_path, include_customer_id=True)
    raw = {
        "c1": (" Ada@Example.COM ", "+44 (0)20 7946 0958"),
        "c2": ("grace.hopper@navy.example", "+1 415 555 0100"),
        "c3": ("linus@kernel.example", "+46701234567"),
    }
    batch = [rec(cid, email=e, phone=p) for cid, (e, p) in raw.items()]
    batch.append(rec("c4", action="delete", email="gone@example.com", phone="+33 6 12 34 56 78"))
    assert all(r.status == "sent" for r in d.send_batch(batch, CONTEXT))
    d.finalize(CONTEXT)
    files = [p for p in (tmp_path / "audiences").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"add.csv", "remove.csv", "manifest.json"}
    needles = ["ada@example.com", "Ada@Example.COM", "grace", "linus", "gone@example.com"]
    needles += [
        "442079460958",
        "2079460958",
        "14155550100",
        "4155550100",
        "46701234567",
        "33612345678",
        "612345678",
    ]
    for path in files:  # the CSVs, the manifest and the identity state (SQLite)
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, f"{needle!r} found in {path.name}"
    # customer ids are only there because include_customer_id is set
    assert read_csv(d.sync_dir(CONTEXT) / "add.csv")[0]["customer_id"] == "c1"


def test_a_retried_batch_does_not_duplicate_rows(tmp_path):
    d = make(tmp_path)
    batch = [rec(f"c{i}", email=f"user{i}@example.com") for i in range(100)]
    d.send_batch(batch, CONTEXT)
    d.send_batch(batch, CONTEXT)  # e.g. the engine retried after a timeout
    d.send_batch(list(reversed(batch)), CONTEXT)  # same records, other order: same part
    d.send_batch([rec("c100", email="user100@example.com")], CONTEXT)  # another batch: another part
    folder = d.sync_dir(CONTEXT)
    parts = sorted(p.name for p in folder.glob("add-part-*.csv"))
    assert len(parts) == 2
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    manifest = d.finalize(CONTEXT)
    assert manifest["files"]["add"]["rows"] == 101
    assert sorted(p["rows"] for p in manifest["files"]["add"]["parts"]) == [1, 100]
    assert len(read_csv(folder / "add.csv")) == 101


def test_mirror_mode_splits_adds_and_removes_and_the_manifest_counts_them(tmp_path):
    d = make(tmp_path, audience="vip_lookalikes")
    first = [rec(f"a{i}", email=f"a{i}@example.com") for i in range(5)]
    second = [rec(f"b{i}", action="send", phone=f"+4479460000{i:02d}") for i in range(3)]
    second += [rec(f"r{i}", action="delete", email=f"r{i}@example.com") for i in range(2)]
    assert all(r.status == "sent" for r in d.send_batch(first, CONTEXT) + d.send_batch(second, CONTEXT))
    manifest = d.finalize(CONTEXT)
    folder = tmp_path / "audiences" / "vip_lookalikes" / "sync-42"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["add.csv", "remove.csv", "manifest.json"]
        + [p["file"] for p in manifest["files"]["add"]["parts"] + manifest["files"]["remove"]["parts"]]
    )
    assert len(manifest["files"]["add"]["parts"]) == 2 and len(manifest["files"]["remove"]["parts"]) == 1
    assert manifest["files"]["add"]["rows"] == 8 and manifest["files"]["remove"]["rows"] == 2
    assert {r["email_sha256"] for r in read_csv(folder / "remove.csv")} == {
        sha("r0@example.com"),
        sha("r1@example.com"),
    }
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"] and on_disk["audience"] == "vip_lookalikes"
    assert on_disk["columns"] == ["email_sha256", "phone_sha256"]


def test_mirror_deletes_without_fields_use_the_hashes_remembered_from_the_add(tmp_path):
    d = make(tmp_path)
    first = SyncContext(sync_id="sync-1", segment="high_propensity_buyers", destination="ads", mode="mirror")
    second = SyncContext(sync_id="sync-2", segment="high_propensity_buyers", destination="ads", mode="mirror")
    d.send_batch(
        [rec("c1", email="Ada@Example.com", phone="+447700900123"), rec("c2", email="b@example.com")], first
    )
    d.finalize(first)
    # the planner's deletes carry no fields: the row left the segment
    results = d.send_batch([rec("c1", action="delete"), rec("c9", action="delete")], second)
    assert [r.status for r in results] == ["sent", "failed"]
    assert results[1].error == "no email or phone to hash" and not results[1].retryable
    manifest = d.finalize(second)
    assert manifest["files"]["remove"]["rows"] == 1 and manifest["files"]["add"]["rows"] == 0
    assert read_csv(d.sync_dir(second) / "remove.csv") == [
        {"email_sha256": sha("ada@example.com"), "phone_sha256": sha("447700900123")}
    ]
    # the state lives outside the audience folder, and a removed customer is forgotten
    assert not list(d.sync_dir(second).parent.rglob("*.sqlite3"))
    assert (tmp_path / "audiences" / ".state" / "high_propensity_buyers.sqlite3").exists()
    third = SyncContext(sync_id="sync-3", segment="high_propensity_buyers", destination="ads", mode="mirror")
    assert d.send_batch([rec("c1", action="delete")], third)[0].status == "failed"


def test_a_record_without_a_usable_identifier_fails_alone(tmp_path):
    d = make(tmp_path)
    results = d.send_batch(
        [
            rec("c1", email="ok@example.com"),
            rec("c2", email="not-an-email", phone="020 7946 0958"),  # national number, no default country
            rec("c3"),
            rec("c4", action="archive", email="x@example.com"),
        ],
        CONTEXT,
    )
    assert [r.status for r in results] == ["sent", "failed", "failed", "failed"]
    assert results[1].error == results[2].error == "no email or phone to hash"
    assert not any(r.retryable for r in results)
    assert "example" not in (results[3].error or "")


def test_default_country_code_and_e164_phone_format(tmp_path):
    d = make(tmp_path, default_country_code="+44", phone_format="e164", identifiers=["phone"])
    assert (
        d.send_batch([rec("c1", phone="020 7946 0958", email="ignored@example.com")], CONTEXT)[0].status
        == "sent"
    )
    d.finalize(CONTEXT)
    assert read_csv(d.sync_dir(CONTEXT) / "add.csv") == [{"phone_sha256": sha("+442079460958")}]


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 (0)20 7946 0958", None, "442079460958"),
        ("0044 20 7946 0958", None, "442079460958"),
        ("+1 (415) 555-0100 x123", None, "14155550100"),
        ("(415) 555-0100", "1", "14155550100"),
        ("1-415-555-0100", "1", "14155550100"),
        ("06 12 34 56 78", "33", "33612345678"),
        ("06 1234 5678", "39", "390612345678"),  # Italy keeps its leading 0
        (4155550100, "1", "14155550100"),
        ("020 7946 0958", None, None),  # no country code: unusable
        ("+44 20 CALL NOW", None, None),
        ("+12", None, None),
        ("", "44", None),
        (None, "44", None),
    ],
)
def test_phone_normalisation(raw, country, expected):
    assert normalize_phone(raw, country) == expected


def test_finalize_without_parts_writes_nothing_and_works_standalone(tmp_path):
    d = make(tmp_path)
    assert d.finalize(CONTEXT) is None
    assert not (tmp_path / "audiences").exists()
    d.send_batch([rec("c1", email="a@example.com")], CONTEXT)
    # e.g. after a crash: a fresh instance finalises from the parts on disk
    manifest = make(tmp_path).finalize(CONTEXT)
    assert manifest["files"]["add"]["rows"] == 1


def test_the_next_run_finalises_what_a_crashed_run_left_in_parts(tmp_path):
    """A run that died after writing its parts (before or during finalize) left no add.csv and no
    manifest. The next run's finalize finishes that folder too, even when it sent nothing itself,
    and leaves finished folders alone."""
    d = make(tmp_path)
    done = SyncContext(sync_id="sync-done", segment=CONTEXT.segment, destination="ads", mode="mirror")
    d.send_batch([rec("d1", email="d1@example.com")], done)
    first = d.finalize(done)
    written = (d.sync_dir(done) / "manifest.json").stat().st_mtime_ns
    crashed = SyncContext(sync_id="sync-crashed", segment=CONTEXT.segment, destination="ads", mode="mirror")
    d.send_batch([rec(f"c{i}", email=f"user{i}@example.com") for i in range(3)], crashed)
    d.send_batch([rec("r1", action="delete", email="r1@example.com")], crashed)

    rerun = SyncContext(sync_id="sync-rerun", segment=CONTEXT.segment, destination="ads", mode="mirror")
    assert make(tmp_path).finalize(rerun) is None  # the rerun sent nothing: no folder of its own
    folder = d.sync_dir(crashed)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sync_id"] == "sync-crashed" and manifest["recovered_by"] == "sync-rerun"
    assert (manifest["files"]["add"]["rows"], manifest["files"]["remove"]["rows"]) == (3, 1)
    assert len(read_csv(folder / "add.csv")) == 3 and len(read_csv(folder / "remove.csv")) == 1
    assert first["sync_id"] == "sync-done"
    assert (d.sync_dir(done) / "manifest.json").stat().st_mtime_ns == written  # untouched
    assert not (tmp_path / "audiences" / "high_propensity_buyers" / "sync-rerun").exists()


def test_a_record_resent_after_a_crash_is_written_once(tmp_path):
    """A run wrote a part and died before the ledger recorded it; the rerun resends those records,
    cut into other batches. They are answered as sent without a second row: the killed run's
    folder, finished by the rerun's finalize, holds them, also for a later run that resends the
    rest. A run that finalised normally had recorded everything, so a later full resync writes
    its rows again."""
    d = make(tmp_path)
    crashed = SyncContext(sync_id="sync-crashed", segment=CONTEXT.segment, destination="ads", mode="mirror")
    batch = [rec(f"c{i}", email=f"user{i}@example.com") for i in range(4)]
    d.send_batch(batch, crashed)
    rerun = SyncContext(sync_id="sync-rerun", segment=CONTEXT.segment, destination="ads", mode="mirror")
    again = make(tmp_path)  # a new process
    results = again.send_batch([batch[1], batch[3], rec("c9", email="user9@example.com")], rerun)
    assert [r.status for r in results] == ["sent"] * 3
    again.finalize(rerun)
    assert [r["email_sha256"] for r in read_csv(again.sync_dir(rerun) / "add.csv")] == [
        sha("user9@example.com")
    ]
    assert len(read_csv(again.sync_dir(crashed) / "add.csv")) == 4

    later = SyncContext(sync_id="sync-later", segment=CONTEXT.segment, destination="ads", mode="mirror")
    again.send_batch([batch[0], rec("c9", email="user9@example.com")], later)  # e.g. the rerun's try failed
    again.finalize(later)
    assert [r["email_sha256"] for r in read_csv(again.sync_dir(later) / "add.csv")] == [
        sha("user9@example.com")
    ]

    # a run whose part could not be written (killed between noting its keys and writing it):
    # its records are not hidden from the next run, which writes them
    new = [rec(f"n{i}", email=f"new{i}@example.com") for i in range(2)]
    broken = SyncContext(sync_id="sync-broken", segment=CONTEXT.segment, destination="ads", mode="mirror")
    again.sync_dir(broken).write_text("not a folder")
    assert [r.status for r in again.send_batch(new, broken)] == ["failed", "failed"]
    last = SyncContext(sync_id="sync-last", segment=CONTEXT.segment, destination="ads", mode="mirror")
    again.send_batch(new, last)
    rows = [row for part in again.sync_dir(last).glob("add-part-*.csv") for row in read_csv(part)]
    assert sorted(r["email_sha256"] for r in rows) == sorted(sha(f"new{i}@example.com") for i in range(2))


def test_customer_ids_cannot_smuggle_spreadsheet_formulas(tmp_path):
    """A customer id that starts with = + - @ or a tab or carriage return would run as a formula
    when the file is opened in a spreadsheet: it is written with a leading apostrophe."""
    d = make(tmp_path, include_customer_id=True)
    ids = ['=HYPERLINK("http://x.example","y")', "+1", "-2", "@SUM(A1)", "\tcmd", "\rcr", "c-7", "plain"]
    d.send_batch([rec(c, email=f"u{i}@example.com") for i, c in enumerate(ids)], CONTEXT)
    d.finalize(CONTEXT)
    for name in ("add.csv", *(p.name for p in d.sync_dir(CONTEXT).glob("add-part-*.csv"))):
        cells = [row["customer_id"] for row in read_csv(d.sync_dir(CONTEXT) / name)]
        assert sorted(cells) == sorted(
            [
                '\'=HYPERLINK("http://x.example","y")',
                "'+1",
                "'-2",
                "'@SUM(A1)",
                "'\tcmd",
                "'\rcr",
                "c-7",
                "plain",
            ]
        ), name


def test_threads_write_their_own_parts(tmp_path):
    d = make(tmp_path)

    def worker(t: int) -> None:
        for b in range(10):
            d.send_batch(
                [rec(f"t{t}-{b}-{i}", email=f"t{t}.{b}.{i}@example.com") for i in range(50)], CONTEXT
            )

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    manifest = d.finalize(CONTEXT)
    assert len(manifest["files"]["add"]["parts"]) == 40 and manifest["files"]["add"]["rows"] == 2000


def test_an_unwritable_directory_fails_the_batch_retryable(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    d = AudienceFilesDestination.from_config("ads", {"directory": str(blocker)})
    results = d.send_batch([rec("c1", email="a@example.com"), rec("c2")], CONTEXT)
    assert [(r.status, r.retryable) for r in results] == [("failed", True), ("failed", False)]
    assert results[0].error.startswith("could not write audience file")


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "directory"),
        ({"directory": "x", "identifiers": ["email", "maid"]}, "identifiers"),
        ({"directory": "x", "identifiers": []}, "identifiers"),
        ({"directory": "x", "audience": "../escape"}, "audience"),
        ({"directory": "x", "default_country_code": "UK"}, "default_country_code"),
        ({"directory": "x", "phone_format": "plus"}, "phone_format"),
        ({"directory": "x", "include_customer_id": "yes"}, "include_customer_id"),
        ({"directory": "x", "max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_validate_names_destination_and_field(config, field):
    with pytest.raises(ConfigError, match=rf"destination ads: {field}\b"):
        AudienceFilesDestination.from_config("ads", config).validate()
