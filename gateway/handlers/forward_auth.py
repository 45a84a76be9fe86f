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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, parse_qsl

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy, istr

from gateway.appkeys import (
    CLIENT_ADDRESSES,
    CREDENTIALS,
    MEDIA,
    RESOLVER,
    SETTINGS,
    TENANTS_SEEN,
)
from gateway.config import Config
from gateway.early import Early, Incoming, Ready, UnsafeHeader
from gateway.errors import ConflictingForwardHeaders, GatewayError, Unauthenticated
from gateway.identity.cache import CachedToken
from gateway.identity.credentials import Identity, parse_credentials
from gateway.middlewares import address_of_client, known_tenant, request_id
from gateway.netaddr import IPAddress
from gateway.portal.browsers import navigation_sign_in, take_cookie
from gateway.proxy.decision import authorize, identity_headers, media_token
from gateway.proxy.rules import BadPath, Decision

__all__ = ["CachedAnswers", "forward_auth"]


#: Where the original request's URI and method are read, by ``gateway.forward_auth.headers``:
#: nginx's headers (as the README's snippet sets them), Traefik's and Caddy's, or either.
_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nginx": ((istr("X-Original-URI"),), (istr("X-Original-Method"),)),
    "forwarded": ((istr("X-Forwarded-Uri"),), (istr("X-Forwarded-Method"),)),
    "auto": ((istr("X-Original-URI"), istr("X-Forwarded-Uri")),
             (istr("X-Original-Method"), istr("X-Forwarded-Method"))),
}


_AUTHORIZATION = istr("Authorization")
_X_KEY = istr("X-Key")
_X_ACCESS_TOKEN = istr("X-Access-Token")
_COOKIE = istr("Cookie")
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


def _original(headers: CIMultiDictProxy[str], names: tuple[str, ...]) -> str | None:
    """The one value the headers ``names`` carry; None when none is sent; 403 when they differ.

    Each proxy sets its own header and passes the client's others through: nginx forwards a
    client-sent X-Forwarded-Uri unless its snippet clears it, Traefik and Caddy a client-sent
    X-Original-URI. Preferring either would let a client choose the path the rules see, so
    disagreeing values are refused, with a 403 (nginx turns a 400 into a 500).
    """
    value: str | None = None
    for name in names:
        for candidate in headers.getall(name, ()):
            if value is None:
                value = candidate
            elif candidate != value:
                raise ConflictingForwardHeaders(
                    f"{' and '.join(names)} carry different values: only the proxy may set "
                    "them (gateway.forward_auth.headers names which headers it sets)")
    return value


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


@dataclass(frozen=True, slots=True)
class _Known:
    """Who a credential proved to be, the identity headers that go with it, and, for a
    token, the cache entry that said so."""

    identity: Identity
    ready: Ready
    config: Config
    token: str = ""
    entry: CachedToken | None = None
    basic: bytes = b""  # for a Basic credential: the identity cache's key of it


#: What a token's answer is remembered under: Authorization, X-Key, X-Access-Token, tenant.
_Key = tuple[str | None, str | None, str | None, str]
_Memory = TypeVar("_Memory", _Key, bytes)


