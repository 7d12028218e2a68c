"""SmtpEmailDestination against a real aiosmtpd server on loopback (tideline.demo.sinks.smtp_sink)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from activation import tokens
from activation.destinations.base import ConfigError, Destination, OutboundRecord, RecordResult, SyncContext
from activation.destinations.smtp_email import NO_EMAIL, SmtpDestinationError, SmtpEmailDestination
from tideline.demo.sinks.smtp_sink import SmtpSink

SECRET = "test-tracking-secret-0123456789abcdef"  # at least 32 bytes (activation.tokens)
FROM = "news@tideline.example"
HTML = """<html><body>
<p>Hi {{ first_name }}, from {{ shop }} ({{ company }})</p>
<p><a href="https://shop.example/sale?utm_source=email&amp;utm_campaign={{ campaign }}">Shop the sale</a></p>
<p><a class="cta" href='https://shop.example/p/42'>Product</a> <a href="mailto:help@shop.example">Help</a></p>
<p><a href="https://shop.example/prefs?e={{ email }}">Your preferences</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


@pytest.fixture(autouse=True)
def tracking_secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("TIDELINE_TRACKING_SECRET", SECRET)
    return SECRET.encode()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(out_dir=tmp_path / "outbox") as server:
        yield server


def destination(sink: SmtpSink | None = None, **overrides) -> SmtpEmailDestination:
    host, port = sink.address if sink else ("127.0.0.1", 1025)
    config = {
        "host": host,
        "port": port,
        "from_address": FROM,
        "from_name": "Tideline Shop",
        "reply_to": "help@tideline.example",
        "unsubscribe_base_url": "http://127.0.0.1:8090/u",
        "unsubscribe_mailto": "unsubscribe@tideline.example",
        "tracking_base_url": "http://127.0.0.1:8090/t",
        "timeout_seconds": 5,
        "retry_attempts": 3,
        "retry_base_seconds": 0.01,
        **overrides,
    }
    dest = SmtpEmailDestination.from_config("newsletter", config)
    dest.validate()
    return dest


def context(**content) -> SyncContext:
    return SyncContext(
        sync_id="sync-1",
        segment="seg_vip_customers",
        destination="newsletter",
        mode="message",
        content_version="v1",
        content=content
        or {"subject": "Hi {{ first_name }}, our sale", "html": HTML, "variables": {"shop": "Tideline"}},
        campaign="spring_sale",
        variant="B",
    )


def record(customer_id: str, email: str | None = None, **fields) -> OutboundRecord:
    if email is not None:
        fields["email"] = email
    fields.setdefault("company", "A&B <Ltd>")
    key = hashlib.sha256(f"newsletter|seg_vip_customers|{customer_id}|v1".encode()).hexdigest()
    return OutboundRecord(customer_id=customer_id, idempotency_key=key, action="send", fields=fields)


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def by_recipient(sink: SmtpSink) -> dict[str, EmailMessage]:
    return {str(m["To"]): m for m in sink.messages}


def test_is_a_destination():
    dest = destination()
    assert isinstance(dest, Destination)
    assert dest.kind == "smtp" and dest.max_batch_size == 100
    assert destination(max_batch_size="25").max_batch_size == 25


