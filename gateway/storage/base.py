"""The storage interface the services and the CLI call, the records it returns, its errors.

``SQLiteStore`` and ``PostgreSQLStore`` implement it (``storage.open_store`` picks one from
the config); nothing above this package knows which. Every method is one transaction: a
write either happens whole or not at all. Times are epoch seconds passed in by the caller,
so tests drive them with an injected clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.storage.changes import ChangeFeed

__all__ = [
    "AlreadyExists",
    "AuditEvent",
    "AuditRecord",
    "Change",
    "KeyRecord",
    "NewToken",
    "NewUser",
    "NoSuchParent",
    "Revocation",
    "Role",
    "Scope",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "TokenRecord",
    "User",
]


class StorageError(Exception):
    """The root of the errors a ``Store`` raises on purpose."""


class AlreadyExists(StorageError):
    """The row to create collides with one that exists (a unique name, a kid, a tenant)."""


class NoSuchParent(StorageError):
    """The row to create names one that does not exist (a user in an unknown tenant)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached now (the message never holds a password)."""


class Role(enum.IntEnum):
    """A user's ``role``, in seed 003's numbering (stored and answered as the number)."""

    ROOT = 0
    ADMIN = 1
    USER = 2


@dataclass(frozen=True, slots=True)
class User:
    id: int
    tenant: str
    username: str
    email: str | None
    password_hash: str
    role: Role
    roles: tuple[str, ...]
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class NewUser:
    tenant: str
    username: str
    password_hash: str
    email: str | None = None
    role: Role = Role.USER
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewToken:
    jti: str
    kind: str
    tenant: str
    user_id: int | None
    issued_at: float
    expires_at: float
    key_hash: str | None = None
    description: str | None = None
    family_id: str | None = None
    parent_jti: str | None = None
    media_kid: str | None = None
    signing_kid: str | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A tenant's signing key, used with exactly one ``algorithm`` (RS256, RS384, RS512,
    ES256, ES384 or HS256).

    ``legacy_algorithms``: the other algorithms a key made before keys had one algorithm
    (one RSA key served RS256, RS384 and RS512) signed tokens with; they verify with it
    until they expire. Empty for every key made since.
    """

    kid: str
    tenant: str
    algorithm: str
    private_key: str
    public_jwk: str | None
    created_at: float
    retired_at: float | None = None
    legacy_algorithms: tuple[str, ...] = ()

    def verifies(self, algorithm: str) -> bool:
        """True when a token whose header names ``algorithm`` may be checked with this key."""
        return algorithm == self.algorithm or algorithm in self.legacy_algorithms


@dataclass(frozen=True, slots=True)
class TokenRecord:
    jti: str
    kind: str
    tenant: str
    user_id: int | None
    issued_at: float
    expires_at: float
    revoked_at: float | None
    revoke_reason: str | None
    key_hash: str | None
    description: str | None
    family_id: str | None
    parent_jti: str | None
    media_kid: str | None
    used_at: float | None
    deleted_at: float | None
    signing_kid: str | None


class Scope(enum.StrEnum):
    """What one revocation covers; the ``subject`` of a ``Revocation`` names it."""

    TOKEN = "token"  # one token, by jti
    FAMILY = "family"  # every token of one seed-004 login, by family id
    USER = "user"  # every token of a user, and their cached credentials, by user id
    USER_STATE = "user_state"  # a user's roles or enabled flag changed: tokens stay valid
    KEYS = "keys"  # a tenant's signing keys were rotated or retired, by tenant id