class CachedAnswers:
    """``/auth`` in its most common cases, answered before aiohttp's router and middleware
    (``gateway.early``): a credential in the headers that the identity cache holds and a
    rule that asks for nothing more than an identity; or a media URL whose token's
    verified claims the cache holds, when the token alone decides.

    It runs the same steps as the middleware and ``forward_auth`` (request id, client
    address, a tenant already known, the original request, the rule, credentials, the
    cache, the media checks) without an await, and gives up (None) at the first thing they
    would do otherwise: a tenant to look up, repeated or disagreeing forward headers, a
    bad path, a rule that denies, bypasses or wants a role the user lacks, no credential
    in the headers, a credential the cache does not hold or refuses, a feed that moved, a
    media token that is one-time, names a user, or fails a check, identity headers that
    cannot be sent as they are. The full path then answers, and decides as it always does;
    so this changes how fast the answer comes, never what it is.

    What a token proved is also remembered, under the exact header values that carried it
    (Authorization, X-Key, X-Access-Token, tenant), and used again while
    ``Resolver.still_cached`` holds for its cache entry and the config is the one its
    headers were built with: a revocation drops the entry and a reload replaces the
    config, and either sends the next request the long way. A different X-Key or token
    spelling is another key, checked afresh. The rule is matched on every request. What a
    Basic header proved is remembered under the identity cache's keyed hash of the header
    (never under the header, which holds the password), while the cache gives the same
    identity for the credential (``Resolver.still_basic``). Each memory is cleared when it
    reaches ``size`` entries.
    """

    def __init__(self, app: web.Application, size: int = 4096) -> None:
        self._settings = app[SETTINGS]
        self._resolver = app[RESOLVER]
        self._addresses = app[CLIENT_ADDRESSES]
        self._tenants = app[TENANTS_SEEN]
        self._size = size
        self._known: dict[_Key, _Known] = {}
        self._known_basic: dict[bytes, _Known] = {}
        self._media_service = app[MEDIA]
        self._media_tokens: dict[str, tuple[str | None, bool]] = {}
        self._media_ready: dict[tuple[str, str], tuple[Config, Ready]] = {}

    def __call__(self, request: Incoming) -> Early | None:
        """The answer to an ``/auth`` request, or None: ask the full path."""
        headers = request.headers
        tenant = known_tenant(self._tenants, headers)
        if tenant is None:
            return None
        settings = self._settings
        config = settings.config
        uri_headers, method_headers = _SOURCES[config.gateway.forward_auth.headers]
        try:
            uri = _original_uri(headers, uri_headers)
            method = _original(headers, method_headers) or request.method
            route = settings.rulebook.route(uri, method, tenant)
        except (GatewayError, BadPath):
            return None
        decision = route.decision
        if decision.policy != "authenticated":
            return None
        query = request.url.query if "?" in request.raw_path else _NO_QUERY
        key: _Key = (headers.get(_AUTHORIZATION), headers.get(_X_KEY) or query.get("x_key"),
                     headers.get(_X_ACCESS_TOKEN) or query.get("access_token"), tenant)
        address = address_of_client(self._addresses, request.peer, headers)
        if route.media_id is not None:
            ready = self._media(headers, key, uri, route.media_id, decision, address, config)
            if ready is None:
                return None
        else:
            authorization = key[0]
            if authorization is not None and authorization[:6].lower() == "basic ":
                known = self._basic(authorization, headers, query, tenant, config)
            else:
                known = self._known.get(key)
                if known is None or known.entry is None or known.config is not config \
                        or not self._resolver.still_cached(known.token, known.entry):
                    known = self._learn(headers, query, key, config)
            if known is None:
                return None
            if decision.roles is not None and not decision.roles.intersection(
                    known.identity.user.roles):
                return None
            ready = known.ready
        return Early(ready, request_id(headers), address, tenant, "/auth")

    def _media(self, headers: CIMultiDictProxy[str], key: _Key, uri: str, media_id: str,
               decision: Decision, address: IPAddress | None, config: Config) -> Ready | None:
        """The identity headers of a media URL whose token passes from the cache alone
        (``MediaService.cached_grant``), else None. Only a request with no user credential
        of any kind (header, query, portal cookie) and a rule that wants no role: there the
        full path would resolve nobody, and the token alone decides."""
        if key[0] is not None or key[2] is not None or decision.roles is not None:
            return None
        if config.portal.enabled and _COOKIE in headers:
            return None
        token, credential_in_uri = self._media_token(uri)
        if token is None or credential_in_uri:
            return None
        tenant = key[3]
        grant = self._media_service.cached_grant(token, tenant=tenant, address=address,
                                                 media_id=media_id)
        if grant is None:
            return None
        made = self._media_ready.get((tenant, grant.kid))
        if made is None or made[0] is not config:
            try:
                made = config, Ready.of(identity_headers(config.gateway.headers, tenant, None,
                                                         grant.kid))
            except UnsafeHeader:
                return None
            if len(self._media_ready) >= self._size:
                self._media_ready.clear()
            self._media_ready[tenant, grant.kid] = made
        return made[1]

    def _media_token(self, uri: str) -> tuple[str | None, bool]:
        """The media token in the original URI's query, and whether that query also carries
        a user token (``access_token``), remembered per URI."""
        found = self._media_tokens.get(uri)
        if found is None:
            query = parse_qs(uri.partition("?")[2], keep_blank_values=True)
            found = media_token(query, None)[0], "access_token" in query
            if len(self._media_tokens) >= self._size:
                self._media_tokens.clear()
            self._media_tokens[uri] = found
        return found

    def _learn(self, headers: CIMultiDictProxy[str], query: Mapping[str, str], key: _Key,
               config: Config) -> _Known | None:
        """What the identity cache says of the request's credentials (a token's answer is
        remembered), else None."""
        credentials = parse_credentials(headers, query)
        if credentials is None or credentials.scheme == "basic":  # Basic spelled oddly
            return None
        tenant = key[3]
        try:
            entry = self._resolver.cached_token(credentials, tenant)
        except GatewayError:
            return None
        if entry is None:
            return None
        identity = entry.identity
        ready = self._ready(config, tenant, identity, identity.token.jti if identity.token else "")
        if ready is None:
            return None
        known = _Known(identity, ready, config, credentials.token, entry)
        self._remember(self._known, key, known)
        return known

    def _basic(self, authorization: str, headers: CIMultiDictProxy[str], query: Mapping[str, str],
               tenant: str, config: Config) -> _Known | None:
        """A Basic credential's identity from the cache, remembered under the cache's keyed
        hash of the header (never under the header, which holds the password) while the
        cache gives the same identity for the credential."""
        resolver = self._resolver
        digest = resolver.cache.header_key(tenant, authorization)
        known = self._known_basic.get(digest)
        if known is not None and known.config is config \
                and resolver.still_basic(known.basic, known.identity):
            return known
        credentials = parse_credentials(headers, query)
        if credentials is None or credentials.scheme != "basic":
            return None
        found = resolver.cached_basic(credentials, tenant)
        if found is None:
            return None
        basic, identity = found
        ready = self._ready(config, tenant, identity, "")
        if ready is None:
            return None
        known = _Known(identity, ready, config, basic=basic)
        self._remember(self._known_basic, digest, known)
        return known

    @staticmethod
    def _ready(config: Config, tenant: str, identity: Identity, token_id: str) -> Ready | None:
        try:
            return Ready.of(identity_headers(config.gateway.headers, tenant, identity, token_id))
        except UnsafeHeader:
            return None

    def _remember(self, memory: dict[_Memory, _Known], key: _Memory, known: _Known) -> None:
        if len(memory) >= self._size:
            memory.clear()
        memory[key] = known
