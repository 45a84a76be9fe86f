"""The SQLite implementation of ``Store``: connections, transactions and migrations.

One writer connection per process runs write transactions as ``BEGIN IMMEDIATE … COMMIT``,
shared by concurrent callers (group commit, see ``SQLiteStore._write``; SQLite's own lock
and ``busy_timeout`` order the writers of different processes); a separate read-only
connection serves reads, which WAL lets run beside a writer. ``synchronous`` is FULL by
default: a committed 200/201 survives power loss, not only a process crash
(``storage.synchronous: normal`` trades that for speed).

The statements of each method are ``SQLStore``'s, shared with PostgreSQL; this module
supplies the connections, the transactions and the change feed.

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
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.resources import migrations_dir
from gateway.storage.changes import ChangeFeed, EpochFile
from gateway.storage.connection import Connection, ConstraintViolation, Row
from gateway.storage.migrations import apply_sqlite_migrations
from gateway.storage.sqlstore import SQLStore, finish_opening

__all__ = ["SQLiteConnection", "SQLiteStore", "open_sqlite_store"]


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


class SQLiteConnection:
    """``Connection`` over an aiosqlite connection (see ``storage.connection``)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.raw = connection
        self.announced = False

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        try:
            async with self.raw.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.IntegrityError as exc:
            raise _violation(exc) from exc

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            cursor = await self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise _violation(exc) from exc
        return cursor.rowcount

    async def serialize(self, name: str) -> None:
        """Nothing to do: a write transaction (``BEGIN IMMEDIATE``) holds the whole file."""

    async def announce_change(self) -> None:
        self.announced = True


def _violation(exc: sqlite3.IntegrityError) -> ConstraintViolation:
    text = str(exc)
    if text.startswith("UNIQUE"):
        return ConstraintViolation("unique", text)
    if "FOREIGN KEY" in text:
        return ConstraintViolation("foreign_key", text)
    return ConstraintViolation("other", text)


class SQLiteStore(SQLStore):
    """``Store`` on one SQLite file (see the module docstring for the locking design)."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 feed: EpochFile) -> None:
        self._writer = SQLiteConnection(writer)
        self._reader = SQLiteConnection(reader)
        self._reading = contextlib.nullcontext(self._reader)  # reentrant: shared by reads
        self.feed: ChangeFeed = feed
        # Group commit: callers take turns on the writer inside one open transaction.
        self._turn = asyncio.Lock()
        self._queued = 0
        self._batch: _Batch | None = None
        self._orphans: set[asyncio.Task[None]] = set()

    def _read(self) -> AsyncContextManager[Connection]:
        return self._reading

    def _write(self) -> AsyncContextManager[Connection]:
        return self._group_commit()

    @contextlib.asynccontextmanager
    async def _group_commit(self) -> AsyncIterator[Connection]:
        """One caller's writes, atomic, committed together with whoever else is writing.

        Group commit: callers that arrive while a write transaction is open join it, each
        inside its own SAVEPOINT (a failing caller rolls back only its own statements and
        gets its own error); the caller that finds nobody left waiting (or the batch full)
        COMMITs for everyone, with one fsync. Every caller returns only after the COMMIT
        that holds its writes, so a 200/201 is still durable. When a caller logged a
        revocation (``Connection.announce_change``), the change feed is bumped after that
        COMMIT, before anyone of the batch answers.
        """
        writer = self._writer.raw
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
                await writer.execute("BEGIN IMMEDIATE")
                batch = self._batch = _Batch(asyncio.get_running_loop().create_future())
            await writer.execute("SAVEPOINT caller")
            try:
                yield self._writer
            except BaseException:
                await writer.execute("ROLLBACK TO caller")
                await writer.execute("RELEASE caller")
                raise
            await writer.execute("RELEASE caller")
            batch.size += 1
            joined = True
        finally:
            if batch is not None and (self._queued == 0 or batch.size >= MAX_BATCH):
                await self._commit(batch)
            self._turn.release()
        if joined:
            await asyncio.shield(batch.done)

    async def _commit(self, batch: _Batch) -> None:
        """COMMIT the open batch (the caller holds the turn); answer every member."""
        self._batch = None
        announced, self._writer.announced = self._writer.announced, False
        try:
            await self._writer.raw.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._writer.raw.execute("ROLLBACK")
            if not batch.done.done():
                batch.done.set_exception(exc)
            raise
        if announced:
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
        await self._reader.raw.close()
        await self._writer.raw.close()
        self.feed.close()


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
            await apply_sqlite_migrations(writer, migrations_dir("sqlite"))
        reader = await _connect(path, synchronous=synchronous, busy_timeout=busy_timeout,
                                readonly=True)
    except BaseException:
        await writer.close()
        raise
    return await finish_opening(
        SQLiteStore(writer, reader, EpochFile(path.with_name(path.name + ".epoch"))),
        migrate=migrate)
