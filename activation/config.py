"""Activation configuration.

Destinations and policies live in one YAML file (default `config/activation.yml`; the
orchestration's ActivationResource names another from TIDELINE_ACTIVATION_CONFIG). It is loaded
and validated once (`load_config`), with errors naming the file and the key. `${VAR}` /
`${VAR:-default}` and the secrets destinations name (`secret_env`, `token_env`, `password_env`,
`dsn_env`, and TIDELINE_TRACKING_SECRET for email) are looked up in one resolved environment
the caller gives (`env`: in a run, the resource's dg.EnvVar values, the state folder's sandbox
secrets and the local destinations' addresses given as data); secrets are never in the file.
`environment_names` lists the variables a config file names, so the caller can resolve them.
What each segment syncs is declared on the segment's dbt model, under
`config.meta.activation` (see docs/activation.md); `bindings_from_manifest` turns
the dbt manifest into one SyncBinding per segment × destination.
"""

from __future__ import annotations

import json
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from activation import tokens
from activation.destinations import TYPES, create
from activation.destinations.base import ConfigError, Destination, expand_env
from activation.launches.spec import LaunchSpec, parse_launch

MODES = ("upsert", "mirror", "insert", "message")
CHANNELS = ("email", "sms", "push")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "activation.yml"
TEMPLATE_ROOT = Path(__file__).resolve().parents[1] / "config" / "templates"
TEMPLATE_PARTS = {"subject": "subject.j2", "html": "html.j2", "text": "text.j2"}
MAX_NAME = 100  # campaign, variant and content version names
SECTIONS = ("destinations", "policies", "alerts", "test_accounts")
# what a test account may say about itself: the columns a send maps from dim_customers
TEST_ACCOUNT_KEYS = ("email", "phone", "first_name", "last_name", "country", "city", "timezone")
POLICY_KEYS = (
    "frequency_caps",
    "quiet_hours",
    "default_timezone",
    "max_attempts",
    "failure_share_warn",
    "approval_above",
)
SECRET_KEYS = ("secret_env", "token_env", "password_env", "dsn_env")  # keys naming an environment variable
_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::-[^}]*)?\}")


def check_name(where: str, key: str, value: Any) -> str:
    """A name from config that is recorded in the ledger (campaign, variant, content version):
    any printable text up to MAX_NAME characters, quotes and spaces included (`Mother's Day`).
    It reaches SQL only as a bound value; a control character or an empty name is a ConfigError."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise ConfigError(f"{where}: {key} {value[:40]!r}... is longer than {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{where}: {key} {value!r} contains a control character (newline, tab, ...)")
    return value


def check_timezone(where: str, key: str, value: Any) -> str:
    """An IANA time zone name (Europe/Berlin, UTC); anything else is a ConfigError naming the key."""
    if not isinstance(value, str) or value not in _zones():
        raise ConfigError(
            f"{where}: {key} {value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"
        )
    return value


def _zones() -> set[str]:
    return zoneinfo.available_timezones() - {"localtime"}


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
    # a message activation whose segment has more customers sends nothing beyond its pilot or test
    # share without `tideline approve` for its content version (activation.launches); None: never
    approval_above: int | None = None


@dataclass(frozen=True)
class RateThreshold:
    """A rate judged against one limit: a maximum (failures, complaints) or a minimum (opens)."""

    limit: float  # share in [0, 1]
    min_sample: int = 0  # smallest denominator the rate is judged on (smaller groups are not judged)
    enabled: bool = True


@dataclass(frozen=True)
class SpikeThreshold:
    """Unsubscribe spike: the window's rate above max(floor, factor × the trailing rate)."""

    floor: float = 0.005  # absolute floor (share)
    factor: float = 3.0  # times the rate of the days before the window (dbt var alert_trailing_days)
    min_sample: int = 100  # delivered in the window
    enabled: bool = True


@dataclass(frozen=True)
class AlertsConfig:
    """The `alerts:` section: thresholds the campaign-performance checks alert on (docs/alerts.md).
    The window the rates cover is dbt's (vars alert_window_days, alert_trailing_days)."""

    destination: str = "staff_alerts"  # a webhook destination
    delivery_failure_rate: RateThreshold = RateThreshold(0.05)  # alert above
    open_rate: RateThreshold = RateThreshold(0.10, min_sample=100)  # alert below
    unsubscribe_spike: SpikeThreshold = SpikeThreshold()
    complaint_rate: RateThreshold = RateThreshold(0.001)  # alert above