def test_delivered_message_headers_parts_personalisation_and_tracking(sink: SmtpSink, tracking_secret: bytes):
    ada, grace = (
        record("C1", "ada@example.com", first_name="Ada"),
        record("C2", "grace@example.com", first_name="Grace"),
    )
    results = destination(sink).send_batch([ada, grace], context())

    assert [r.status for r in results] == ["sent", "sent"]
    assert results[0].remote_id == f"<{ada.idempotency_key[:32]}@tideline.example>"
    assert sink.envelopes[0] == (FROM, ["ada@example.com"])
    msg = by_recipient(sink)["ada@example.com"]

    assert msg["From"] == f"Tideline Shop <{FROM}>"
    assert msg["Reply-To"] == "help@tideline.example"
    assert msg["Subject"] == "Hi Ada, our sale"
    assert msg["Message-ID"] == results[0].remote_id
    assert msg["Date"]
    assert msg["X-Tideline-Campaign"] == "spring_sale" and msg["X-Tideline-Variant"] == "B"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"

    # List-Unsubscribe: https URL with a signed ids-only token, plus mailto; not RFC 2047-encoded on the wire
    entries = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    assert entries[0].startswith("http://127.0.0.1:8090/u/") and entries[1].startswith(
        "mailto:unsubscribe@tideline.example?subject=unsubscribe%20"
    )
    unsubscribe = tokens.verify(entries[0].rsplit("/", 1)[1], tracking_secret)
    assert unsubscribe == {"m": ada.idempotency_key, "c": "C1", "k": "unsubscribe", "s": "seg_vip_customers"}
    raw = b"".join(p.read_bytes() for p in sink.out_dir.glob("*.eml"))
    assert len(list(sink.out_dir.glob("*.eml"))) == 2
    assert b"List-Unsubscribe: <http://127.0.0.1:8090/u/" in raw and b"=?utf-8?" not in raw

    text, html = parts(msg)
    assert "Hi Ada, from Tideline" in text and "Hi Ada, from Tideline" in html
    assert "A&amp;B &lt;Ltd&gt;" in html  # autoescaped in HTML, plain in text
    assert "A&B <Ltd>" in text
    assert "https://shop.example/p/42" in text  # the derived text part keeps the original links

    hrefs = re.findall(r"""href=["']([^"']+)["']""", html)
    assert len(hrefs) == 5
    assert hrefs[2] == "mailto:help@shop.example"  # not http(s): untouched
    assert hrefs[3] == "https://shop.example/prefs?e=ada@example.com"  # holds the email: never tracked
    assert hrefs[4] == entries[0]  # the unsubscribe link is not wrapped
    clicks = [tokens.verify(h.split("/t/c/", 1)[1], tracking_secret) for h in hrefs[:2]]
    assert all(h.startswith("http://127.0.0.1:8090/t/c/") for h in hrefs[:2])
    assert clicks[0] == {
        "m": ada.idempotency_key,
        "c": "C1",
        "k": "click",
        "u": "https://shop.example/sale?utm_source=email&utm_campaign=spring_sale",
        "i": 0,
        "cp": "spring_sale",
        "v": "B",
    }
    assert clicks[1]["u"] == "https://shop.example/p/42" and clicks[1]["i"] == 1

    pixel = re.search(
        r'<img src="http://127\.0\.0\.1:8090/t/o/([^"]+)\.gif" width="1" height="1" alt="">', html
    )
    assert pixel and html.index(pixel.group(0)) < html.index("</body>")
    opened = tokens.verify(pixel.group(1), tracking_secret)
    assert opened == {"m": ada.idempotency_key, "c": "C1", "k": "open", "cp": "spring_sale", "v": "B"}
    for payload in [*clicks, opened, unsubscribe]:
        assert "@" not in json.dumps(payload) and "Ada" not in json.dumps(payload)

    _, mac = pixel.group(1).split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps({**opened, "c": "C2"}).encode()).rstrip(b"=").decode()
    tampered = forged_body + "." + mac
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(tampered, tracking_secret)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(pixel.group(1), b"another secret")


def test_same_record_gets_the_same_message_id(sink: SmtpSink):
    ada = record("C1", "ada@example.com", first_name="Ada")
    dest = destination(sink)
    first = dest.send_batch([ada], context())
    second = dest.send_batch([ada], context())
    ids = [m["Message-ID"] for m in sink.messages]
    assert len(ids) == 2 and ids[0] == ids[1] == first[0].remote_id == second[0].remote_id


def test_without_tracking_base_url_links_are_untouched(sink: SmtpSink):
    destination(sink, tracking_base_url=None).send_batch(
        [record("C1", "ada@example.com", first_name="Ada")], context()
    )
    _, html = parts(sink.messages[0])
    assert 'href="https://shop.example/sale?utm_source=email&amp;utm_campaign=spring_sale"' in html
    assert "/t/" not in html and "<img" not in html


def test_template_files_with_text_part_derived_from_html(sink: SmtpSink, tmp_path: Path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "welcome.html").write_text("<h1>Welcome {{ first_name }}</h1><p>Code: {{ code }}</p>")
    content = {
        "subject": "Welcome",
        "template_dir": str(tmp_path / "tpl"),
        "html_template": "welcome.html",
        "variables": {"code": "SPRING10"},
    }
    [result] = destination(sink).send_batch(
        [record("C1", "ada@example.com", first_name="Ada")], context(**content)
    )
    assert result.status == "sent"
    text, html = parts(sink.messages[0])
    assert text.split() == ["Welcome", "Ada", "Code:", "SPRING10"]
    assert "<h1>Welcome Ada</h1>" in html


def test_bad_records_fail_alone(sink: SmtpSink):
    batch = [
        record("C1", "ada@example.com", first_name="Ada"),
        record("C2", "grace@example.com"),  # no first_name for the template
        record("C3"),  # no email
        record("C4", "not-an-address", first_name="Linus"),
        record("C5", "alan@example.com", first_name="Alan"),
        OutboundRecord("C6", "f" * 64, "upsert", {"email": "x@example.com"}),
    ]
    results = destination(sink).send_batch(batch, context())

    assert [r.status for r in results] == ["sent", "failed", "failed", "failed", "sent", "failed"]
    assert [r.idempotency_key for r in results] == [r.idempotency_key for r in batch]
    missing_variable = results[1]
    assert not missing_variable.retryable and "'first_name' is undefined" in missing_variable.error
    assert results[2] == RecordResult(batch[2].idempotency_key, "failed", retryable=False, error=NO_EMAIL)
    assert results[3].error == NO_EMAIL and not results[3].retryable
    assert not results[5].retryable and "upsert" in results[5].error
    assert sorted(by_recipient(sink)) == ["ada@example.com", "alan@example.com"]
    assert all("@" not in (r.error or "") and "not-an-address" not in (r.error or "") for r in results)


