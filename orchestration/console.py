"""The Dagster logger of `tideline run`, and the paragraph it ends a failed run with.

Dagster's default console logger prints every event, and dbt prints a line per model and test:
about 1,200 lines for one run. `tideline run` configures this logger instead (`--verbose` keeps
Dagster's): it turns the run's events into the lines of tideline/reporting/console.py (one per
step with its counts and seconds, progress on long steps, warnings as they come) and writes every
log line of the run, and dbt's output, to the run log file (<state folder>/logs/<run id>.log)
whose path is printed first. When the run fails, `failure_paragraph` says in one paragraph what
failed, why (the root error, not the cascade of steps that did not run), where the log is and what
to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import dagster as dg

from tideline.reporting.console import ANSI, ConsoleReport, first_line, step_label, use_color

CONSOLE_LOGGER = "tideline_console"
_PROGRESS = re.compile(r"^progress (\d+)/(\d+) (.*)$", re.DOTALL)
_RUN_ENDS = {
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
}


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


def console_run_config(
    log_file: Path, verbose: bool, stream: IO[str] | None = None, level: str = "", no_color: bool = False
) -> dict:
    """The `loggers` run config of a `tideline run`: this console (or Dagster's with --verbose, at
    `level`: TIDELINE_LOG_LEVEL, default INFO), and every log line to `log_file` either way. Colours
    and in-place lines when `stream` (the console's stdout) is a terminal (colours not with
    `no_color`: NO_COLOR)."""
    stream = stream if stream is not None else sys.stdout
    level = (level or ("INFO" if verbose else "WARNING")).upper()
    tty = bool(getattr(stream, "isatty", lambda: False)())
    ours = {"lines": not verbose, "color": use_color(stream, no_color), "tty": tty, "log_file": str(log_file)}
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
