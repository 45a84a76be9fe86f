"""Administration: users, their tokens, tenants, keys and the audit trail, for the admin API
and the ``gateway`` command alike.

``handlers.admin`` and ``cli`` both call ``Administration``, with the request bodies
declared here, so what an admin may do over HTTP and what an operator does on the machine
cannot drift. Who may do what is decided by ``authz`` (``may_administer``, ``may_manage``,
``may_grant``); the command line acts as ``CLI``, which may do anything. Each change is
recorded in the audit trail in the transaction that makes it, and every change that ends
tokens goes through the store's revocation seam, so it holds at once in every process.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from gateway.audit import CLI_ACTOR, Action, AuditTrail, Since, event, parse_since
from gateway.authz import may_administer, may_grant, may_manage
from gateway.config import TENANT_ID_PATTERN
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound, UnknownTenant
from gateway.keys.service import SigningKeys
from gateway.passwords import PasswordHasher, validate_new_password
from gateway.storage import (
    AlreadyExists,
    AuditEvent,
    AuditRecord,
    KeyRecord,
    NewUser,
    Role,
    Store,
    TokenRecord,
    User,
)
from gateway.storage.base import DetailValue
from gateway.tokens.lifecycle import TokenService
from gateway.usernames import InvalidUsername, normalize_username

__all__ = [
    "CLI",
    "Actor",
    "Administration",
    "AuditQuery",
    "InvalidField",
    "NewTenant",
    "NewUserRequest",
    "TenantQuery",
    "UserChanges",
    "validated",
]

M = TypeVar("M", bound=BaseModel)
_ROLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
#: Most audit events one listing answers.
MAX_AUDIT_LIMIT = 1000


# Request bodies and query parameters (also built by the CLI from its arguments)

def _username(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    try:
        return normalize_username(value)
    except InvalidUsername as exc:
        raise ValueError(f"invalid username {value[:64]!r}: {exc}") from None


def _password(value: object) -> object:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str):
        raise ValueError("expected a string")
    validate_new_password(text)
    return value


def _role(value: object) -> object:
    """A role by number (seed 003: 0 root, 1 admin, 2 user) or by name."""
    if isinstance(value, str) and value.strip().upper() in Role.__members__:
        return Role[value.strip().upper()]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in set(Role):
        raise ValueError("expected 0 (root), 1 (admin), 2 (user) or one of those names")
    return Role(value)


def _roles(value: object) -> object:
    """Role strings as a list, or as one comma-separated string ('' is none)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        for role in value:
            if not isinstance(role, str) or not _ROLE_NAME.match(role):
                raise ValueError(f"invalid role {str(role)[:64]!r} "
                                 "(letters, digits, '_', '.', '-'; at most 64)")
    return value


def _tenant_id(value: object) -> object:
    if not isinstance(value, str) or not TENANT_ID_PATTERN.match(value):
        raise ValueError(f"invalid tenant id {str(value)[:64]!r} (letters, digits, '.', '_', '-')")
    return value