@dataclass(frozen=True)
class ActivationConfig:
    destinations: dict[str, dict[str, Any]]
    policies: PolicyConfig
    alerts: AlertsConfig = AlertsConfig()
    # internal test accounts by list name (`test_accounts:`): what test sends go to
    test_accounts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # the resolved environment the config was loaded with: where destinations look up the secrets
    # they name (never shown: it holds secret values)
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def destination(self, name: str) -> Destination:
        """The destination `name`, built from its validated config block and this config's
        environment (ConfigError naming the destination and the key when it cannot be)."""
        if name not in self.destinations:
            raise ConfigError(f"no destination named {name!r} in the activation config")
        return create(name, self.destinations[name], self.env)


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
    # Journeys (activation/journeys/tick.py): a column of the segment whose value is part of each
    # message's idempotency key (the entry id: one delivery per journey, version, entry and step),
    # and the action a message-mode record carries ("upsert" for a journey's CRM sync step).
    # A keyed message binding may have no channel (sync and notify steps): no consent, caps or
    # quiet hours then, as for any binding without a channel.
    row_key: str | None = None
    delivery_action: str = "send"
    # a staged launch: pilot with a KPI gate, winner roll-out, approval limit (activation.launches)
    launch: LaunchSpec | None = None

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
        if self.mode == "message" and self.channel is None and self.row_key is None:
            raise ConfigError(f"{where}: message mode needs a channel (email, sms or push)")
        if self.delivery_action not in ("send", "upsert"):
            raise ConfigError(f"{where}: delivery action {self.delivery_action!r} is not send or upsert")
        if not 0 <= self.holdout_share < 1:
            raise ConfigError(f"{where}: holdout_share must be in [0, 1), got {self.holdout_share}")
        check_name(where, "campaign", self.campaign)
        check_name(where, "content.version", self.content_version)
        for name in self.variants:
            check_name(where, "experiment.variants name", name)
        if set(self.variant_weights) != set(self.variants):
            raise ConfigError(
                f"{where}: experiment.weights must name exactly the variants {sorted(self.variants)}"
            )
        if self.variants and abs(sum(self.variant_weights.values()) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: variant weights must add up to 1")
        if not self.fields:
            raise ConfigError(f"{where}: no fields mapped")


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> ActivationConfig:
    """The activation config at `path` (default config/activation.yml), validated: a ConfigError
    names the file and the key (`policies.quiet_hours.start`, `destinations.sms.type`) and what is
    allowed. `${VAR}` and the secrets destinations name are looked up in `env` (the caller's resolved
    environment; the process's own when not given)."""
    env = os.environ if env is None else env
    path = Path(path or DEFAULT_CONFIG)
    if not path.exists():
        raise ConfigError(f"activation config {path} does not exist")
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    raw = _section(where, "the activation config", raw, SECTIONS)
    destinations = {}
    for name, cfg in _section(where, "destinations", raw.get("destinations"), None).items():
        cfg = _expanded(
            where, f"destinations.{name}", _section(where, f"destinations.{name}", cfg, None), env
        )
        if cfg.get("type") not in TYPES:
            raise ConfigError(
                f"{where}: destinations.{name}.type {cfg.get('type')!r} is not one of {', '.join(TYPES)}"
            )
        if "rate_limit_per_second" in cfg:
            _number(where, f"destinations.{name}.rate_limit_per_second", cfg["rate_limit_per_second"])
        destinations[name] = cfg
    policies = _policies(where, _section(where, "policies", raw.get("policies"), POLICY_KEYS), env)
    alerts = AlertsConfig()
    if "alerts" in raw:
        alerts = alerts_from_raw(raw["alerts"], destinations, where=where)
    test_accounts = _test_accounts(where, raw.get("test_accounts"), env)
    return ActivationConfig(destinations, policies, alerts, test_accounts=test_accounts, env=dict(env))


def _test_accounts(where: str, raw: Any, env: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """`test_accounts: {list name: [{email: ..., phone: ..., first_name: ...}, ...]}`: internal
    accounts test sends go to (never customers). ${VAR:-default} as for destinations."""
    lists: dict[str, list[dict[str, str]]] = {}
    for name, accounts in _section(where, "test_accounts", raw, None).items():
        key = f"test_accounts.{name}"
        if not isinstance(accounts, list) or not accounts:
            raise ConfigError(f"{where}: {key} must be a non-empty list of accounts")
        lists[name] = []
        for i, account in enumerate(accounts):
            account = _expanded(
                where, f"{key}[{i}]", _section(where, f"{key}[{i}]", account, TEST_ACCOUNT_KEYS), env
            )
            if not account.get("email") and not account.get("phone"):
                raise ConfigError(f"{where}: {key}[{i}] needs an email or a phone")
            lists[name].append({k: str(v) for k, v in account.items()})
    return lists


def _policies(where: str, p: dict[str, Any], env: Mapping[str, str]) -> PolicyConfig:
    caps: dict[str, dict[str, FrequencyCap]] = {}
    for cls, channels in _section(where, "policies.frequency_caps", p.get("frequency_caps"), None).items():
        key = f"policies.frequency_caps.{cls}"
        caps[cls] = {}
        for channel, cap in _section(where, key, channels, CHANNELS).items():
            cap = _section(where, f"{key}.{channel}", cap, ("max", "days"))
            caps[cls][channel] = FrequencyCap(
                _whole(where, f"{key}.{channel}.max", cap.get("max"), 0),
                _whole(where, f"{key}.{channel}.days", cap.get("days"), 1),
            )
    quiet = _section(where, "policies.quiet_hours", p.get("quiet_hours"), ("start", "end"))
    quiet = _expanded(where, "policies.quiet_hours", quiet, env)  # ${VAR:-default} as for destinations
    hours = {}
    for key, default in (("start", 21), ("end", 8)):
        value = str(quiet.get(key, default)).strip()
        if not value.isdigit() or not 0 <= int(value) <= 23:
            raise ConfigError(f"{where}: policies.quiet_hours.{key} must be an hour 0-23, got {value!r}")
        hours[key] = int(value)
    return PolicyConfig(
        frequency_caps=caps,
        quiet_hours_start=hours["start"],
        quiet_hours_end=hours["end"],
        default_timezone=check_timezone(where, "policies.default_timezone", p.get("default_timezone", "UTC")),
        max_attempts=_whole(where, "policies.max_attempts", p.get("max_attempts", 5), 1),
        failure_share_warn=_number(
            where, "policies.failure_share_warn", p.get("failure_share_warn", 0.05), share=True
        ),
        approval_above=(
            None
            if p.get("approval_above") is None
            else _whole(where, "policies.approval_above", p.get("approval_above"), 0)
        ),
    )


def _expanded(where: str, key: str, section: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    try:
        return expand_env(section, env)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from exc


def environment_names(path: Path | str | None = None) -> list[str]:
    """The environment variables the config at `path` names: `${VAR}` references, the secrets its
    destinations name (`secret_env`, `token_env`, `password_env`, `dsn_env`) and
    TIDELINE_TRACKING_SECRET when an email destination signs links. A file that cannot be read names
    none (load_config then says what is wrong)."""
    path = Path(path or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    names: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            names.update(_REFERENCE.findall(value))
            if key in SECRET_KEYS and value.strip():
                names.add(value.strip())

    walk(raw)
    destinations = raw.get("destinations") if isinstance(raw, dict) else None
    if isinstance(destinations, dict) and any(
        isinstance(d, dict) and d.get("type") == "smtp" for d in destinations.values()
    ):
        names.add(tokens.TRACKING_SECRET_ENV)
    return sorted(names)


def _number(where: str, key: str, value: Any, *, share: bool = False, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    number = float(value)
    if share and not 0 <= number <= 1:
        raise ConfigError(f"{where}: {key} is a share in [0, 1] (0.05 is 5%), got {value!r}")
    if number < minimum:
        raise ConfigError(f"{where}: {key} must be >= {minimum:g}, got {value!r}")
    return number


def _whole(where: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    return value


def _section(where: str, key: str, value: Any, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    """`value` as a mapping (None: empty); ConfigError naming `key` when it is not one, or when it
    has keys outside `allowed` (None: any key)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ConfigError(
            f"{where}: {key} has unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed or ())})"
        )
    return value


def _enabled(where: str, key: str, section: dict[str, Any]) -> bool:
    value = section.get("enabled", True)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key}.enabled must be true or false, got {value!r}")
    return value


# keys of the alerts section that became dbt vars: the window defines the rates SQL computes
MOVED_TO_DBT = {
    "alerts.window_days": "alert_window_days",
    "alerts.unsubscribe_spike.trailing_days": "alert_trailing_days",
}


def _moved(where: str, key: str, section: Any) -> None:
    name = key.rsplit(".", 1)[1]
    if isinstance(section, dict) and name in section:
        raise ConfigError(
            f"{where}: {key} is no longer read here: the rates the alerts judge are computed in dbt "
            f"(marts.campaign_alert_rates), over the days of the dbt var {MOVED_TO_DBT[key]}; set it in "
            f"dbt_project/dbt_project.yml (vars:) and remove {key} from this file"
        )


def alerts_from_raw(raw: Any, destinations: dict[str, dict[str, Any]], where: str = "alerts") -> AlertsConfig:
    """The `alerts:` section, validated: ConfigError naming the key and what is wrong."""
    defaults = AlertsConfig()
    _moved(where, "alerts.window_days", raw)
    _moved(
        where,
        "alerts.unsubscribe_spike.trailing_days",
        raw.get("unsubscribe_spike") if isinstance(raw, dict) else None,
    )
    section = _section(
        where,
        "alerts",
        raw,
        (
            "destination",
            "delivery_failure_rate",
            "open_rate",
            "unsubscribe_spike",
            "complaint_rate",
        ),
    )
    destination = section.get("destination", defaults.destination)
    if not isinstance(destination, str) or destination not in destinations:
        raise ConfigError(
            f"{where}: alerts.destination {destination!r} is not a destination of this config "
            f"(declare a webhook destination under destinations:, e.g. staff_alerts)"
        )
    if destinations[destination].get("type") != "webhook":
        raise ConfigError(
            f"{where}: alerts.destination {destination!r} must be a webhook destination, "
            f"not {destinations[destination].get('type')!r}"
        )

    def rate(name: str, bound: str, default: RateThreshold) -> RateThreshold:
        key = f"alerts.{name}"
        s = _section(where, key, section.get(name), (bound, "min_sample", "enabled"))
        return RateThreshold(
            limit=_number(where, f"{key}.{bound}", s.get(bound, default.limit), share=True),
            min_sample=_whole(where, f"{key}.min_sample", s.get("min_sample", default.min_sample), 0),
            enabled=_enabled(where, key, s),
        )

    key = "alerts.unsubscribe_spike"
    spike = _section(
        where,
        key,
        section.get("unsubscribe_spike"),
        ("floor", "factor", "min_sample", "enabled"),
    )
    d = defaults.unsubscribe_spike
    return AlertsConfig(
        destination=destination,
        delivery_failure_rate=rate("delivery_failure_rate", "max", defaults.delivery_failure_rate),
        open_rate=rate("open_rate", "min", defaults.open_rate),
        unsubscribe_spike=SpikeThreshold(
            floor=_number(where, f"{key}.floor", spike.get("floor", d.floor), share=True),
            factor=_number(where, f"{key}.factor", spike.get("factor", d.factor), minimum=1.0),
            min_sample=_whole(where, f"{key}.min_sample", spike.get("min_sample", d.min_sample), 0),
            enabled=_enabled(where, key, spike),
        ),
        complaint_rate=rate("complaint_rate", "max", defaults.complaint_rate),
    )


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
        mode = d.get("mode", "upsert")
        launch = parse_launch(
            f"segment {segment}, destination {d['name']}",
            mode,
            d.get("pilot", spec.get("pilot")),
            experiment,
            sorted(variants),
            d.get("approval_above", spec.get("approval_above")),
        )
        out.append(
            SyncBinding(
                segment=segment,
                relation=relation,
                destination=d["name"],
                mode=mode,
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
                launch=launch,
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
