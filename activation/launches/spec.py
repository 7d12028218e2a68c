"""What a staged launch declares, beside `experiment:` in a segment's `meta.activation`, validated.

    pilot:                     # send to a stable sample first, judge it, then the rest
      share: 0.05
      wait: 24h                # after the pilot's first send (m, h or d)
      min_delivered: 200       # judged only once this many pilot messages were delivered
      gate:                    # each rate: {min: ...} or {max: ...} (or both)
        open_rate: {min: 0.15}
        click_rate: {min: 0.02}
        unsubscribe_rate: {max: 0.005}
        complaint_rate: {max: 0.001}
        bounce_rate: {max: 0.03}
    experiment:
      variants: {A: {...}, B: {...}}
      rollout: winner          # only the test share is split; the winner goes to the rest
      test_share: 0.2
      decide_after: 48h        # after the test's first send
      fallback: A              # what the rest gets without a significant winner
    approval_above: 5000       # this activation's own limit (else policies.approval_above)

Each key may sit on the destination or on the activation (the destination's wins), like
`experiment:`. Errors name the segment, the destination and the key (`pilot.gate.open_rate.min`).
Plain data: activation.launches.gate reads it, activation.config builds it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from activation.destinations.base import ConfigError

# the rates a pilot gate can judge: the engagement marts' campaign rates (dbt macro campaign_rates)
GATE_METRICS = ("open_rate", "click_rate", "unsubscribe_rate", "complaint_rate", "bounce_rate")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class GateRule:
    """One guardrail: `metric` must be at least (min) or at most (max) `threshold`."""

    metric: str
    direction: str  # "min" or "max"
    threshold: float


@dataclass(frozen=True)
class PilotSpec:
    share: float
    wait: dt.timedelta
    min_delivered: int
    gate: tuple[GateRule, ...]


@dataclass(frozen=True)
class RolloutSpec:
    test_share: float
    decide_after: dt.timedelta
    fallback: str


@dataclass(frozen=True)
class LaunchSpec:
    pilot: PilotSpec | None = None
    rollout: RolloutSpec | None = None
    approval_above: int | None = None  # this activation's limit; None: the policies'


def parse_duration(where: str, key: str, value: Any) -> dt.timedelta:
    """`30m`, `24h`, `2d` (a number of minutes, hours or days) as a timedelta."""
    match = _DURATION.match(str(value)) if isinstance(value, (str, int, float)) else None
    if match is None:
        raise ConfigError(
            f"{where}: {key} {value!r} is not a duration (a number and m, h or d: 30m, 24h, 2d)"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _share(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{where}: {key} must be a share between 0 and 1 (0.05 is 5%), got {value!r}")
    return float(value)


def _whole(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return value


def _mapping(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: {key} has unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return value


def parse_pilot(where: str, raw: Any) -> PilotSpec:
    raw = _mapping(where, "pilot", raw, ("share", "wait", "min_delivered", "gate"))
    for key in ("share", "wait", "gate"):
        if key not in raw:
            raise ConfigError(f"{where}: pilot.{key} is missing")
    rules = []
    for metric, bounds in _mapping(where, "pilot.gate", raw["gate"], GATE_METRICS).items():
        bounds = _mapping(where, f"pilot.gate.{metric}", bounds, ("min", "max"))
        if not bounds:
            raise ConfigError(f"{where}: pilot.gate.{metric} needs min or max")
        for direction, threshold in bounds.items():
            key = f"pilot.gate.{metric}.{direction}"
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, (int, float))
                or not 0 <= threshold <= 1
            ):
                raise ConfigError(f"{where}: {key} must be a rate between 0 and 1, got {threshold!r}")
            rules.append(GateRule(metric, direction, float(threshold)))
    if not rules:
        raise ConfigError(f"{where}: pilot.gate names no rate (one or more of {', '.join(GATE_METRICS)})")
    return PilotSpec(
        share=_share(where, "pilot.share", raw["share"]),
        wait=parse_duration(where, "pilot.wait", raw["wait"]),
        min_delivered=_whole(where, "pilot.min_delivered", raw.get("min_delivered", 0)),
        gate=tuple(rules),
    )


ROLLOUT_KEYS = ("rollout", "test_share", "decide_after", "fallback")


def parse_rollout(where: str, experiment: dict[str, Any], variants: list[str]) -> RolloutSpec | None:
    """The roll-out keys of an `experiment:` block, or None when it declares none."""
    if not any(k in experiment for k in ROLLOUT_KEYS):
        return None
    if experiment.get("rollout") != "winner":
        raise ConfigError(
            f"{where}: experiment.rollout must be 'winner' (the only roll-out), got {experiment.get('rollout')!r}"
        )
    if len(variants) < 2:
        raise ConfigError(f"{where}: experiment.rollout needs two or more variants, got {variants}")
    for key in ("test_share", "decide_after", "fallback"):
        if key not in experiment:
            raise ConfigError(f"{where}: experiment.{key} is missing (experiment.rollout: winner needs it)")
    fallback = str(experiment["fallback"])
    if fallback not in variants:
        raise ConfigError(f"{where}: experiment.fallback {fallback!r} is not one of the variants {variants}")
    return RolloutSpec(
        test_share=_share(where, "experiment.test_share", experiment["test_share"]),
        decide_after=parse_duration(where, "experiment.decide_after", experiment["decide_after"]),
        fallback=fallback,
    )


def parse_launch(
    where: str, mode: str, pilot: Any, experiment: dict[str, Any], variants: list[str], approval_above: Any
) -> LaunchSpec | None:
    """The launch of one destination (None when it declares none). `where` names the segment and
    destination."""
    rollout = parse_rollout(where, experiment, variants)
    parsed_pilot = parse_pilot(where, pilot) if pilot is not None else None
    if (parsed_pilot or rollout) and mode != "message":
        raise ConfigError(f"{where}: a pilot or a roll-out needs mode: message (got {mode!r})")
    if parsed_pilot and rollout:
        raise ConfigError(
            f"{where}: declare a pilot or experiment.rollout, not both (a roll-out's test share is its pilot)"
        )
    above = None if approval_above is None else _whole(where, "approval_above", approval_above)
    if parsed_pilot is None and rollout is None and above is None:
        return None
    return LaunchSpec(parsed_pilot, rollout, above)
