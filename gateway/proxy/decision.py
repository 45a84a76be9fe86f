"""The reverse-proxy decision: may this request pass, and as whom? (docs/forward-auth.md)

One function, ``authorize``, for ``/auth`` (nginx, Traefik, Caddy) and the built-in proxy:
the first matching ``gateway.rules`` entry (or ``gateway.default_policy``) decides; URLs
matching ``media.url_pattern`` run the media-token checks, and a valid media token
satisfies an ``authenticated`` policy there by itself. The answer is the identity headers
to send on (names from ``gateway.headers``), or a 401/403 ``GatewayError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

from aiohttp import web
from jose import jwt
from jose.exceptions import JOSEError

from gateway.appkeys import CLIENT_ADDRESS, MEDIA, SETTINGS, TENANT
from gateway.authz import authenticate, require_role
from gateway.config import GatewayHeaders
from gateway.errors import BadRequest, Forbidden
from gateway.identity.credentials import Identity
from gateway.proxy.rules import BadPath
from gateway.tokens.claims import TokenKind

__all__ = ["authorize", "identity_headers", "media_token"]

MEDIA_QUERY_KEYS = ("signingKey", "token")


def media_token(query: Mapping[str, list[str]], authorization: str | None) -> tuple[str | None, bool]:
    """The media token of a request, and whether it came from the Authorization header."""
    for key in MEDIA_QUERY_KEYS:
        values = query.get(key)
        if values:
            return values[0], False
    if authorization and authorization[:7].lower() == "bearer ":
        candidate = authorization[7:].strip()
        if _looks_like_media(candidate):
            return candidate, True
    return None, False


def _looks_like_media(token: str) -> bool:
    """Whether an (unverified) Bearer token claims to be a media token: routing only."""
    try:
        return bool(jwt.get_unverified_claims(token).get("token_type") == TokenKind.MEDIA.value)
    except (JOSEError, AttributeError, TypeError, ValueError):
        return False


def identity_headers(names: GatewayHeaders, tenant: str, identity: Identity | None,
                     token_id: str) -> dict[str, str]:
    """The headers a passing request carries on (names from ``gateway.headers``)."""
    return {
        names.user: identity.user.username if identity else "",
        names.roles: ",".join(identity.user.roles) if identity else "",
        names.tenant: tenant,
        names.token_id: token_id,
    }


def _headers(request: web.Request, identity: Identity | None, token_id: str) -> dict[str, str]:
    return identity_headers(request.app[SETTINGS].config.gateway.headers, request[TENANT],
                            identity, token_id)


async def authorize(request: web.Request, *, uri: str, method: str) -> dict[str, str]:
    """Decide for the original request ``method uri``; the identity headers, or raise."""
    tenant = request[TENANT]
    try:
        route = request.app[SETTINGS].rulebook.route(uri, method, tenant)
    except BadPath as exc:
        raise BadRequest(f"Bad request path: {exc}") from None
    decision = route.decision
    if decision.policy == "deny":
        raise Forbidden("Denied by the gateway rules")
    if decision.policy == "bypass":
        return _headers(request, None, "")

    if route.media_id is not None:
        query = parse_qs(uri.partition("?")[2], keep_blank_values=True)
        token, from_header = media_token(query, request.headers.get("Authorization"))
        if token is not None:
            async def user() -> Identity | None:
                # A Bearer media token is no user credential; other credentials still count.
                return None if from_header else await authenticate(request)

            # Everything that can refuse runs before the check that may use up a one-time
            # token: bad user credentials (401) and the rule's roles (403).
            identity = await user()
            if decision.roles is not None:
                require_role(identity, decision.roles)

            async def resolved() -> Identity | None:
                return identity

            grant = await request.app[MEDIA].check(
                token, tenant=tenant, address=request[CLIENT_ADDRESS],
                media_id=route.media_id, identity=resolved,
            )
            return _headers(request, identity, grant.kid)

    identity = require_role(await authenticate(request), decision.roles)
    return _headers(request, identity, identity.token.jti if identity.token else "")
