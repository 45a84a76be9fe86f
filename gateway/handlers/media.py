"""Seed 000: ``POST /token`` (media download tokens), ``POST /token/check``, and JWKS.

Bodies are multipart, urlencoded (PHP bracket names, as the seed's Symfony clients send
them) or JSON (``handlers.common.read_body``); errors are ``{"error", "message"}`` naming
the field.
"""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import CLIENT_ADDRESS, MEDIA, SETTINGS, SIGNING_KEYS, STORE, TENANT
from gateway.authz import authenticate, may_issue_media, require_address_claim, require_identity
from gateway.errors import BadRequest, Forbidden, UnknownTenant
from gateway.handlers.common import read_body
from gateway.media.params import defaults_for, parse_request
from gateway.netaddr import parse_address

__all__ = ["check", "issue", "jwks"]


async def issue(request: web.Request) -> web.Response:
    """Mint a media download token (root/admin role, or ROLE_ADMIN) in the request's tenant."""
    identity = await require_identity(request)
    if not may_issue_media(identity.user):
        raise Forbidden("Creating media tokens needs an admin (role root/admin or ROLE_ADMIN)")
    config = request.app[SETTINGS].config
    tenant = request[TENANT]
    parameters = parse_request(await read_body(request), defaults_for(config, tenant),
                               config.media.algorithms)
    issued = await request.app[MEDIA].issue(parameters, tenant)
    return web.json_response({
        "kid": issued.kid,
        "token": issued.token,
        "algorithm": issued.algorithm,
        "start_at": issued.start_at,
        "expires_at": issued.expires_at,
    }, status=201)


async def check(request: web.Request) -> web.Response:
    """Check (and, when one-time, use up) a media token: ``{"token", "media_id"?, "ip"?}``."""
    body = await read_body(request)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise BadRequest("token is required")
    media_id = body.get("media_id")
    if media_id is not None and (isinstance(media_id, bool) or not isinstance(media_id, str | int)):
        raise BadRequest("media_id must be a string or a number")
    address = request[CLIENT_ADDRESS]
    if "ip" in body:
        await require_address_claim(request)
        address = parse_address(body["ip"]) if isinstance(body["ip"], str) else None
        if address is None:
            raise BadRequest("ip is not an IP address")
    grant = await request.app[MEDIA].check(
        token, tenant=request[TENANT], address=address,
        media_id=None if media_id is None else str(media_id),
        identity=lambda: authenticate(request),
    )
    context = grant.claims["context"]
    return web.json_response({
        "valid": True,
        "kid": grant.kid,
        "tenant": grant.tenant,
        "unique": context.get("unique") is True,
        "media": context.get("media") or {},
        "user": context.get("user") or {},
        "expires_at": grant.claims["exp"],
    })


async def jwks(request: web.Request) -> web.Response:
    """The tenant's public keys, of media tokens and RS256/ES256 user tokens (tenant from
    ``X-TENANT-ID`` or ``?tenant=``)."""
    tenant = request.query.get("tenant") or request[TENANT]
    if tenant != request[TENANT] and not await request.app[STORE].tenant_exists(tenant):
        raise UnknownTenant(f"Unknown tenant {tenant[:64]!r}")
    document = await request.app[SIGNING_KEYS].jwks(tenant)
    return web.json_response(document, headers={"Cache-Control": "public, max-age=60"})