Username = Annotated[str, BeforeValidator(_username)]
Password = Annotated[SecretStr, BeforeValidator(_password)]
RoleValue = Annotated[Role, BeforeValidator(_role)]
RoleNames = Annotated[tuple[str, ...], BeforeValidator(_roles)]
TenantId = Annotated[str, BeforeValidator(_tenant_id)]
AuditSince = Annotated[Since, BeforeValidator(parse_since)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewUserRequest(_Body):
    """``POST /admin/users``, ``gateway users add``."""

    username: Username
    password: Password
    email: str | None = Field(None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    role: RoleValue = Role.USER
    roles: RoleNames = ()


class UserChanges(_Body):
    """``PATCH /admin/users/{username}``; ``gateway users passwd|disable|enable|roles``."""

    roles: RoleNames | None = None
    role: RoleValue | None = None
    disabled: bool | None = None
    password: Password | None = None


class NewTenant(_Body):
    """``POST /admin/tenants``, ``gateway tenants add``."""

    id: TenantId


class TenantQuery(BaseModel):
    """``?tenant=``: root names the tenant to act on (default: the caller's own)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    tenant: TenantId | None = None


class AuditQuery(TenantQuery):
    """``GET /admin/audit``, ``gateway audit``."""

    user: str | None = Field(None, min_length=1, max_length=256)
    since: AuditSince | None = None
    limit: int = Field(100, ge=1, le=MAX_AUDIT_LIMIT)


class InvalidField(BadRequest):
    """A field of a request body or query is missing or wrong (400)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


def validated(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or InvalidField naming the first wrong field and what is wrong
    (never echoing a password): the one mapper from validation errors to an answer."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"] if not isinstance(part, int))
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        elif first["type"] == "missing":
            message = "is required"
        else:
            message = first["msg"].removeprefix("Value error, ")
        raise InvalidField(where, message) from None


# Who acts

@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: a signed-in user, or the command line (``user`` None) that may do anything."""

    name: str
    user: User | None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.username, user)


CLI = Actor(CLI_ACTOR, None)


class Administration:
    """The operations of the admin API and of the ``gateway`` command."""

    def __init__(self, store: Store, hasher: PasswordHasher, tokens: TokenService,
                 keys: SigningKeys, audit: AuditTrail, clock: Callable[[], float]) -> None:
        self._store = store
        self._hasher = hasher
        self._tokens = tokens
        self._keys = keys
        self.audit = audit
        self._clock = clock

    # Permissions

    async def _enter(self, actor: Actor, tenant: str) -> None:
        """403 unless ``actor`` may administer ``tenant``; then 400 when it does not exist."""
        if actor.user is not None and not may_administer(actor.user, tenant):
            raise Forbidden("Only root may administer another tenant; admins their own")
        if not await self._store.tenant_exists(tenant):
            raise UnknownTenant(f"Unknown tenant {tenant!r}")

    @staticmethod
    def _require_root(actor: Actor) -> None:
        if actor.user is not None and actor.user.role != Role.ROOT:
            raise Forbidden("Only root may manage tenants")

    @staticmethod
    def _grant(actor: Actor, role: Role) -> None:
        if actor.user is not None and not may_grant(actor.user, role):
            raise Forbidden("Only root may make a user root")

    async def _target(self, actor: Actor, tenant: str, username: str, *,
                      manage: bool = True) -> User:
        """The user ``username`` of ``tenant``; with ``manage``, 403 unless ``actor`` may
        change them."""
        await self._enter(actor, tenant)
        user = await self._store.get_user(tenant, username)
        if user is None:
            raise NotFound(f"No user {username!r} in tenant {tenant!r}")
        if manage and actor.user is not None and not may_manage(actor.user, user):
            raise Forbidden("Only root may change a root user")
        return user

    # Users

    async def list_users(self, actor: Actor, tenant: str) -> list[User]:
        """The users of ``tenant``, by username."""
        await self._enter(actor, tenant)
        return await self._store.list_users(tenant)

    async def get_user(self, actor: Actor, tenant: str, username: str) -> User:
        """One user of ``tenant``, or 404."""
        return await self._target(actor, tenant, username, manage=False)

    async def create_user(self, actor: Actor, tenant: str, request: NewUserRequest) -> User:
        """Create a user; 409 when the username or email is taken."""
        await self._enter(actor, tenant)
        self._grant(actor, request.role)
        password_hash = await self._hasher.hash(request.password.get_secret_value())
        now = self._clock()
        try:
            return await self._store.add_user(
                NewUser(tenant=tenant, username=request.username, password_hash=password_hash,
                        email=request.email, role=request.role, roles=request.roles),
                now,
                [event(Action.USER_CREATED, tenant, now, actor=actor.name,
                       subject=request.username, role=int(request.role),
                       roles=list(request.roles))],
            )
        except AlreadyExists as exc:
            raise Conflict(str(exc)) from None

    async def change_user(self, actor: Actor, tenant: str, username: str,
                          changes: UserChanges) -> tuple[User, int]:
        """Apply ``changes``; disabling or a new password revokes every token of the user.

        Everything is checked before anything changes. Returns the user as it is now and
        the tokens revoked.
        """
        if changes == UserChanges():
            raise BadRequest("Nothing to change: give roles, role, disabled or password")
        user = await self._target(actor, tenant, username)
        if changes.role is not None:
            self._grant(actor, changes.role)
        password_hash = None
        if changes.password is not None:
            password_hash = await self._hasher.hash(changes.password.get_secret_value())
        now, revoked = self._clock(), 0

        def note(action: Action, **detail: DetailValue) -> list[AuditEvent]:
            return [event(action, tenant, now, actor=actor.name, subject=user.username, **detail)]

        if changes.roles is not None:
            await self._store.set_roles(user.id, changes.roles, now,
                                        note(Action.USER_CHANGED, roles=list(changes.roles)))
        if changes.role is not None:
            await self._store.set_role(user.id, changes.role, now,
                                       note(Action.USER_CHANGED, role=int(changes.role)))
        if changes.disabled is not None:
            revoked += await self._store.set_disabled(
                user.id, changes.disabled, now,
                note(Action.USER_DISABLED) if changes.disabled
                else note(Action.USER_CHANGED, disabled=False))
        if password_hash is not None:
            revoked += await self._store.set_password(user.id, password_hash, now,
                                                      audit=note(Action.PASSWORD_CHANGED))
        return await self._reread(user), revoked

    async def delete_user(self, actor: Actor, tenant: str, username: str) -> tuple[User, int]:
        """Disable the user and revoke every token of theirs (the row stays, for the trail)."""
        user = await self._target(actor, tenant, username)
        now = self._clock()
        revoked = await self._store.set_disabled(
            user.id, True, now,
            [event(Action.USER_DISABLED, tenant, now, actor=actor.name, subject=user.username,
                   reason="deleted")])
        return await self._reread(user), revoked

    async def _reread(self, user: User) -> User:
        current = await self._store.get_user(user.tenant, user.username)
        assert current is not None  # users are never deleted
        return current

    # A user's tokens

    async def live_tokens(self, actor: Actor, tenant: str, username: str) -> list[TokenRecord]:
        """Every live token of the user, of any kind, oldest first."""
        user = await self._target(actor, tenant, username, manage=False)
        return await self._store.live_user_tokens(user.id, self._clock())

    async def revoke_tokens(self, actor: Actor, tenant: str, username: str) -> int:
        """Log the user out everywhere: sessions, access, refresh and named tokens."""
        user = await self._target(actor, tenant, username)
        return await self._tokens.revoke_user(user, "logged_out_everywhere", actor=actor.name)

    # Tenants

    async def tenants(self, actor: Actor) -> list[str]:
        """Every tenant id (root only)."""
        self._require_root(actor)
        return await self._store.list_tenants()

    async def add_tenant(self, actor: Actor, request: NewTenant) -> bool:
        """Create a tenant (root only); False when it exists already."""
        self._require_root(actor)
        now = self._clock()
        return await self._store.add_tenant(
            request.id, now, [event(Action.TENANT_ADDED, request.id, now, actor=actor.name,
                                    subject=request.id)])

    # Keys

    async def keys(self, actor: Actor, tenant: str) -> list[KeyRecord]:
        """The tenant's signing keys (media tokens, and user tokens under RS256/ES256),
        oldest first."""
        await self._enter(actor, tenant)
        return await self._store.list_keys(tenant)

    async def rotate_keys(self, actor: Actor, tenant: str) -> tuple[list[str], list[str]]:
        """New keys for every algorithm the tenant has one of; returns (retired, new) kids."""
        await self._enter(actor, tenant)
        retired, created = await self._keys.rotate(tenant)
        if created:
            await self.audit.record([event(Action.KEY_ROTATED, tenant, self._clock(),
                                           actor=actor.name, subject=tenant,
                                           created=created, retired=retired)])
        return retired, created

    # Audit trail

    async def audit_events(self, actor: Actor, tenant: str,
                           query: AuditQuery) -> list[AuditRecord]:
        """The tenant's security events, newest first; ``query.user`` matches the actor or
        the subject (a user's stored name when one answers to it)."""
        await self._enter(actor, tenant)
        user = query.user
        if user is not None:
            found = await self._store.get_user(tenant, user)
            user = found.username if found is not None else user
        return await self.audit.events(tenant, user=user, since=query.since, limit=query.limit)
