"""Destinations: one module each, all behind activation.destinations.base.Destination.

`create(name, config)` builds one from its config block (config/activation.yml).
"""

from __future__ import annotations

import importlib
from typing import Any

from activation.destinations.base import ConfigError, Destination

TYPES = {
    "smtp": "activation.destinations.smtp_email:SmtpEmailDestination",
    "webhook": "activation.destinations.webhook:WebhookDestination",
    "crm": "activation.destinations.crm_rest:CrmRestDestination",
    "postgres": "activation.destinations.postgres_table:PostgresTableDestination",
    "audience_files": "activation.destinations.audience_files:AudienceFilesDestination",
}


def create(name: str, config: dict[str, Any]) -> Destination:
    kind = config.get("type")
    if kind not in TYPES:
        raise ConfigError(f"destination {name}: type {kind!r} is not one of {', '.join(TYPES)}")
    module, cls = TYPES[kind].split(":")
    destination = getattr(importlib.import_module(module), cls).from_config(
        name, {k: v for k, v in config.items() if k not in ("type", "rate_limit_per_second")}
    )
    destination.validate()
    return destination
