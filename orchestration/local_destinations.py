"""The local destinations the demo syncs to, started by the run itself (no service by hand).

A local SMTP server (messages saved as .eml files), one HTTP sink for the SMS, push,
CRM and alert webhooks (requests saved as JSON lines, HMAC signatures checked) and
a folder for ad-audience files, all under $TIDELINE_HOME/outbox. The environment
variables config/activation.yml reads are pointed at them for the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_destinations(home: Path) -> Iterator[dict[str, str]]:
    from activation.sinks.http_sink import HttpSink
    from activation.sinks.smtp_sink import SmtpSink

    outbox = home / "outbox"
    (outbox / "email").mkdir(parents=True, exist_ok=True)
    (outbox / "http").mkdir(parents=True, exist_ok=True)
    secret = os.environ.get("TIDELINE_WEBHOOK_SECRET") or secrets.token_hex(16)
    smtp = SmtpSink(out_dir=outbox / "email")
    crm_token = os.environ.get("TIDELINE_CRM_TOKEN") or secrets.token_hex(16)
    http = HttpSink(out_dir=outbox / "http", secret=secret, token=crm_token)
    host, port = smtp.start()
    base = http.start()
    env = {
        "TIDELINE_SMTP_HOST": host,
        "TIDELINE_SMTP_PORT": str(port),
        "TIDELINE_SMS_WEBHOOK_URL": f"{base}/sms",
        "TIDELINE_PUSH_WEBHOOK_URL": f"{base}/push",
        "TIDELINE_CRM_URL": f"{base}/crm",
        "TIDELINE_ALERT_WEBHOOK_URL": f"{base}/alerts",
        "TIDELINE_WEBHOOK_SECRET": secret,
        "TIDELINE_CRM_TOKEN": crm_token,
        "TIDELINE_AUDIENCE_DIR": str(outbox / "audiences"),
    }
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield {"outbox": str(outbox), "smtp": f"{host}:{port}", "http": base}
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        http.stop()
        smtp.stop()
