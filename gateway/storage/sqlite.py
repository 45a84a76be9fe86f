"""The SQLite implementation of ``Store``: connections, transactions and migrations.

One writer connection per process runs write transactions as ``BEGIN IMMEDIATE … COMMIT``,
shared by concurrent callers (group commit, see ``SQLiteStore._write``; SQLite's own lock
and ``busy_timeout`` order the writers of different processes); a separate read-only
connection serves reads, which WAL lets run beside a writer. ``synchronous`` is FULL by
default: a committed 200/201 survives power loss, not only a process crash
(``storage.synchronous: normal`` trades that for speed).

How a revocation reaches every process: each is committed together with its row in the
revocation log (``repository.revoke``, the one seam), and after the commit the store bumps
the change feed, a counter in ``<database>.epoch`` mapped into every process on this file
(``storage.changes``). Each process checks that counter before it answers from its
identity cache and, when it moved, reads the log from the reader connection: a new read
transaction in WAL mode sees every commit made before it started, whichever process made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from gateway.resources import migrations_dir
from gateway.storage import repository as sql
from gateway.storage.base import (
    Change,
    KeyRecord,
    NewToken,
    NewUser,
    Revocation,
    Scope,
    TokenRecord,
    User,
)
from gateway.storage.changes import ChangeFeed, EpochFile
from gateway.storage.migrations import apply_migrations

__all__ = ["SQLiteStore", "open_sqlite_store"]


async def _switch_to_wal(connection: aiosqlite.Connection, busy_timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, waiting out another process doing the same.

    Changing the journal mode needs the database to itself and SQLite does not apply
    ``busy_timeout`` to it, so two servers starting together on a new file would see
    "database is locked" at once; this retries for up to ``busy_timeout`` seconds.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            await connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.02)


async def _connect(path: Path, *, synchronous: str, busy_timeout: float,
                   readonly: bool) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await connection.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            await _switch_to_wal(connection, busy_timeout)
        await connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        if readonly:
            await connection.execute("PRAGMA query_only = ON")
    except BaseException:
        await connection.close()
        raise
    return connection


#: Callers whose writes share one COMMIT at most: bounds how long the first one waits.
MAX_BATCH = 64


@dataclass(slots=True)
class _Batch:
    """The open write transaction: set when its COMMIT is done (or failed)."""

    done: asyncio.Future[None]
    size: int = 0
    revokes: bool = False


class SQLiteStore:
    """``Store`` on one SQLite file (see the module docstring for the locking design)."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 feed: EpochFile) -> None:
        self._writer = writer
        self._reader = reader
        self.feed: ChangeFeed = feed
        # Group commit: callers take turns on the writer inside one open transaction.
        self._turn = asyncio.Lock()
        self._queued = 0
        self._batch: _Batch | None = None
        self._orphans: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One caller's writes, atomic, committed together with whoever else is writing.

        Group commit: callers that arrive while a write transaction is open join it, each
        inside its own SAVEPOINT (a failing caller rolls back only its own statements and
        gets its own error); the caller that finds nobody left waiting (or the batch full)
        COMMITs for everyone, with one fsync. Every caller returns only after the COMMIT
        that holds its writes, so a 200/201 is still durable. When a caller logged a
        revocation (``_revoke``), the change feed is bumped after that COMMIT, before
        anyone of the batch answers.
        """
        self._queued += 1
        try:
            await self._turn.acquire()
        except BaseException:
            self._queued -= 1
            self._commit_if_abandoned()
            raise
        self._queued -= 1
        batch = self._batch
        joined = False
        try:
            if batch is None:
                await self._writer.execute("BEGIN IMMEDIATE")
                batch = self._batch = _Batch(asyncio.get_running_loop().create_future())
            await self._writer.execute("SAVEPOINT caller")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK TO caller")
                await self._writer.execute("RELEASE caller")
                raise
            await self._writer.execute("RELEASE caller")
            batch.size += 1
            joined = True
        finally:
            if batch is not None and (self._queued == 0 or batch.size >= MAX_BATCH):
                await self._commit(batch)
            self._turn.release()
        if joined:
            await asyncio.shield(batch.done)

    async def _revoke(self, conn: aiosqlite.Connection, revocation: Revocation,
                      now: float) -> int:
        """``repository.revoke`` inside ``_write``; a logged change bumps the feed at COMMIT."""
        revoked, logged = await sql.revoke(conn, revocation, now)
        if logged and self._batch is not None:
            self._batch.revokes = True
        return revoked

    async def _commit(self, batch: _Batch) -> None:
        """COMMIT the open batch (the caller holds the turn); answer every member."""
        self._batch = None
        try:
            await self._writer.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._writer.execute("ROLLBACK")
            if not batch.done.done():
                batch.done.set_exception(exc)
            raise
        if batch.revokes:
            self.feed.bump()
        if not batch.done.done():
            batch.done.set_result(None)

    def _commit_if_abandoned(self) -> None:
        """A waiter gave up: if it was the one expected to commit, commit in a task."""
        if self._queued == 0 and self._batch is not None and not self._turn.locked():
            batch = self._batch

            async def commit() -> None:
                async with self._turn:
                    if self._batch is batch and self._queued == 0:
                        await self._commit(batch)

            task = asyncio.get_running_loop().create_task(commit())
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
        self.feed.close()

    async def ping(self) -> None:
        await sql.select_one(self._reader)

    # Tenants

    async def tenant_exists(self, tenant: str) -> bool:
        return await sql.tenant_exists(self._reader, tenant)

    async def add_tenant(self, tenant: str, now: float) -> bool:
        async with self._write() as conn:
            return await sql.insert_tenant(conn, tenant, now)

    async def list_tenants(self) -> list[str]:
        return await sql.list_tenants(self._reader)

    # Users

    async def bootstrap_root(self, user: NewUser, now: float) -> bool:
        async with self._write() as conn:
            await sql.insert_tenant(conn, user.tenant, now)
            if await sql.has_root(conn):
                return False
            await sql.insert_user(conn, user, now)
            return True

    async def has_root(self) -> bool:
        return await sql.has_root(self._reader)

    async def add_user(self, user: NewUser, now: float) -> User:
        async with self._write() as conn:
            user_id = await sql.insert_user(conn, user, now)
            created = await sql.user_by_id(conn, user_id)
        assert created is not None
        return created

    async def get_user(self, tenant: str, username: str) -> User | None:
        return await sql.user_by_name(self._reader, tenant, username)

    async def get_user_by_email(self, tenant: str, email: str) -> User | None:
        return await sql.user_by_email(self._reader, tenant, email)

    async def list_users(self, tenant: str) -> list[User]:
        return await sql.users_of_tenant(self._reader, tenant)

    async def set_password(self, user_id: int, password_hash: str, now: float,
                           *, revoke_tokens: bool = True) -> int:
        async with self._write() as conn:
            await sql.update_password(conn, user_id, password_hash, now)
            if not revoke_tokens:
                return 0  # a rehash of the same password on login
            return await self._revoke(conn, _user_change(Scope.USER, user_id, "password_changed"), now)

    async def set_disabled(self, user_id: int, disabled: bool, now: float) -> int:
        async with self._write() as conn:
            await sql.update_disabled(conn, user_id, disabled, now)
            if not disabled:
                await self._revoke(conn, _user_change(Scope.USER_STATE, user_id, "user_enabled"), now)
                return 0
            return await self._revoke(conn, _user_change(Scope.USER, user_id, "user_disabled"), now)

    async def set_roles(self, user_id: int, roles: tuple[str, ...], now: float) -> None:
        async with self._write() as conn:
            await sql.update_roles(conn, user_id, roles, now)
            await self._revoke(conn, _user_change(Scope.USER_STATE, user_id, "roles_changed"), now)

    # Tokens

    async def add_tokens(self, tokens: Sequence[NewToken]) -> None:
        async with self._write() as conn:
            for token in tokens:
                await sql.insert_token(conn, token)

    async def list_user_tokens(self, user_id: int, kind: str, *, limit: int | None = None,
                               offset: int = 0) -> list[TokenRecord]:
        return await sql.user_tokens(self._reader, user_id, kind,
                                     -1 if limit is None else limit, offset)

    async def delete_token(self, jti: str, user_id: int, now: float) -> bool:
        async with self._write() as conn:
            if not await sql.mark_deleted(conn, jti, now):
                return False
            await self._revoke(conn, Revocation(Scope.TOKEN, jti, "deleted", user_id), now)
            return True

    async def revoke(self, revocation: Revocation, now: float) -> int:
        async with self._write() as conn:
            return await self._revoke(conn, revocation, now)

    async def changes_since(self, seq: int) -> tuple[list[Change], int]:
        return await sql.changes_since(self._reader, seq)

    async def last_change(self) -> int:
        return await sql.last_change(self._reader)

    async def rotate_refresh(self, old_jti: str, new_tokens: Sequence[NewToken], now: float,
                             *, revoke_old: bool) -> bool:
        async with self._write() as conn:
            if not await sql.mark_used(conn, old_jti, now):
                return False
            if revoke_old:
                user_id = new_tokens[0].user_id if new_tokens else None
                await self._revoke(conn, Revocation(Scope.TOKEN, old_jti, "rotated", user_id), now)
            for token in new_tokens:
                await sql.insert_token(conn, token)
            return True

    async def get_token(self, jti: str) -> TokenRecord | None:
        return await sql.token_by_jti(self._reader, jti)

    async def get_token_and_user(self, jti: str) -> tuple[TokenRecord, User | None] | None:
        return await sql.token_and_user(self._reader, jti)

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
        return await sql.key_by_kid(self._reader, kid)

    async def active_key(self, tenant: str, family: str) -> KeyRecord | None:
        return await sql.active_key(self._reader, tenant, family)

    async def add_first_key(self, key: KeyRecord) -> KeyRecord:
        async with self._write() as conn:
            existing = await sql.active_key(conn, key.tenant, key.family)
            if existing is not None:
                return existing
            await sql.insert_key(conn, key)
            return key

    async def rotate_keys(self, tenant: str, new_keys: Sequence[KeyRecord], now: float) -> list[str]:
        retired: list[str] = []
        async with self._write() as conn:
            for key in new_keys:
                retired += await sql.retire_active_keys(conn, tenant, key.family, now)
                await sql.insert_key(conn, key)
            await self._revoke(conn, Revocation(Scope.KEYS, tenant, "keys_rotated"), now)
        return retired

    async def list_keys(self, tenant: str) -> list[KeyRecord]:
        return await sql.keys_of_tenant(self._reader, tenant)

    # Login regulation

    async def record_login_attempt(self, tenant: str, account: str, address: str, now: float,
                                   limit: int) -> tuple[list[float], list[float]]:
        async with self._write() as conn:
            by_account = await sql.account_failures(conn, tenant, account, limit)
            by_address = await sql.address_failures(conn, address, limit)
            await sql.insert_login_failure(conn, tenant, account, address, now)
        return by_account, by_address

    async def clear_login_failures(self, tenant: str, account: str) -> None:
        async with self._write() as conn:
            await sql.delete_account_failures(conn, tenant, account)


def _user_change(scope: Scope, user_id: int, reason: str) -> Revocation:
    return Revocation(scope, str(user_id), reason, user_id)


def _create_private_file(path: Path) -> None:
    """The file holds password hashes and private keys: owner-only, like the secret file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


async def open_sqlite_store(path: Path, *, synchronous: str = "full",
                            busy_timeout: float = 5.0, migrate: bool = True) -> SQLiteStore:
    """Open (creating the file and its directory) and migrate the database at ``path``."""
    _create_private_file(path)
    writer = await _connect(path, synchronous=synchronous, busy_timeout=busy_timeout,
                            readonly=False)
    try:
        if migrate:
            await apply_migrations(writer, migrations_dir())
        reader = await _connect(path, synchronous=synchronous, busy_timeout=busy_timeout,
                                readonly=True)
    except BaseException:
        await writer.close()
        raise
    return SQLiteStore(writer, reader, EpochFile(path.with_name(path.name + ".epoch")))
