"""Who may do what: the caller's identity for a request, and every permission check.

Identity is resolved once per request and kept on it (``authenticate``); authorization
decisions are the small functions below, used by the handlers and the reverse-proxy
decision alike, so a rule about roles lives in one place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from aiohttp import web

from gateway.appkeys import CLIENT_ADDRESS, CLIENT_ADDRESSES, CREDENTIALS, IDENTITY, RESOLVER, TENANT
from gateway.errors import AddressClaimNotAllowed, Forbidden, Unauthenticated
from gateway.identity.credentials import Identity
from gateway.netaddr import address_text
from gateway.storage import Role, User
from gateway.usernames import username_key

__all__ = [
    "ADMIN_ROLE",
    "Role",
    "authenticate",
    "is_admin",
    "may_administer",
    "may_grant",
    "may_introspect",
    "may_issue_media",
    "may_manage",
    "may_revoke",
    "require_address_claim",
    "require_identity",
    "require_role",
    "user_matches",
]

#: The role string that lets a plain user mint media tokens (seed 000's Symfony clients).
ADMIN_ROLE = "ROLE_ADMIN"


async def authenticate(request: web.Request) -> Identity | None:
    """The request's identity, resolved once and kept; None when it has no credentials.

    Bad credentials raise (401/403) here, not in the middleware, so routes that do not
    need an identity are not affected by them.
    """
    cached = request[IDENTITY]
    if cached is not None:
        return cached
    credentials = request[CREDENTIALS]
    if credentials is None:
        return None
    resolver = request.app[RESOLVER]
    identity = resolver.cached(credentials, request[TENANT])
    if identity is None:
        identity = await resolver.resolve(
            credentials, request[TENANT], address_text(request[CLIENT_ADDRESS])
        )
    request[IDENTITY] = identity
    return identity


async def require_identity(request: web.Request) -> Identity:
    """The request's identity, or 401 when it has none."""
    identity = await authenticate(request)
    if identity is None:
        raise Unauthenticated()
    return identity


def require_role(identity: Identity | None, roles: frozenset[str] | None) -> Identity:
    """401 without an identity; 403 when ``roles`` is set and the user has none of them."""
    if identity is None:
        raise Unauthenticated()
    if roles is not None and not roles.intersection(identity.user.roles):
        raise Forbidden("This resource needs one of the roles: " + ", ".join(sorted(roles)))
    return identity


def is_admin(user: User) -> bool:
    """Root or admin by ``role``."""
    return user.role <= Role.ADMIN


def may_administer(user: User, tenant: str) -> bool:
    """The admin API and its CLI twins: root in every tenant, an admin in their own."""
    return user.role == Role.ROOT or (user.role == Role.ADMIN and user.tenant == tenant)


def may_manage(user: User, target: User) -> bool:
    """Change or log out ``target``: root anyone; an admin anyone of their tenant but a root
    user (whose password would otherwise be theirs to set)."""
    return user.role == Role.ROOT or (may_administer(user, target.tenant)
                                      and target.role != Role.ROOT)


def may_grant(user: User, role: Role) -> bool:
    """Give someone ``role``: only root makes root."""
    return role != Role.ROOT or user.role == Role.ROOT


def may_issue_media(user: User) -> bool:
    """``POST /token`` is for admins: role root/admin, or the ``ROLE_ADMIN`` role string."""
    return is_admin(user) or ADMIN_ROLE in user.roles


def may_introspect(user: User, clients: Collection[str]) -> bool:
    """``POST /introspect`` is for root and admins, and for the users ``clients`` names
    (``introspection.clients``, compared as usernames are)."""
    return is_admin(user) or username_key(user.username) in {username_key(c) for c in clients}


def may_revoke(caller: User, owner: User) -> bool:
    """``POST /revoke``: a user may end their own tokens; root or an admin any token of
    their tenant."""
    return caller.id == owner.id or (is_admin(caller) and caller.tenant == owner.tenant)


async def require_address_claim(request: web.Request) -> None:
    """A client address named in a body (``POST /token/check``'s ``ip``) is believed only
    from a trusted proxy (the TCP peer) or a root/admin; anyone else gets 403
    ``ip_not_allowed_here``, so a client cannot claim an address in a token's range."""
    if request.app[CLIENT_ADDRESSES].trusts(request.remote):
        return
    identity = await authenticate(request)
    if identity is None or not is_admin(identity.user):
        raise AddressClaimNotAllowed()


def user_matches(restriction: Mapping[str, Any], username: str | None,
                 roles: Iterable[str]) -> bool:
    """True when the restriction is empty, or the user has its username or one of its roles.

    ``username`` None means the request carries no user credential (a media token's
    ``context.user``, docs/media-tokens.md).
    """
    wanted_name = restriction.get("username")
    wanted_roles = restriction.get("roles") or []
    if not wanted_name and not wanted_roles:
        return True
    if username is None:
        return False
    if wanted_name and username == wanted_name:
        return True
    return bool(set(wanted_roles).intersection(roles))
