"""What a person decides about a launch (`tideline pilot release|cancel`, `tideline approve`).

Each is a row of tideline_sync.launch_decisions with the person's name; the sync's next run acts
on it (a release or an approval sends the rest; a cancellation keeps it from ever being sent for
this content version). A decision that would change nothing (releasing a launch already released,
approving twice) raises LaunchError saying why, and records nothing.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from activation.config import SyncBinding
from activation.launches import store
from activation.ledger import ensure_schema


class LaunchError(ValueError):
    """A decision that cannot be made for this launch (the message says why and what to do)."""


def _where(binding: SyncBinding) -> str:
    return f"{binding.sync_key} (campaign {binding.campaign}, content {binding.content_version})"


def _check_person(by: str) -> str:
    by = (by or "").strip()
    if not by or len(by) > 100 or any(ord(c) < 32 for c in by):
        raise LaunchError("--by must name the person deciding (printable text, up to 100 characters)")
    return by


def decide_pilot(
    con: duckdb.DuckDBPyConnection,
    binding: SyncBinding,
    decision: str,
    by: str,
    now: dt.datetime | None = None,
) -> str:
    """Release (send the rest) or cancel (never send it) a pilot's held audience; what was recorded."""
    if decision not in ("released", "cancelled"):
        raise LaunchError(f"a pilot is released or cancelled, not {decision!r}")
    if binding.launch is None or binding.launch.pilot is None:
        raise LaunchError(
            f"{_where(binding)} declares no pilot (pilot: in its meta.activation or a journey send step)"
        )
    by = _check_person(by)
    ensure_schema(con)
    verdict = store.latest_verdict(con, binding.sync_key, binding.content_version, "pilot")
    if verdict is not None and verdict[0] != "fail":
        raise LaunchError(
            f"{_where(binding)}: the pilot was already decided ({verdict[0]} by {verdict[3]} at "
            f"{verdict[2]:%Y-%m-%d %H:%M}); nothing to {decision[:-2]}"
        )
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    judged = "after its gate failed" if verdict else "before its gate was judged"
    detail = f"pilot {decision} by {by} {judged}"
    store.record(
        con,
        [
            store.Decision(
                binding.sync_key,
                binding.campaign,
                binding.content_version,
                "pilot",
                decision,
                now,
                by,
                detail=detail,
            )
        ],
    )
    return f"{_where(binding)}: {detail}"


def approve(
    con: duckdb.DuckDBPyConnection, binding: SyncBinding, by: str, now: dt.datetime | None = None
) -> str:
    """Approve the activation's current content version to go beyond its pilot or test share."""
    by = _check_person(by)
    ensure_schema(con)
    done = store.approval(con, binding.sync_key, binding.content_version)
    if done is not None:
        raise LaunchError(f"{_where(binding)} was already approved by {done[0]} at {done[1]:%Y-%m-%d %H:%M}")
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    store.record(
        con,
        [
            store.Decision(
                binding.sync_key,
                binding.campaign,
                binding.content_version,
                "approval",
                "approved",
                now,
                by,
                detail=f"content version {binding.content_version} approved by {by}",
            )
        ],
    )
    return f"{_where(binding)}: approved by {by}"


def resolve(bindings: list[SyncBinding], name: str) -> list[SyncBinding]:
    """The message activations `name` means: a sync key (segment__destination, or a journey step's
    journey__<journey>__<step>__<destination>), a segment (all its message destinations), a
    campaign (all its message activations) or a journey (its send steps that declare a launch);
    LaunchError when none."""
    messages = [b for b in bindings if b.mode == "message"]
    for match in (
        [b for b in messages if b.sync_key == name],
        [b for b in messages if b.segment == name],
        [b for b in messages if b.campaign == name],
        [b for b in messages if b.campaign == f"journey:{name}"],
    ):
        if match:
            return match
    known = ", ".join(sorted(b.sync_key for b in messages)) or "none"
    raise LaunchError(
        f"no message activation named {name!r} (a sync key, segment or campaign; known: {known})"
    )
