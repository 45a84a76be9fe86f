"""User JWTs (session, access, refresh, api): claims, signing and strict verification.

Functions over a ``Keyring`` (which finds the keys); no aiohttp, no SQL. Verification is
strict: cap the length, read the header first, refuse any algorithm but the keyring's
(``tokens.algorithm``) and any ``crit``/``jku``/``x5u``/``jwk``/``x5c``, find the key by
``kid`` in our keyring only, decode with an explicit one-algorithm list and issuer, refuse
a tenant key's token that claims another tenant, then check times against an injected
clock and the ``token_type`` claim ourselves (python-jose checks neither ``typ`` nor our
kinds). Whether a token is revoked is the storage's business, by ``jti``.
"""

from __future__ import annotations

import enum
import math
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
    "checked_claims",
    "checked_header",
    "decode_user_token",
    "decode_with",
    "is_time",
    "issue_user_token",
    "new_jti",
]

#: Longest token we try to decode; anything longer is refused unread.
MAX_TOKEN_LENGTH = 8192
#: Time claims are epoch seconds below this (they fit a signed 64-bit column).
MAX_TIME = 2**63
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
    """The ``token_type`` claim: where a token is accepted (docs/README.md, token kinds)."""

    ACCESS = "access"
    REFRESH = "refresh"
    SESSION = "session"
    API = "api"
    MEDIA = "media"


def new_jti() -> str:
    """A fresh token id."""
    return str(uuid.uuid4())


async def issue_user_token(
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
) -> tuple[str, str | None]:
    """Sign a user token of ``kind`` with the keyring's key for ``tenant``; ``kid`` names
    the key. Returns (token, the kid of the tenant key that signed it, or None for the
    shared secret)."""
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
    if kind is TokenKind.ACCESS:
        claims["user_id"] = str(user_id)  # what stock SimpleJWT reads (its USER_ID_CLAIM)
    if extra:
        claims.update(extra)
    return await keyring.sign(claims, tenant)


def is_time(value: object) -> TypeGuard[int]:
    """A time claim (``iat``, ``nbf``, ``exp``): an integer of epoch seconds, in int64.

    JSON floats are refused, and with them NaN, Infinity and 1e400, which python-jose's
    ``json.loads`` accepts and which compare false with everything (a token that never
    expires); booleans are not numbers here.
    """
    return type(value) is int and 0 <= value < MAX_TIME


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)  # bool is an int


def _media_context(context: object) -> bool:
    """``context`` as ``build_claims`` writes it: every restriction an object
    or list of its documented type, so none can be switched off by a wrong type."""
    if not isinstance(context, dict):
        return False
    user, media, date = context.get("user"), context.get("media"), context.get("date", {})
    return (
        _texts(context.get("rangeip"))
        and isinstance(context.get("unique"), bool)
        and isinstance(user, dict)
        and set(user) <= {"username", "roles"}
        and isinstance(user.get("username", ""), str)
        and _texts(user.get("roles", []))
        and isinstance(media, dict)
        and all(_scalar(item) for item in media.values())
        and isinstance(date, dict)
        and all(is_time(item) for item in date.values())
    )


def checked_claims(claims: object, kinds: frozenset[TokenKind]) -> dict[str, Any]:
    """``claims`` when they are a token of one of ``kinds`` with every documented claim of
    its type, or InvalidToken.

    All kinds: ``token_type`` one of ``kinds``; ``jti`` and ``tenant`` non-empty strings;
    ``iat`` and ``exp`` (and ``nbf`` when present) integers (``is_time``). User tokens:
    ``sub`` and ``username`` non-empty strings. Media tokens: ``kid``, ``nbf`` and the
    ``context`` object (``_media_context``).
    """
    if not isinstance(claims, dict):
        raise InvalidToken()
    kind = claims.get("token_type")
    if not isinstance(kind, str) or kind not in kinds:
        raise InvalidToken()
    if not (_text(claims.get("jti")) and _text(claims.get("tenant"))
            and is_time(claims.get("iat")) and is_time(claims.get("exp"))
            and ("nbf" not in claims or is_time(claims["nbf"]))):
        raise InvalidToken()
    if kind == TokenKind.MEDIA:
        valid = ("nbf" in claims and _text(claims.get("kid"))
                 and _media_context(claims.get("context")))
    else:
        valid = _text(claims.get("sub")) and _text(claims.get("username"))
    if not valid:
        raise InvalidToken()
    return claims


def checked_header(token: object, algorithms: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(token, header) of a token worth verifying, or InvalidToken.

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


def decode_with(token: str, key: object, algorithm: str, issuer: str,
                kinds: frozenset[TokenKind]) -> dict[str, Any]:
    """Verify the signature with ``key`` and the issuer, then the claims' types.

    The one decoding function of user and media tokens: a token of another kind, or whose
    claims do not have their documented types (``checked_claims``), is InvalidToken.
    Times are the caller's to compare with its clock.
    """
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], issuer=issuer,
                            options=DECODE_OPTIONS)
    except (JOSEError, TypeError, ValueError, KeyError):
        raise InvalidToken() from None
    return checked_claims(claims, kinds)


async def decode_user_token(
    keyring: Keyring,
    token: object,
    *,
    kinds: frozenset[TokenKind],
    issuer: str,
    now: float,
    leeway: int = 0,
) -> dict[str, Any]:
    """Return the claims of a valid user token of one of ``kinds``, or raise InvalidToken."""
    token, header = checked_header(token, (keyring.algorithm,))
    found = await keyring.verification_key(header.get("kid"))
    if found is None:
        raise InvalidToken()
    key, owner = found
    claims = decode_with(token, key, keyring.algorithm, issuer, kinds)
    if owner is not None and claims["tenant"] != owner:
        raise InvalidToken()  # a tenant's key signs only its own tenant's tokens
    exp, iat = claims["exp"], claims["iat"]
    nbf = claims.get("nbf", iat)
    if now > exp + leeway or iat > now + leeway or nbf > now + leeway:
        raise InvalidToken()
    return claims
