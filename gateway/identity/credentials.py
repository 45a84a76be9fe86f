"""What a request presents (docs/README.md), read without any check, and the identity it proves.

Credentials are parsed for every request by the identity middleware (cheap, syntactic)
and resolved only when a handler asks (``authz.authenticate``): a public route never pays
for an argon2 verify, and a stale header does not break ``/login``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from gateway.storage import TokenRecord, User
from gateway.tokens.claims import TokenKind

__all__ = [
    "BEARER_KINDS",
    "REFRESH_KINDS",
    "SESSION_KINDS",
    "USER_TOKEN_KINDS",
    "VERIFY_KINDS",
    "Credentials",
    "Identity",
    "basic_text",
    "hash_key",
    "parse_credentials",
]

#: Longest Basic credential or session key we read.
_MAX_CREDENTIAL_LENGTH = 4096
#: Kinds that authenticate a request as ``Authorization: Bearer`` (docs/README.md).
BEARER_KINDS = frozenset({TokenKind.ACCESS, TokenKind.API})
SESSION_KINDS = frozenset({TokenKind.SESSION})
REFRESH_KINDS = frozenset({TokenKind.REFRESH})
#: What ``POST /api/token/verify/`` accepts, as SimpleJWT does.
VERIFY_KINDS = frozenset({TokenKind.ACCESS, TokenKind.REFRESH})
#: What ``POST /introspect`` and ``POST /revoke`` know about: every user token, no media token.
USER_TOKEN_KINDS = frozenset({TokenKind.ACCESS, TokenKind.REFRESH, TokenKind.SESSION,
                              TokenKind.API})


class Credentials(NamedTuple):
    """What the request presents, before any check. ``scheme`` "invalid" means unreadable.
    (A tuple: one is made for nearly every request, and a tuple is the cheapest to make.)"""

    scheme: Literal["basic", "bearer", "session", "invalid"]
    username: str = ""
    password: str = ""
    token: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user, and the token that proved it (None for Basic)."""

    user: User
    token: TokenRecord | None
    method: Literal["basic", "bearer", "session"]


def hash_key(key: str) -> str:
    """The stored form of a session's X-Key (the key itself is never stored)."""
    # Header values may carry undecodable bytes (kept as surrogates): hash them as sent.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def basic_text(raw: bytes) -> str:
    """Decoded Basic credentials: UTF-8 when they are valid UTF-8, else Latin-1.

    RFC 7617 leaves the charset to the client: browsers and curl send UTF-8, but
    ``requests`` and other older clients send Latin-1 (the RFC's historical default).
    Latin-1 decodes any bytes, so no credential is unreadable for its charset.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> Credentials | None:
    """Read the request's credentials (docs/README.md); None when it carries none."""
    authorization = headers.get("Authorization")
    x_key = headers.get("X-Key") or query.get("x_key")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if not value or len(value) > _MAX_CREDENTIAL_LENGTH * 3:
            return Credentials("invalid")
        if scheme.lower() == "basic":
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):  # also non-ASCII input
                return Credentials("invalid")
            username, colon, password = basic_text(raw).partition(":")
            if not colon or not username:
                return Credentials("invalid")
            return Credentials("basic", username=username, password=password)
        if scheme.lower() == "bearer":
            if x_key is not None:
                return Credentials("session", token=value, key=x_key)
            return Credentials("bearer", token=value)
        return Credentials("invalid")
    access_token = headers.get("X-Access-Token") or query.get("access_token")
    if access_token is not None:
        return Credentials("session", token=access_token, key=x_key or "")
    return None