@dataclass(frozen=True, slots=True)
class Revocation:
    """One change that can make a live token or a cached identity invalid."""

    scope: Scope
    subject: str
    reason: str
    #: Whose tokens or state; required for every scope but KEYS (caches index by user).
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A committed ``Revocation``, as the revocation log hands it to every process."""

    seq: int
    scope: Scope
    subject: str
    user_id: int | None
    #: When it was made (epoch seconds of the process that made it).
    at: float = 0.0


#: A value of an audit event's ``detail``: names, kinds, jtis, reasons, counts.
DetailValue = str | int | float | bool | None | list[str]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One security event for the append-only audit trail (``gateway.audit`` names them).

    Never a password, token or key: ``detail`` holds names, kinds, jtis, reasons, counts.
    """

    at: float
    tenant: str
    action: str
    actor: str | None = None
    subject: str | None = None
    address: str | None = None
    request_id: str | None = None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored ``AuditEvent`` and its place in the trail (``seq`` grows with each event)."""

    seq: int
    event: AuditEvent


class Store(Protocol):
    """Everything the gateway keeps. Methods raise ``AlreadyExists`` on duplicates."""

    #: Announces committed revocations to every process (see ``storage.changes``).
    feed: ChangeFeed

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise when the database cannot be read."""

    # Tenants
    async def tenant_exists(self, tenant: str) -> bool:
        """True when ``tenant`` exists."""

    async def add_tenant(self, tenant: str, now: float,
                         audit: Sequence[AuditEvent] = ()) -> bool:
        """Create ``tenant``; False when it already existed (and ``audit`` is not written)."""

    async def list_tenants(self) -> list[str]:
        """Every tenant id, sorted."""

    # Users
    async def bootstrap_root(self, user: NewUser, now: float) -> bool:
        """Create tenant ``user.tenant`` and root ``user`` only when no root user exists."""

    async def has_root(self) -> bool:
        """True when a root user (``Role.ROOT``) exists, enabled or not."""

    async def add_user(self, user: NewUser, now: float,
                       audit: Sequence[AuditEvent] = ()) -> User:
        """Create a user in an existing tenant (the caller has normalised the username).

        AlreadyExists when a user of the tenant has the same username key
        (``usernames.username_key``: ``Admin`` beside ``admin``) or the same email.
        """

    async def get_user(self, tenant: str, username: str) -> User | None:
        """The user of ``tenant`` whose username has the key of ``username`` (any case or
        compatibility spelling of the name)."""

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        """The user whose email is ``email`` (case-insensitive) in ``tenant``."""

    async def list_users(self, tenant: str) -> list[User]:
        """The users of ``tenant``, by username."""

    async def set_password(self, user_id: int, password_hash: str, now: float,
                           *, revoke_tokens: bool = True,
                           audit: Sequence[AuditEvent] = ()) -> int:
        """Store a new hash; by default revoke every live token of the user. Returns revoked."""

    async def set_disabled(self, user_id: int, disabled: bool, now: float,
                           audit: Sequence[AuditEvent] = ()) -> int:
        """Disable (revoking every live token) or enable a user. Returns tokens revoked."""

    async def set_roles(self, user_id: int, roles: tuple[str, ...], now: float,
                        audit: Sequence[AuditEvent] = ()) -> None:
        """Replace the user's role strings (cached identities of the user are dropped)."""

    async def set_role(self, user_id: int, role: Role, now: float,
                       audit: Sequence[AuditEvent] = ()) -> None:
        """Change the user's ``role`` (cached identities of the user are dropped)."""

    # Tokens
    async def add_tokens(self, tokens: Sequence[NewToken],
                         audit: Sequence[AuditEvent] = ()) -> None:
        """Record newly issued tokens, all or none."""

    async def list_user_tokens(self, user_id: int, kind: str, *, limit: int | None = None,
                               offset: int = 0) -> list[TokenRecord]:
        """The user's tokens of ``kind`` that are not deleted, oldest first."""

    async def live_user_tokens(self, user_id: int, now: float) -> list[TokenRecord]:
        """The user's tokens of every kind that are neither revoked, deleted nor expired at
        ``now``, oldest first."""

    async def delete_token(self, jti: str, user_id: int, now: float,
                           audit: Sequence[AuditEvent] = ()) -> bool:
        """Revoke and hide a token (named tokens: 404 from then on); False when already gone
        (and ``audit`` is not written)."""

    async def revoke(self, revocation: Revocation, now: float,
                     audit: Sequence[AuditEvent] = ()) -> int:
        """Revoke what ``revocation`` names and log it, in one transaction: the one seam.

        Every change that can invalidate a live token or a cached identity (this method,
        and the user, key and rotation methods that change more than tokens) writes its
        ``Change`` to the revocation log in the transaction that makes it, and tells the
        change feed after the commit. Returns how many token rows were revoked. ``audit`` is
        written with it, unless a token or family revocation found nothing live.
        """

    async def changes_since(self, seq: int) -> tuple[list[Change], int]:
        """The logged changes after ``seq``, oldest first, and the oldest seq still kept
        (a process behind that has missed changes and must drop its whole cache)."""

    async def last_change(self) -> int:
        """The newest seq in the revocation log (0 when empty)."""

    async def rotate_refresh(self, old_jti: str, new_tokens: Sequence[NewToken], now: float,
                             *, revoke_old: bool, audit: Sequence[AuditEvent] = ()) -> bool:
        """Mark a refresh token used and record its successors, atomically.

        False (and nothing recorded, ``audit`` neither) when the old token was already used or revoked: the
        caller treats that as reuse.
        """

    async def get_token(self, jti: str) -> TokenRecord | None:
        """The token row for ``jti``."""

    async def get_token_and_user(self, jti: str) -> tuple[TokenRecord, User | None] | None:
        """The token row for ``jti`` with its user (None for media tokens), in one read."""

    async def consume_media(self, tenant: str, media_kid: str, now: float) -> bool:
        """Use a one-time media token: True for the first use only, in every process."""

    async def prune(self, now: float, failures_before: float,
                    changes_before: float) -> tuple[int, int, int]:
        """Drop expired token rows, login failures older than ``failures_before``, retired
        keys no unexpired token needs and revocation log rows older than ``changes_before``.
        Returns the first three counts."""

    # Keys
    async def get_key(self, kid: str) -> KeyRecord | None:
        """The key named ``kid``, active or retired."""

    async def active_key(self, tenant: str, algorithm: str) -> KeyRecord | None:
        """The unretired key of ``algorithm`` in ``tenant``."""

    async def add_first_key(self, key: KeyRecord) -> KeyRecord:
        """Store ``key`` unless its tenant already has an active key of its algorithm (then
        return that one): two processes creating the first key agree on one."""

    async def rotate_keys(self, tenant: str, new_keys: Sequence[KeyRecord], now: float) -> list[str]:
        """Retire the active key of each new key's algorithm and store the new keys, at
        once. Returns the retired kids."""

    async def list_keys(self, tenant: str) -> list[KeyRecord]:
        """Every key of ``tenant``, oldest first."""

    # Login regulation
    async def record_login_attempt(
        self, tenant: str, account: str, address: str, now: float, limits: tuple[int, int],
        ban: Callable[[list[float], list[float]], float],
    ) -> float:
        """Count a login attempt as a failure until it succeeds, unless it is banned.

        Reads the latest ``limits[0]`` failure times of the account and ``limits[1]`` of the
        address (newest first) and asks ``ban`` for the seconds of ban they leave; when
        none, records this attempt, in the same transaction (so concurrent attempts see
        each other). Returns what ``ban`` answered: an attempt during a ban is not counted.
        """

    async def clear_login_failures(self, tenant: str, account: str) -> None:
        """Forget an account's failures (after a successful login)."""

    # Audit trail
    async def add_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append ``events`` to the audit trail (for events no other write carries; the
        write methods above take an ``audit`` argument, written in their transaction)."""

    async def list_audit(self, tenant: str, *, user: str | None = None,
                         since: float | None = None, limit: int = 100) -> list[AuditRecord]:
        """The tenant's events, newest first: at most ``limit``, only those at or after
        ``since``, only those whose actor or subject is ``user``."""

    async def prune_audit(self, before: float) -> int:
        """Drop audit events older than ``before``; returns how many."""
