"""Where journey files live and what they are checked against: config/journeys/*.yml, the catalog
of the dbt project (its audiences, segments and tags), the activation config's destinations and the
message templates."""

from __future__ import annotations

from pathlib import Path

from activation.audiences.files import audience_catalog
from activation.conditions import Catalog
from activation.config import TEMPLATE_ROOT, ActivationConfig
from activation.journeys.parse import load_journeys
from activation.journeys.spec import Journey

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "config" / "journeys"
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def journeys_dir(setting: str = "") -> Path:
    """The journey folder of a setting ('' = config/journeys)."""
    return Path(setting) if setting else DEFAULT_DIR


def journey_names(directory: Path) -> list[str]:
    """The journeys of a folder by file name, without reading them (a Dagster asset each)."""
    if not directory.is_dir():
        return []
    return sorted({p.stem for p in (*directory.glob("*.yml"), *directory.glob("*.yaml"))})


def project_catalog(project_dir: Path = DBT_PROJECT_DIR) -> Catalog:
    """What journey conditions may address: the project's catalog with its audiences and segments."""
    return audience_catalog(project_dir)


def load_project_journeys(
    directory: Path, config: ActivationConfig | None = None, catalog: Catalog | None = None
) -> list[Journey]:
    """Every journey of `directory`, checked against the catalog, the destinations and the templates
    (a JourneyError names the file, the step and the field)."""
    return load_journeys(
        directory,
        catalog=catalog or project_catalog(),
        destinations=config.destinations if config is not None else None,
        templates_dir=TEMPLATE_ROOT,
    )
