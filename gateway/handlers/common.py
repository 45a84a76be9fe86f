"""What every handler module needs: request bodies, the clock, the client address.

Every endpoint that reads a body reads it with ``read_body``, so each accepts what the
clients of its API family send: JSON, ``application/x-www-form-urlencoded`` (curl ``-d``,
PHP, HTML forms) and ``multipart/form-data`` (DRF and Symfony clients). Form fields with
PHP bracket names (``user[roles][]=…``) decode into the structure the JSON body would
have, so a handler sees one shape whatever the encoding. A urlencoded body that is a JSON
object is read as JSON: that is what ``curl -d '{…}'`` sends without ``-H 'Content-Type:
application/json'``, and what these endpoints answered before they took forms (no field
name of theirs starts with ``{``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.appkeys import CLIENT_ADDRESS, CLIENT_ADDRESSES, CLOCK
from gateway.errors import BadRequest
from gateway.forms import FormError, decode_php_form
from gateway.netaddr import address_text

__all__ = ["MULTIPART", "URLENCODED", "address_of", "now", "public_origin", "read_body"]

MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"


async def read_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or its form fields in the same shape; else a 400 saying why."""
    if request.content_type == MULTIPART:
        return await _read_form(request)
    if request.content_type == URLENCODED and not (await request.read()).lstrip().startswith(b"{"):
        return await _read_form(request)
    return await _read_json_object(request)


async def _read_form(request: web.Request) -> dict[str, Any]:
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError):  # LookupError: unknown charset
        raise BadRequest("Malformed form body") from None
    pairs = []
    for name, value in form.items():
        if not isinstance(value, str):
            raise BadRequest(f"{name}: file uploads are not accepted here")
        pairs.append((name, value))
    try:
        return decode_php_form(pairs)
    except FormError as exc:
        raise BadRequest(str(exc)) from None


async def _read_json_object(request: web.Request) -> dict[str, Any]:
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


#: A host as a URL may name it: a name or IPv4 address, or a bracketed IPv6 one; a port.
_HOST = re.compile(r"(?:[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")


def public_origin(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client reached the gateway, for absolute URLs.

    ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` count only from a peer in
    ``server.trusted_proxies``; a host that is no host (a path, userinfo, spaces) becomes
    ``localhost`` rather than text for a client to follow.
    """
    scheme, host = request.scheme, request.host
    if request.app[CLIENT_ADDRESSES].trusts(request.remote):
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip().lower()
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    if scheme not in ("http", "https"):
        scheme = request.scheme
    if not _HOST.match(host):
        host = "localhost"
    return f"{scheme}://{host}"


def address_of(request: web.Request) -> str:
    """The client address as text, for regulation and logs."""
    return address_text(request[CLIENT_ADDRESS])
