"""Tests of the HS256 token helpers (pure, standard library only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pulsar_tokens
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROLES = st.from_regex(r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,39}", fullmatch=True)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_generated_key_is_256_bits_base64():
    key = pulsar_tokens.generate_key()
    assert len(base64.b64decode(key)) == 32
    assert key != pulsar_tokens.generate_key()


@given(ROLES)
def test_token_is_a_standard_hs256_jwt_with_only_sub(role):
    key = pulsar_tokens.generate_key()
    token = pulsar_tokens.mint_token(key, role)
    header, payload, signature = token.split(".")
    assert json.loads(_b64url_decode(header)) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(_b64url_decode(payload)) == {"sub": role}  # no expiry
    expected = hmac.new(
        base64.b64decode(key), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    assert _b64url_decode(signature) == expected
    assert "=" not in token
    assert pulsar_tokens.token_role(key, token) == role


@given(ROLES)
def test_token_signed_with_another_key_is_not_recognised(role):
    token = pulsar_tokens.mint_token(pulsar_tokens.generate_key(), role)
    assert pulsar_tokens.token_role(pulsar_tokens.generate_key(), token) is None


@given(st.text(max_size=60))
def test_token_role_never_raises(garbage):
    assert pulsar_tokens.token_role(pulsar_tokens.generate_key(), garbage) is None


def test_minting_is_deterministic_for_one_key_and_role():
    key = pulsar_tokens.generate_key()
    assert pulsar_tokens.mint_token(key, "relation-3") == pulsar_tokens.mint_token(
        key, "relation-3"
    )


@pytest.mark.parametrize("role", ["", "has space", "a/b", "x" * 200, ".", ".."])
def test_invalid_roles_are_refused(role):
    with pytest.raises(ValueError):
        pulsar_tokens.mint_token(pulsar_tokens.generate_key(), role)


def test_short_or_garbled_keys_are_refused():
    with pytest.raises(ValueError):
        pulsar_tokens.mint_token(base64.b64encode(b"short").decode(), "admin")
    with pytest.raises(ValueError):
        pulsar_tokens.mint_token("not base64 !!", "admin")
