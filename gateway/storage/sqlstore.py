"""``Store``'s methods, once, for every SQL backend: what each transaction does.

A backend (``SQLiteStore``, ``PostgreSQLStore``) supplies connections and transactions:
``_read()`` for reads, ``_write()`` for one atomic write that is committed (and, when it
logged a revocation, announced on the change feed) before the block's caller goes on.
Everything else — which statements make up each method, and how races are excluded — is
here, so the two backends cannot drift. Races are excluded by the schema or by a
conditional UPDATE wherever one can say it (one active key per tenant and algorithm, a
one-time media token consumed once, a refresh token rotated once); where a read decides a
write (the first root, login failures, key rotation), by a named lock
(``Connection.serialize``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from typing import TypeVar

from gateway.storage import repository as sql
from gateway.storage.base import (
    AuditEvent,
    AuditRecord,
    Change,
    KeyRecord,
    NewToken,
    NewUser,
    Revocation,
    Role,
    Scope,
    TokenRecord,
    User,
)
from gateway.storage.changes import ChangeFeed
from gateway.storage.connection import Connection
from gateway.usernames import username_key

__all__ = ["SQLStore", "finish_opening"]

StoreT = TypeVar("StoreT", bound="SQLStore")


class SQLStore(abc.ABC):
    """The ``Store`` methods over a backend's ``_read`` and ``_write`` transactions."""

    feed: ChangeFeed

    @abc.abstractmethod
    def _read(self) -> AsyncContextManager[Connection]:
        """A connection for reads (no transaction needed: each method reads once)."""

    @abc.abstractmethod
    def _write(self) -> AsyncContextManager[Connection]:
        """One atomic write, committed before the ``async with`` block's caller goes on."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the backend's connections and its change feed."""

    async def fill_username_keys(self) -> int:
        """Give every user without one its username key (rows older than the column);
        returns how many were filled. A row whose key another user of its tenant already
        holds keeps none (and is found by its exact username). Run when opening."""
        filled = 0
        async with self._write() as conn:
            await conn.serialize("username-keys")
            for user_id, tenant, username in await sql.users_without_key(conn):
                filled += await sql.set_username_key(conn, user_id, tenant,
                                                     username_key(username))
        return filled

    async def ping(self) -> None:
        async with self._read() as conn:
            await sql.select_one(conn)

    # Tenants

    async def tenant_exists(self, tenant: str) -> bool:
        async with self._read() as conn:
            return await sql.tenant_exists(conn, tenant)

    async def add_tenant(self, tenant: str, now: float,
                         audit: Sequence[AuditEvent] = ()) -> bool:
        async with self._write() as conn:
            if not await sql.insert_tenant(conn, tenant, now):
                return False
            await sql.insert_audit(conn, audit)
            return True

    async def list_tenants(self) -> list[str]:
        async with self._read() as conn:
            return await sql.list_tenants(conn)

    # Users

    async def bootstrap_root(self, user: NewUser, now: float) -> bool:
        async with self._write() as conn:
            await conn.serialize("bootstrap")
            await sql.insert_tenant(conn, user.tenant, now)
            if await sql.has_root(conn):
                return False
            await sql.insert_user(conn, user, username_key(user.username), now)
            return True

    async def has_root(self) -> bool:
        async with self._read() as conn:
            return await sql.has_root(conn)

    async def add_user(self, user: NewUser, now: float,
                       audit: Sequence[AuditEvent] = ()) -> User:
        async with self._write() as conn:
            user_id = await sql.insert_user(conn, user, username_key(user.username), now)
            await sql.insert_audit(conn, audit)
            created = await sql.user_by_id(conn, user_id)
        assert created is not None
        return created

    async def get_user(self, tenant: str, username: str) -> User | None:
        async with self._read() as conn:
            return await sql.user_by_name(conn, tenant, username, username_key(username))

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        async with self._read() as conn:
            return await sql.user_by_email(conn, tenant, email)

    async def list_users(self, tenant: str) -> list[User]:
        async with self._read() as conn:
            return await sql.users_of_tenant(conn, tenant)

    async def set_password(self, user_id: int, password_hash: str, now: float,
                           *, revoke_tokens: bool = True,
                           audit: Sequence[AuditEvent] = ()) -> int:
        async with self._write() as conn:
            await sql.update_password(conn, user_id, password_hash, now)
            await sql.insert_audit(conn, audit)
            if not revoke_tokens:
                return 0  # a rehash of the same password on login
            return await sql.revoke(conn, _user_change(Scope.USER, user_id, "password_changed"), now)

    async def set_disabled(self, user_id: int, disabled: bool, now: float,
                           audit: Sequence[AuditEvent] = ()) -> int:
        async with self._write() as conn:
            await sql.update_disabled(conn, user_id, disabled, now)
            await sql.insert_audit(conn, audit)
            if not disabled:
                await sql.revoke(conn, _user_change(Scope.USER_STATE, user_id, "user_enabled"), now)
                return 0
            return await sql.revoke(conn, _user_change(Scope.USER, user_id, "user_disabled"), now)

    async def set_roles(self, user_id: int, roles: tuple[str, ...], now: float,
                        audit: Sequence[AuditEvent] = ()) -> None:
        async with self._write() as conn:
            await sql.update_roles(conn, user_id, roles, now)
            await sql.insert_audit(conn, audit)
            await sql.revoke(conn, _user_change(Scope.USER_STATE, user_id, "roles_changed"), now)

    async def set_role(self, user_id: int, role: Role, now: float,
                       audit: Sequence[AuditEvent] = ()) -> None:
        async with self._write() as conn:
            await sql.update_role(conn, user_id, role, now)
            await sql.insert_audit(conn, audit)
            await sql.revoke(conn, _user_change(Scope.USER_STATE, user_id, "role_changed"), now)

    # Tokens

    async def add_tokens(self, tokens: Sequence[NewToken],
                         audit: Sequence[AuditEvent] = ()) -> None:
        async with self._write() as conn:
            for token in tokens:
                await sql.insert_token(conn, token)
            await sql.insert_audit(conn, audit)

    async def list_user_tokens(self, user_id: int, kind: str, *, limit: int | None = None,
                               offset: int = 0) -> list[TokenRecord]:
        async with self._read() as conn:
            return await sql.user_tokens(conn, user_id, kind,
                                         sql.NO_LIMIT if limit is None else limit, offset)

    async def live_user_tokens(self, user_id: int, now: float) -> list[TokenRecord]:
        async with self._read() as conn:
            return await sql.live_user_tokens(conn, user_id, now)

    async def delete_token(self, jti: str, user_id: int, now: float,
                           audit: Sequence[AuditEvent] = ()) -> bool:
        async with self._write() as conn:
            if not await sql.mark_deleted(conn, jti, now):
                return False
            await sql.insert_audit(conn, audit)
            await sql.revoke(conn, Revocation(Scope.TOKEN, jti, "deleted", user_id), now)
            return True

    async def revoke(self, revocation: Revocation, now: float,
                     audit: Sequence[AuditEvent] = ()) -> int:
        async with self._write() as conn:
            revoked = await sql.revoke(conn, revocation, now)
            if revoked or revocation.scope not in (Scope.TOKEN, Scope.FAMILY):
                await sql.insert_audit(conn, audit)
            return revoked

    async def changes_since(self, seq: int) -> tuple[list[Change], int]:
        async with self._read() as conn:
            return await sql.changes_since(conn, seq)

    async def last_change(self) -> int:
        async with self._read() as conn:
            return await sql.last_change(conn)

    async def rotate_refresh(self, old_jti: str, new_tokens: Sequence[NewToken], now: float,
                             *, revoke_old: bool, audit: Sequence[AuditEvent] = ()) -> bool:
        async with self._write() as conn:
            if not await sql.mark_used(conn, old_jti, now):
                return False
            await sql.insert_audit(conn, audit)
            if revoke_old:
                user_id = new_tokens[0].user_id if new_tokens else None
                await sql.revoke(conn, Revocation(Scope.TOKEN, old_jti, "rotated", user_id), now)
            for token in new_tokens:
                await sql.insert_token(conn, token)
            return True

    async def get_token(self, jti: str) -> TokenRecord | None:
        async with self._read() as conn:
            return await sql.token_by_jti(conn, jti)

    async def get_token_and_user(self, jti: str) -> tuple[TokenRecord, User | None] | None:
        async with self._read() as conn:
            return await sql.token_and_user(conn, jti)

    async def consume_media(self, tenant: str, media_kid: str, now: float) -> bool:
        async with self._write() as conn:
            return await sql.consume_media(conn, tenant, media_kid, now)

    async def prune(self, now: float, failures_before: float,
                    changes_before: float) -> tuple[int, int, int]:
        async with self._write() as conn:
            tokens = await sql.delete_expired_tokens(conn, now)
            failures = await sql.delete_old_failures(conn, failures_before)
            keys = await sql.delete_unneeded_keys(conn, now)
            await sql.delete_old_changes(conn, changes_before)
        return tokens, failures, keys

    # Keys

    async def get_key(self, kid: str) -> KeyRecord | None:
        async with self._read() as conn:
            return await sql.key_by_kid(conn, kid)

    async def active_key(self, tenant: str, algorithm: str) -> KeyRecord | None:
        async with self._read() as conn:
            return await sql.active_key(conn, tenant, algorithm)

    async def add_first_key(self, key: KeyRecord) -> KeyRecord:
        async with self._write() as conn:
            if await sql.insert_key(conn, key):
                return key
            existing = await sql.active_key(conn, key.tenant, key.algorithm)
        # The insert lost to a committed active key, which the statement after it sees.
        assert existing is not None
        return existing

    async def rotate_keys(self, tenant: str, new_keys: Sequence[KeyRecord], now: float) -> list[str]:
        retired: list[str] = []
        async with self._write() as conn:
            await conn.serialize(f"keys:{tenant}")
            for key in new_keys:
                retired += await sql.retire_active_keys(conn, tenant, key.algorithm, now)
                await sql.insert_key(conn, key)
            await sql.revoke(conn, Revocation(Scope.KEYS, tenant, "keys_rotated"), now)
        return retired

    async def list_keys(self, tenant: str) -> list[KeyRecord]:
        async with self._read() as conn:
            return await sql.keys_of_tenant(conn, tenant)

    # Login regulation

    async def record_login_attempt(
        self, tenant: str, account: str, address: str, now: float, limits: tuple[int, int],
        ban: Callable[[list[float], list[float]], float],
    ) -> float:
        async with self._write() as conn:
            # Always account, then address: two attempts never wait on each other in a cycle.
            await conn.serialize(f"login-account:{tenant}:{account}")
            await conn.serialize(f"login-address:{address}")
            by_account = await sql.account_failures(conn, tenant, account, limits[0])
            by_address = await sql.address_failures(conn, address, limits[1])
            remaining = ban(by_account, by_address)
            if remaining <= 0:
                await sql.insert_login_failure(conn, tenant, account, address, now)
        return remaining

    async def clear_login_failures(self, tenant: str, account: str) -> None:
        async with self._write() as conn:
            await sql.delete_account_failures(conn, tenant, account)

    # Audit trail

    async def add_audit(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        async with self._write() as conn:
            await sql.insert_audit(conn, events)

    async def list_audit(self, tenant: str, *, user: str | None = None,
                         since: float | None = None, limit: int = 100) -> list[AuditRecord]:
        async with self._read() as conn:
            return await sql.audit_events(conn, tenant, user, since, limit)

    async def prune_audit(self, before: float) -> int:
        async with self._write() as conn:
            return await sql.delete_old_audit(conn, before)


def _user_change(scope: Scope, user_id: int, reason: str) -> Revocation:
    return Revocation(scope, str(user_id), reason, user_id)


async def finish_opening(store: StoreT, *, migrate: bool) -> StoreT:
    """``store``, just opened, once what the migrations cannot do in SQL is done (when
    migrating: usernames' keys, ``SQLStore.fill_username_keys``); closed if that fails."""
    if migrate:
        try:
            await store.fill_username_keys()
        except BaseException:
            await store.close()
            raise
    return store
