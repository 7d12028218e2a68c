"""Journeys: triggered, multi-step customer flows evaluated in the warehouse (docs/journeys.md).

    journeys = load_journeys(Path("config/journeys"), catalog=..., destinations=..., templates_dir=...)
    results = run_ticks(con, journeys, clock, deliver=EngineDelivery(config, raw_dir, limits), catalog=...)

spec (the Journey dataclasses), parse (YAML -> Journey, errors naming file, step and field), store
(the state tables), entries (new entries), tick (one tick of one journey), deliver (steps through
the activation engine), run (every journey at one clock), simulate (the history replayed, sending
nothing), testsend (messages to internal test accounts), health (overdue entries), files (where
journey files live), clock (naive UTC from any moment or ISO text), sql (statements from compiled
conditions). Plain Python: no Dagster.
"""

from .deliver import EngineDelivery
from .parse import describe_journey, load_journeys, parse_journey
from .run import run_ticks
from .simulate import simulate
from .spec import Journey, JourneyError
from .tick import TickResult

__all__ = [
    "EngineDelivery",
    "Journey",
    "JourneyError",
    "TickResult",
    "describe_journey",
    "load_journeys",
    "parse_journey",
    "run_ticks",
    "simulate",
]
