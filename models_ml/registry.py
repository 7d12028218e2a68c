"""Versioned model artefacts on disk: <root>/<name>/<version>/{model.joblib, metadata.json}.

A version is the UTC training time plus a short hash of the metadata, so versions
sort by time and two trainings never collide. Metadata records the training
window, features, metrics and the library versions the model was built with;
loading a model built with another scikit-learn major/minor version warns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn

log = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    pass


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

    def save(self, name: str, model: Any, metadata: dict, now: dt.datetime | None = None) -> LoadedModel:
        now = now or dt.datetime.now(dt.UTC)
        full = {
            **metadata,
            "name": name,
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

    def load(self, name: str, version: str | None = None, approved_only: bool = True) -> LoadedModel:
        """The given version, else the newest one (that beat its baseline, unless approved_only is off)."""
        versions = self.versions(name)
        if approved_only and version is None:
            versions = [v for v in versions if self._metadata(name, v).get("beats_baseline", True)]
        if not versions:
            raise ModelNotFound(
                f"no trained {name!r} model under {self.root}: materialise the {name}_model asset "
                f"(job tideline_retrain) first; models that did not beat their baseline are not used"
            )
        version = version or versions[-1]
        folder = self.root / name / version
        metadata = self._metadata(name, version)
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
