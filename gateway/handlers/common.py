"""What every handler module needs: JSON bodies, the clock, the client address."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.appkeys import CLIENT_ADDRESS, CLOCK
from gateway.errors import BadRequest
from gateway.netaddr import address_text

__all__ = ["address_of", "now", "read_json_object"]


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
    return address_text(request[CLIENT_ADDRESS])
