"""The staff notification rules file (default `config/staff_notifications.yml`), validated once.

    staff = load_staff_config(path, destinations=activation_config.destinations, env=env)

Every mistake is a StaffConfigError naming the file, the rule and the key:

    config/staff_notifications.yml: rules.big_orders.amount: must be a number > 0, got 'lots'

The file names destinations of the activation config (config/activation.yml) by name: `team` (the
team channel, a webhook destination; a rule's `destination` override too), `chat` (a webhook destination whose settings, secret
and timeouts, every chat handle is sent with: its url is replaced by the employee's handle) and
`email` (an smtp destination for email handles). Secrets stay in the activation config's
environment variables; `${VAR:-default}` works here as there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from activation.config import check_timezone
from activation.destinations.base import ConfigError, expand_env

DEFAULT_STAFF_CONFIG = Path(__file__).resolve().parents[2] / "config" / "staff_notifications.yml"
KINDS = ("new_lead_assigned", "lead_mql", "churn_risk_high_value", "order_above", "form_submitted")
ROUTES = ("owner", "manager", "all_owners", "first_owner", "team")
TOP_KEYS = (
    "link_base_url",
    "destinations",
    "quiet_hours",
    "default_timezone",
    "digest_staff",
    "redirect_handles_to",
    "rules",
)
COMMON_RULE_KEYS = (
    "kind",
    "enabled",
    "route",
    "destination",
    "skip_handled",
    "digest",
    "within_days",
    "description",
)
KIND_KEYS = {
    "new_lead_assigned": (),
    "lead_mql": (),
    "churn_risk_high_value": ("min_churn_probability", "min_predicted_clv", "clv_top_share"),
    "order_above": ("amount", "completed_only"),
    "form_submitted": ("event_type", "url_contains"),
}
# "skip customers already handled" (lead_scores.crm_stage not null) is on by default for the lead
# rules; for the others it is off (a deal's next order or churn risk still matters)
SKIP_HANDLED_DEFAULT = {"new_lead_assigned": True, "lead_mql": True}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_STAFF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StaffConfigError(ConfigError):
    """The staff notifications file is unusable; the message names the file, the rule and the key."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    route: str = "owner"
    enabled: bool = True
    destination: str | None = None  # override: every notification of the rule goes here (team-like)
    skip_handled: bool = False
    digest: bool = False
    within_days: int = 7  # how far back events, orders, links and MQL crossings are notified
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class StaffConfig:
    source: str
    rules: tuple[Rule, ...]
    team_destination: str
    chat_destination: str | None
    email_destination: str | None
    link_base_url: str
    quiet_hours_start: int = 20
    quiet_hours_end: int = 8
    default_timezone: str = "UTC"
    digest_staff: frozenset[str] = frozenset()
    # a test or staging environment: every chat handle's message goes to this base URL with the
    # handle's path instead of the real chat tool (None: to the handle itself)
    redirect_handles_to: str | None = None

    def link(self, customer_id: str) -> str:
        return f"{self.link_base_url.rstrip('/')}/{customer_id}"

    @property
    def enabled_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


def load_staff_config(
    path: Path | str | None = None,
    *,
    destinations: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str] | None = None,
) -> StaffConfig:
    """The staff notifications file at `path`, validated against the activation config's
    `destinations` (name -> config block)."""
    path = Path(path or DEFAULT_STAFF_CONFIG)
    where = str(path)
    if not path.exists():
        raise StaffConfigError(f"{where}: the staff notifications file does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StaffConfigError(f"{where}: not valid YAML: {exc}") from exc
    try:
        raw = expand_env(raw, env or {})
    except ConfigError as exc:
        raise StaffConfigError(f"{where}: {exc}") from exc
    return parse_staff_config(raw, where, destinations)


def staff_config_path(activation_config: str | Path | None) -> Path:
    """staff_notifications.yml next to the activation config in use ('' or None: the default's)."""
    if activation_config:
        return Path(activation_config).parent / DEFAULT_STAFF_CONFIG.name
    return DEFAULT_STAFF_CONFIG


def optional_staff_config(
    activation_config: str | Path | None,
    *,
    destinations: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str] | None = None,
) -> StaffConfig | None:
    """The staff notifications file next to the activation config, or None when there is none
    (nothing to notify; a journey notify step then skips its entries with the reason)."""
    path = staff_config_path(activation_config)
    return load_staff_config(path, destinations=destinations, env=env) if path.exists() else None