def test_unusable_content_fails_every_record_without_raising(sink: SmtpSink):
    batch = [record("C1", "ada@example.com", first_name="Ada")]
    [broken] = destination(sink).send_batch(batch, context(subject="Hi {{ first_name", text="x"))
    assert broken.status == "failed" and not broken.retryable and "syntax error in subject" in broken.error
    [empty] = destination(sink).send_batch(batch, context(subject="Hi"))
    assert empty.status == "failed" and "neither html nor text" in empty.error
    assert sink.messages == []


def test_sandbox_blocks_unsafe_templates(sink: SmtpSink):
    content = {"subject": "Hi", "text": "{{ first_name.__class__.__mro__ }}"}
    [result] = destination(sink).send_batch(
        [record("C1", "ada@example.com", first_name="Ada")], context(**content)
    )
    assert result.status == "failed" and not result.retryable and "template text" in result.error


@pytest.mark.parametrize("stages", [("rcpt",), ("data",)])
def test_transient_451_is_retried_then_delivered_once(sink: SmtpSink, stages: tuple[str]):
    sink.fail_next(1, code=451, message="try again later", stages=stages)
    [result] = destination(sink).send_batch([record("C1", "ada@example.com", first_name="Ada")], context())
    assert result.status == "sent"
    assert len(sink.messages) == 1


def test_persistent_451_fails_retryable(sink: SmtpSink):
    sink.fail_next(10, code=451, message="greylisted <ada@example.com>")
    [result] = destination(sink, retry_attempts=3).send_batch(
        [record("C1", "ada@example.com", first_name="Ada")], context()
    )
    assert result.status == "failed" and result.retryable
    assert result.error.startswith("451 greylisted") and "ada@" not in result.error
    assert sink.messages == []


def test_550_fails_that_record_only_and_not_retryable(sink: SmtpSink):
    sink.reject_address("bob@example.com", code=550, message="mailbox unavailable")
    batch = [
        record(f"C{i}", f"{name}@example.com", first_name=name) for i, name in enumerate(["ada", "bob", "cy"])
    ]
    results = destination(sink).send_batch(batch, context())

    assert [r.status for r in results] == ["sent", "failed", "sent"]
    assert not results[1].retryable
    assert results[1].error.startswith("550 mailbox unavailable") and "bob" not in results[1].error
    assert sorted(by_recipient(sink)) == ["ada@example.com", "cy@example.com"]


def test_a_late_acknowledgement_of_data_is_awaited_and_never_resent(sink: SmtpSink):
    """The server stores the message, then answers the end of DATA after the client's command
    timeout (a slow queue). The message was accepted: the client waits for the reply with its
    own, generous DATA timeout, and sends every message once (it used to take the timeout for a
    lost connection and send the message again)."""
    sink.late_ack_next(2, 1.0)
    dest = destination(sink, timeout_seconds=0.3, data_timeout_seconds=10)
    batch = [record(f"C{i}", f"user{i}@example.com", first_name=f"U{i}") for i in range(4)]
    results = dest.send_batch(batch, context())

    assert [r.status for r in results] == ["sent"] * 4
    assert sink.duplicates == 0
    assert sink.message_id_counts() == Counter({r.remote_id: 1 for r in results})


def test_no_reply_to_the_end_of_data_is_unknown_not_resent(sink: SmtpSink):
    """Past the DATA timeout the client cannot tell whether the server kept the message: the
    record is `unknown` (never sent again automatically), not a failure to retry. A server that
    refuses DATA (451) never got the message: that record is still retried, and delivered once."""
    sink.fail_next(1, code=451, stages=("data",))  # the first message is refused once
    sink.late_ack_next(1, 2.5)  # the next one is stored at once and answered after the client gave up
    dest = destination(sink, timeout_seconds=0.3, data_timeout_seconds=0.8)
    batch = [record(f"C{i}", f"user{i}@example.com", first_name=f"U{i}") for i in range(3)]
    results = dest.send_batch(batch, context())

    assert [r.status for r in results] == ["sent", "unknown", "sent"]
    assert not results[1].retryable and "may have accepted" in results[1].error
    assert results[1].remote_id == f"<{batch[1].idempotency_key[:32]}@tideline.example>"
    assert sink.message_id_counts() == Counter({r.remote_id: 1 for r in results})


