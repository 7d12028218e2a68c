"""Signed tracking tokens for links and open pixels: they carry ids only, never personal data.

    token = sign({"m": message_key, "c": customer_id, "k": "click", "u": link_index}, secret)
    payload = verify(token, secret)      # raises InvalidToken if forged, tampered or malformed

Format: base64url(compact JSON) "." base64url(HMAC-SHA256(secret, that first part)).
The secret comes from TIDELINE_TRACKING_SECRET (tracking_secret()); the engagement
receiver verifies with the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any
from urllib.parse import urlsplit

DEFAULT_DEV_SECRET = (
    "tideline-local-dev-only"  # safe local default; set TIDELINE_TRACKING_SECRET in production
)


def is_http_url(value: Any) -> bool:
    """An absolute http(s) URL without whitespace: what a click token may send a reader to.
    The email destination signs only such links and the receiver redirects only to them."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class InvalidToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tracking_secret() -> bytes:
    return os.environ.get("TIDELINE_TRACKING_SECRET", DEFAULT_DEV_SECRET).encode()


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