def parse_staff_config(raw: Any, where: str, destinations: Mapping[str, Mapping[str, Any]]) -> StaffConfig:
    """The file's value (already read and expanded) as a StaffConfig."""
    top = _mapping(where, "(top)", raw, TOP_KEYS)
    dests = _mapping(where, "destinations", top.get("destinations"), ("team", "chat", "email"))
    if "team" not in dests:
        raise StaffConfigError(f"{where}: destinations.team is required (the team channel's destination)")
    team = _destination(where, "destinations.team", dests["team"], destinations, ("webhook",))
    chat = _destination(where, "destinations.chat", dests.get("chat"), destinations, ("webhook",))
    email = _destination(where, "destinations.email", dests.get("email"), destinations, ("smtp",))
    redirect = top.get("redirect_handles_to") or None
    if redirect is not None and (
        not isinstance(redirect, str) or not re.match(r"^https?://[^\s]+$", redirect)
    ):
        raise StaffConfigError(
            f"{where}: redirect_handles_to must be an http(s) URL or empty (chat handles are then sent to "
            f"it, their path kept), got {redirect!r}"
        )
    link = top.get("link_base_url")
    if not isinstance(link, str) or not re.match(r"^https?://[^\s]+$", link):
        raise StaffConfigError(
            f"{where}: link_base_url must be an http(s) URL (the link is <link_base_url>/<customer_id>), got {link!r}"
        )
    quiet = _mapping(where, "quiet_hours", top.get("quiet_hours"), ("start", "end"))
    hours = {k: _hour(where, f"quiet_hours.{k}", quiet.get(k, d)) for k, d in (("start", 20), ("end", 8))}
    try:
        zone = check_timezone(where, "default_timezone", top.get("default_timezone", "UTC"))
    except ConfigError as exc:
        raise StaffConfigError(str(exc)) from exc
    digest_staff = top.get("digest_staff") or []
    if not isinstance(digest_staff, list) or not all(
        isinstance(s, str) and _STAFF_ID.match(s) for s in digest_staff
    ):
        raise StaffConfigError(f"{where}: digest_staff must be a list of staff ids, got {digest_staff!r}")
    rules_raw = _mapping(where, "rules", top.get("rules"), None)
    rules = tuple(_rule(where, str(name), value, destinations) for name, value in rules_raw.items())
    return StaffConfig(
        source=where,
        rules=rules,
        team_destination=team,
        chat_destination=chat,
        email_destination=email,
        link_base_url=link,
        redirect_handles_to=redirect,
        quiet_hours_start=hours["start"],
        quiet_hours_end=hours["end"],
        default_timezone=zone,
        digest_staff=frozenset(digest_staff),
    )


