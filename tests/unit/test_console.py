"""The console of `tideline run`: one line per step, colours on a terminal only, one paragraph on
failure (issue 10, part 5). Small real Dagster jobs, run in process with the console logger."""

import io
from pathlib import Path

import dagster as dg
import pytest

from orchestration.console import CONSOLE_LOGGER, console_run_config, failure_paragraph, tideline_console
from tideline.reporting.console import ConsoleReport, progress_message, use_color


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dg.asset
def orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for done in (1, 2):
        context.log.info(progress_message(done, 2, "files read"))
    return dg.MaterializeResult(metadata={"dagster/row_count": 1234})


@dg.asset(deps=[orders])
def scores(context: dg.AssetExecutionContext) -> None:
    context.log.warning("not trained: only 12 customers with history")


def _broken() -> None:
    try:
        raise KeyError("amount")
    except KeyError as exc:
        raise RuntimeError("could not read orders.csv line 7") from exc


@dg.asset(deps=[scores])
def report() -> None:
    _broken()


@dg.asset(deps=[report])
def published() -> None:
    pass


@dg.asset(deps=[published])
def archived() -> None:
    pass


def _run(
    tmp_path: Path, assets: list, capsys: pytest.CaptureFixture
) -> tuple[dg.ExecuteInProcessResult, str]:
    log = tmp_path / "logs" / "run.log"
    job = dg.define_asset_job("j").resolve(asset_graph=dg.Definitions(assets=assets).resolve_asset_graph())
    defs = dg.Definitions(assets=assets, jobs=[job], loggers={CONSOLE_LOGGER: tideline_console})
    config = {"loggers": console_run_config(log, verbose=False, stream=io.StringIO())}
    result = defs.resolve_job_def("j").execute_in_process(run_config=config, raise_on_error=False)
    return result, capsys.readouterr().out


def test_one_line_per_step_with_counts_and_no_escape_codes_off_a_terminal(tmp_path, capsys) -> None:
    result, out = _run(tmp_path, [orders, scores], capsys)
    assert result.success
    lines = out.splitlines()
    assert "\x1b" not in out
    step_lines = [line for line in lines if line.startswith(("  ✓", "  ✗"))]
    assert [line.split()[1] for line in step_lines] == ["orders", "scores"]
    assert "1,234 rows" in step_lines[0]
    assert "    ! not trained: only 12 customers with history" in lines  # warnings show as they come
    assert "  … orders: 2 of 2 files read" in "\n".join(lines)  # progress (the last one always shows)
    assert not any("STEP_START" in line or "dagster - " in line for line in lines)
    log = (tmp_path / "logs" / "run.log").read_text()  # every log line goes to the run log
    assert "STEP_START" in log and "not trained: only 12 customers" in log and "\x1b" not in log


def test_a_failure_is_one_paragraph_with_the_root_cause_and_no_cascade(tmp_path, capsys) -> None:
    result, out = _run(tmp_path, [orders, scores, report, published, archived], capsys)
    assert not result.success
    assert "Not executing" not in out  # the steps that did not run are counted, not listed
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  ✗")] == ["report"]
    paragraph = failure_paragraph(result.all_events, tmp_path / "run.log", tmp_path / "raw", planned_steps=5)
    assert "\n" not in paragraph
    assert paragraph.startswith(
        "Tideline stopped: the step report failed: could not read orders.csv line 7 "
        "(caused by KeyError: 'amount') (2 later step(s) did not run because of it). Full log: "
    )
    assert "2 later step(s) did not run" in paragraph
    assert f"Full log: {tmp_path / 'run.log'}" in paragraph and "What to do:" in paragraph
    assert "None" not in paragraph and "Traceback" not in paragraph


def test_a_failed_blocking_check_is_the_reason_given(tmp_path, capsys) -> None:
    @dg.asset(check_specs=[dg.AssetCheckSpec("orders_present", asset="landing", blocking=True)])
    def landing() -> dg.Output:
        yield dg.MaterializeResult(metadata={"dagster/row_count": 0})
        yield dg.AssetCheckResult(
            check_name="orders_present", passed=False, description="no order rows under <raw>/commerce/orders"
        )

    @dg.asset(deps=[landing])
    def marts() -> None:
        pass

    result, out = _run(tmp_path, [landing, marts], capsys)
    paragraph = failure_paragraph(result.all_events, tmp_path / "run.log", tmp_path / "raw", planned_steps=2)
    assert paragraph.startswith(
        "Tideline stopped: the check orders_present on landing failed: no order rows under <raw>/commerce/orders"
    )
    assert f"under {tmp_path / 'raw' / 'commerce' / 'orders'}" in paragraph  # what to do, with the real path
    assert "1 later step(s) did not run" in paragraph


