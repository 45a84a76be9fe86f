"""What every handler module needs: JSON bodies, the clock, and the caller's identity."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.appkeys import AUTHENTICATOR, CLIENT_ADDRESS, CLOCK, CREDENTIALS, IDENTITY, TENANT
from gateway.auth import Identity
from gateway.errors import BadRequest, Unauthenticated

__all__ = ["address_of", "authenticate", "now", "read_json_object", "require_identity"]


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("Request body is not UTF-8") from None
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def now(request: web.Request) -> float:
    """The application clock (injected by tests)."""
    return request.app[CLOCK]()


def address_of(request: web.Request) -> str:
    """The client address as text, for regulation and logs."""
    address = request[CLIENT_ADDRESS]
    return "unknown" if address is None else str(address)


async def authenticate(request: web.Request) -> Identity | None:
    """The request's identity, resolved once and cached; None when it has no credentials.

    Bad credentials raise (401/403) here, not in the middleware, so routes that do not
    need an identity are not affected by them.
    """
    cached = request[IDENTITY]
    if cached is not None:
        return cached
    credentials = request[CREDENTIALS]
    if credentials is None:
        return None
    identity = await request.app[AUTHENTICATOR].resolve(
        credentials, request[TENANT], address_of(request)
    )
    request[IDENTITY] = identity
    return identity


async def require_identity(request: web.Request) -> Identity:
    """The request's identity, or 401 when it has none."""
    identity = await authenticate(request)
    if identity is None:
        raise Unauthenticated()
    return identity
