"""What `tideline run` prints: one line per step, progress on long steps, one paragraph on failure.

Dagster's default console logger prints every event, and dbt prints a line per model and test:
about 1,200 lines for one run. `tideline run` configures this logger instead (`--verbose` keeps
Dagster's): a step shows as one line with its counts and seconds (on a terminal the line appears
when the step starts and is completed in place; otherwise it is printed when the step ends),
long steps report progress, warnings show as they come, and colours are used on a terminal only
(never with NO_COLOR). Every log line of the run, and dbt's output, goes to the run log file
(<state folder>/logs/<run id>.log) whose path is printed first. When the run fails,
`failure_paragraph` says in one paragraph what failed, why (the root error, not the cascade of
steps that did not run), where the log is and what to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import dagster as dg

CONSOLE_LOGGER = "tideline_console"
_PROGRESS = re.compile(r"^progress (\d+)/(\d+) (.*)$", re.DOTALL)
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_RUN_ENDS = {
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
}
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


def use_color(stream: IO[str]) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


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
        if isinstance(values.get("sent"), int):
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
            parts.append(f"{state.materialized:,} {what}")
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


class _ConsoleHandler(logging.Handler):
    """Turns the run's Dagster log records into ConsoleReport calls and run-log lines."""

    def __init__(self, report: ConsoleReport | None, log_file: Path | None):
        super().__init__(level=logging.DEBUG)
        self.report = report
        self.log_file = log_file
        self.finished = threading.Event()  # set when the run ends: stops the heartbeat
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            meta = getattr(record, "dagster_meta", None) or {}
            self._to_file(record, meta)
            if self.report is not None:
                self._to_console(record, meta)
        except Exception:  # the console must never fail a run
            self.handleError(record)

    def _to_file(self, record: logging.LogRecord, meta: Mapping[str, Any]) -> None:
        if self.log_file is None:
            return
        stamp = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        step = meta.get("step_key") or "-"
        event = meta.get("dagster_event")
        kind = event.event_type_value if event is not None else record.levelname
        message = meta.get("orig_message") or record.getMessage()
        with self.log_file.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {kind:<24} {step}  {ANSI.sub('', message)}\n")

    def _to_console(self, record: logging.LogRecord, meta: Mapping[str, Any]) -> None:
        report, step = self.report, meta.get("step_key")
        event = meta.get("dagster_event")
        if event is None:
            message = str(meta.get("orig_message") or record.getMessage())
            progress = _PROGRESS.match(message)
            if progress and step:
                done, total, what = progress.groups()
                report.step_progress(step, int(done), int(total), what, record.created)
            elif record.levelno >= logging.WARNING:
                report.step_warning(step, message)
            return
        kind = event.event_type_value
        if event.event_type in _RUN_ENDS:
            self.finished.set()
        if kind == "STEP_START":
            report.step_started(step, record.created)
        elif kind == "STEP_SUCCESS":
            report.step_finished(step, True, record.created)
        elif kind == "STEP_FAILURE":
            report.step_finished(step, False, record.created)
        elif kind == "ASSET_MATERIALIZATION":
            report.materialized(step, event.event_specific_data.materialization.metadata)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            report.check_evaluated(
                step, data.check_name, data.asset_key.to_user_string(), data.passed, data.severity.value
            )


@dg.logger(
    {
        "lines": dg.Field(bool, default_value=True, description="print one line per step"),
        "color": dg.Field(bool, default_value=False, description="ANSI colours (a terminal only)"),
        "tty": dg.Field(bool, default_value=False, description="update the running step's line in place"),
        "log_file": dg.Field(str, default_value="", description="append every log line here"),
    },
    description="Tideline's console: one line per step, progress, warnings; every line to the run log.",
)
def tideline_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    report = ConsoleReport(sys.stdout, color=config["color"], tty=config["tty"]) if config["lines"] else None
    handler = _ConsoleHandler(report, Path(config["log_file"]) if config["log_file"] else None)
    if report is not None:
        threading.Thread(target=_tick, args=(report, handler.finished), name="console", daemon=True).start()
    logger = logging.Logger(CONSOLE_LOGGER, level=logging.DEBUG)
    logger.addHandler(handler)
    return logger


