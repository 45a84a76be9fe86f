"""The admin API under ``/admin``: users, their tokens, tenants, keys and the audit trail.

Basic or Bearer, as everywhere. The caller acts on their own tenant; root may name another
with ``?tenant=``. What each operation may do, and for whom, is ``gateway.admin``'s (shared
with the CLI); these handlers read the request, call it and answer JSON. Errors are
``{"error", "message"}`` (``errors.render``); bodies and query parameters are declared by
the models of ``gateway.admin`` and refused with one message naming the field.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin import (
    Actor,
    AuditQuery,
    NewTenant,
    NewUserRequest,
    TenantQuery,
    UserChanges,
    validated,
)
from gateway.appkeys import ADMIN
from gateway.audit import describe, format_time
from gateway.authz import require_identity
from gateway.errors import Conflict
from gateway.handlers.common import read_body
from gateway.storage import KeyRecord, TokenRecord, User

__all__ = [
    "add_tenant",
    "audit",
    "create_user",
    "delete_user",
    "keys",
    "list_tenants",
    "list_users",
    "revoke_tokens",
    "rotate_keys",
    "show_user",
    "update_user",
    "user_tokens",
]


def user_json(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "tenant": user.tenant,
        "username": user.username,
        "email": user.email,
        "role": int(user.role),
        "roles": list(user.roles),
        "disabled": user.disabled,
        "created": format_time(user.created_at),
        "updated": format_time(user.updated_at),
    }


def token_json(record: TokenRecord) -> dict[str, object]:
    """A token row without anything that could serve as the token (no key hash)."""
    return {
        "jti": record.jti,
        "kind": record.kind,
        "issued": format_time(record.issued_at),
        "expires": format_time(record.expires_at),
        "description": record.description,
    }


def key_json(key: KeyRecord) -> dict[str, object]:
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "created": format_time(key.created_at),
        "active": key.retired_at is None,
    }


async def _caller(request: web.Request) -> tuple[Actor, str]:
    """Who asks (401 without credentials), and the tenant they act on."""
    identity = await require_identity(request)
    query = validated(TenantQuery, dict(request.query))
    return Actor.of(identity.user), query.tenant or identity.user.tenant


# Users

async def list_users(request: web.Request) -> web.Response:
    """The users of the tenant."""
    actor, tenant = await _caller(request)
    users = await request.app[ADMIN].list_users(actor, tenant)
    return web.json_response({"tenant": tenant, "users": [user_json(user) for user in users]})


async def create_user(request: web.Request) -> web.Response:
    """Create a user: 201."""
    actor, tenant = await _caller(request)
    body = validated(NewUserRequest, await read_body(request))
    user = await request.app[ADMIN].create_user(actor, tenant, body)
    return web.json_response({"user": user_json(user)}, status=201)


async def show_user(request: web.Request) -> web.Response:
    actor, tenant = await _caller(request)
    user = await request.app[ADMIN].get_user(actor, tenant, request.match_info["username"])
    return web.json_response({"user": user_json(user)})


async def update_user(request: web.Request) -> web.Response:
    """Change roles, role, disabled or password; the last two end the user's tokens."""
    actor, tenant = await _caller(request)
    changes = validated(UserChanges, await read_body(request))
    user, revoked = await request.app[ADMIN].change_user(
        actor, tenant, request.match_info["username"], changes)
    return web.json_response({"user": user_json(user), "revoked": revoked})


async def delete_user(request: web.Request) -> web.Response:
    """Disable the user and revoke every token of theirs."""
    actor, tenant = await _caller(request)
    user, revoked = await request.app[ADMIN].delete_user(actor, tenant,
                                                         request.match_info["username"])
    return web.json_response({"user": user_json(user), "revoked": revoked})


async def user_tokens(request: web.Request) -> web.Response:
    """Every live token of the user, of any kind, without the token itself."""
    actor, tenant = await _caller(request)
    username = request.match_info["username"]
    records = await request.app[ADMIN].live_tokens(actor, tenant, username)
    return web.json_response({"tokens": [token_json(record) for record in records]})


async def revoke_tokens(request: web.Request) -> web.Response:
    """Log the user out everywhere."""
    actor, tenant = await _caller(request)
    revoked = await request.app[ADMIN].revoke_tokens(actor, tenant,
                                                     request.match_info["username"])
    return web.json_response({"revoked": revoked})


# Tenants

async def list_tenants(request: web.Request) -> web.Response:
    actor, _ = await _caller(request)
    return web.json_response({"tenants": await request.app[ADMIN].tenants(actor)})


async def add_tenant(request: web.Request) -> web.Response:
    """Create a tenant: 201, or 409 when it exists."""
    actor, _ = await _caller(request)
    body = validated(NewTenant, await read_body(request))
    if not await request.app[ADMIN].add_tenant(actor, body):
        raise Conflict(f"Tenant {body.id!r} exists already")
    return web.json_response({"id": body.id}, status=201)


# Keys

async def keys(request: web.Request) -> web.Response:
    actor, tenant = await _caller(request)
    records = await request.app[ADMIN].keys(actor, tenant)
    return web.json_response({"tenant": tenant, "keys": [key_json(key) for key in records]})


async def rotate_keys(request: web.Request) -> web.Response:
    """New keys for the tenant; the retired ones verify their tokens until pruned."""
    actor, tenant = await _caller(request)
    retired, created = await request.app[ADMIN].rotate_keys(actor, tenant)
    return web.json_response({"tenant": tenant, "created": created, "retired": retired})


# Audit trail

async def audit(request: web.Request) -> web.Response:
    """The tenant's security events, newest first."""
    actor, tenant = await _caller(request)
    query = validated(AuditQuery, dict(request.query))
    records = await request.app[ADMIN].audit_events(actor, tenant, query)
    return web.json_response({"tenant": tenant, "events": [describe(record) for record in records]})
