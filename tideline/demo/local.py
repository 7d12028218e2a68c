"""The local destinations the default activation config points at, started by the run itself.

A local SMTP server (messages saved as .eml files), one HTTP sink for the SMS, push, CRM and
alert webhooks (requests saved as JSON lines, HMAC signatures and the CRM token checked) and a
folder for ad-audience files, all under <state folder>/outbox. `local_destinations` starts them
and yields their addresses as `values`: the `${VAR}`s of config/activation.yml, handed to the
pipeline as data (the activation resource's values), never written into the environment.

The sandbox secrets (`demo_secrets`): the tracking secret the emails sign their links with, the
engagement receiver's webhook secret, the HTTP sink's HMAC secret and the CRM token. Each comes
from the caller's environment when set there, else it is generated once per state folder and
kept in <state folder>/secrets.json (mode 0600), so links in earlier runs' emails still verify and
the Dagster UI's runs (which read the same file, orchestration/resources.py) sign with the same
key. Only these sandbox runs get generated secrets: everywhere else (a run with
TIDELINE_ACTIVATION_CONFIG, `tideline receiver`) a missing one is an error, never a default.

For the demo loop also the engagement receiver (`running_receiver`: uvicorn in a thread on a free
loopback port, its secrets given explicitly).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TRACKING_SECRET = "TIDELINE_TRACKING_SECRET"
RECEIVER_WEBHOOK_SECRET = "TIDELINE_RECEIVER_WEBHOOK_SECRET"
SINK_SECRET = "TIDELINE_WEBHOOK_SECRET"  # the HMAC secret of the SMS, push and alert webhooks
CRM_TOKEN = "TIDELINE_CRM_TOKEN"
SECRET_NAMES = (TRACKING_SECRET, RECEIVER_WEBHOOK_SECRET, SINK_SECRET, CRM_TOKEN)


@dataclass(frozen=True)
class LocalDestinations:
    outbox: Path
    smtp: str  # host:port
    http: str  # base URL of the HTTP sink
    values: dict[str, str] = field(default_factory=dict)  # config/activation.yml's ${VAR}s pointed here


@contextmanager
def local_destinations(state_dir: Path, env: Mapping[str, str]) -> Iterator[LocalDestinations]:
    """Start the SMTP and HTTP sinks for the block, writing under `state_dir`/outbox, with the
    sandbox secrets of `state_dir` (the caller's `env` wins)."""
    from tideline.demo.sinks.http_sink import HttpSink
    from tideline.demo.sinks.smtp_sink import SmtpSink

    keys = demo_secrets(state_dir, env)
    outbox = state_dir / "outbox"
    (outbox / "email").mkdir(parents=True, exist_ok=True)
    (outbox / "http").mkdir(parents=True, exist_ok=True)
    smtp = SmtpSink(out_dir=outbox / "email")
    http = HttpSink(out_dir=outbox / "http", secret=keys[SINK_SECRET], token=keys[CRM_TOKEN])
    host, port = smtp.start()
    try:
        base = http.start()
        try:
            yield LocalDestinations(
                outbox=outbox,
                smtp=f"{host}:{port}",
                http=base,
                values={
                    "TIDELINE_SMTP_HOST": host,
                    "TIDELINE_SMTP_PORT": str(port),
                    "TIDELINE_SMS_WEBHOOK_URL": f"{base}/sms",
                    "TIDELINE_PUSH_WEBHOOK_URL": f"{base}/push",
                    "TIDELINE_CRM_URL": f"{base}/crm",
                    "TIDELINE_ALERT_WEBHOOK_URL": f"{base}/alerts",
                    # staff notifications: the team channel, and every employee's chat handle
                    "TIDELINE_STAFF_TEAM_WEBHOOK_URL": f"{base}/staff/team",
                    "TIDELINE_STAFF_REDIRECT_URL": base,
                    "TIDELINE_AUDIENCE_DIR": str(outbox / "audiences"),
                    # what the sinks accepted: unknown sends are settled from it (activation.reconcile)
                    "TIDELINE_EMAIL_DELIVERY_LOG_DIR": str(outbox / "email"),
                    "TIDELINE_HTTP_DELIVERY_LOG_DIR": str(outbox / "http"),
                },
            )
        finally:
            http.stop()
    finally:
        smtp.stop()


def demo_secrets(state_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The sandbox secrets of `state_dir`: from `env` when set there, else generated once (64 hex
    characters, secrets.token_hex(32)) and kept in `state_dir`/secrets.json, mode 0600 (never
    printed, never in the repository; a secret set in `env` is not written)."""
    path = state_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in SECRET_NAMES if not env.get(name) and not stored.get(name)]
    if missing:
        stored.update({name: secrets.token_hex(32) for name in missing})
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
        os.replace(path.with_suffix(".tmp"), path)
    return {name: env.get(name) or stored[name] for name in SECRET_NAMES}


@contextmanager
def running_receiver(
    landing_dir: Path, tracking_secret: str, webhook_secret: str, host: str = "127.0.0.1"
) -> Iterator[str]:
    """The engagement receiver (activation.receiver) on uvicorn in a daemon thread, on a free port
    of `host`, appending to `landing_dir` and verifying with the secrets given; yields its base URL."""
    import uvicorn

    from activation.receiver import create_app

    app = create_app(landing_dir, tracking_secret=tracking_secret.encode(), webhook_secret=webhook_secret)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the engagement receiver did not start")
        time.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
