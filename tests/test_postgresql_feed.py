"""``ListenFeed``: two stores on one PostgreSQL schema, in one process.

Each store stands for a node: a revocation committed through one moves the other's feed
by ``NOTIFY`` alone; a killed listening connection makes the feed untrustworthy (None) at
once, and the feed comes back by itself once it listens again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
import pytest_asyncio

from gateway.storage import Revocation, Scope
from gateway.storage.postgresql import ListenFeed, PostgreSQLStore, open_postgresql_store

#: The most a committed change may take to reach another node's feed (README: Several nodes).
LAG = 0.1
#: How long a feed may take to listen again after its connection was killed (back-off
#: starts at 50 ms; a few tries fit).
RECONNECT = 2.0


@pytest_asyncio.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgreSQLStore, PostgreSQLStore]]:
    first = await open_postgresql_store(postgres_url, pool_size=2)
    try:
        second = await open_postgresql_store(postgres_url, pool_size=2)
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


def listen_feed(store: PostgreSQLStore) -> ListenFeed:
    feed = store.feed
    assert isinstance(feed, ListenFeed)
    return feed


async def within(seconds: float, condition: Callable[[], bool]) -> float:
    """Seconds until ``condition()`` holds, polled every millisecond; fails past ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds} s")
        await asyncio.sleep(0.001)
    return time.monotonic() - start


def moved(store: PostgreSQLStore, seen: int | None) -> Callable[[], bool]:
    """Whether ``store``'s feed now answers something other than ``seen``."""
    return lambda: store.feed.current() != seen


async def revoke_keys(store: PostgreSQLStore) -> None:
    """A change that always writes a log row (a key rotation of ``default``)."""
    await store.revoke(Revocation(Scope.KEYS, "default", "test"), time.time())


class Outage:
    """Watches a feed on every turn of the event loop, from just before its listening
    connection is killed: when it went untrusted (None) and when it listened again.

    The feed reconnects at once, in milliseconds: a slower poll could miss the outage.
    """

    def __init__(self, feed: ListenFeed) -> None:
        self.feed = feed
        self.killed = feed.listening
        self.start = time.monotonic()
        self.down: float | None = None
        self.up: float | None = None
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while time.monotonic() - self.start < RECONNECT:
            value = self.feed.current()
            if value is None and self.down is None:
                self.down = time.monotonic() - self.start
            elif value is not None and self.feed.listening is not self.killed:
                self.up = time.monotonic() - self.start
                return
            await asyncio.sleep(0)

    async def over(self) -> None:
        """Wait for the feed to listen again; it must have been None within ``LAG``."""
        await self._task
        assert self.down is not None and self.down <= LAG, f"untrusted after {self.down} s"
        assert self.up is not None, f"not listening again within {RECONNECT} s"


async def kill_listener(admin: asyncpg.Connection, feed: ListenFeed) -> Outage:
    """Terminate ``feed``'s listening connection from the server side."""
    listening = feed.listening
    assert listening is not None
    outage = Outage(feed)
    assert await admin.fetchval("SELECT pg_terminate_backend($1)",
                                listening.get_server_pid()) is True
    return outage


@pytest_asyncio.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_url, timeout=5)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_revocation_moves_the_other_stores_feed(
        stores: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    first, second = stores
    for _ in range(3):
        before_first, before_second = first.feed.current(), second.feed.current()
        assert before_first is not None and before_second is not None
        await revoke_keys(first)
        # The committing store knows at once; the other hears the NOTIFY.
        assert first.feed.current() != before_first
        await within(LAG, moved(second, before_second))
        assert second.feed.current() is not None


async def test_a_killed_listener_makes_the_feed_untrusted_until_it_listens_again(
        admin: asyncpg.Connection, stores: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    first, second = stores
    feed = listen_feed(second)
    before = feed.current()
    assert before is not None

    outage = await kill_listener(admin, feed)
    await outage.over()
    # A new value: whatever committed meanwhile is read from the log.
    assert feed.current() not in (None, before)

    # The new connection hears the other store's changes.
    reconnected = feed.current()
    await revoke_keys(first)
    await within(LAG, moved(second, reconnected))


class Gate:
    """A ``connect`` for a ``ListenFeed`` that fails while closed (the database is away)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.open = True
        self.refused = 0

    async def __call__(self) -> asyncpg.Connection:
        if not self.open:
            self.refused += 1
            raise ConnectionRefusedError("gate closed")
        return await asyncpg.connect(self.url, timeout=5)


async def test_a_feed_that_missed_a_change_moves_once_it_listens_again(
        postgres_url: str, admin: asyncpg.Connection,
        stores: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    first, second = stores
    gate = Gate(postgres_url)
    feed = ListenFeed(gate)
    await feed.start()
    try:
        before = feed.current()
        seen = await second.last_change()

        gate.open = False
        outage = await kill_listener(admin, feed)
        await within(LAG, lambda: feed.current() is None)
        # Committed while the feed cannot hear it; it keeps retrying, with back-off.
        await revoke_keys(first)
        await within(RECONNECT, lambda: gate.refused >= 3)
        assert feed.current() is None
        gate.open = True
        await outage.over()

        # Moved, though no NOTIFY reached it: a cache syncing now reads what it missed.
        assert feed.current() not in (None, before)
        changes, _ = await second.changes_since(seen)
        assert [change.scope for change in changes] == [Scope.KEYS]
    finally:
        feed.close()
