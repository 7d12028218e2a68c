"""The journeys' clock: naive UTC everywhere (the warehouse's timestamps are), from an aware or
naive moment, or from ISO text (`--at`, TIDELINE_JOURNEY_CLOCK, the tick asset's run config)."""

from __future__ import annotations

import datetime as dt


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC without a time zone (a naive moment is taken to be UTC already)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def parse_clock(text: str) -> dt.datetime:
    """An ISO date-time as naive UTC; '' is now."""
    return naive_utc(dt.datetime.fromisoformat(text)) if text else naive_utc(dt.datetime.now(dt.UTC))
