"""Where things live: paths and the as-of date, from environment variables with safe local defaults.

TIDELINE_HOME               folder for everything generated (default: <repo>/.tideline)
TIDELINE_WAREHOUSE          DuckDB file (default: $TIDELINE_HOME/warehouse.duckdb)
TIDELINE_RAW_DIR            landing zone (default: $TIDELINE_HOME/demo/raw)
TIDELINE_AS_OF              as-of date YYYY-MM-DD (default: a demo landing zone's as-of day, else today)
TIDELINE_LOCK_WAIT_SECONDS  how long a run waits for another process to release the warehouse (60)
DAGSTER_HOME                when set, the Dagster instance every warehouse's runs share

Runs are separate: everything a run generates about a warehouse (trained models, reports, the
local destinations' outbox, the Dagster instance with its run history, run logs and the BI copy)
lives in that warehouse's state folder. The default warehouse's state folder is $TIDELINE_HOME
itself (so `.tideline/reports/`, `.tideline/outbox/` stay where the README says); any other
warehouse gets `$TIDELINE_HOME/warehouses/<file stem>-<8 hex of its path>/`, so two warehouses
never read each other's models, reports, outbox or runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = Path(os.environ.get("TIDELINE_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project"))
DEFAULT_HOME = (REPO_ROOT / ".tideline").resolve()
DEFAULT_WAREHOUSE_NAME = "warehouse.duckdb"
DEFAULT_LOCK_WAIT_SECONDS = 60.0
# run tags every Dagster run of a Tideline job carries (filter on them in the UI's Runs page)
TAG_RAW_DIR = "tideline/raw_dir"
TAG_WAREHOUSE = "tideline/warehouse"
TAG_AS_OF = "tideline/as_of"
TODAY = "today"  # the as-of tag of runs computed as of the day they run (schedules)


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    raw_dir: Path
    as_of: str  # "" means today
    dagster_home: Path | None = None  # an explicitly shared Dagster instance ($DAGSTER_HOME)
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("TIDELINE_HOME", DEFAULT_HOME)).resolve()
        warehouse = Path(os.environ.get("TIDELINE_WAREHOUSE", home / DEFAULT_WAREHOUSE_NAME)).resolve()
        raw_dir = Path(os.environ.get("TIDELINE_RAW_DIR", home / "demo" / "raw")).resolve()
        as_of = validate_as_of(os.environ.get("TIDELINE_AS_OF", "")) or demo_as_of(raw_dir)
        dagster_home = os.environ.get("DAGSTER_HOME")
        return cls(
            home=home,
            warehouse=warehouse,
            raw_dir=raw_dir,
            as_of=as_of,
            dagster_home=Path(dagster_home).resolve() if dagster_home else None,
            lock_wait_seconds=lock_wait_seconds(os.environ.get("TIDELINE_LOCK_WAIT_SECONDS")),
        )

    @property
    def state_dir(self) -> Path:
        """The folder for what runs generate about this warehouse (see the module docstring)."""
        return state_dir_for(self.home, self.warehouse)

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def bi_path(self) -> Path:
        """The read-only copy BI tools open: republished after every successful pipeline run."""
        return self.state_dir / "bi" / self.warehouse.name

    @property
    def instance_dir(self) -> Path:
        """DAGSTER_HOME of this warehouse's runs: the explicit one when set, else its own."""
        return self.dagster_home or self.state_dir / "dagster"

    @property
    def shares_instance(self) -> bool:
        return self.dagster_home is not None

    def run_tags(self) -> dict[str, str]:
        """Tags on every Dagster run of these settings, so runs can be told apart and filtered."""
        return {
            TAG_RAW_DIR: str(self.raw_dir),
            TAG_WAREHOUSE: str(self.warehouse),
            TAG_AS_OF: self.as_of or TODAY,
        }

    def export(self) -> None:
        """Publish these settings to the environment, where dbt's profile and child processes read them."""
        os.environ["TIDELINE_HOME"] = str(self.home)
        os.environ["TIDELINE_WAREHOUSE"] = str(self.warehouse)
        os.environ["TIDELINE_RAW_DIR"] = str(self.raw_dir)
        os.environ["TIDELINE_AS_OF"] = self.as_of

    def remember(self) -> None:
        """Record the raw dir and as-of date of this warehouse's last CLI run in its state folder, so
        `tideline ui --warehouse` shows the UI's own runs on the same landing zone."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        record = {"warehouse": str(self.warehouse), "raw_dir": str(self.raw_dir), "as_of": self.as_of}
        (self.state_dir / "last_run.json").write_text(json.dumps(record, indent=2) + "\n")

    def remembered(self) -> Settings:
        """These settings with the raw dir and as-of date of the warehouse's last CLI run, if any."""
        path = self.state_dir / "last_run.json"
        if not path.exists():
            return self
        record = json.loads(path.read_text())
        return replace(self, raw_dir=Path(record["raw_dir"]), as_of=validate_as_of(record.get("as_of")))


def state_dir_for(home: Path, warehouse: Path) -> Path:
    """$TIDELINE_HOME for the default warehouse, else $TIDELINE_HOME/warehouses/<stem>-<hash>."""
    home, warehouse = Path(home).resolve(), Path(warehouse).resolve()
    if warehouse == home / DEFAULT_WAREHOUSE_NAME:
        return home
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", warehouse.stem).strip("._") or "warehouse"
    digest = hashlib.sha256(str(warehouse).encode()).hexdigest()[:8]
    return home / "warehouses" / f"{stem[:40]}-{digest}"


def lock_wait_seconds(value: str | None) -> float:
    """TIDELINE_LOCK_WAIT_SECONDS: a number of seconds, at least 0 (default 60)."""
    if value is None or not value.strip():
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also rejects nan
        raise ValueError(
            f"TIDELINE_LOCK_WAIT_SECONDS={value!r} is not a number of seconds (use e.g. 60, or 0)"
        )
    return seconds


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
