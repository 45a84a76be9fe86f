"""The built-in proxy: ``gateway.upstreams`` behind the same decision as ``/auth``.

Requests under an upstream's prefix are decided by ``access.authorize`` and then sent to
the upstream with their path unchanged, streamed both ways in chunks (a large download
never sits in memory), through one pooled client session. Hop-by-hop headers are dropped
both ways, client-sent identity headers are replaced by the gateway's own. With the
portal on, a browser navigation without a (working) session is sent to sign in, and the
portal's cookies never reach the upstream.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.appkeys import CLIENT_ADDRESS, SETTINGS, UPSTREAM_CLIENT
from gateway.config import GatewayHeaders
from gateway.errors import BadGateway, GatewayTimeout, Unauthenticated
from gateway.netaddr import in_networks, parse_address
from gateway.portal.browsers import navigation_sign_in, take_cookie, without_portal_cookies
from gateway.proxy.decision import authorize
from gateway.proxy.upstreams import find_upstream

__all__ = ["CHUNK_SIZE", "proxy"]

CHUNK_SIZE = 64 * 1024
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})


def _end_to_end(headers: CIMultiDictProxy[str], extra_drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """``headers`` without hop-by-hop ones (also those named in Connection) and ``extra_drop``."""
    named = {token.strip().lower() for value in headers.getall("Connection", [])
             for token in value.split(",")}
    drop = HOP_BY_HOP | named | extra_drop
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in drop)


#: Headers the proxy sets itself; client-sent copies (any spelling) are dropped.
_SET_HERE = frozenset({"x-forwarded-for", "x-real-ip", "x-forwarded-host", "x-forwarded-proto",
                       "forwarded"})


def _peer_trusted(request: web.Request) -> bool:
    peer = parse_address(request.remote)
    return peer is not None and in_networks(peer, request.app[SETTINGS].config.server.trusted_proxies)


@functools.lru_cache(maxsize=64)
def _dropped(headers: GatewayHeaders) -> frozenset[str]:
    """Client-sent headers that never pass: the identity headers, and those set here."""
    return _SET_HERE | {name.lower() for name in (headers.user, headers.roles, headers.tenant,
                                                  headers.token_id)}


async def proxy(request: web.Request) -> web.StreamResponse:
    """Proxy to the upstream whose prefix the path has (``gateway.upstreams``), after the
    decision; the upstream URL's own path, if any, is prepended."""
    config = request.app[SETTINGS].config
    entry = find_upstream(config.gateway.upstreams, request.path)
    if entry is None:  # a reload removed the prefix since the router matched it
        raise web.HTTPNotFound()
    base = URL(entry.url)
    base_path = base.raw_path.rstrip("/")
    dropped = _dropped(config.gateway.headers)
    may_sign_in = take_cookie(request)
    try:
        identity = await authorize(request, uri=request.raw_path, method=request.method)
    except Unauthenticated:
        original = f"{request.scheme}://{request.host}{request.raw_path}"
        location = navigation_sign_in(request, request.method, original) if may_sign_in else None
        if location is None:
            raise
        return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})

    outgoing = _end_to_end(request.headers, frozenset({"host", "content-length"}))
    for name in list(outgoing):
        # X_Auth_User reaches a CGI/WSGI app as X-Auth-User: drop every spelling.
        if name.replace("_", "-").lower() in dropped:
            del outgoing[name]
    authorization = request.headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        del outgoing["Authorization"]  # a password goes no further than the gateway
    portal = request.app[SETTINGS].config.portal
    if portal.enabled and "Cookie" in outgoing:
        cookies = without_portal_cookies(portal, outgoing.getall("Cookie"))
        del outgoing["Cookie"]
        if cookies:
            outgoing["Cookie"] = cookies
    outgoing.update(identity)
    client = request[CLIENT_ADDRESS]
    address = str(client) if client is not None else (request.remote or "")
    # The incoming chain is kept only when it came from a trusted proxy.
    chain = request.headers.get("X-Forwarded-For") if _peer_trusted(request) else None
    outgoing["X-Forwarded-For"] = f"{chain}, {request.remote}" if chain else address
    outgoing["X-Real-IP"] = address
    outgoing["X-Forwarded-Host"] = request.host
    outgoing["X-Forwarded-Proto"] = request.scheme
    if request.content_length is not None:
        outgoing["Content-Length"] = str(request.content_length)

    # The raw path and query go on byte for byte: the upstream sees what the client sent.
    target = URL(f"{base.scheme}://{base.raw_authority}{base_path}{request.raw_path}",
                 encoded=True)
    body = request.content if request.body_exists else None
    session = request.app[UPSTREAM_CLIENT]
    response: web.StreamResponse | None = None
    try:
        async with session.request(request.method, target, headers=outgoing, data=body,
                                   allow_redirects=False) as upstream:
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason,
                headers=_end_to_end(upstream.headers, frozenset({"content-length"})),
            )
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK_SIZE):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (TimeoutError, aiohttp.ClientError) as exc:
        if response is not None and response.prepared:
            # Too late for an error answer: cut the connection so the client sees a
            # truncated body, not a complete-looking one.
            response.force_close()
            if request.transport is not None:
                request.transport.close()
            return response
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            raise GatewayTimeout() from None
        raise BadGateway() from None
