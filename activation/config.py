"""Activation configuration.

Destinations and policies live in one YAML file (default `config/activation.yml`,
override with TIDELINE_ACTIVATION_CONFIG); `${VAR}` / `${VAR:-default}` are read
from the environment and secrets are only ever named by environment variable.
What each segment syncs is declared on the segment's dbt model, under
`config.meta.activation` (see docs/activation.md); `bindings_from_manifest` turns
the dbt manifest into one SyncBinding per segment × destination.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from activation.destinations.base import ConfigError, expand_env

MODES = ("upsert", "mirror", "insert", "message")
CHANNELS = ("email", "sms", "push")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "activation.yml"
TEMPLATE_ROOT = Path(__file__).resolve().parents[1] / "config" / "templates"
TEMPLATE_PARTS = {"subject": "subject.j2", "html": "html.j2", "text": "text.j2"}


@dataclass(frozen=True)
class FrequencyCap:
    max_messages: int
    days: int


@dataclass(frozen=True)
class PolicyConfig:
    frequency_caps: dict[str, dict[str, FrequencyCap]] = field(
        default_factory=dict
    )  # class -> channel -> cap
    quiet_hours_start: int = 21  # local hour from which nothing is sent
    quiet_hours_end: int = 8  # local hour until which nothing is sent
    default_timezone: str = "UTC"
    max_attempts: int = 5  # tries per record across runs before it is dead-lettered
    failure_share_warn: float = 0.05


@dataclass(frozen=True)
class ActivationConfig:
    destinations: dict[str, dict[str, Any]]
    policies: PolicyConfig


@dataclass(frozen=True)
class SyncBinding:
    """One segment synced to one destination."""

    segment: str  # dbt model name
    relation: str  # schema.table in the warehouse
    destination: str  # name in the destinations config
    mode: str
    channel: str | None  # email, sms, push: consent and caps apply; None for CRM, tables, audiences
    fields: dict[str, str]  # destination field -> segment column
    campaign: str
    content: dict[str, Any] = field(default_factory=dict)
    content_version: str = "v1"
    frequency_cap: str | None = "marketing"
    holdout_share: float = 0.0
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> content overrides
    variant_weights: dict[str, float] = field(default_factory=dict)
    schedule: str | None = None  # cron; None: after the segment model builds
    owner: str | None = None

    @property
    def sync_key(self) -> str:
        return f"{self.segment}__{self.destination}"

    def validate(self, destinations: dict[str, dict[str, Any]]) -> None:
        where = f"segment {self.segment}, destination {self.destination}"
        if self.destination not in destinations:
            raise ConfigError(f"{where}: no destination named {self.destination!r} in the activation config")
        if self.mode not in MODES:
            raise ConfigError(f"{where}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ConfigError(f"{where}: channel {self.channel!r} is not one of {', '.join(CHANNELS)}")
        if self.mode == "message" and self.channel is None:
            raise ConfigError(f"{where}: message mode needs a channel (email, sms or push)")
        if not 0 <= self.holdout_share < 1:
            raise ConfigError(f"{where}: holdout_share must be in [0, 1), got {self.holdout_share}")
        if self.variants and abs(sum(self.variant_weights.values()) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: variant weights must add up to 1")
        if not self.fields:
            raise ConfigError(f"{where}: no fields mapped")


def load_config(path: Path | str | None = None) -> ActivationConfig:
    path = Path(path or os.environ.get("TIDELINE_ACTIVATION_CONFIG") or DEFAULT_CONFIG)
    if not path.exists():
        raise ConfigError(f"activation config {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    destinations = {name: expand_env(cfg or {}) for name, cfg in (raw.get("destinations") or {}).items()}
    for name, cfg in destinations.items():
        if "type" not in cfg:
            raise ConfigError(f"{path}: destination {name} has no type")
    p = raw.get("policies") or {}
    caps = {
        cls: {ch: FrequencyCap(int(c["max"]), int(c["days"])) for ch, c in (chans or {}).items()}
        for cls, chans in (p.get("frequency_caps") or {}).items()
    }
    quiet = p.get("quiet_hours") or {}
    policies = PolicyConfig(
        frequency_caps=caps,
        quiet_hours_start=int(quiet.get("start", 21)),
        quiet_hours_end=int(quiet.get("end", 8)),
        default_timezone=str(p.get("default_timezone", "UTC")),
        max_attempts=int(p.get("max_attempts", 5)),
        failure_share_warn=float(p.get("failure_share_warn", 0.05)),
    )
    return ActivationConfig(destinations, policies)


def binding_from_meta(
    segment: str, relation: str, spec: dict[str, Any], owner: str | None = None
) -> list[SyncBinding]:
    """SyncBindings from a segment model's `meta.activation` block."""
    campaign = spec.get("campaign", segment)
    out = []
    for d in spec.get("destinations") or []:
        content = dict(d.get("content") or {})
        experiment = d.get("experiment") or spec.get("experiment") or {}
        variants = {str(k): dict(v or {}) for k, v in (experiment.get("variants") or {}).items()}
        weights = {str(k): float(v) for k, v in (experiment.get("weights") or {}).items()}
        if variants and not weights:
            weights = {k: 1.0 / len(variants) for k in variants}
        out.append(
            SyncBinding(
                segment=segment,
                relation=relation,
                destination=d["name"],
                mode=d.get("mode", "upsert"),
                channel=d.get("channel"),
                fields=dict(d.get("fields") or {}),
                campaign=campaign,
                content=content,
                content_version=str(content.pop("version", d.get("content_version", "v1"))),
                frequency_cap=d.get("frequency_cap", "marketing"),
                holdout_share=float(d.get("holdout_share", spec.get("holdout_share", 0.0))),
                variants=variants,
                variant_weights=weights,
                schedule=d.get("schedule", spec.get("schedule")),
                owner=owner,
            )
        )
    return out


def bindings_from_manifest(manifest: dict[str, Any] | Path | str) -> list[SyncBinding]:
    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text())
    bindings = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        meta = node.get("config", {}).get("meta") or node.get("meta") or {}
        spec = meta.get("activation")
        if not spec:
            continue
        relation = f"{node['schema']}.{node.get('alias') or node['name']}"
        bindings += binding_from_meta(node["name"], relation, spec, meta.get("owner"))
    return sorted(bindings, key=lambda b: b.sync_key)


def resolve_content(content: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Content with `template: NAME` replaced by the files of config/templates/NAME (subject.j2, html.j2,
    text.j2: Jinja templates, kept out of dbt YAML, which dbt would render at parse time)."""
    content = dict(content)
    name = content.pop("template", None)
    if not name:
        return content
    folder = (root or TEMPLATE_ROOT) / str(name)
    if not folder.is_dir():
        raise ConfigError(f"template {name!r}: folder {folder} does not exist")
    found = {
        part: (folder / file).read_text() for part, file in TEMPLATE_PARTS.items() if (folder / file).exists()
    }
    if not found:
        raise ConfigError(f"template {name!r}: none of {', '.join(TEMPLATE_PARTS.values())} in {folder}")
    found["subject"] = found.get("subject", "").strip()
    return {**content, **found}