def _rule(where: str, name: str, value: Any, destinations: Mapping[str, Mapping[str, Any]]) -> Rule:
    key = f"rules.{name}"
    if not _NAME.match(name):
        raise StaffConfigError(
            f"{where}: {key}: a rule name is lower-case letters, digits and _ (at most 48)"
        )
    body = value if isinstance(value, dict) else None
    if body is None:
        raise StaffConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    kind = body.get("kind", name)
    if kind not in KINDS:
        raise StaffConfigError(
            f"{where}: {key}.kind {kind!r} is not one of {', '.join(KINDS)} (a rule named after a kind needs no kind:)"
        )
    body = _mapping(where, key, body, COMMON_RULE_KEYS + KIND_KEYS[kind])
    route = body.get("route", "owner")
    if route not in ROUTES:
        raise StaffConfigError(f"{where}: {key}.route {route!r} is not one of {', '.join(ROUTES)}")
    destination = body.get("destination")
    if destination is not None:
        destination = _destination(where, f"{key}.destination", destination, destinations, ("webhook",))
    within = body.get("within_days", 7)
    if isinstance(within, bool) or not isinstance(within, int) or within < 1:
        raise StaffConfigError(
            f"{where}: {key}.within_days must be a whole number of days >= 1, got {within!r}"
        )
    params = {k: body[k] for k in KIND_KEYS[kind] if k in body}
    _check_params(where, key, kind, params)
    return Rule(
        name=name,
        kind=kind,
        route=route,
        enabled=_bool(where, f"{key}.enabled", body.get("enabled", True)),
        destination=destination,
        skip_handled=_bool(
            where, f"{key}.skip_handled", body.get("skip_handled", SKIP_HANDLED_DEFAULT.get(kind, False))
        ),
        digest=_bool(where, f"{key}.digest", body.get("digest", False)),
        within_days=within,
        params=params,
        description=str(body.get("description", "")),
    )


def _check_params(where: str, key: str, kind: str, params: dict[str, Any]) -> None:
    if kind == "order_above":
        if "amount" not in params:
            raise StaffConfigError(f"{where}: {key}.amount is required (notify orders above this amount)")
        _positive(where, f"{key}.amount", params["amount"])
        params["completed_only"] = _bool(where, f"{key}.completed_only", params.get("completed_only", True))
    elif kind == "form_submitted":
        event_type = params.get("event_type", "form_submit")
        if not isinstance(event_type, str) or not _NAME.match(event_type):
            raise StaffConfigError(
                f"{where}: {key}.event_type must be an event type such as form_submit, got {event_type!r}"
            )
        params["event_type"] = event_type
        if "url_contains" in params and not isinstance(params["url_contains"], str):
            raise StaffConfigError(
                f"{where}: {key}.url_contains must be text, got {params['url_contains']!r}"
            )
    elif kind == "churn_risk_high_value":
        p = params.setdefault("min_churn_probability", 0.5)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise StaffConfigError(f"{where}: {key}.min_churn_probability is a share in (0, 1], got {p!r}")
        if "min_predicted_clv" in params and "clv_top_share" in params:
            raise StaffConfigError(f"{where}: {key}: give min_predicted_clv or clv_top_share, not both")
        if "min_predicted_clv" in params:
            _positive(where, f"{key}.min_predicted_clv", params["min_predicted_clv"])
        else:
            share = params.setdefault("clv_top_share", 0.2)
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise StaffConfigError(
                    f"{where}: {key}.clv_top_share is a share in (0, 1] (0.2: the top 20%), got {share!r}"
                )


def _positive(where: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise StaffConfigError(f"{where}: {key} must be a number > 0, got {value!r}")


def _destination(
    where: str, key: str, name: Any, destinations: Mapping[str, Mapping[str, Any]], types: tuple[str, ...]
) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or name not in destinations:
        raise StaffConfigError(
            f"{where}: {key} {name!r} is not a destination of the activation config (known: {', '.join(sorted(destinations))})"
        )
    kind = destinations[name].get("type")
    if kind not in types:
        raise StaffConfigError(
            f"{where}: {key} {name!r} is a {kind} destination; it must be {' or '.join(types)}"
        )
    return name


def _mapping(where: str, key: str, value: Any, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StaffConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    unknown = sorted(str(k) for k in value if allowed is not None and k not in allowed)
    if unknown:
        raise StaffConfigError(
            f"{where}: {key}: unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed or ())})"
        )
    return value


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise StaffConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _hour(where: str, key: str, value: Any) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise StaffConfigError(
            f"{where}: {key} must be an hour 0-23 in the employee's time zone, got {value!r}"
        )
    return int(text)
