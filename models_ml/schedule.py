"""Train on a schedule: reuse the model in the registry while it is fresh, retrain when it is not.

Training is the costly part of a run (tens of seconds per model at 100,000 customers, minutes at
1,000,000), and a model trained yesterday on the same data is as good today. `decide` says, for
one model, whether to train or to reuse the newest version the registry holds for this data
(models_ml.registry.data_identity). It trains when

- asked to (`tideline run --retrain`, the job `tideline_retrain`, or the asset's `retrain` config);
- no version of this data exists yet;
- the settings the model was trained with changed: its task, training settings, feature set and
  the versions of the libraries that fit it, all in one hash (`settings_hash`), recorded in the
  model's metadata as `settings_hash` (a model saved before it was recorded counts as changed);
- the model is `retrain_every_days` old or older (0: train on every run);
- the data moved: its last purchase day is `retrain_every_days` or more after the model's training
  window ended (new data has come in faster than the clock, e.g. a backfill), or before it (the
  warehouse was rebuilt as of an earlier day: the model has seen later data than it may use).

Otherwise the model is reused: its artefact and stored evaluation stand, and the run says when it
was trained and which version it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models_ml.registry import LoadedModel, ModelNotFound, ModelRegistry, content_hash, library_versions

# Bump when training changes what a model is (features computed differently, another estimator),
# so that every model trained before is retrained once.
TRAINING_FORMAT = 1


@dataclass(frozen=True)
class Schedule:
    """When a model is retrained: `retrain_every_days` (0 = every run), or now when `retrain`."""

    retrain_every_days: int = 7
    retrain: bool = False

    def __post_init__(self) -> None:
        if self.retrain_every_days < 0:
            raise ValueError(
                f"retrain_every_days must be 0 (retrain every run) or more, not {self.retrain_every_days}"
            )


@dataclass(frozen=True)
class Decision:
    """Train (with the reason in words) or reuse `model` (with the reason it is still fresh)."""

    train: bool
    reason: str
    model: LoadedModel | None = None


def settings_hash(settings: Mapping[str, Any]) -> str:
    """One short hash of what a model was trained with: its settings, the training format and the
    major.minor versions of the libraries that fit it."""
    libraries = {name: ".".join(v.split(".")[:2]) for name, v in library_versions().items()}
    return content_hash({"settings": dict(settings), "format": TRAINING_FORMAT, "libraries": libraries})


def decide(
    registry: ModelRegistry,
    name: str,
    trained_on: dict[str, str],
    wanted_hash: str,
    data_end: dt.date | None,
    schedule: Schedule,
    now: dt.datetime,
) -> Decision:
    """Whether to train `name` now or reuse its newest version of this data (see the module doc)."""
    if schedule.retrain:
        return Decision(True, "retrain asked for")
    try:
        latest = registry.load(name, approved_only=False, trained_on=trained_on)
    except ModelNotFound:
        return Decision(True, "no model trained on this data yet")
    stale = _stale(latest.metadata, wanted_hash, data_end, schedule, now)
    if stale is not None:
        return Decision(True, stale)
    trained_at = _trained_at(latest.metadata)
    return Decision(
        False,
        f"trained {trained_at:%Y-%m-%d %H:%M} UTC ({_age_words(now - trained_at)} ago), retrained every "
        f"{schedule.retrain_every_days} days or when its data or settings change",
        latest,
    )


def _stale(
    metadata: dict, wanted_hash: str, data_end: dt.date | None, schedule: Schedule, now: dt.datetime
) -> str | None:
    """Why the model with this metadata must be retrained, or None while it is fresh."""
    if metadata.get("settings_hash") is None:
        return "the model does not record its settings (saved by an earlier Tideline)"
    if metadata["settings_hash"] != wanted_hash:
        return "its settings or feature set changed since it was trained"
    age = now - _trained_at(metadata)
    if age >= dt.timedelta(days=schedule.retrain_every_days):
        return f"it is {_age_words(age)} old (retrained every {schedule.retrain_every_days} days)"
    window_end = metadata.get("training_window_end")
    if data_end is None or window_end is None:
        return "the data's last purchase day is unknown"
    window_end = dt.date.fromisoformat(str(window_end))
    if data_end < window_end:
        return (
            f"the data now ends on {data_end}, before its training window ({window_end}): it saw later data"
        )
    moved = (data_end - window_end).days
    if moved >= max(schedule.retrain_every_days, 1):
        return f"the data now ends on {data_end}, {moved} days after its training window ({window_end})"
    return None


def _trained_at(metadata: dict) -> dt.datetime:
    trained_at = dt.datetime.fromisoformat(metadata["trained_at"])
    return trained_at if trained_at.tzinfo else trained_at.replace(tzinfo=dt.UTC)


def _age_words(age: dt.timedelta) -> str:
    """'9 days', '5 hours', '1 minute'."""
    if age >= dt.timedelta(days=2):
        count, unit = age.days, "day"
    elif age >= dt.timedelta(hours=1):
        count, unit = round(age.total_seconds() / 3600), "hour"
    else:
        count, unit = max(round(age.total_seconds() / 60), 0), "minute"
    return f"{count} {unit}{'' if count == 1 else 's'}"
