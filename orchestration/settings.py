"""Where things live: paths and the as-of date, from environment variables with safe local defaults.

TIDELINE_HOME       folder for everything generated (default: <repo>/.tideline)
TIDELINE_WAREHOUSE  DuckDB file (default: $TIDELINE_HOME/warehouse.duckdb)
TIDELINE_RAW_DIR    landing zone (default: $TIDELINE_HOME/demo/raw)
TIDELINE_AS_OF      as-of date YYYY-MM-DD (default: a demo landing zone's as-of day, else today)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = Path(os.environ.get("TIDELINE_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project"))


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    raw_dir: Path
    as_of: str  # "" means today

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("TIDELINE_HOME", REPO_ROOT / ".tideline")).resolve()
        warehouse = Path(os.environ.get("TIDELINE_WAREHOUSE", home / "warehouse.duckdb")).resolve()
        raw_dir = Path(os.environ.get("TIDELINE_RAW_DIR", home / "demo" / "raw")).resolve()
        as_of = validate_as_of(os.environ.get("TIDELINE_AS_OF", "")) or demo_as_of(raw_dir)
        return cls(home=home, warehouse=warehouse, raw_dir=raw_dir, as_of=as_of)

    def export(self) -> None:
        """Publish these settings to the environment, where dbt's profile and child processes read them."""
        os.environ["TIDELINE_HOME"] = str(self.home)
        os.environ["TIDELINE_WAREHOUSE"] = str(self.warehouse)
        os.environ["TIDELINE_RAW_DIR"] = str(self.raw_dir)
        os.environ["TIDELINE_AS_OF"] = self.as_of


def demo_as_of(raw_dir: Path) -> str:
    """A demo landing zone carries its own as-of date: the day `tideline demo` ran it on (the day
    after its data ends), else the last day of its data."""
    marker = raw_dir / "_truth" / "demo.json"
    if not marker.exists():
        return ""
    meta = json.loads(marker.read_text())
    return validate_as_of(str(meta.get("as_of") or meta.get("end_date", "")))


def validate_as_of(value: str | None) -> str:
    """'' (today) or a YYYY-MM-DD date; anything else is a clear error."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"as-of date {value!r} is not a date like 2026-01-31") from exc
    return value
