"""Destinations: one module each, all behind activation.destinations.base.Destination.

`create(name, config, env)` builds one from its config block (config/activation.yml); `env` is
the resolved environment the config was loaded with, where secrets named by `*_env` keys are
looked up (activation.config.ActivationConfig.destination passes its own).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from activation.destinations.base import ConfigError, Destination

TYPES = {
    "smtp": "activation.destinations.smtp_email:SmtpEmailDestination",
    "webhook": "activation.destinations.webhook:WebhookDestination",
    "crm": "activation.destinations.crm_rest:CrmRestDestination",
    "postgres": "activation.destinations.postgres_table:PostgresTableDestination",
    "audience_files": "activation.destinations.audience_files:AudienceFilesDestination",
}


def create(name: str, config: dict[str, Any], env: Mapping[str, str] | None = None) -> Destination:
    kind = config.get("type")
    if kind not in TYPES:
        raise ConfigError(f"destination {name}: type {kind!r} is not one of {', '.join(TYPES)}")
    module, cls = TYPES[kind].split(":")
    destination = getattr(importlib.import_module(module), cls).from_config(
        name, {k: v for k, v in config.items() if k not in ("type", "rate_limit_per_second")}, env
    )
    destination.validate()
    return destination
