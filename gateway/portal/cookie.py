"""The value of the portal's session cookie: ``tenant~key~token``.

The token is a session token (kind ``session``) and ``key`` its X-Key, checked by the
resolver exactly as for ``X-Access-Token`` + ``X-Key``; the tenant says which tenant the
browser's requests are made for when they carry no ``X-TENANT-ID`` (the resolver refuses
the token for any other tenant, so a rewritten tenant gains nothing). Every part is
cookie-safe: tenant ids, UUIDs and JWTs use no ``~``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SessionCookie", "cookie_value", "read_cookie"]

_SEPARATOR = "~"
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}~[0-9a-f-]{36}~[A-Za-z0-9_.-]{1,8192}")


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """What the cookie carries."""

    tenant: str
    key: str
    token: str


def cookie_value(tenant: str, key: str, token: str) -> str:
    """The cookie value for a session token, its key and its tenant."""
    return _SEPARATOR.join((tenant, key, token))


def read_cookie(value: str | None) -> SessionCookie | None:
    """The parts of a cookie value; None when it is absent or not of that form."""
    if not value or not _VALUE.fullmatch(value):
        return None
    tenant, key, token = value.split(_SEPARATOR, 2)
    return SessionCookie(tenant=tenant, key=key, token=token)
