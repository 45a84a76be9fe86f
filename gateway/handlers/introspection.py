"""For services and proxies that check tokens themselves or ask the gateway:
``POST /introspect`` (RFC 7662), ``POST /revoke`` (RFC 7009) and the authorization server
metadata that names them with the JWKS (RFC 8414).

A self-contained JWT stays valid for its verifier until it expires; introspection is how a
downstream service sees a revocation at once. Bodies are form (``token=…``), multipart or
JSON (``handlers.common.read_body``); errors are ``{"error", "message"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import RESOLVER, SETTINGS, TENANT, TOKENS
from gateway.authz import may_introspect, may_revoke, require_identity
from gateway.errors import BadRequest, Forbidden, Unauthenticated
from gateway.handlers.common import public_origin, read_body
from gateway.identity.credentials import Identity

__all__ = ["introspect", "metadata", "revoke"]

#: Answers about tokens are never kept by a cache (RFC 7662 §4: they change at revocation).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
INACTIVE: dict[str, Any] = {"active": False}


def _token(body: dict[str, Any]) -> object:
    """The ``token`` parameter (any value: a bad token is an answer, not an error);
    ``token_type_hint`` and other parameters are ignored, as RFC 7662 allows."""
    if "token" not in body:
        raise BadRequest("token is required")
    return body["token"]


def _description(found: Identity, issuer: str) -> dict[str, Any]:
    record, user = found.token, found.user
    assert record is not None
    return {
        "active": True,
        "token_type": record.kind,
        "sub": str(user.id),
        "username": user.username,
        "tenant": record.tenant,
        "roles": list(user.roles),
        "exp": int(record.expires_at),
        "iat": int(record.issued_at),
        "jti": record.jti,
        "iss": issuer,
    }


async def introspect(request: web.Request) -> web.Response:
    """Whether a token is live, and whose: for root, admins and ``introspection.clients``."""
    caller = await require_identity(request)
    config = request.app[SETTINGS].config
    if not may_introspect(caller.user, config.introspection.clients):
        raise Unauthenticated("Introspection needs root, an admin or a user named in "
                              "introspection.clients")
    token = _token(await read_body(request))
    found = await request.app[RESOLVER].introspect(token, request[TENANT])
    body = INACTIVE if found is None else _description(found, config.tokens.issuer)
    return web.json_response(body, headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    """End a token: a user their own, root or an admin any of the tenant's. 200 whether or
    not the token was live (RFC 7009 §2.2); 403 for a live token of someone else."""
    caller = await require_identity(request)
    token = _token(await read_body(request))
    found = await request.app[RESOLVER].introspect(token, request[TENANT])
    if found is not None:
        assert found.token is not None
        if not may_revoke(caller.user, found.user):
            raise Forbidden("A user may revoke only their own tokens")
        await request.app[TOKENS].revoke(found.token)
    return web.json_response({}, headers=NO_STORE)


async def metadata(request: web.Request) -> web.Response:
    """Authorization server metadata (RFC 8414) of the request's tenant."""
    config = request.app[SETTINGS].config
    origin = public_origin(request)
    tenant = request[TENANT]
    jwks_uri = f"{origin}/.well-known/jwks.json"
    if tenant != "default":
        jwks_uri += f"?tenant={tenant}"  # tenant ids are URL-safe (letters, digits, . _ -)
    return web.json_response({
        "issuer": config.tokens.issuer,
        "token_endpoint": f"{origin}/api/token/",
        "introspection_endpoint": f"{origin}/introspect",
        "revocation_endpoint": f"{origin}/revoke",
        "jwks_uri": jwks_uri,
        "response_types_supported": [],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
        # Not in RFC 8414's registry: what user and media tokens are signed with.
        "token_signing_alg_values_supported": [config.tokens.algorithm],
        "media_token_signing_alg_values_supported": list(config.media.algorithms),
    }, headers=NO_STORE)
