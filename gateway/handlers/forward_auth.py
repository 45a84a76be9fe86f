"""``/auth``: the forward-auth endpoint for nginx ``auth_request``, Traefik ``ForwardAuth``
and Caddy ``forward_auth``.

The original request is read from ``X-Original-URI``/``X-Original-Method`` (nginx) or
``X-Forwarded-Uri``/``X-Forwarded-Method`` (Traefik, Caddy); its credentials are the
headers the proxy passes on. 200 carries the identity headers; 401 (with
``WWW-Authenticate``) and 403 carry a JSON error.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict

from gateway.access import authorize
from gateway.appkeys import CREDENTIALS
from gateway.auth import parse_credentials

__all__ = ["forward_auth"]


async def forward_auth(request: web.Request) -> web.Response:
    """Answer whether the proxied request may pass, and as whom."""
    headers = request.headers
    uri = headers.get("X-Original-URI") or headers.get("X-Forwarded-Uri") or "/"
    method = headers.get("X-Original-Method") or headers.get("X-Forwarded-Method") or request.method
    if request[CREDENTIALS] is None:
        # ?access_token=&x_key= ride on the original URL, which the proxy puts in a header.
        original_query = MultiDict(parse_qsl(uri.partition("?")[2], keep_blank_values=True))
        request[CREDENTIALS] = parse_credentials(headers, original_query)
    identity_headers = await authorize(request, uri=uri, method=method)
    return web.Response(status=200, headers=identity_headers)
