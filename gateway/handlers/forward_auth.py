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
from multidict import CIMultiDictProxy, MultiDict

from gateway.appkeys import CREDENTIALS
from gateway.errors import BadRequest
from gateway.identity.credentials import parse_credentials
from gateway.proxy.decision import authorize

__all__ = ["forward_auth"]


def _original(headers: CIMultiDictProxy[str], nginx: str, forwarded: str) -> str | None:
    """The value of the nginx header or of the Traefik/Caddy one; both and different is a 400.

    Each proxy sets its own header and passes the client's others through: nginx forwards a
    client-sent X-Forwarded-Uri, Traefik a client-sent X-Original-URI. Preferring either
    would let a client choose the path the rules see, so two disagreeing values are refused.
    """
    first, second = headers.getall(nginx, ()), headers.getall(forwarded, ())
    if not second and len(first) == 1:
        return first[0]  # the common case: one proxy, one header
    values = {*first, *second}
    if len(values) > 1:
        raise BadRequest(f"{nginx} and {forwarded} disagree: only the proxy may set them")
    return values.pop() if values else None


async def forward_auth(request: web.Request) -> web.Response:
    """Answer whether the proxied request may pass, and as whom."""
    headers = request.headers
    uri = _original(headers, "X-Original-URI", "X-Forwarded-Uri") or "/"
    method = _original(headers, "X-Original-Method", "X-Forwarded-Method") or request.method
    if request[CREDENTIALS] is None:
        # ?access_token=&x_key= ride on the original URL, which the proxy puts in a header.
        original_query = MultiDict(parse_qsl(uri.partition("?")[2], keep_blank_values=True))
        request[CREDENTIALS] = parse_credentials(headers, original_query)
    identity_headers = await authorize(request, uri=uri, method=method)
    return web.Response(status=200, headers=identity_headers)
