"""Build the dbt manifest (dbt parse) that the Dagster asset graph is read from."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from tideline.settings import DBT_PROJECT_DIR

log = logging.getLogger(__name__)


def dbt_executable() -> str:
    """The dbt of this Python environment (a venv's bin need not be on PATH), else `dbt` from PATH."""
    for candidate in (Path(sys.executable).with_name("dbt"), Path(sys.prefix) / "bin" / "dbt"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


def generate_models(project_dir: Path = DBT_PROJECT_DIR) -> list[str]:
    """Regenerate the dbt models written from files (the audience files in dbt_project/audiences/,
    the tag rules in dbt_project/tags.yml, the lead scoring rules in dbt_project/lead_scoring.yml),
    so an edited file takes effect in the next run; the
    names of the generated files that changed. A file that does not check raises ConditionError
    (a ValueError naming the file and the path in it)."""
    from activation import leads, tags
    from activation.audiences import refresh

    changed = refresh(project_dir) + [path.name for path in tags.build(project_dir)]
    return changed + [path.name for path in leads.build(project_dir)]


def parse_dbt_project(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Run `dbt parse` (partial parsing keeps it fast) and return the manifest path."""
    command = [dbt_executable(), "parse", "--quiet", "--profiles-dir", str(project_dir)]
    done = subprocess.run(command, cwd=project_dir, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dbt parse failed in {project_dir}:\n{done.stdout}\n{done.stderr}")
    manifest = project_dir / "target" / "manifest.json"
    log.debug("dbt manifest at %s", manifest)
    return manifest
