"""The PostgreSQL implementation of ``Store``, for several gateway nodes on one database.

The statements of each method are ``SQLStore``'s, shared with SQLite; this module supplies
an asyncpg connection pool (each write is one transaction on one pooled connection; the
server orders concurrent writers, so nothing here relies on a single writer), and the
change feed of a node: ``ListenFeed``.

How a revocation reaches every node: ``repository.revoke`` inserts the change into the
revocation log and runs ``pg_notify`` in the same transaction; PostgreSQL delivers the
notification to every listening connection when, and only if, that transaction commits.
Each process (node or worker) keeps one connection that ``LISTEN``s; a notification moves
its feed, and its identity cache reads the log from where it stopped before answering the
next request. The revoking process bumps its own feed after the commit, so its very next
request is exact; the others follow within the notification's delivery time
(milliseconds on a LAN). Log rows are inserted under an advisory lock held until COMMIT,
so a process that has read up to seq n never sees a smaller seq commit later.

While the listening connection is down the feed answers None: the identity cache serves
nothing and every request reads the database. The feed reconnects (with back-off), and
only once it is listening again does it report a new value, upon which the cache reads
everything it missed from the log. A link that dies without the socket closing is caught
by a probe every ``LISTEN_PROBE_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg

from gateway.resources import migrations_dir
from gateway.storage.base import StorageUnavailable
from gateway.storage.changes import ChangeFeed
from gateway.storage.connection import Connection, ConstraintViolation, Row
from gateway.storage.migrations import apply_postgresql_migrations
from gateway.storage.sqlstore import SQLStore, finish_opening

if TYPE_CHECKING:
    from typing import TypeAlias

    from asyncpg.pool import PoolConnectionProxy

    #: A connection of its own (the listener) or one lent by the pool.
    RawConnection: TypeAlias = (asyncpg.Connection[asyncpg.Record]
                                | PoolConnectionProxy[asyncpg.Record])

__all__ = [
    "CHANNEL",
    "ListenFeed",
    "PostgreSQLConnection",
    "PostgreSQLStore",
    "open_postgresql_store",
    "redact_url",
]

#: The NOTIFY channel of committed revocations (the payload is unused: the log is read).
CHANNEL = "gateway_changes"
#: First key of every advisory lock the gateway takes ("gate"), the second is a hash.
_LOCK_SPACE = 0x6761_7465
#: Seconds between probes of the listening connection, and how long a probe may take.
LISTEN_PROBE_INTERVAL = 1.0
_PROBE_TIMEOUT = 1.0
_RETRY_FIRST, _RETRY_MAX = 0.05, 2.0

#: Errors that mean "the database cannot be reached now", not "this statement is wrong".
_UNREACHABLE = (OSError, asyncio.TimeoutError, asyncpg.exceptions.PostgresConnectionError,
                asyncpg.exceptions.InterfaceError,
                asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.AdminShutdownError)


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, …`` (the shared SQL has no ``?`` in literals)."""
    counter = iter(range(1, 1 << 16))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class PostgreSQLConnection:
    """``Connection`` over an asyncpg connection (see ``storage.connection``)."""

    def __init__(self, connection: RawConnection) -> None:
        self.raw = connection
        self.announced = False

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        try:
            row = await self.raw.fetchrow(_numbered(sql), *params)
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise _violation(exc) from exc
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        try:
            rows = await self.raw.fetch(_numbered(sql), *params)
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise _violation(exc) from exc
        return [tuple(row) for row in rows]

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            status = await self.raw.execute(_numbered(sql), *params)
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise _violation(exc) from exc
        # "INSERT 0 1", "UPDATE 3", "DELETE 0": the last word counts the rows.
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def serialize(self, name: str) -> None:
        await self.raw.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                               _LOCK_SPACE, name)

    async def announce_change(self) -> None:
        if not self.announced:
            await self.raw.execute("SELECT pg_notify($1, '')", CHANNEL)
            self.announced = True


def _violation(exc: asyncpg.exceptions.IntegrityConstraintViolationError) -> ConstraintViolation:
    detail = getattr(exc, "constraint_name", None) or str(exc)
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return ConstraintViolation("unique", detail)
    if isinstance(exc, asyncpg.exceptions.ForeignKeyViolationError):
        return ConstraintViolation("foreign_key", detail)
    return ConstraintViolation("other", detail)