def _tick(report: ConsoleReport, finished: threading.Event) -> None:
    while not finished.wait(1.0):
        report.heartbeat(time.time())


def console_run_config(log_file: Path, verbose: bool, stream: IO[str] | None = None) -> dict:
    """The `loggers` run config of a `tideline run`: this console (or Dagster's with --verbose),
    and every log line to `log_file` either way. Colours and in-place lines when `stream` (the
    console's stdout) is a terminal."""
    stream = stream if stream is not None else sys.stdout
    level = os.environ.get("TIDELINE_LOG_LEVEL", "INFO" if verbose else "WARNING").upper()
    tty = bool(getattr(stream, "isatty", lambda: False)())
    ours = {"lines": not verbose, "color": use_color(stream), "tty": tty, "log_file": str(log_file)}
    loggers: dict[str, Any] = {CONSOLE_LOGGER: {"config": ours}}
    if verbose:
        loggers["console"] = {"config": {"log_level": level}}
    return loggers


# -- the failure paragraph -----------------------------------------------------------------------

LOCK_ERROR = re.compile(r"Could not set lock on file|Conflicting lock is held")


def failure_paragraph(
    events: Iterable[dg.DagsterEvent], log_path: Path, raw_dir: Path, planned_steps: int = 0
) -> str:
    """What failed, why (the root error: a failed blocking check's description, else the first
    failed step's deepest cause, never the steps that then did not run), where the log is and
    what to do, as one paragraph."""
    events = list(events)
    failures = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    blocking = [
        e.event_specific_data
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.event_specific_data.passed
        and e.event_specific_data.severity.value == "ERROR"
    ]
    started = {e.step_key for e in events if e.event_type_value == "STEP_START"}
    if blocking:
        check = blocking[0]
        what = f"the check {check.check_name} on {check.asset_key.to_user_string()} failed"
        why = first_line(check.description or "") or "it did not pass"
    elif failures:
        first = failures[0]
        what = f"the step {step_label(first.step_key)} failed"
        why = root_error(first.event_specific_data)
    else:
        run_failure = next((e for e in events if e.event_type_value == "RUN_FAILURE"), None)
        what, why = (
            "the run failed",
            first_line((run_failure.message if run_failure else "") or "") or "unknown error",
        )
    not_run = planned_steps - len(started) if planned_steps else 0
    after = f" ({not_run} later step(s) did not run because of it)" if not_run > 0 else ""
    todo = what_to_do(f"{what} {why}", raw_dir)
    why = why.rstrip(".")
    return f"Tideline stopped: {what}: {why}{after}. Full log: {log_path}. What to do: {todo}."


def root_error(failure: Any) -> str:
    """Why a step failed: a dg.Failure's description, else the first error raised by our code (not
    Dagster's wrapper around it), with its deepest cause when that is another error."""
    user = getattr(failure, "user_failure_data", None)
    if user is not None and user.description:
        return first_line(user.description)
    chain, error = [], failure.error
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    if not chain:
        return "unknown error"
    ours = [e for e in chain if not (e.cls_name or "").startswith("Dagster")] or chain
    message = _error_text(ours[0])
    if chain[-1] is not ours[0]:
        message += f" (caused by {chain[-1].cls_name}: {_error_text(chain[-1])})"
    return message


def _error_text(error: Any) -> str:
    """The error's first line without its 'package.ClassName: ' prefix."""
    text = first_line(error.message) or error.cls_name or "unknown error"
    prefix, _, rest = text.partition(": ")
    return rest if rest and error.cls_name and prefix.split(".")[-1] == error.cls_name else text


def what_to_do(text: str, raw_dir: Path) -> str:
    if LOCK_ERROR.search(text) or "is locked by another process" in text:
        return (
            "close the other program's connection to the warehouse (BI tools should open the copy "
            "printed after 'Open in BI:') and run again"
        )
    if "orders_present" in text:
        orders = raw_dir / "commerce" / "orders"
        return f"put at least one orders file (CSV, Parquet or JSON Lines) under {orders} (README: Bring your own data)"
    if "dbt build failed" in text:
        return "the log shows dbt's message for each failing model or test; fix the input or the model and run again"
    return "read the error in the log, or run again with --verbose to see every step's detail on the console"
