"""Versioned model artefacts on disk: <root>/<name>/<version>/{model.joblib, metadata.json}.

A version is the UTC training time plus a short hash of the metadata, so versions
sort by time and two trainings never collide. Metadata records the training
window, features, metrics and the library versions the model was built with;
loading a model built with another scikit-learn major/minor version warns.

Nothing trained on one dataset scores another: `save` records in `trained_on` which
data the model was trained on (`data_identity`: the warehouse file and the raw
dir it was loaded from, as resolved paths), and `load` only returns a model whose
`trained_on` is the caller's. A model trained elsewhere, or saved before Tideline
recorded it, is treated like no model at all (ModelNotFound, with the reason).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn

log = logging.getLogger(__name__)


def content_hash(parts: Any) -> str:
    """A short hash of JSON-able content (key order does not matter): the same content, the same hash."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ModelNotFound(LookupError):
    """No usable model: none trained, none that beat its baseline, or none trained on this data.
    The message is the reason in words."""


def data_identity(warehouse: str | Path, raw_dir: str | Path) -> dict[str, str]:
    """What a model is trained on: the warehouse file and the landing zone it is loaded from, resolved,
    so the same data reached through a relative path or a symlink is the same data."""
    return {"warehouse": str(Path(warehouse).resolve()), "raw_dir": str(Path(raw_dir).resolve())}


def _describe(identity: dict | None) -> str:
    if not identity:
        return "data Tideline did not record (a model saved before it recorded trained_on)"
    return ", ".join(f"{k} {v}" for k, v in sorted(identity.items()))


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    model: Any
    metadata: dict

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
    }


class ModelRegistry:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def save(
        self,
        name: str,
        model: Any,
        metadata: dict,
        *,
        trained_on: dict[str, str],
        now: dt.datetime | None = None,
    ) -> LoadedModel:
        """Write a new version; `trained_on` is the data it was trained on (`data_identity`)."""
        now = now or dt.datetime.now(dt.UTC)
        full = {
            **metadata,
            "name": name,
            "trained_on": dict(trained_on),
            "trained_at": now.isoformat(timespec="seconds"),
            "libraries": library_versions(),
        }
        digest = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:8]
        version = f"{now:%Y%m%dT%H%M%SZ}-{digest}"
        full["version"] = version
        folder = self.root / name / version
        folder.mkdir(parents=True, exist_ok=False)
        joblib.dump(model, folder / "model.joblib")
        (folder / "metadata.json").write_text(json.dumps(full, indent=2, default=str) + "\n")
        log.info("saved model %s version %s", name, version)
        return LoadedModel(name, version, model, full)

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "metadata.json").exists())

    def load(
        self,
        name: str,
        version: str | None = None,
        approved_only: bool = True,
        *,
        trained_on: dict[str, str] | None,
    ) -> LoadedModel:
        """The given version, else the newest one that beat its baseline (unless approved_only is off),
        trained on `trained_on` (`data_identity`). `trained_on=None` skips that check: only for looking
        at artefacts, never for scoring."""
        versions = [version] if version is not None else self.versions(name)
        meta = cache(partial(self._metadata, name))  # each metadata.json read at most once
        if approved_only and version is None:
            versions = [v for v in versions if meta(v).get("beats_baseline", True)]
        if not versions:
            raise ModelNotFound(
                f"no trained {name!r} model under {self.root}: materialise the {name}_model asset "
                f"(job tideline_retrain) first; models that did not beat their baseline are not used"
            )
        if trained_on is not None:
            mine = [v for v in versions if meta(v).get("trained_on") == trained_on]
            if not mine:
                other = meta(versions[-1]).get("trained_on")
                raise ModelNotFound(
                    f"the {name!r} model {versions[-1]} under {self.root} was trained on other data "
                    f"({_describe(other)}), not on this data ({_describe(trained_on)}); it is not used: "
                    f"retrain on this data (job tideline_retrain, or tideline run)"
                )
            versions = mine
        version = versions[-1]
        folder = self.root / name / version
        metadata = meta(version)
        built = metadata.get("libraries", {}).get("scikit-learn", "")
        if built.split(".")[:2] != sklearn.__version__.split(".")[:2]:
            log.warning(
                "model %s %s was built with scikit-learn %s, running %s",
                name,
                version,
                built,
                sklearn.__version__,
            )
        return LoadedModel(name, version, joblib.load(folder / "model.joblib"), metadata)

    def _metadata(self, name: str, version: str) -> dict:
        return json.loads((self.root / name / version / "metadata.json").read_text())
