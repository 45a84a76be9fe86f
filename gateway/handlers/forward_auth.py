"""``/auth``: the forward-auth endpoint for nginx ``auth_request``, Traefik ``ForwardAuth``
and Caddy ``forward_auth``.

The original request is read from ``X-Original-URI``/``X-Original-Method`` (nginx) or
``X-Forwarded-Uri``/``X-Forwarded-Method`` (Traefik, Caddy), as
``gateway.forward_auth.headers`` says; its credentials are the headers the proxy passes on.
200 carries the identity headers; 401 (with ``WWW-Authenticate``) and 403 carry a JSON
error, and so does every other refusal (``errors.status_for_path``): nginx passes on only
those. docs/forward-auth.md describes the endpoint.

With the portal on, the portal's cookie counts as a credential, and a browser navigation
without a (working) one is sent to sign in: Traefik and Caddy pass a 302 on as it is;
nginx ``auth_request`` passes only a 401, so it gets the 401 with the sign-in URL in
``Location`` for the README's ``error_page 401 = @portal`` block.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDict

from gateway.appkeys import (
    CLIENT_ADDRESS,
    COUNTS,
    CREDENTIALS,
    REQUEST_ID,
    RESOLVER,
    SETTINGS,
    TENANT,
)
from gateway.errors import ConflictingForwardHeaders, GatewayError, Unauthenticated
from gateway.identity.credentials import parse_credentials
from gateway.middlewares import address_of_client, known_tenant, request_id
from gateway.portal.browsers import navigation_sign_in, take_cookie
from gateway.proxy.decision import authorize, identity_headers
from gateway.proxy.rules import BadPath

__all__ = ["answer_from_cache", "forward_auth"]


#: Where the original request's URI and method are read, by ``gateway.forward_auth.headers``:
#: nginx's headers (as the README's snippet sets them), Traefik's and Caddy's, or either.
_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nginx": (("X-Original-URI",), ("X-Original-Method",)),
    "forwarded": (("X-Forwarded-Uri",), ("X-Forwarded-Method",)),
    "auto": (("X-Original-URI", "X-Forwarded-Uri"), ("X-Original-Method", "X-Forwarded-Method")),
}


def _original(headers: CIMultiDictProxy[str], names: tuple[str, ...]) -> str | None:
    """The one value the headers ``names`` carry; None when none is sent; 403 when they differ.

    Each proxy sets its own header and passes the client's others through: nginx forwards a
    client-sent X-Forwarded-Uri unless its snippet clears it, Traefik and Caddy a client-sent
    X-Original-URI. Preferring either would let a client choose the path the rules see, so
    disagreeing values are refused, with a 403 (nginx turns a 400 into a 500).
    """
    values = [value for name in names for value in headers.getall(name, ())]
    if not values:
        return None
    first = values[0]
    if any(value != first for value in values):
        raise ConflictingForwardHeaders(
            f"{' and '.join(names)} carry different values: only the proxy may set them "
            "(gateway.forward_auth.headers names which headers it sets)")
    return first


def _original_uri(headers: CIMultiDictProxy[str], names: tuple[str, ...]) -> str:
    """The original path: ``/`` when no header names it; an empty one is a bad path (403)."""
    uri = _original(headers, names)
    return "/" if uri is None else uri


def _original_url(request: web.Request, uri: str) -> str:
    """The URL the browser asked the proxy for, from X-Forwarded-Proto/-Host and the URI."""
    headers = request.headers
    proto = headers.get("X-Forwarded-Proto", "").partition(",")[0].strip().lower()
    host = headers.get("X-Forwarded-Host", "").partition(",")[0].strip() or request.host
    return f"{proto if proto in ('http', 'https') else request.scheme}://{host}{uri}"


async def forward_auth(request: web.Request) -> web.Response:
    """Answer whether the proxied request may pass, and as whom."""
    headers = request.headers
    source = request.app[SETTINGS].config.gateway.forward_auth.headers
    uri_headers, method_headers = _SOURCES[source]
    uri = _original_uri(headers, uri_headers)
    method = _original(headers, method_headers) or request.method
    if request[CREDENTIALS] is None:
        # ?access_token=&x_key= ride on the original URL, which the proxy puts in a header.
        original_query = MultiDict(parse_qsl(uri.partition("?")[2], keep_blank_values=True))
        request[CREDENTIALS] = parse_credentials(headers, original_query)
    may_sign_in = take_cookie(request)
    try:
        identity_headers = await authorize(request, uri=uri, method=method)
    except Unauthenticated:
        location = navigation_sign_in(request, method, _original_url(request, uri)) if may_sign_in else None
        if location is None:
            raise
        if source == "nginx" or (source == "auto" and "X-Original-URI" in headers):
            raise Unauthenticated(headers={"Location": location}) from None
        return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    return web.Response(status=200, headers=identity_headers)


def answer_from_cache(app: web.Application, request: web.BaseRequest) -> web.Response | None:
    """``/auth`` in its most common case, answered before aiohttp's router and middleware
    (``runner.GatewayRunner`` calls it): a credential in the headers that the identity
    cache holds and a rule that asks for nothing more than an identity.

    It runs the same steps as the middleware and ``forward_auth`` (request id, client
    address, a tenant already known, credentials, the original request, the rule, the
    cache) without an await, and gives up (None) at the first thing they would do
    otherwise: a tenant to look up, no credential in the headers, disagreeing forward
    headers, a bad path, a rule that denies, bypasses, wants a role the user lacks or
    guards a media URL, a credential the cache does not hold or refuses, a feed that
    moved. The full path then answers, and decides as it always does; so this changes how
    fast the answer comes, never what it is.
    """
    started = time.perf_counter()
    settings = app[SETTINGS]
    tenant = known_tenant(app, request)
    headers = request.headers
    credentials = parse_credentials(headers, request.query)
    if tenant is None or credentials is None:
        return None
    uri_headers, method_headers = _SOURCES[settings.config.gateway.forward_auth.headers]
    try:
        uri = _original_uri(headers, uri_headers)
        method = _original(headers, method_headers) or request.method
        route = settings.rulebook.route(uri, method, tenant)
        decision = route.decision
        if decision.policy != "authenticated" or route.media_id is not None:
            return None
        identity = app[RESOLVER].cached(credentials, tenant)
    except (GatewayError, BadPath):
        return None
    if identity is None or (decision.roles is not None
                            and not decision.roles.intersection(identity.user.roles)):
        return None
    rid = request_id(request)
    request[REQUEST_ID] = rid  # for the access line, as the middleware sets them
    request[CLIENT_ADDRESS] = address_of_client(app, request)
    request[TENANT] = tenant
    answer = identity_headers(settings.config.gateway.headers, tenant, identity,
                              identity.token.jti if identity.token else "")
    answer["X-Request-ID"] = rid
    app[COUNTS].request("/auth", request.method, 200, time.perf_counter() - started)
    return web.Response(status=200, headers=answer)