def test_data_timeout_defaults_to_the_rfc_5321_ten_minutes():
    assert destination().data_timeout_seconds == 600.0
    with pytest.raises(ConfigError, match="data_timeout_seconds"):
        destination(data_timeout_seconds=0)


def test_server_down_fails_all_retryable_without_raising():
    with SmtpSink() as gone:
        address = gone.address
    dest = SmtpEmailDestination.from_config(
        "newsletter",
        {
            "host": address[0],
            "port": address[1],
            "from_address": FROM,
            "unsubscribe_base_url": "http://127.0.0.1:8090/u",
            "retry_attempts": 2,
            "retry_base_seconds": 0.01,
            "timeout_seconds": 1,
        },
    )
    batch = [
        record("C1", "ada@example.com", first_name="Ada"),
        record("C2", "bob@example.com", first_name="Bob"),
    ]
    results = dest.send_batch(batch, context())
    assert [(r.status, r.retryable) for r in results] == [("failed", True), ("failed", True)]
    assert all("could not connect" in r.error for r in results)


def test_concurrent_batches_deliver_every_message_once(sink: SmtpSink):
    dest = destination(sink)
    batches = [
        [record(f"T{t}-{i}", f"user{t}x{i}@example.com", first_name=f"U{i}") for i in range(10)]
        for t in range(4)
    ]
    results: list[list[RecordResult]] = [[] for _ in batches]

    def run(n: int) -> None:
        results[n] = dest.send_batch(batches[n], context())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert all(r.status == "sent" for batch in results for r in batch) and sum(map(len, results)) == 40
    ids = Counter(m["Message-ID"] for m in sink.messages)
    assert len(ids) == 40 and set(ids.values()) == {1}
    assert set(ids) == {r.remote_id for batch in results for r in batch}
    for msg in sink.messages:  # each message carries its own recipient's personalisation
        assert msg["Subject"] == f"Hi U{str(msg['To']).split('x')[1].split('@')[0]}, our sale"


def test_login_with_password_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("TEST_SMTP_WRONG", "nope")
    with SmtpSink(credentials={"mailer": "s3cret"}) as sink:
        ok = destination(sink, username="mailer", password_env="TEST_SMTP_PASSWORD")
        [result] = ok.send_batch([record("C1", "ada@example.com", first_name="Ada")], context())
        assert result.status == "sent" and len(sink.messages) == 1
        wrong = destination(sink, username="mailer", password_env="TEST_SMTP_WRONG")
        with pytest.raises(SmtpDestinationError, match="login rejected"):
            wrong.send_batch([record("C1", "ada@example.com", first_name="Ada")], context())


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"from_address": None}, "from_address is required"),
        ({"from_address": "news"}, "from_address is not a valid"),
        ({"port": "smtp"}, "port"),
        ({"port": 70000}, "port"),
        ({"starttls": "maybe"}, "starttls"),
        ({"unsubscribe_base_url": None}, "unsubscribe_base_url is required"),
        ({"unsubscribe_base_url": "ftp://127.0.0.1/u"}, "unsubscribe_base_url must be an http(s) URL"),
        ({"tracking_base_url": "127.0.0.1:8090/t"}, "tracking_base_url"),
        ({"reply_to": "help"}, "reply_to"),
        ({"username": "mailer"}, "password_env is required"),
        (
            {"username": "mailer", "password_env": "TIDELINE_TEST_UNSET_VAR"},
            "TIDELINE_TEST_UNSET_VAR is not set",
        ),
        ({"password": "hunter2"}, "password must not be in the config"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retry_attempts": "x"}, "retry_attempts"),
    ],
)
def test_validate_names_the_field(override: dict, field: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TIDELINE_TEST_UNSET_VAR", raising=False)
    config = {"from_address": FROM, "unsubscribe_base_url": "http://127.0.0.1:8090/u", **override}
    dest = SmtpEmailDestination.from_config("newsletter", {k: v for k, v in config.items() if v is not None})
    with pytest.raises(ConfigError, match=re.escape(field)) as info:
        dest.validate()
    assert "destination newsletter" in str(info.value) and "hunter2" not in str(info.value)


def test_config_values_from_env_expansion_are_strings():
    dest = SmtpEmailDestination.from_config(
        "newsletter",
        {
            "port": "2525",
            "starttls": "false",
            "timeout_seconds": "3",
            "max_batch_size": "50",
            "from_address": FROM,
            "unsubscribe_base_url": "https://tideline.example/u",
        },
    )
    dest.validate()
    assert (dest.port, dest.starttls, dest.timeout_seconds, dest.max_batch_size) == (2525, False, 3.0, 50)
    assert dest.host == "127.0.0.1"
