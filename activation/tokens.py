"""Signed tracking tokens for links and open pixels: they carry ids only, never personal data.

    token = sign({"m": message_key, "c": customer_id, "k": "click", "u": link_index}, secret)
    payload = verify(token, secret)      # raises InvalidToken if forged, tampered or malformed

Format: base64url(compact JSON) "." base64url(HMAC-SHA256(secret, that first part)), both without
padding. Decoding is strict: only the URL-safe alphabet, no padding, and only the one canonical
spelling of the bytes, so a token has exactly one string form (no malleable variants).

The secret comes from TIDELINE_TRACKING_SECRET (tracking_secret()); the engagement receiver
verifies with the same secret. There is no fallback: a secret that is unset, empty, shorter than
MIN_SECRET_BYTES (32 bytes) or with fewer than MIN_DISTINCT_CHARS distinct characters is refused
with SecretError, because anyone who can guess the key can forge click tokens (an open redirect)
and unsubscribe tokens (revoking any customer's consent). Generate one with

    python -c "import secrets; print(secrets.token_hex(32))"

`tideline demo` and `tideline run` with the local destinations generate one per Tideline home
(their state folder's secrets.json); everything else must have it configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

TRACKING_SECRET_ENV = "TIDELINE_TRACKING_SECRET"
MIN_SECRET_BYTES = 32  # HMAC-SHA256 keys: 256 bits of room; 64 hex characters from token_hex(32) fill it
MIN_DISTINCT_CHARS = 10  # refuses "aaaa…" and a short word repeated; random keys have 14+ of 16 hex digits
GENERATE_HINT = 'python -c "import secrets; print(secrets.token_hex(32))"'

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class SecretError(ValueError):
    """A signing secret is missing or too weak; the message names the variable and how to fix it."""


class InvalidToken(ValueError):
    pass


def is_http_url(value: Any) -> bool:
    """An absolute http(s) URL without whitespace: what a click token may send a reader to.
    The email destination signs only such links and the receiver redirects only to them."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_secret(name: str, value: str | bytes | None) -> bytes:
    """`value` as bytes when it is an adequate HMAC secret, else SecretError naming `name` (the
    environment variable it comes from) and how to generate one. The value is never echoed."""
    raw = value.encode() if isinstance(value, str) else (value or b"")
    fix = f"set {name} to a random value of at least {MIN_SECRET_BYTES} bytes, e.g. the output of {GENERATE_HINT}"
    if not raw:
        raise SecretError(f"{name} is not set: {fix}")
    if len(raw) < MIN_SECRET_BYTES:
        raise SecretError(
            f"{name} is too short ({len(raw)} bytes, at least {MIN_SECRET_BYTES} needed): {fix}"
        )
    if len(set(raw)) < MIN_DISTINCT_CHARS:
        raise SecretError(
            f"{name} has too little variety (fewer than {MIN_DISTINCT_CHARS} distinct characters): {fix}"
        )
    return raw


def tracking_secret(env: Mapping[str, str] | None = None) -> bytes:
    """The key that signs tracking and unsubscribe tokens, TIDELINE_TRACKING_SECRET in `env` (the
    resolved environment of the activation config; the process's own when not given). SecretError
    when it is unset or too weak; there is no default."""
    return check_secret(TRACKING_SECRET_ENV, (os.environ if env is None else env).get(TRACKING_SECRET_ENV))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: anything but the canonical spelling is an InvalidToken."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidToken("malformed token: not unpadded base64url")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise InvalidToken(f"malformed token: {exc}") from exc
    if _b64(data) != text:  # unused low bits set: another spelling of the same bytes
        raise InvalidToken("malformed token: not canonical base64url")
    return data


def sign(payload: dict[str, Any], secret: bytes) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(token: str, secret: bytes) -> dict[str, Any]:
    try:
        body, mac = token.split(".", 1)
        expected = hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise InvalidToken("signature does not match")
        payload = json.loads(_unb64(body))
    except InvalidToken:
        raise
    except (ValueError, UnicodeError) as exc:
        raise InvalidToken(f"malformed token: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidToken("token payload is not an object")
    return payload
