"""The seed of IANA time zones a staff member's timezone is checked against (dim_staff.time_zone):
every zone in it is one Python's zoneinfo loads (staff quiet hours are computed with it), it
holds the usual zones, and the demo's staff zones are in it."""

from __future__ import annotations

import csv
import zoneinfo

from tideline.demo.data import DEMO_STAFF
from tideline.settings import DBT_PROJECT_DIR

SEED = DBT_PROJECT_DIR / "seeds" / "time_zones.csv"


def _zones() -> list[str]:
    with SEED.open(newline="") as fh:
        return [row["time_zone"] for row in csv.DictReader(fh)]


def test_every_seed_zone_loads_and_none_repeats() -> None:
    zones = _zones()
    assert len(zones) == len(set(zones)) > 500
    for zone in zones:
        zoneinfo.ZoneInfo(zone)  # raises for a name Python does not know


def test_the_usual_and_the_demo_zones_are_in_it() -> None:
    zones = set(_zones())
    assert {"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"} <= zones
    assert {row[4] for row in DEMO_STAFF} <= zones
    assert "Mars/Olympus" not in zones and "europe/berlin" not in zones
