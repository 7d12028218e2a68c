"""The engagement receiver (activation.receiver) served by a real uvicorn on loopback, hit with requests."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
import uvicorn

from activation import tokens
from activation.destinations.base import OutboundRecord, SyncContext
from activation.destinations.smtp_email import SmtpEmailDestination
from activation.destinations.webhook import sign as sign_webhook
from activation.receiver import PIXEL, EngagementLog, create_app
from tideline.demo.sinks.smtp_sink import SmtpSink

SECRET = b"receiver-test-tracking-secret-0123456789"
HOOK_SECRET = "receiver-test-webhook-secret-0123456789"
REPO = Path(__file__).resolve().parents[2]


class Receiver:
    """create_app on a real uvicorn in a background thread, on a free loopback port."""

    def __init__(self, landing: Path, **app_kwargs):
        self.landing = landing
        self.app = create_app(landing, **app_kwargs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    def events(self) -> list[dict]:
        return read_lines(self.landing / "engagement" / "events")

    def consents(self) -> list[dict]:
        return read_lines(self.landing / "crm" / "consents")


def read_lines(root: Path) -> list[dict]:
    return [
        json.loads(line) for path in sorted(root.rglob("*.jsonl")) for line in path.read_text().splitlines()
    ]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    server = Receiver(tmp_path / "landing", tracking_secret=SECRET, webhook_secret=HOOK_SECRET)
    yield server
    server.stop()


def click_token(url: str = "https://shop.example/p/42", secret: bytes = SECRET, **extra) -> str:
    payload = {"m": "msg-1", "c": "C1", "cp": "spring_sale", "v": "B", "k": "click", "u": url, "i": 0}
    return tokens.sign({**payload, **extra}, secret)


def tampered(token: str) -> str:
    body, mac = token.split(".")
    middle = len(body) // 2
    return body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1 :] + "." + mac


# -- tracking ---------------------------------------------------------------------------------------


def test_click_redirects_and_records(receiver: Receiver):
    token = click_token("https://shop.example/sale?utm_source=email&x=1")
    response = requests.get(
        f"{receiver.base_url}/t/c/{token}",
        allow_redirects=False,
        headers={"User-Agent": "X" * 300},
        timeout=5,
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/sale?utm_source=email&x=1"
    [event] = receiver.events()
    assert event["event_type"] == "clicked" and event["source"] == "tracking"
    assert (event["message_key"], event["customer_id"], event["campaign"], event["variant"]) == (
        "msg-1",
        "C1",
        "spring_sale",
        "B",
    )
    assert event["link_index"] == 0 and event["url"] == "https://shop.example/sale?utm_source=email&x=1"
    assert event["channel"] == "email" and event["provider"] is None
    assert event["user_agent"] == "X" * 200
    assert re.fullmatch(r"[0-9a-f]{32}", event["event_id"])
    assert event["received_at"].endswith("Z") and event["occurred_at"] == event["received_at"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    [path] = (receiver.landing / "engagement" / "events").rglob("*.jsonl")
    assert path.parent.name == today and re.fullmatch(
        rf"receiver-\d{{8}}T\d{{6}}Z-{os.getpid()}-1\.jsonl", path.name
    )


def test_bad_click_tokens_get_400_and_record_nothing(receiver: Receiver):
    forged = click_token(secret=b"someone else's secret")
    wrong_kind = tokens.sign({"m": "msg-1", "c": "C1", "k": "open"}, SECRET)
    not_http = click_token("javascript:alert(1)")
    for token in (forged, tampered(click_token()), wrong_kind, not_http, "garbage", "a.b"):
        response = requests.get(f"{receiver.base_url}/t/c/{token}", allow_redirects=False, timeout=5)
        assert response.status_code == 400, token
        assert "not valid" in response.text and "Location" not in response.headers
    assert receiver.events() == []
    assert receiver.app.state.rejected["click token"] == 6


def test_other_spellings_of_a_valid_token_are_refused(receiver: Receiver):
    """Lenient base64 let several strings carry one token; each is refused and nothing recorded."""
    token = click_token()
    body, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bit = mac[:-1] + alphabet[alphabet.index(mac[-1]) ^ 1]  # the same 32 MAC bytes
    for variant in (f"{token}=", f"{token}==", f"{body}.{unused_bit}"):
        response = requests.get(f"{receiver.base_url}/t/c/{variant}", allow_redirects=False, timeout=5)
        assert response.status_code == 400, variant
    unsubscribe = tokens.sign({"m": "msg-1", "c": "C7", "k": "unsubscribe"}, SECRET)
    response = requests.post(f"{receiver.base_url}/u/{unsubscribe}=", data="List-Unsubscribe=One-Click")
    assert response.status_code == 400
    assert receiver.events() == [] and receiver.consents() == []
    assert requests.get(f"{receiver.base_url}/t/c/{token}", allow_redirects=False).status_code == 302


def test_open_pixel(receiver: Receiver):
    token = tokens.sign({"m": "msg-1", "c": "C1", "cp": "spring_sale", "v": "A", "k": "open"}, SECRET)
    response = requests.get(
        f"{receiver.base_url}/t/o/{token}.gif", headers={"User-Agent": "GoogleImageProxy"}, timeout=5
    )

    assert response.status_code == 200 and response.headers["Content-Type"] == "image/gif"
    assert response.content == PIXEL and response.content.startswith(b"GIF89a")
    assert "no-store" in response.headers["Cache-Control"]
    [event] = receiver.events()
    assert event["event_type"] == "opened" and event["user_agent"] == "GoogleImageProxy"
    assert (event["message_key"], event["customer_id"], event["variant"], event["url"]) == (
        "msg-1",
        "C1",
        "A",
        None,
    )

    for bad in (tampered(token), click_token(), tokens.sign({"m": "x", "c": "y", "k": "open"}, b"other")):
        response = requests.get(f"{receiver.base_url}/t/o/{bad}.gif", timeout=5)
        assert response.status_code == 200 and response.content == PIXEL
    assert len(receiver.events()) == 1


# -- unsubscribe ------------------------------------------------------------------------------------


def test_unsubscribe_get_is_a_page_and_one_click_post_revokes(receiver: Receiver):
    token = tokens.sign({"m": "msg-1", "c": "C7", "k": "unsubscribe", "s": "seg_vip"}, SECRET)
    url = f"{receiver.base_url}/u/{token}"

    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert receiver.events() == [] and receiver.consents() == []

    response = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert response.status_code == 200 and "unsubscribed" in response.text
    [event] = receiver.events()
    assert event["event_type"] == "unsubscribed" and event["source"] == "unsubscribe"
    assert (event["message_key"], event["customer_id"], event["segment"], event["channel"]) == (
        "msg-1",
        "C7",
        "seg_vip",
        "email",
    )
    [consent] = receiver.consents()
    assert consent == {
        "customer_id": "C7",
        "channel": "email",
        "status": "revoked",
        "consented_at": event["received_at"],
        "source": "unsubscribe link",
    }
    [path] = (receiver.landing / "crm" / "consents").glob("receiver-*.jsonl")

    # the confirmation page's own form works too; bad tokens record nothing
    assert requests.post(url, data={"confirm": "yes"}, timeout=5).status_code == 200
    for bad in (tampered(token), click_token()):
        assert (
            requests.post(f"{receiver.base_url}/u/{bad}", data="List-Unsubscribe=One-Click").status_code
            == 400
        )
        assert requests.get(f"{receiver.base_url}/u/{bad}", timeout=5).status_code == 400
    assert len(receiver.events()) == 2 and len(receiver.consents()) == 2


# -- provider webhooks ------------------------------------------------------------------------------


def post_webhook(
    receiver: Receiver,
    document: dict | bytes,
    *,
    secret: str = HOOK_SECRET,
    timestamp: int | None = None,
) -> requests.Response:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-Tideline-Timestamp": str(ts),
        "X-Tideline-Signature": sign_webhook(secret, ts, body),
    }
    return requests.post(f"{receiver.base_url}/webhooks/mailco", data=body, headers=headers, timeout=5)


WEBHOOK = {
    "events": [
        {"event_id": "e1", "type": "delivered", "message_key": "msg-1", "customer_id": "C1",
         "occurred_at": "2025-03-01T10:00:00Z"},
        {"event_id": "e2", "type": "bounced", "message_key": "msg-2", "customer_id": "C2",
         "occurred_at": "2025-03-01T11:00:00+01:00", "bounce_type": "hard"},
        {"event_id": 3, "type": "complained", "message_key": "msg-3", "customer_id": "C3",
         "occurred_at": "2025-03-01T12:00:00.5Z"},
        {"event_id": "e4", "type": "clicked", "message_key": "msg-1", "customer_id": "C1",
         "occurred_at": "2025-03-01T13:00:00Z", "url": "https://shop.example/p/1"},
    ]
}  # fmt: skip


def test_signed_webhook_is_recorded_with_stable_ids(receiver: Receiver):
    response = post_webhook(receiver, WEBHOOK)

    assert response.status_code == 200 and response.json() == {"recorded": 4}
    events = receiver.events()
    assert [(e["event_id"], e["event_type"]) for e in events] == [
        ("mailco:e1", "delivered"),
        ("mailco:e2", "bounced"),
        ("mailco:3", "complained"),
        ("mailco:e4", "clicked"),
    ]
    assert {(e["source"], e["provider"]) for e in events} == {("webhook", "mailco")}
    assert events[1]["occurred_at"] == "2025-03-01T10:00:00.000Z" and events[1]["bounce_type"] == "hard"
    assert events[3]["url"] == "https://shop.example/p/1" and events[0]["url"] is None
    assert receiver.consents() == [
        {"customer_id": "C3", "channel": "email", "status": "revoked",
         "consented_at": "2025-03-01T12:00:00.500Z", "source": "complaint"}
    ]  # fmt: skip

    # a re-delivery is recorded again with the same ids (dbt deduplicates by event_id)
    assert post_webhook(receiver, WEBHOOK).status_code == 200
    assert Counter(e["event_id"] for e in receiver.events()) == {
        "mailco:e1": 2,
        "mailco:e2": 2,
        "mailco:3": 2,
        "mailco:e4": 2,
    }


def test_webhook_entries_name_their_channel_and_complaints_revoke_it(receiver: Receiver):
    sms = {"events": [
        {"event_id": "s1", "type": "delivered", "message_key": "msg-9", "customer_id": "C9",
         "occurred_at": "2025-03-01T10:00:00Z", "channel": "sms"},
        {"event_id": "s2", "type": "complained", "message_key": "msg-9", "customer_id": "C9",
         "occurred_at": "2025-03-01T10:05:00Z", "channel": "sms"},
    ]}  # fmt: skip
    assert post_webhook(receiver, sms).status_code == 200
    assert [e["channel"] for e in receiver.events()] == ["sms", "sms"]
    assert [(c["channel"], c["status"], c["source"]) for c in receiver.consents()] == [
        ("sms", "revoked", "complaint")
    ]


def test_webhook_signature_and_entries_are_checked(receiver: Receiver):
    assert post_webhook(receiver, WEBHOOK, secret="wrong").status_code == 401
    assert post_webhook(receiver, WEBHOOK, timestamp=int(time.time()) - 3600).status_code == 401
    unsigned = requests.post(f"{receiver.base_url}/webhooks/mailco", json=WEBHOOK, timeout=5)
    assert unsigned.status_code == 401

    bad_time = {"events": [WEBHOOK["events"][0], {**WEBHOOK["events"][1], "occurred_at": "yesterday"}]}
    response = post_webhook(receiver, bad_time)
    assert response.status_code == 400 and response.text.startswith("events[1].occurred_at:")
    for entry, field in (
        ({**WEBHOOK["events"][0], "type": "read"}, "type"),
        ({**WEBHOOK["events"][0], "occurred_at": "2025-03-01T10:00:00"}, "occurred_at"),  # no timezone
        ({**WEBHOOK["events"][1], "bounce_type": "medium"}, "bounce_type"),
        ({**WEBHOOK["events"][0], "customer_id": "ada@example.com"}, "customer_id"),
        ({k: v for k, v in WEBHOOK["events"][0].items() if k != "message_key"}, "message_key"),
        ({**WEBHOOK["events"][0], "channel": "fax"}, "channel"),
    ):
        response = post_webhook(receiver, {"events": [WEBHOOK["events"][0], WEBHOOK["events"][2], entry]})
        assert response.status_code == 400 and response.text.startswith(f"events[2].{field}:"), response.text
    assert post_webhook(receiver, {"records": []}).status_code == 400
    assert receiver.events() == [] and receiver.consents() == []


def test_a_deeply_nested_signed_webhook_is_a_400_not_a_crash(receiver: Receiver):
    levels = 50_000
    entry = json.dumps(WEBHOOK["events"][0])[:-1]

    def with_extra(depth: int) -> bytes:  # a valid entry with an extra field nested `depth` deep
        return (
            '{"events": [' + entry + ', "extra": ' + '{"a": ' * depth + "1" + "}" * depth + "}]}"
        ).encode()

    for body in (
        b"[" * levels + b"]" * levels,
        b'{"events": ' + b"[" * levels + b"]" * levels + b"}",
        with_extra(levels),
        with_extra(30),  # 3 levels of document + 30: over the limit of 32, though parseable
    ):
        response = post_webhook(receiver, body)
        assert response.status_code == 400, response.status_code
        assert "nested" in response.text
    # brackets inside strings are text, not nesting: a legitimate entry with "[[[[" still records
    quoted = {"events": [{**WEBHOOK["events"][0], "event_id": "[" * 100 + "{" * 100}]}
    assert post_webhook(receiver, quoted).status_code == 200
    assert post_webhook(receiver, with_extra(29)).status_code == 200  # exactly 32 levels
    assert [e["event_id"] for e in receiver.events()] == ["mailco:" + "[" * 100 + "{" * 100, "mailco:e1"]
    assert requests.get(f"{receiver.base_url}/health", timeout=5).text == "ok"


def test_webhooks_need_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TIDELINE_RECEIVER_WEBHOOK_SECRET", raising=False)
    server = Receiver(tmp_path / "landing", tracking_secret=SECRET)
    try:
        assert post_webhook(server, WEBHOOK).status_code == 503
        assert requests.get(f"{server.base_url}/health", timeout=5).text == "ok"
    finally:
        server.stop()


# -- secrets at start -------------------------------------------------------------------------------


def test_receiver_refuses_to_start_without_an_adequate_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    landing = tmp_path / "landing"
    monkeypatch.delenv("TIDELINE_TRACKING_SECRET", raising=False)
    monkeypatch.delenv("TIDELINE_RECEIVER_WEBHOOK_SECRET", raising=False)
    with pytest.raises(tokens.SecretError, match="TIDELINE_TRACKING_SECRET is not set"):
        create_app(landing)
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", "")
    with pytest.raises(tokens.SecretError, match="TIDELINE_TRACKING_SECRET is not set"):
        create_app(landing)
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", "tideline-local-dev-only")
    with pytest.raises(tokens.SecretError, match="TIDELINE_TRACKING_SECRET is too short"):
        create_app(landing)
    with pytest.raises(tokens.SecretError, match="TIDELINE_TRACKING_SECRET is too short"):
        create_app(landing, tracking_secret=b"short")
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", SECRET.decode())
    monkeypatch.setenv("TIDELINE_RECEIVER_WEBHOOK_SECRET", "hook")
    with pytest.raises(tokens.SecretError, match="TIDELINE_RECEIVER_WEBHOOK_SECRET is too short"):
        create_app(landing)
    monkeypatch.delenv("TIDELINE_RECEIVER_WEBHOOK_SECRET")
    assert create_app(landing).state.engagement  # no webhook secret: webhooks answer 503, the rest works
    assert not (landing / "engagement").exists()  # nothing written by the refused starts


@pytest.mark.parametrize("module", ["activation.receiver", "tideline.cli"])
def test_receiver_process_exits_with_a_clear_error_without_a_secret(tmp_path: Path, module: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "TIDELINE_TRACKING_SECRET"}
    command = [sys.executable, "-m", module, *(["receiver"] if module == "tideline.cli" else [])]
    process = subprocess.Popen(
        [*command, "--landing-dir", str(tmp_path / "landing"), "--port", str(port)],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the receiver started without a tracking secret") from None
    assert process.returncode == 2
    assert "TIDELINE_TRACKING_SECRET is not set" in stderr and "secrets.token_hex(32)" in stderr
    assert "Traceback" not in stderr


# -- storage ----------------------------------------------------------------------------------------


def test_log_rotates_by_size_and_date_and_never_reuses_a_file(tmp_path: Path):
    landing = tmp_path / "landing"
    day1 = datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
    engagement = EngagementLog(landing, max_bytes=600)
    for n in range(6):  # each line is ~270 bytes: two per file
        engagement.append([{"event_id": f"e{n}", "event_type": "opened"}], now=day1)
    engagement.append([{"event_id": "e6"}], [{"customer_id": "C1"}], now=day1 + timedelta(minutes=2))
    engagement.close()

    files = engagement.event_files
    assert [p.parent.name for p in files] == ["2025-03-01"] * 3 + ["2025-03-02"]
    assert [len(p.read_text().splitlines()) for p in files] == [2, 2, 2, 1]
    assert all(p.stat().st_size <= 600 for p in files)
    assert [e["event_id"] for e in read_lines(landing / "engagement")] == [f"e{n}" for n in range(7)]
    assert read_lines(landing / "crm" / "consents") == [{"customer_id": "C1"}]

    again = EngagementLog(landing, max_bytes=600)  # same second, same pid: still a new file
    again.append([{"event_id": "e7"}], now=day1)
    again.close()
    assert again.event_files[0] not in files and files[0].read_text().count("\n") == 2


# -- end to end with a real email -------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])
        elif tag == "img" and values.get("src"):
            self.images.append(values["src"])


def test_email_links_pixel_and_list_unsubscribe_end_to_end(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", SECRET.decode())
    key = hashlib.sha256(b"newsletter|seg_vip_customers|C42|v1").hexdigest()
    rec = OutboundRecord("C42", key, "send", {"email": "ada@example.com", "first_name": "Ada"})
    context = SyncContext(
        sync_id="sync-1",
        segment="seg_vip_customers",
        destination="newsletter",
        mode="message",
        content_version="v1",
        content={
            "subject": "Hi {{ first_name }}",
            "html": '<html><body><p><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a>'
            '<a href="https://shop.example/p/42">Product</a></p></body></html>',
        },
        campaign="spring_sale",
        variant="B",
    )
    with SmtpSink(out_dir=tmp_path / "outbox") as sink:
        host, port = sink.address
        destination = SmtpEmailDestination.from_config(
            "newsletter",
            {
                "host": host,
                "port": port,
                "from_address": "news@tideline.example",
                "unsubscribe_base_url": f"{receiver.base_url}/u",
                "tracking_base_url": f"{receiver.base_url}/t",
                "timeout_seconds": 5,
            },
        )
        [result] = destination.send_batch([rec], context)
        assert result.status == "sent"
        [message] = sink.wait_for(1)

    links = _Links()
    links.feed(message.get_body(preferencelist=("html",)).get_content())
    assert len(links.hrefs) == 2 and all(h.startswith(f"{receiver.base_url}/t/c/") for h in links.hrefs)
    targets = [requests.get(h, allow_redirects=False, timeout=5).headers["Location"] for h in links.hrefs]
    assert targets == ["https://shop.example/sale?a=1&b=2", "https://shop.example/p/42"]
    [pixel] = links.images
    assert requests.get(pixel, timeout=5).content == PIXEL
    [unsubscribe_url] = re.findall(r"<(http[^>]+)>", str(message["List-Unsubscribe"]))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = requests.post(unsubscribe_url, data=message["List-Unsubscribe-Post"], timeout=5,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert one_click.status_code == 200

    events = receiver.events()
    assert [(e["event_type"], e["link_index"]) for e in events] == [
        ("clicked", 0),
        ("clicked", 1),
        ("opened", None),
        ("unsubscribed", None),
    ]
    assert {(e["message_key"], e["customer_id"]) for e in events} == {(key, "C42")}
    assert events[0]["campaign"] == "spring_sale" and events[3]["segment"] == "seg_vip_customers"
    assert [(c["customer_id"], c["status"]) for c in receiver.consents()] == [("C42", "revoked")]
    everything = "".join(p.read_text() for p in (receiver.landing).rglob("*.jsonl"))
    assert "ada@example.com" not in everything and "127.0.0.1" not in everything.replace(
        receiver.base_url, ""
    )


# -- a receiver killed mid-stream and restarted -----------------------------------------------------


def _start_receiver(landing: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TIDELINE_TRACKING_SECRET": SECRET.decode(), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "activation.receiver", "--landing-dir", str(landing), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "the receiver exited at start"
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the receiver did not start")


def test_killed_receiver_loses_no_acknowledged_click_and_restarts_on_new_files(tmp_path: Path):
    landing = tmp_path / "landing"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = _start_receiver(landing, port)
    work: queue.Queue[int] = queue.Queue()
    for n in range(200):
        work.put(n)
    outcome: dict[int, int | str] = {}
    restarted = threading.Event()

    def worker() -> None:
        session = requests.Session()
        while True:
            try:
                n = work.get_nowait()
            except queue.Empty:
                return
            token = tokens.sign(
                {"m": f"msg-{n}", "c": f"C{n}", "k": "click", "u": f"https://shop.example/{n}"}, SECRET
            )
            try:
                response = session.get(
                    f"http://127.0.0.1:{port}/t/c/{token}", allow_redirects=False, timeout=5
                )
                outcome[n] = response.status_code
            except requests.RequestException:
                outcome[n] = "error"  # the kill: it may or may not have been recorded
                session = requests.Session()
                restarted.wait(15)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while sum(v == 302 for v in list(outcome.values())) < 60:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=5)
    before = {p: p.read_bytes() for p in landing.rglob("*.jsonl")}
    second = _start_receiver(landing, port)
    restarted.set()
    try:
        for thread in threads:
            thread.join(timeout=20)
    finally:
        second.terminate()
        second.wait(timeout=5)

    assert len(outcome) == 200 and set(outcome.values()) <= {302, "error"}
    assert sum(v == "error" for v in outcome.values()) <= 4  # at most one in-flight request per thread
    acknowledged = {f"msg-{n}" for n, v in outcome.items() if v == 302}
    assert 60 <= len(acknowledged) < 200
    # A SIGKILL in the middle of a write can leave that one line torn (the kernel copies a write
    # that spans page-cache pages page by page and stops at a fatal signal). That write was never
    # fsynced nor answered, so no acknowledged event is in it; the loader rejects the fragment
    # as "line is not valid JSON".
    lines, torn = complete_lines(sorted(landing.rglob("*.jsonl")))
    assert len(torn) <= 1 and all(path in before for path, _ in torn)
    counts = Counter(e["message_key"] for e in lines)
    assert all(counts[key] == 1 for key in acknowledged)
    assert set(counts) - acknowledged <= {f"msg-{n}" for n, v in outcome.items() if v == "error"}
    assert max(counts.values()) == 1

    after = sorted(landing.rglob("*.jsonl"))
    assert before and all(p.read_bytes() == content for p, content in before.items())  # not rewritten
    new_files = [p for p in after if p not in before]
    assert new_files and all(f"-{second.pid}-" in p.name for p in new_files)
    assert all(f"-{first.pid}-" in p.name for p in before)
    late = {f"msg-{n}" for n, v in outcome.items() if v == 302} - {
        e["message_key"] for e in complete_lines(list(before))[0]
    }
    new_lines, new_torn = complete_lines(new_files)
    assert late and not new_torn and {e["message_key"] for e in new_lines} == late


def complete_lines(paths: list[Path]) -> tuple[list[dict], list[tuple[Path, str]]]:
    """The newline-terminated lines of the files, parsed, and any torn tail (path, fragment)."""
    records, torn = [], []
    for path in paths:
        *whole, tail = path.read_text().split("\n")
        records += [json.loads(line) for line in whole]
        if tail:
            torn.append((path, tail))
    return records, torn
