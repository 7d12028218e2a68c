"""The local destinations the demo syncs to, started by the run itself (no service by hand).

A local SMTP server (messages saved as .eml files), one HTTP sink for the SMS, push,
CRM and alert webhooks (requests saved as JSON lines, HMAC signatures checked) and
a folder for ad-audience files, all under $TIDELINE_HOME/outbox. The environment
variables config/activation.yml reads are pointed at them for the run, and so is
TIDELINE_TRACKING_SECRET (the emails sign their links): a local sandbox run has no
configured secret, so it uses the home's own (`demo_secrets`).

For the demo loop also the engagement receiver (`running_receiver`: uvicorn in a thread on a
free loopback port, TIDELINE_RECEIVER_URL pointed at it) and the secrets it shares with the
emails' tokens and the providers' webhooks (`demo_secrets`: generated once per Tideline home,
kept in $TIDELINE_HOME/secrets.json, mode 0600, so links in earlier runs' emails still verify).
Only these sandbox runs get a generated tracking secret: everywhere else (a run with
TIDELINE_ACTIVATION_CONFIG, `tideline receiver`) a missing one is an error, never a default.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SECRET_NAMES = ("TIDELINE_TRACKING_SECRET", "TIDELINE_RECEIVER_WEBHOOK_SECRET")


@contextmanager
def local_destinations(home: Path) -> Iterator[dict[str, str]]:
    from tideline.demo.sinks.http_sink import HttpSink
    from tideline.demo.sinks.smtp_sink import SmtpSink

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
        "TIDELINE_TRACKING_SECRET": demo_secrets(home)["TIDELINE_TRACKING_SECRET"],
    }
    try:
        with environment(env):
            yield {"outbox": str(outbox), "smtp": f"{host}:{port}", "http": base}
    finally:
        http.stop()
        smtp.stop()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """These environment variables set for the block, the previous values (or their absence) restored."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def demo_secrets(home: Path) -> dict[str, str]:
    """The tracking and receiver-webhook secrets for the demo and local sandbox runs of this home:
    from the environment when set, else generated once (64 hex characters, secrets.token_hex(32))
    and kept in $TIDELINE_HOME/secrets.json, mode 0600 (never printed, never in the repository)."""
    path = home / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in SECRET_NAMES if not os.environ.get(name) and not stored.get(name)]
    if missing:
        stored.update({name: secrets.token_hex(32) for name in missing})
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
        os.replace(path.with_suffix(".tmp"), path)
    return {name: os.environ.get(name) or stored[name] for name in SECRET_NAMES}


@contextmanager
def running_receiver(landing_dir: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """The engagement receiver (activation.receiver) on uvicorn in a daemon thread, on a free port
    of `host`, appending to `landing_dir`; yields its base URL. Secrets are read from the
    environment when it starts (set them first, e.g. from demo_secrets)."""
    import uvicorn

    from activation.receiver import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(create_app(landing_dir), log_level="warning", access_log=False, lifespan="on")
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
