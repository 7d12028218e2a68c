"""Email over SMTP: one personalised, tracked message per record (message mode, action "send").

Config (destinations.yml):

    kind: smtp
    host: 127.0.0.1            # default 127.0.0.1
    port: 1025                 # default 1025
    starttls: false            # STARTTLS with certificate verification before login
    username: mailer           # optional; the password comes from the env var password_env names
    password_env: SMTP_PASSWORD
    from_address: news@tideline.example
    from_name: Tideline
    reply_to: help@tideline.example                  # optional
    unsubscribe_base_url: http://127.0.0.1:8090/u    # required: List-Unsubscribe {base}/{token}
    unsubscribe_mailto: unsubscribe@tideline.example # optional second List-Unsubscribe entry
    tracking_base_url: http://127.0.0.1:8090/t       # optional: clicks {base}/c/{token}, opens {base}/o/{token}.gif
    local_hostname: tideline.example                 # optional EHLO name (default: the sender's domain)
    timeout_seconds: 10         # every command but the end of DATA
    data_timeout_seconds: 600   # the reply to the end of DATA (RFC 5321 4.5.3.2.6: 10 minutes)
    max_batch_size: 100
    retry_attempts: 3          # tries per record for SMTP 4xx / connection errors, the first included
    retry_base_seconds: 0.5
    retry_max_seconds: 5
    delivery_log_dir: .tideline/outbox/email         # optional: the server's outbox (see below)

Content (SyncContext.content): `subject` (Jinja2 template string), `html` and/or `text`
(Jinja2 template strings), or `template_dir` with `html_template` / `text_template` file
names, and `variables` (campaign-wide values). Templates see the record's fields, the
variables, `customer_id`, `campaign`, `variant` and `unsubscribe_url`; they render in a
sandbox with StrictUndefined, so a missing personalisation variable fails that record only.

Once the whole message, end of DATA included, has gone out, the server may have accepted it
whatever happens next: a missing reply (timeout, dropped connection) makes the record `unknown`,
never retried (a retry would be a duplicate); the engine records it as such and
activation.reconcile settles it later. A failure before that point (connection refused, 4xx to
MAIL, RCPT or DATA, a reply to the end of DATA) is retried or failed as usual. Slow servers
answer the end of DATA late, so its timeout is separate and generous. With `delivery_log_dir`
(an outbox holding one `<sha256(Message-ID)[:32]>.eml` per accepted message, as the project's
SMTP sink writes), activation.reconcile settles unknown messages: in the outbox → sent, not in
it → released and sent by the next run.

Tokens (activation.tokens, signed with tracking_secret()) carry ids only:
unsubscribe {"m": key, "c": customer, "k": "unsubscribe", "s": segment}; click
{"m", "c", "k": "click", "u": original url, "i": link index, "cp": campaign, "v": variant};
open {"m", "c", "k": "open", "cp", "v"}. Links whose URL holds the recipient's email or
phone are left untracked, so no token ever carries personal data.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import logging
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import jinja2
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from activation import tokens
from activation.destinations.base import (
    ConfigError,
    DestinationDefaults,
    OutboundRecord,
    RecordResult,
    SyncContext,
    secret,
)
from activation.reconcile import SmtpOutbox
from activation.retry import RetryPolicy

log = logging.getLogger(__name__)

NO_EMAIL = "no valid email address"

_ADDRESS = re.compile(
    r'^[^@\s<>()\[\]\\,;:"]{1,64}@(?:[^@\s<>()\[\]\\,;:".]+\.)+[^@\s<>()\[\]\\,;:".\d][^@\s<>()\[\]\\,;:".]*$'
)
_ANY_ADDRESS = re.compile(r"[\w.%+!#$'*^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_HREF = re.compile(r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
_PII_FIELD = re.compile(r"email|e_mail|phone|mobile|msisdn", re.IGNORECASE)
# Raw header values (List-Unsubscribe) are sent as given: refolding would RFC 2047-encode long URLs.
_POLICY = email.policy.default.clone(refold_source="none")


class SmtpDestinationError(RuntimeError):
    """The SMTP server is unusable for this destination (bad credentials, no STARTTLS): fails the batch."""


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(_ADDRESS.match(value))


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return value


def _as_number(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def scrub(text: str, record: OutboundRecord | None = None) -> str:
    """`text` without email addresses or the record's personal field values (for errors and logs)."""
    if record is not None:
        for key, value in record.fields.items():
            if isinstance(value, str) and len(value) >= 3 and (_PII_FIELD.search(key) or "@" in value):
                text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    return _ANY_ADDRESS.sub("<address>", text)


