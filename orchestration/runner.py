"""Run a job of the code location from the CLI as a run the Dagster UI lists under its job.

`job.execute_in_process()` (and `dagster job execute`) record runs without a code-location
origin; the UI's job page filters runs by the `.dagster/repository` tag that only runs with such
an origin carry, so those runs never appear under their job and cannot be re-executed from the
UI (dagster-io/dagster#17707, #19458). Here the run is created the way the webserver creates a
launched run (with the origin of the code location `dagster dev -m orchestration.definitions`
serves, the one `make ui` / `tideline ui` open) and then executed in this process, the way a run
worker executes a launched run, with the in-process executor so steps share the console.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origin_from_module_name

from tideline.settings import REPO_ROOT, Settings

LOCATION_MODULE = "orchestration.definitions"  # also the code location's name in `dagster dev -m`
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    events: Sequence[dg.DagsterEvent]
    planned_steps: int


def load_definitions(
    settings: Settings, environ: Mapping[str, str], activation_values: Mapping[str, str] | None = None
) -> dg.Definitions:
    """Make the code location's module-level `defs` the definitions of `settings` (with `environ`,
    the CLI's environment, and the activation values it gives as data), so the run created below
    executes them in this process; returns them."""
    module = importlib.import_module(LOCATION_MODULE)
    module.settings = settings
    module.defs = module.build_definitions(settings, environ, activation_values)
    # a reconstructable job keeps its last definition (per process): drop it, or a second run in
    # this process would execute the first run's definitions
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    return module.defs


def repository() -> ReconstructableRepository:
    return ReconstructableRepository.for_module(LOCATION_MODULE, "defs", working_directory=str(REPO_ROOT))


def job_origin(job_name: str, repository_name: str) -> RemoteJobOrigin:
    """The origin the webserver gives runs of `job_name` in the code location `make ui` serves."""
    location = location_origin_from_module_name(LOCATION_MODULE, None, str(REPO_ROOT))
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, repository_name), job_name)


def create_run(
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> tuple[Any, dg.DagsterRun, int]:
    """(reconstructable job, the new run, number of steps planned) for `job_name`."""
    recon_repo = repository()
    recon_job = recon_repo.get_reconstructable_job(job_name)
    job_def = recon_job.get_definition()
    config = {**IN_PROCESS, **run_config}
    plan = create_execution_plan(recon_job, run_config=config, instance_ref=instance.get_ref())
    run = instance.create_run_for_job(
        job_def=job_def,
        execution_plan=plan,
        run_id=run_id,
        run_config=config,
        tags={**job_def.run_tags, **(tags or {})},
        remote_job_origin=job_origin(job_name, recon_repo.get_definition().name),
        job_code_origin=recon_job.get_python_origin(),
    )
    return recon_job, run, len(plan.step_keys_to_execute)


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Create the run and execute it here; every event also reaches the configured loggers."""
    recon_job, run, planned = create_run(instance, job_name, run_config, tags, run_id)
    result = execute_run(recon_job, run, instance, raise_on_error=False)
    return RunOutcome(run.run_id, result.success, list(result.all_events), planned)


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Each step's wall seconds in a run, longest first (what `tideline run` prints after a run
    and the benchmark records)."""
    stats = instance.get_run_step_stats(run_id)
    timed = [(s.step_key, s.end_time - s.start_time) for s in stats if s.start_time and s.end_time]
    return {key: round(seconds, 1) for key, seconds in sorted(timed, key=lambda item: -item[1])}
