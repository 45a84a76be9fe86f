"""User JWTs (session, access, refresh, api): claims, signing and strict verification.

Pure functions over a ``Keyring``; no aiohttp, no storage. Verification follows SPEC §7:
cap the length, read the header first, refuse any algorithm but HS256 and any
``crit``/``jku``/``x5u``/``jwk``/``x5c``, find the key by ``kid`` in our keyring only, decode
with an explicit algorithm list and issuer, then check times against an injected clock and
the ``token_type`` claim ourselves (python-jose checks neither ``typ`` nor our kinds).
Whether a token is revoked is the storage's business, by ``jti``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from typing import Any, TypeGuard

from jose import jwt
from jose.exceptions import JOSEError

from gateway.errors import InvalidToken
from gateway.tokens.keyring import Keyring

__all__ = [
    "DECODE_OPTIONS",
    "MAX_TOKEN_LENGTH",
    "TokenKind",
    "checked_header",
    "decode_user_token",
    "decode_with",
    "is_number",
    "issue_user_token",
    "new_jti",
]

#: Longest token we try to decode; anything longer is refused unread.
MAX_TOKEN_LENGTH = 8192
USER_TOKEN_ALGORITHM = "HS256"
_REFUSED_HEADERS = frozenset({"crit", "jku", "x5u", "jwk", "x5c"})
DECODE_OPTIONS = {
    # Times are checked below against the injected clock; python-jose would use time.time().
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_sub": False,
    "verify_jti": False,
    "verify_at_hash": False,
    "verify_iss": True,
}


class TokenKind(enum.StrEnum):
    """The ``token_type`` claim: where a token is accepted (SPEC §3)."""

    ACCESS = "access"
    REFRESH = "refresh"
    SESSION = "session"
    API = "api"
    MEDIA = "media"


def new_jti() -> str:
    """A fresh token id."""
    return str(uuid.uuid4())


def issue_user_token(
    keyring: Keyring,
    *,
    kind: TokenKind,
    jti: str,
    user_id: int,
    username: str,
    tenant: str,
    issuer: str,
    issued_at: int,
    expires_at: int,
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign a user token of ``kind`` with the keyring's HS256 key; ``kid`` names the key."""
    claims: dict[str, Any] = {
        "token_type": kind.value,
        "jti": jti,
        "sub": str(user_id),
        "username": username,
        "tenant": tenant,
        "iss": issuer,
        "iat": issued_at,
        "exp": expires_at,
    }
    if extra:
        claims.update(extra)
    token: str = jwt.encode(
        claims,
        keyring.signing_key,
        algorithm=USER_TOKEN_ALGORITHM,
        headers={"kid": keyring.user_kid},
    )
    return token


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number claim (booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def checked_header(token: object, algorithms: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(token, header) of a token worth verifying, or InvalidToken (SPEC §7).

    Caps the length, reads the header without trusting it, and refuses any algorithm
    outside ``algorithms`` and any ``crit``/``jku``/``x5u``/``jwk``/``x5c`` header. The
    caller then finds the key by ``kid`` in its own keyring and decodes with
    ``DECODE_OPTIONS`` and the one algorithm named here.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken()
    if token.count(".") != 2:
        raise InvalidToken()
    try:
        header = jwt.get_unverified_header(token)
    except (JOSEError, TypeError, ValueError, KeyError):
        raise InvalidToken() from None
    if not isinstance(header, dict) or header.get("alg") not in algorithms:
        raise InvalidToken()
    if _REFUSED_HEADERS & header.keys():
        raise InvalidToken()
    return token, header


def decode_with(token: str, key: object, algorithm: str, issuer: str) -> dict[str, Any]:
    """Verify the signature with ``key`` and the issuer; times are the caller's to check."""
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], issuer=issuer,
                            options=DECODE_OPTIONS)
    except (JOSEError, TypeError, ValueError, KeyError):
        raise InvalidToken() from None
    if not isinstance(claims, dict):
        raise InvalidToken()
    return claims


def decode_user_token(
    keyring: Keyring,
    token: object,
    *,
    kinds: frozenset[TokenKind],
    issuer: str,
    now: float,
    leeway: int = 0,
) -> dict[str, Any]:
    """Return the claims of a valid user token of one of ``kinds``, or raise InvalidToken."""
    token, header = checked_header(token, (USER_TOKEN_ALGORITHM,))
    key = keyring.user_key(header.get("kid"))
    if key is None:
        raise InvalidToken()
    claims = decode_with(token, key, USER_TOKEN_ALGORITHM, issuer)
    kind = claims.get("token_type")
    if kind not in {k.value for k in kinds}:
        raise InvalidToken()
    for name in ("jti", "sub", "tenant", "username"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise InvalidToken()
    exp, iat = claims.get("exp"), claims.get("iat")
    nbf = claims.get("nbf", iat)
    if not (is_number(exp) and is_number(iat) and is_number(nbf)):
        raise InvalidToken()
    if now > exp + leeway or iat > now + leeway or nbf > now + leeway:
        raise InvalidToken()
    return claims