class _TextFromHtml(HTMLParser):
    """A readable plain-text part from HTML: block elements break lines, links show their URL."""

    _BLOCK = {
        "p",
        "div",
        "br",
        "tr",
        "table",
        "ul",
        "ol",
        "hr",
        "section",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in self._BLOCK:
            self.out.append("\n")
        elif tag == "a":
            self._links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and tokens.is_http_url(href):
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.out).splitlines()]
        text = "\n".join(lines).strip()
        return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def html_to_text(markup: str) -> str:
    parser = _TextFromHtml()
    parser.feed(markup)
    parser.close()
    return parser.text()


@dataclass(frozen=True)
class _Templates:
    subject: jinja2.Template
    html: jinja2.Template | None
    text: jinja2.Template | None


@dataclass(frozen=True)
class _Outgoing:
    index: int
    key: str
    address: str
    message: EmailMessage
    message_id: str


class _ContentError(Exception):
    """The campaign content cannot be used at all: every record of the batch fails, not retryable."""


class _Smtp(smtplib.SMTP):
    """smtplib.SMTP that knows when the end of DATA has gone out (`data_sent`: from then on the
    server may have accepted the message) and waits `data_timeout` for the reply to it."""

    data_timeout: float = 600.0
    data_sent: bool = False

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):  # send_message hands over bytes with CRLF line ends already
            msg = re.sub(r"\r\n|\r|\n", "\r\n", msg).encode("ascii")
        body = re.sub(rb"(?m)^\.", b"..", msg)  # dot-stuffing (RFC 5321 4.5.2)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        self.data_sent = True
        if self.sock is not None:
            self.sock.settimeout(self.data_timeout)
        try:
            return self.getreply()
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)