class ListenFeed:
    """``ChangeFeed`` of one process on PostgreSQL: a counter moved by ``LISTEN``.

    ``current()`` is None while the listening connection is down (see the module
    docstring); the counter also moves when this process commits a change (``bump``) and
    each time the connection is (re)established.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._value = 0
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> int | None:
        return self._value if self._connection is not None else None

    def bump(self) -> None:
        self._value += 1

    @property
    def listening(self) -> asyncpg.Connection | None:
        """The connection that listens now (None while reconnecting)."""
        return self._connection

    async def start(self) -> None:
        """Listen (raising when the database cannot be reached), then keep listening."""
        await self._listen()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _listen(self) -> None:
        connection = await self._connect()
        try:
            await connection.add_listener(CHANNEL, self._notified)
        except BaseException:
            connection.terminate()
            raise
        connection.add_termination_listener(self._terminated)
        self._lost.clear()
        # Listening from here on; what committed before is in the log, read on next sync.
        self._connection = connection
        self._value += 1

    def _notified(self, *_: object) -> None:
        self._value += 1

    def _terminated(self, connection: object) -> None:
        if connection is self._connection:
            self._connection = None
            self._lost.set()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._lost.set()
        if connection is not None:
            connection.terminate()

    async def _watch(self) -> None:
        delay = _RETRY_FIRST
        while True:
            connection = self._connection
            if connection is not None:
                try:
                    await asyncio.wait_for(self._lost.wait(), LISTEN_PROBE_INTERVAL)
                except TimeoutError:
                    try:
                        await asyncio.wait_for(connection.fetchval("SELECT 1"), _PROBE_TIMEOUT)
                    except (*_UNREACHABLE, asyncpg.PostgresError):
                        if connection is self._connection:
                            self._drop()
                continue
            try:
                await self._listen()
                delay = _RETRY_FIRST
            except (*_UNREACHABLE, asyncpg.PostgresError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


class PostgreSQLStore(SQLStore):
    """``Store`` on a PostgreSQL database shared by every node (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, feed: ListenFeed, *, acquire_timeout: float) -> None:
        self._pool = pool
        self.feed: ChangeFeed = feed
        self._acquire_timeout = acquire_timeout

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[RawConnection]:
        acquired = False
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as raw:
                acquired = True
                yield raw
        except _UNREACHABLE as exc:
            raise StorageUnavailable(f"PostgreSQL: {_reason(exc)}") from exc
        except asyncpg.PostgresError as exc:
            if acquired:
                raise
            # The server refused a new pooled connection: too many clients, database not
            # accepting connections, authentication failed... unreachable, not a bad statement.
            raise StorageUnavailable(f"PostgreSQL: {_reason(exc)}") from exc

    def _read(self) -> AsyncContextManager[Connection]:
        return self._reading()

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Connection]:
        async with self._connection() as raw:
            yield PostgreSQLConnection(raw)

    def _write(self) -> AsyncContextManager[Connection]:
        return self._transaction()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One transaction; a logged revocation bumps this process's feed after COMMIT."""
        async with self._connection() as raw:
            connection = PostgreSQLConnection(raw)
            async with raw.transaction():
                yield connection
        if connection.announced:
            self.feed.bump()

    async def close(self) -> None:
        self.feed.close()
        await self._pool.close()


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def open_postgresql_store(url: str, *, pool_size: int = 10, acquire_timeout: float = 5.0,
                                migrate: bool = True) -> PostgreSQLStore:
    """Connect a pool and a listening connection to ``url`` and migrate the database."""
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                         timeout=acquire_timeout)
    except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
        raise StorageUnavailable(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {_reason(exc)}"
        ) from None
    try:
        if migrate:
            async with pool.acquire() as connection:
                await apply_postgresql_migrations(connection, migrations_dir("postgresql"))
        feed = ListenFeed(functools.partial(asyncpg.connect, url, timeout=acquire_timeout))
        try:
            await feed.start()
        except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
            raise StorageUnavailable(
                f"cannot listen on PostgreSQL at {redact_url(url)}: {_reason(exc)}"
            ) from None
    except BaseException:
        await pool.close()
        raise
    return await finish_opening(PostgreSQLStore(pool, feed, acquire_timeout=acquire_timeout),
                                migrate=migrate)
