"""Pure helpers for Pulsar token authentication: HS256 signing keys and JWTs.

Pulsar's ``AuthenticationProviderToken`` verifies HS256 tokens against ``tokenSecretKey`` (the
raw key bytes, given base64-encoded in a file: ``file:///path``) and takes the role from the
``sub`` claim. Tokens are minted here with the standard library only (hmac, hashlib, base64);
they carry no expiry: revocation is done by removing the role's permissions, and a key rotation
invalidates every token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets

# 256-bit key: what `bin/pulsar tokens create-secret-key` generates for HS256.
KEY_BYTES = 32
ADMIN_ROLE = "admin"
BROKER_ROLE = "pulsar-broker"
# The role of the Pulsar proxies (pulsar-proxy relation): in the brokers' proxyRoles, so the
# client's role it forwards is what the brokers authorize.
PROXY_ROLE = "pulsar-proxy"
SUPER_USER_ROLES = (ADMIN_ROLE, BROKER_ROLE, PROXY_ROLE)

# Never only dots: the role is a path segment of the permissions URL ("..").
_ROLE = re.compile(r"^(?!\.+$)[A-Za-z0-9_.@-]{1,128}$")


def generate_key() -> str:
    """Return a new HS256 signing key, base64-encoded (the form the key file holds)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key_b64: str) -> str:
    """Return a short public identifier of a signing key (the start of its SHA-256).

    Units report it in the peer relation so the leader knows which key each broker loaded;
    it reveals nothing usable about the key. Never raises: any text has an id.
    """
    return hashlib.sha256(key_b64.strip().encode("utf-8", "replace")).hexdigest()[:16]


def valid_role(role: str) -> bool:
    """Whether ``role`` is a role name the charm accepts (letters, digits, ``_.@-``)."""
    return isinstance(role, str) and bool(_ROLE.fullmatch(role))


def mint_token(key_b64: str, role: str) -> str:
    """Return an HS256 JWT ``{"sub": role}`` signed with the base64-encoded ``key_b64``.

    Raises ``ValueError`` for an unusable key or role (a programming error, not a runtime one).
    """
    if not valid_role(role):
        raise ValueError(f"invalid role name: {role!r}")
    key = _decode_key(key_b64)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"sub": role}, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def token_role(key_b64: str, token: str) -> str | None:
    """Return the ``sub`` of ``token`` when its HS256 signature matches ``key_b64``; else None."""
    try:
        header, payload, signature = token.split(".")
        key = _decode_key(key_b64)
        expected = _b64url(
            hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
        )
        if not hmac.compare_digest(expected, signature):
            return None
        if json.loads(_b64url_decode(header)).get("alg") != "HS256":
            return None
        sub = json.loads(_b64url_decode(payload)).get("sub")
    except (ValueError, AttributeError, UnicodeError):
        return None
    return sub if isinstance(sub, str) else None


def _decode_key(key_b64: str) -> bytes:
    try:
        key = base64.b64decode(key_b64.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("signing key is not valid base64") from exc
    if len(key) < KEY_BYTES:
        raise ValueError("signing key shorter than 256 bits")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
