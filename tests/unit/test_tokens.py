"""Tracking tokens (activation.tokens): no fallback secret, a minimum secret strength, strict decoding."""

from __future__ import annotations

import base64
import secrets

import pytest

from activation import tokens

GOOD = secrets.token_hex(32)
PAYLOAD = {"m": "msg-1", "c": "C1", "k": "click", "u": "https://shop.example/p/42", "i": 0}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("tideline-local-dev-only", "at least 32"),
        ("x" * 31, "at least 32"),
        ("ab" * 40, "too little variety"),  # long enough, but two characters repeated
    ],
)
def test_tracking_secret_refuses_missing_empty_short_and_repetitive_values(
    monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str
) -> None:
    if value is None:
        monkeypatch.delenv(tokens.TRACKING_SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(tokens.TRACKING_SECRET_ENV, value)
    with pytest.raises(tokens.SecretError) as caught:
        tokens.tracking_secret()
    message = str(caught.value)
    assert problem in message
    # says which variable to set and how to generate a value, never echoes the value itself
    assert "TIDELINE_TRACKING_SECRET" in message
    assert 'python -c "import secrets; print(secrets.token_hex(32))"' in message
    assert not value or value not in message


def test_tracking_secret_returns_an_adequate_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.TRACKING_SECRET_ENV, GOOD)
    assert tokens.tracking_secret() == GOOD.encode()
    assert tokens.check_secret("ANY_NAME", "Correct-Horse-Battery-Staple-2026!") == (
        b"Correct-Horse-Battery-Staple-2026!"
    )


def _variants(token: str) -> list[str]:
    """Other spellings of the same bytes that lenient base64 decoding would accept."""
    body, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    # the MAC is 32 bytes: 43 characters whose last one carries 4 bits and 2 unused ones
    non_canonical = mac[:-1] + alphabet[last ^ 1]
    return [
        f"{body}.{mac}=",
        f"{body}.{mac}==",
        f"{body}.{mac[:10]}!{mac[10:]}",
        f"{body}.{mac[:10]}\n{mac[10:]}",
        f"{body}.{mac}.",
        f"{body}.{non_canonical}",
        f"{body}.{mac.replace('-', '+').replace('_', '/')}"
        if ("-" in mac or "_" in mac)
        else f"{body}.+{mac}",
    ]


def test_strict_decoding_rejects_every_other_spelling_of_a_valid_token() -> None:
    key = GOOD.encode()
    token = tokens.sign(PAYLOAD, key)
    assert tokens.verify(token, key) == PAYLOAD
    body, mac = token.split(".")
    assert base64.urlsafe_b64decode(mac + "=")  # the variants decode leniently to the same MAC ...
    for variant in _variants(token):
        assert variant != token
        with pytest.raises(tokens.InvalidToken):  # ... and are refused
            tokens.verify(variant, key)
    # and what is no token at all is an InvalidToken too, never another exception
    for malformed in ("", ".", "a.b", "a", "é.é", "abcde.abcde", "....", "a" * 5 + "." + "b" * 43):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify(malformed, key)
