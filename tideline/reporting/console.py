"""The lines `tideline run` prints for a run: one per step, progress on long steps, warnings.

Plain rendering, no Dagster: `ConsoleReport` gets step keys, counts and messages and writes lines
(on a terminal the running step's line is completed in place, otherwise it is printed when the
step ends); colours only on a terminal, never with NO_COLOR (the CLI says which). The Dagster
logger that feeds it from a run's events is orchestration/console.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NOT_EXECUTING = re.compile(r"^Dependencies for step .* Not executing\.$", re.DOTALL)
# multi-asset steps read better by what they do than by their op name
STEP_LABELS = {
    "landing_zone": "landing zone",
    "tideline_dbt_assets": "dbt build",
    "tideline_dbt_scored_assets": "dbt build (score-based marts)",
}
NON_TTY_PROGRESS_SECONDS = 10.0  # without a terminal, at most one progress line per step this often
HEARTBEAT_SECONDS = 30.0  # without a terminal, a step with nothing to report says it still runs this often


def progress_message(done: int, total: int, what: str) -> str:
    """A log message the console shows as the progress of the current step ('done of total what')."""
    return f"progress {done}/{total} {what}"


def use_color(stream: IO[str], no_color: bool = False) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (`no_color`, https://no-color.org)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and not no_color


def step_label(step_key: str | None) -> str:
    """landing_zone -> 'landing zone', ml__churn_model -> 'ml/churn_model'."""
    if not step_key:
        return "run"
    return STEP_LABELS.get(step_key) or step_key.replace("__", "/", 1)


@dataclass
class StepState:
    label: str
    started: float
    materialized: int = 0
    reused: int = 0  # outputs whose inputs had not changed (the dbt steps: not rebuilt)
    rows: int | None = None
    files: int = 0
    notes: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    checks_warned: int = 0
    check_names: set[str] = field(default_factory=set)
    last_progress: float = 0.0
    open_text: str = ""  # what its in-place line says (terminal only)


class ConsoleReport:
    """Renders a run's steps as lines on `stream` (plain data in: step keys, counts, messages)."""

    def __init__(self, stream: IO[str], color: bool, tty: bool):
        self.stream, self.color, self.tty = stream, color, tty
        self.steps: dict[str, StepState] = {}
        self.running: str | None = None  # the step key of the running step
        self._open_line = ""  # the in-place line of the running step (terminal only)
        self._lock = threading.RLock()  # the heartbeat thread writes too

    # -- rendering --------------------------------------------------------------------------
    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _write(self, line: str) -> None:
        with self._lock:
            if self.tty and self._open_line:
                self.stream.write("\r\x1b[K")
            self.stream.write(line + "\n")
            if self.tty and self._open_line:
                self.stream.write(self._open_line)
            self.stream.flush()

    def _set_open(self, line: str) -> None:
        if not self.tty:
            return
        with self._lock:
            self._open_line = line
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()

    def _close_open(self, line: str) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K")
                self._open_line = ""
            self.stream.write(line + "\n")
            self.stream.flush()

    # -- events -----------------------------------------------------------------------------
    def step_started(self, step_key: str, at: float) -> None:
        label = step_label(step_key)
        state = self.steps[step_key] = StepState(label=label, started=at, last_progress=at, open_text=label)
        self.running = step_key
        self._set_open(f"  {self._paint('…', '2')} {state.label}")

    def heartbeat(self, now: float) -> None:
        """Called every second or so: on a terminal the running step's line shows its seconds;
        otherwise a step that printed nothing for HEARTBEAT_SECONDS says it is still running."""
        with self._lock:
            state = self.steps.get(self.running) if self.running else None
            if state is None:
                return
            elapsed = now - state.started
            if self.tty:
                self._set_open(f"  {self._paint('…', '2')} {state.open_text} ({elapsed:.0f}s)")
            elif now - state.last_progress >= HEARTBEAT_SECONDS:
                state.last_progress = now
                self._write(f"  … {state.label}: still running ({elapsed:.0f}s)")

    def step_progress(self, step_key: str, done: int, total: int, what: str, at: float) -> None:
        state = self.steps.get(step_key)
        if state is None:
            return
        text = f"{state.label}: {done:,} of {total:,} {what}"
        if self.tty:
            state.open_text = text
            self._set_open(f"  {self._paint('…', '2')} {text}")
        elif at - state.last_progress >= NON_TTY_PROGRESS_SECONDS or done == total:
            state.last_progress = at
            self._write(f"  … {text} ({at - state.started:.0f}s)")

    def step_warning(self, step_key: str | None, message: str) -> None:
        if _NOT_EXECUTING.search(message):
            return  # the cascade after a failure: the failure paragraph counts those steps
        self._write(f"    {self._paint('!', '33')} {first_line(message)}")

    def materialized(self, step_key: str, metadata: Mapping[str, Any]) -> None:
        state = self.steps.get(step_key)
        if state is None:
            return
        state.materialized += 1
        values = {k: getattr(v, "value", v) for k, v in metadata.items()}
        state.reused += "reused" in values
        rows = values.get("dagster/row_count")
        if isinstance(values.get("files"), int):  # a landing entity: files and rows read
            state.files += values["files"]
            state.rows = (state.rows or 0) + int(rows or 0)
        elif isinstance(rows, int) and state.materialized == 1:
            state.rows = rows
        elif state.files == 0:
            state.rows = None  # several tables: their count says more than one table's rows
        if values.get("status") in ("not trained", "not scored"):
            state.notes.append(str(values["status"]))
        if isinstance(values.get("roc_auc"), float):
            state.notes.append(f"ROC AUC {values['roc_auc']:.3f}")
        if isinstance(values.get("entered"), int):  # a journey tick
            state.notes.append(
                f"entered {values['entered']:,}, sent {int(values.get('sent') or 0):,}, "
                f"skipped {int(values.get('skipped') or 0):,}, left {int(values.get('exited') or 0):,}"
            )
        elif isinstance(values.get("sent"), int):
            state.notes.append(
                f"sent {values['sent']:,}, skipped {int(values.get('skipped') or 0):,}, "
                f"failed {int(values.get('failed') or 0):,}"
            )
        if isinstance(values.get("charts_rendered"), int):
            state.notes.append(f"{values['charts_rendered']} charts")
        if isinstance(values.get("size_mb"), float):
            state.notes.append(f"{values['size_mb']:,.1f} MB")

    def check_evaluated(self, step_key: str, name: str, asset: str, passed: bool, severity: str) -> None:
        state = self.steps.get(step_key)
        if state is None:
            return
        state.check_names.add(f"{name} on {asset}")
        if passed:
            state.checks_passed += 1
        elif severity == "WARN":
            state.checks_warned += 1
        else:
            state.checks_failed += 1

    def step_finished(self, step_key: str, ok: bool, at: float) -> None:
        state = self.steps.get(step_key)
        if state is None:
            return
        if self.running == step_key:
            self.running = None
        if state.materialized == 0 and len(state.check_names) == 1:  # a check's own step
            state.label = f"check {next(iter(state.check_names))}"
        mark = self._paint("✓", "32") if ok else self._paint("✗", "31")
        counts = self.describe(state)
        if not ok and counts == "failed":  # a check's own step: its verdict says it
            counts = ""
        verdict = "" if ok else self._paint("failed", "31") + ("; " if counts else "")
        self._close_open(f"  {mark} {state.label:<46} {verdict}{counts}  {at - state.started:.1f}s")

    @staticmethod
    def describe(state: StepState) -> str:
        parts: list[str] = []
        if state.files:
            parts.append(f"{state.files:,} files, {state.rows or 0:,} rows")
        elif state.materialized > 1:
            what = "models" if state.label.startswith("dbt build") else "tables"
            reused = f" ({state.reused:,} unchanged, reused)" if state.reused else ""
            parts.append(f"{state.materialized:,} {what}{reused}")
        elif state.rows is not None:
            parts.append(f"{state.rows:,} rows")
        parts += state.notes
        checks = state.checks_passed + state.checks_failed + state.checks_warned
        if checks == state.checks_passed and checks:
            plural = "check" if checks == 1 else "checks"
            parts.append("passed" if state.label.startswith("check ") else f"{checks:,} {plural} passed")
        elif checks:
            outcomes = [
                (state.checks_passed, "passed"),
                (state.checks_warned, "warned"),
                (state.checks_failed, "failed"),
            ]
            counts = ", ".join(f"{n:,} {word}" for n, word in outcomes if n)
            parts.append(counts if state.label.startswith("check ") and checks == 1 else f"checks: {counts}")
        return "; ".join(parts)


def first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
