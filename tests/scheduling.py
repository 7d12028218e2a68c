"""The order pytest-xdist hands test files to its workers (`make test`: `-n auto --dist loadfile`).

A file stays on one worker, so the suite takes at least as long as its longest file, and a long file
handed out last keeps one worker busy while the other idles. xdist's own order (most tests first)
started the longest files last. FileOrderScheduling starts them first, longest first, and while a
worker still has tests of one of them queued gives it light files only: a worker must know its next
test before it runs the current one, so the file queued behind a long one waits for all of it.

SLOWEST_FILES is measured, not guessed: after adding a file that takes more than about a minute (its
setup and calls together, `--durations=0`), put it in its place here. A file not listed is light
and keeps xdist's order among the light ones.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

# longest first
SLOWEST_FILES = (
    "tests/dbt/test_engines.py",  # three dbt builds, one on a local Spark session: about 8 minutes
    "tests/e2e/test_runs_apart.py",
    "tests/e2e/test_awkward_run.py",
    "tests/e2e/test_awkward_data.py",
    "tests/e2e/test_definitions.py",
    "tests/e2e/test_demo_pipeline.py",
    "tests/e2e/test_cli.py",
    "tests/e2e/test_postgres_run.py",
    "tests/dbt/test_incremental_equals_full.py",
    "tests/integration/test_dagster_postgres.py",
    "tests/unit/test_training.py",
    "tests/dbt/test_experiments.py",
    "tests/dbt/test_attribution.py",
    "tests/integration/test_audiences_dbt.py",
    "tests/e2e/test_privacy.py",
    "tests/dbt/test_tag_rules_build.py",
    "tests/integration/test_engagement_suppressions.py",
    "tests/dbt/test_lead_scores_demo.py",
    "tests/dbt/test_engagement_marts.py",
    "tests/dbt/test_journey_marts.py",
)


class FileOrderScheduling(LoadFileScheduling):
    """--dist loadfile, with the files of SLOWEST_FILES first (see the module docstring)."""

    def _assign_work_unit(self, node) -> None:  # noqa: ANN001 (xdist's WorkerController)
        queued = list(self.workqueue)
        slow = [scope for scope in SLOWEST_FILES if scope in self.workqueue]
        light = [scope for scope in queued if scope not in SLOWEST_FILES]
        busy_with_slow = any(
            scope in SLOWEST_FILES and not all(done.values())
            for scope, done in self.assigned_work.get(node, {}).items()
        )
        # a worker still busy with a slow file gets the next light one: it runs after all of that file
        pick = (light or slow)[0] if busy_with_slow else (slow or light)[0]
        self.workqueue.move_to_end(pick, last=False)
        super()._assign_work_unit(node)