class SmtpEmailDestination(DestinationDefaults):
    kind = "smtp"
    # An accepted SMTP message cannot be recalled or deduplicated: after a crash, records whose outcome
    # is unknown are marked unknown by the engine, never resent.
    idempotent_delivery = False
    encoded_batches = False

    def __init__(self, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None):
        self.name = name
        self._env = os.environ if env is None else env  # password_env and the tracking secret
        self._config = dict(config)
        c = self._config
        self.host = c.get("host") or "127.0.0.1"
        self.port = _as_number(c.get("port", 1025), int)
        self.starttls = _as_bool(c.get("starttls", False))
        self.username = c.get("username") or None
        self.password_env = c.get("password_env") or None
        self.password = (
            secret(name, self.password_env, required=False, env=self._env) if self.password_env else None
        )
        self.from_address = c.get("from_address")
        self.from_name = c.get("from_name") or ""
        self.reply_to = c.get("reply_to") or None
        self.unsubscribe_base_url = c.get("unsubscribe_base_url")
        self.unsubscribe_mailto = c.get("unsubscribe_mailto") or None
        self.tracking_base_url = c.get("tracking_base_url") or None
        self.timeout_seconds = _as_number(c.get("timeout_seconds", 10), float)
        self.data_timeout_seconds = _as_number(c.get("data_timeout_seconds", 600), float)
        self.max_batch_size = _as_number(c.get("max_batch_size", 100), int)
        self.retry_attempts = _as_number(c.get("retry_attempts", 3), int)
        self.retry_base_seconds = _as_number(c.get("retry_base_seconds", 0.5), float)
        self.retry_max_seconds = _as_number(c.get("retry_max_seconds", 5), float)
        self.delivery_log_dir = c.get("delivery_log_dir") or None
        domain = self.from_address.rsplit("@", 1)[-1] if isinstance(self.from_address, str) else "localhost"
        self.domain = domain.strip().lower() or "localhost"
        self.local_hostname = c.get("local_hostname") or self.domain
        # Jinja environments are thread-safe once built; templates are compiled per batch.
        self._html_env = SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)
        self._text_env = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
        self._file_envs: dict[tuple[str, bool], SandboxedEnvironment] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> SmtpEmailDestination:
        """Build from a config mapping; the SMTP password and the tracking secret are looked up in
        `env` (the environment the config was loaded with)."""
        return cls(name, config, env)

    # -- configuration ---------------------------------------------------------------------------

    def _problems(self) -> list[str]:
        p: list[str] = []
        if "password" in self._config:
            p.append("password must not be in the config: name the environment variable in password_env")
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            p.append("host must be a host name or IP address")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            p.append("port must be an integer between 1 and 65535")
        if not isinstance(self.starttls, bool):
            p.append("starttls must be true or false")
        if self.username is not None and not isinstance(self.username, str):
            p.append("username must be a string")
        if self.username and not self.password_env:
            p.append("password_env is required when username is set")
        elif self.username and not self.password:
            p.append(f"password_env: environment variable {self.password_env} is not set")
        if not self.from_address:
            p.append("from_address is required")
        elif not _is_address(self.from_address):
            p.append("from_address is not a valid email address")
        if not isinstance(self.from_name, str) or "\r" in self.from_name or "\n" in self.from_name:
            p.append("from_name must be one line of text")
        if self.reply_to is not None and not _is_address(self.reply_to):
            p.append("reply_to is not a valid email address")
        if not self.unsubscribe_base_url:
            p.append("unsubscribe_base_url is required (List-Unsubscribe, RFC 8058)")
        elif not tokens.is_http_url(self.unsubscribe_base_url):
            p.append("unsubscribe_base_url must be an http(s) URL")
        if self.unsubscribe_mailto is not None and not _is_address(self.unsubscribe_mailto):
            p.append("unsubscribe_mailto is not a valid email address")
        if self.tracking_base_url is not None and not tokens.is_http_url(self.tracking_base_url):
            p.append("tracking_base_url must be an http(s) URL")
        try:  # every message signs its unsubscribe link: refuse before anything is sent or in flight
            tokens.tracking_secret(self._env)
        except tokens.SecretError as exc:
            p.append(f"cannot sign links: {exc}")
        if self.delivery_log_dir is not None and not isinstance(self.delivery_log_dir, str):
            p.append("delivery_log_dir must be a folder path")
        if not isinstance(self.local_hostname, str) or not re.match(r"^[A-Za-z0-9.-]+$", self.local_hostname):
            p.append("local_hostname must be a host name")
        for key, value, positive in (
            ("timeout_seconds", self.timeout_seconds, True),
            ("data_timeout_seconds", self.data_timeout_seconds, True),
            ("retry_base_seconds", self.retry_base_seconds, False),
            ("retry_max_seconds", self.retry_max_seconds, False),
        ):
            if not isinstance(value, float) or value < 0 or (positive and value == 0):
                p.append(f"{key} must be a number {'> 0' if positive else '>= 0'}")
        for key, value in (("max_batch_size", self.max_batch_size), ("retry_attempts", self.retry_attempts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                p.append(f"{key} must be an integer >= 1")
        return p

    def validate(self) -> None:
        """Raise ConfigError naming this destination and every bad field (no network)."""
        problems = self._problems()
        if problems:
            raise ConfigError(f"destination {self.name} (smtp): " + "; ".join(problems))

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.retry_attempts,
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
        )

    def close(self) -> None:
        """Nothing to release: every send_batch opens and closes its own SMTP connection."""

    def delivery_evidence(self) -> tuple[SmtpOutbox, ...]:
        """The server's outbox, when delivery_log_dir names one: unknown messages are looked up
        there by their (deterministic) Message-ID."""
        return (SmtpOutbox(self.delivery_log_dir, self._message_id),) if self.delivery_log_dir else ()

    # -- content ---------------------------------------------------------------------------------

    def _file_env(self, template_dir: str, autoescape: bool) -> SandboxedEnvironment:
        with self._lock:
            env = self._file_envs.get((template_dir, autoescape))
            if env is None:
                env = SandboxedEnvironment(
                    loader=jinja2.FileSystemLoader(template_dir),
                    autoescape=autoescape,
                    undefined=jinja2.StrictUndefined,
                )
                self._file_envs[(template_dir, autoescape)] = env
            return env

    def _compile(self, content: Mapping[str, Any]) -> _Templates:
        part = "subject"
        try:
            subject = content.get("subject")
            if not isinstance(subject, str) or not subject.strip():
                raise _ContentError("content has no subject")
            compiled_subject = self._text_env.from_string(subject)
            compiled: dict[str, jinja2.Template | None] = {"html": None, "text": None}
            template_dir = content.get("template_dir")
            for part, autoescape in (("html", True), ("text", False)):
                source, file_name = content.get(part), content.get(f"{part}_template")
                if source:
                    env = self._html_env if autoescape else self._text_env
                    compiled[part] = env.from_string(str(source))
                elif file_name:
                    if not template_dir:
                        raise _ContentError(f"content names {part}_template but no template_dir")
                    compiled[part] = self._file_env(str(template_dir), autoescape).get_template(
                        str(file_name)
                    )
        except jinja2.TemplateSyntaxError as exc:
            raise _ContentError(
                f"template syntax error in {part} (line {exc.lineno}): {exc.message}"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise _ContentError(f"{part} template not found: {exc.name}") from exc
        except jinja2.TemplateError as exc:
            raise _ContentError(f"template error in {part}: {type(exc).__name__}") from exc
        if compiled["html"] is None and compiled["text"] is None:
            raise _ContentError("content has neither html nor text")
        return _Templates(compiled_subject, compiled["html"], compiled["text"])

    @staticmethod
    def _render(
        template: jinja2.Template, variables: Mapping[str, Any], part: str, record: OutboundRecord
    ) -> str:
        try:
            return template.render(variables)
        except jinja2.UndefinedError as exc:
            raise ValueError(scrub(f"template {part}: {exc.message}", record)) from exc
        except SecurityError as exc:
            raise ValueError(f"template {part}: unsafe operation blocked by the sandbox") from exc
        except Exception as exc:  # values in a message could be personal data: name the type only
            raise ValueError(f"template {part}: {type(exc).__name__} while rendering") from exc

    # -- tokens and tracking ---------------------------------------------------------------------

    def _message_id(self, key: str) -> str:
        local = key[:32]
        if not _SAFE_ID.match(local):
            local = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
        return f"<{local}@{self.domain}>"

    def _unsubscribe_url(self, record: OutboundRecord, context: SyncContext, secret_key: bytes) -> str:
        token = tokens.sign(
            {"m": record.idempotency_key, "c": record.customer_id, "k": "unsubscribe", "s": context.segment},
            secret_key,
        )
        return f"{self.unsubscribe_base_url.rstrip('/')}/{token}"

    @staticmethod
    def _holds_personal_data(url: str, record: OutboundRecord) -> bool:
        haystack = unquote(url).lower()
        for key, value in record.fields.items():
            if not isinstance(value, str) or len(value) < 3:
                continue
            if _PII_FIELD.search(key) or "@" in value:
                needles = {value.lower(), quote(value).lower(), quote_plus(value).lower()}
                if any(n in haystack or n in url.lower() for n in needles):
                    return True
        return bool(_ANY_ADDRESS.search(haystack))

    def _track(
        self,
        markup: str,
        record: OutboundRecord,
        context: SyncContext,
        unsubscribe_url: str,
        secret_key: bytes,
    ) -> str:
        base = self.tracking_base_url.rstrip("/")
        common = {
            "m": record.idempotency_key,
            "c": record.customer_id,
            "cp": context.campaign,
            "v": context.variant,
        }
        index = 0

        def rewrite(match: re.Match) -> str:
            nonlocal index
            url = html.unescape(match.group(3)).strip()
            if (
                not tokens.is_http_url(url)
                or url.startswith(self.unsubscribe_base_url.rstrip("/") + "/")
                or url.startswith(base + "/")
                or self._holds_personal_data(url, record)
            ):
                return match.group(0)
            token = tokens.sign({**common, "k": "click", "u": url, "i": index}, secret_key)
            index += 1
            return f"{match.group(1)}{match.group(2)}{base}/c/{token}{match.group(2)}"

        tracked = _HREF.sub(rewrite, markup)
        pixel = tokens.sign({**common, "k": "open"}, secret_key)
        img = f'<img src="{base}/o/{pixel}.gif" width="1" height="1" alt="">'
        ends = list(_BODY_END.finditer(tracked))
        if ends:
            at = ends[-1].start()
            return tracked[:at] + img + tracked[at:]
        return tracked + img

    # -- building --------------------------------------------------------------------------------

    def _build(
        self,
        index: int,
        record: OutboundRecord,
        context: SyncContext,
        templates: _Templates,
        secret_key: bytes,
    ) -> _Outgoing | RecordResult:
        key = record.idempotency_key

        def failed(error: str) -> RecordResult:
            return RecordResult(key, "failed", retryable=False, error=error)

        if record.action != "send":
            return failed(f"action {record.action!r} is not supported by smtp destinations (only 'send')")
        address = record.fields.get("email")
        address = address.strip() if isinstance(address, str) else address
        if not _is_address(address):
            return failed(NO_EMAIL)
        unsubscribe_url = self._unsubscribe_url(record, context, secret_key)
        variables = {
            **dict(context.content.get("variables") or {}),
            **{k: v for k, v in record.fields.items() if isinstance(k, str)},
            "customer_id": record.customer_id,
            "campaign": context.campaign,
            "variant": context.variant,
            "unsubscribe_url": unsubscribe_url,
        }
        try:
            subject = _one_line(self._render(templates.subject, variables, "subject", record))
            markup = self._render(templates.html, variables, "html", record) if templates.html else None
            text = self._render(templates.text, variables, "text", record) if templates.text else None
        except ValueError as exc:
            return failed(str(exc))
        if not subject:
            return failed("template subject rendered empty")
        if markup is not None and text is None:
            text = html_to_text(markup)
        if markup is not None and self.tracking_base_url:
            markup = self._track(markup, record, context, unsubscribe_url, secret_key)

        message_id = self._message_id(key)
        msg = EmailMessage(policy=_POLICY)
        try:
            msg["From"] = Address(display_name=_one_line(self.from_name), addr_spec=self.from_address)
            msg["To"] = Address(addr_spec=address)
        except (ValueError, IndexError, TypeError):
            return failed(NO_EMAIL)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        unsubscribe = [f"<{unsubscribe_url}>"]
        if self.unsubscribe_mailto:
            token = unsubscribe_url.rsplit("/", 1)[-1]
            unsubscribe.append(f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}>")
        # raw, folded between entries only: refolding would RFC 2047-encode the long URLs
        msg.set_raw("List-Unsubscribe", ",\n ".join(unsubscribe))
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if context.campaign:
            msg["X-Tideline-Campaign"] = _one_line(context.campaign)
        if context.variant:
            msg["X-Tideline-Variant"] = _one_line(context.variant)
        msg.set_content(text if text is not None else "", cte="quoted-printable")
        if markup is not None:
            msg.add_alternative(markup, subtype="html", cte="quoted-printable")
        return _Outgoing(index, key, address, msg, message_id)

    # -- sending ---------------------------------------------------------------------------------

    def _connect(self) -> _Smtp:
        conn = _Smtp(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout_seconds)
        conn.data_timeout = self.data_timeout_seconds
        try:
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quit(conn)
            raise SmtpDestinationError(
                f"destination {self.name}: SMTP login rejected ({exc.smtp_code}); check username and password_env"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _quit(conn)
            what = "STARTTLS" if "STARTTLS" in str(exc) else "AUTH"
            raise SmtpDestinationError(
                f"destination {self.name}: the SMTP server does not support {what}"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            _quit(conn)
            raise SmtpDestinationError(
                f"destination {self.name}: the SMTP server's TLS certificate failed"
            ) from exc
        except BaseException:
            _quit(conn)
            raise
        return conn

    @staticmethod
    def _send(conn: _Smtp, out: _Outgoing, sender: str) -> None:
        # smtplib asks for SMTPUTF8 itself for non-ASCII addresses (SMTPNotSupportedError if not offered)
        conn.data_sent = False
        conn.send_message(out.message, from_addr=sender, to_addrs=[out.address])

    def _unknown(self, conn: _Smtp, exc: Exception) -> str | None:
        """Why the outcome is unknown when the whole message went out and no reply came back
        (timeout, dropped connection); None when the failure is a clear answer or came before."""
        if not conn.data_sent or isinstance(exc, smtplib.SMTPResponseException):
            return None
        cause = "timeout" if "timed out" in str(exc) else type(exc).__name__
        return (
            f"no reply to the end of DATA ({cause}, data_timeout_seconds {self.data_timeout_seconds:g}): "
            "the server may have accepted it; not resent"
        )

    @staticmethod
    def _classify(exc: Exception, out: _Outgoing) -> tuple[str, bool, bool]:
        """(error without personal data, retryable, connection unusable) for a failed send."""
        code: int | None = None
        reply: Any = b""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()), (None, b""))
        elif isinstance(exc, smtplib.SMTPResponseException):
            code, reply = exc.smtp_code, exc.smtp_error
        elif isinstance(exc, smtplib.SMTPNotSupportedError):
            return "the recipient address needs SMTPUTF8, which the server does not offer", False, False
        elif isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
            return f"connection to the SMTP server lost ({type(exc).__name__})", True, True
        else:
            return f"SMTP error ({type(exc).__name__})", True, True
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        text = _one_line(re.sub(re.escape(out.address), "<recipient>", str(reply), flags=re.IGNORECASE))
        error = f"{code} {_ANY_ADDRESS.sub('<address>', text)}"[:300]
        if not isinstance(code, int) or code < 400:  # no proper reply: treat the connection as broken
            return error, True, True
        if code < 500:  # 4xx is transient; 421 also means the server is closing the connection
            return error, True, code == 421
        return error, False, False

    def send_batch(self, records: Sequence[OutboundRecord], context: SyncContext) -> list[RecordResult]:
        """One message per record on one connection (reconnecting when it breaks); transient
        failures are retried inside the call, a message that may have been accepted is `unknown`."""
        self.validate()
        results: list[RecordResult | None] = [None] * len(records)
        secret_key = tokens.tracking_secret(self._env)
        try:
            templates = self._compile(context.content or {})
        except _ContentError as exc:
            log.warning("smtp %s: content unusable for sync %s: %s", self.name, context.sync_id, exc)
            return [
                RecordResult(r.idempotency_key, "failed", retryable=False, error=str(exc)) for r in records
            ]

        pending: list[_Outgoing] = []
        for index, record in enumerate(records):
            try:
                built: _Outgoing | RecordResult = self._build(index, record, context, templates, secret_key)
            except Exception as exc:  # never let one odd record fail the batch; name the type only
                error = f"could not build the message ({type(exc).__name__})"
                built = RecordResult(record.idempotency_key, "failed", retryable=False, error=error)
            if isinstance(built, RecordResult):
                results[index] = built
            else:
                pending.append(built)

        policy = self.retry_policy
        last_error: dict[int, str] = {}
        conn: smtplib.SMTP | None = None
        try:
            for attempt in range(1, policy.attempts + 1):
                if not pending:
                    break
                if attempt > 1:
                    log.info("smtp %s: retrying %d record(s), try %d", self.name, len(pending), attempt)
                    policy.sleep(attempt - 1)
                if conn is None:
                    try:
                        conn = self._connect()
                    except SmtpDestinationError as exc:
                        if not any(r is not None and r.status == "sent" for r in results):
                            raise  # nothing sent yet: fail the whole batch, the engine retries it later
                        for out in pending:  # some already went out: report them, the rest retry later
                            last_error[out.index] = str(exc)
                        break
                    except (OSError, smtplib.SMTPException) as exc:
                        error = f"could not connect to the SMTP server ({type(exc).__name__})"
                        for out in pending:
                            last_error[out.index] = error
                        continue
                retry: list[_Outgoing] = []
                for position, out in enumerate(pending):
                    if conn is None:
                        retry.extend(pending[position:])
                        break
                    try:
                        if context.on_attempt is not None:
                            context.on_attempt(out.key)
                        self._send(conn, out, self.from_address)
                    except (OSError, smtplib.SMTPException) as exc:
                        unknown = self._unknown(conn, exc)
                        if unknown is not None:  # never retried: it may already be in the inbox
                            _quit(conn)
                            conn = None
                            results[out.index] = RecordResult(
                                out.key, "unknown", error=unknown, remote_id=out.message_id
                            )
                            log.warning("smtp %s: record %s: %s", self.name, out.key, unknown)
                            continue
                        error, retryable, broken = self._classify(exc, out)
                        if broken:
                            _quit(conn)
                            conn = None
                        if retryable:
                            last_error[out.index] = error
                            retry.append(out)
                        else:
                            results[out.index] = RecordResult(out.key, "failed", retryable=False, error=error)
                            log.info("smtp %s: record %s failed: %s", self.name, out.key, error)
                    else:
                        results[out.index] = RecordResult(out.key, "sent", remote_id=out.message_id)
                        if context.on_sent is not None:  # journaled at once: a crash now is not `unknown`
                            context.on_sent(out.key, out.message_id)
                pending = retry
        finally:
            if conn is not None:
                _quit(conn)
        for out in pending:
            error = last_error.get(out.index, "not sent")
            results[out.index] = RecordResult(out.key, "failed", retryable=True, error=error)
            log.info(
                "smtp %s: record %s failed after %d tries: %s", self.name, out.key, policy.attempts, error
            )

        final = [r for r in results if r is not None]
        assert len(final) == len(records)
        sent = sum(r.status == "sent" for r in final)
        unknown = sum(r.status == "unknown" for r in final)
        retryable = sum(r.status == "failed" and r.retryable for r in final)
        log.info(
            "smtp %s: sync %s batch of %d: %d sent, %d unknown, %d failed (%d retryable)",
            self.name,
            context.sync_id,
            len(final),
            sent,
            unknown,
            len(final) - sent - unknown,
            retryable,
        )
        return final


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