def test_colours_and_in_place_lines_only_on_a_terminal() -> None:
    assert use_color(_Tty()) is True
    assert use_color(io.StringIO()) is False
    assert use_color(_Tty(), no_color=True) is False  # NO_COLOR, as the CLI reads it
    assert console_run_config(Path("run.log"), False, _Tty())[CONSOLE_LOGGER]["config"]["color"] is True
    assert (
        console_run_config(Path("run.log"), False, _Tty(), no_color=True)[CONSOLE_LOGGER]["config"]["color"]
        is False
    )

    tty = _Tty()
    report = ConsoleReport(tty, color=True, tty=True)
    report.step_started("tideline_dbt_assets", 0.0)
    report.step_progress("tideline_dbt_assets", 10, 40, "models and tests done", 1.0)
    report.step_finished("tideline_dbt_assets", True, 2.5)
    text = tty.getvalue()
    assert text.startswith("\r\x1b[K  \x1b[2m…\x1b[0m dbt build")
    assert "10 of 40 models and tests done" in text
    assert text.endswith("2.5s\n") and text.count("\n") == 1  # one line per step on a terminal too


def test_without_a_terminal_progress_is_printed_at_most_every_ten_seconds() -> None:
    out = io.StringIO()
    report = ConsoleReport(out, color=False, tty=False)
    report.step_started("tideline_dbt_assets", 0.0)
    for second in range(1, 26):
        report.step_progress("tideline_dbt_assets", second, 25, "models and tests done", float(second))
    report.step_finished("tideline_dbt_assets", True, 26.0)
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines[:-1]] == [
        "10 of 25 models and tests done",
        "20 of 25 models and tests done",
        "25 of 25 models and tests done",
    ]
    assert lines[-1].startswith("  ✓ dbt build") and lines[-1].endswith("26.0s")


def test_a_long_step_without_progress_says_it_is_still_running() -> None:
    out = io.StringIO()
    report = ConsoleReport(out, color=False, tty=False)
    report.step_started("ml__churn_model", 100.0)
    for second in range(101, 171):
        report.heartbeat(float(second))
    report.step_finished("ml__churn_model", True, 171.0)
    report.heartbeat(200.0)  # nothing runs any more: nothing to say
    lines = out.getvalue().splitlines()
    assert lines == [
        "  … ml/churn_model: still running (30s)",
        "  … ml/churn_model: still running (60s)",
        lines[-1],
    ]
    assert lines[-1].startswith("  ✓ ml/churn_model") and lines[-1].endswith("71.0s")

    tty = _Tty()
    report = ConsoleReport(tty, color=False, tty=True)
    report.step_started("ml__churn_model", 0.0)
    report.heartbeat(12.0)
    assert tty.getvalue().endswith("\r\x1b[K  … ml/churn_model (12s)")


def test_a_journey_tick_says_who_entered_was_sent_to_and_left() -> None:
    import io

    from tideline.reporting.console import ConsoleReport

    out = io.StringIO()
    report = ConsoleReport(out, color=False, tty=False)
    report.step_started("journeys__cart_abandonment", 0.0)
    report.materialized(
        "journeys__cart_abandonment",
        {"entered": 12, "sent": 9, "skipped": 2, "exited": 4, "status": "active"},
    )
    report.step_finished("journeys__cart_abandonment", True, 1.0)
    assert "entered 12, sent 9, skipped 2, left 4" in out.getvalue()


def test_a_dbt_step_says_how_many_models_were_reused_unchanged() -> None:
    out = io.StringIO()
    report = ConsoleReport(out, color=False, tty=False)
    report.step_started("tideline_dbt_assets", 0.0)
    for reused in (False, True, True):
        report.materialized("tideline_dbt_assets", {"reused": "inputs unchanged"} if reused else {})
    report.step_finished("tideline_dbt_assets", True, 3.0)
    assert "dbt build" in out.getvalue() and "3 models (2 unchanged, reused)" in out.getvalue()


def test_after_a_run_the_slowest_steps_are_named_longest_first() -> None:
    import time

    from orchestration.runner import step_seconds
    from tideline.commands.run import slowest_steps

    @dg.asset(name="slow")
    def slow_asset() -> None:
        time.sleep(0.3)

    @dg.asset(name="quick", deps=[slow_asset])
    def quick_asset() -> None:
        pass

    with dg.instance_for_test() as instance:
        result = dg.materialize([slow_asset, quick_asset], instance=instance)
        steps = step_seconds(instance, result.run_id)
    assert list(steps) == ["slow", "quick"] and steps["slow"] >= 0.3
    assert slowest_steps({"tideline_dbt_assets": 110.24, "ml__churn_model": 29.1}) == (
        "dbt build 110.2s, ml/churn_model 29.1s"
    )
