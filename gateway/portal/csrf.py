"""CSRF tokens of the portal's forms, bound to the browser.

Each browser gets a random nonce in an ``HttpOnly`` cookie; each form carries
``HMAC(key, nonce)``, with a key derived from the gateway's secret. Another site can
make the browser send the cookie but can neither read it nor compute the HMAC, so a
forged POST lacks the matching token; the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["csrf_token", "new_nonce", "token_matches"]

_NONCE_BYTES = 24


def new_nonce() -> str:
    """A fresh per-browser nonce (URL- and cookie-safe text)."""
    return secrets.token_urlsafe(_NONCE_BYTES)


def csrf_token(key: bytes, nonce: str) -> str:
    """The form token for the browser holding ``nonce``."""
    return hmac.new(key, nonce.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def token_matches(key: bytes, nonce: str | None, token: object) -> bool:
    """Whether ``token`` is the form token of ``nonce`` (False when either is missing)."""
    if not nonce or not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(csrf_token(key, nonce).encode(), token.encode("utf-8", "replace"))
