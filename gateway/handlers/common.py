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
    except (ValueError, RecursionError):
        # JSONDecodeError, and numbers past Python's digit limit, are ValueErrors.
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    if not _encodable(body):
        raise BadRequest("Request body has a string that is not valid Unicode")
    return body


def _encodable(node: object) -> bool:
    """False when a string holds a lone surrogate ("\\ud800" is valid JSON, not valid UTF-8)."""
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(node, dict):
        return all(_encodable(key) and _encodable(value) for key, value in node.items())
    if isinstance(node, list):
        return all(_encodable(item) for item in node)
    return True


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
