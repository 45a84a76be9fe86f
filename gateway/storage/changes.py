"""The change feed: how every process learns, before its next request, that a revocation
was committed somewhere.

For SQLite the feed is an 8-byte counter in a small memory-mapped file beside the database
(``gateway.db.epoch``), shared by every process that opens the same database: the workers
of ``--workers N``, another ``gateway serve`` on the same file, the CLI. A process that
commits a change to the revocation log bumps the counter *after* its COMMIT and *before*
it answers; every process compares the counter with the value it last caught up at before
it answers from its cache, and on a difference reads the log (``Store.changes_since``).

Why no request sees a stale cache entry: a revoking response is sent only after the bump,
and the bump only after the commit; so a request that arrives after that response reads the
new counter, and the log read that follows sees the committed row. Reading the counter is
one 8-byte read from shared memory (a fraction of a microsecond); the log is read only when
it moved. Bumps are serialised across processes with ``flock`` so none is lost; a torn or
out-of-order read can only make the counter look changed, which costs one extra log read.

A feed may also be unusable (``current()`` returns None): the PostgreSQL backend's feed is
its LISTEN connection, and while that is down no cached decision may be served.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

__all__ = ["ChangeFeed", "EpochFile"]

_SIZE = 8


class ChangeFeed(Protocol):
    """Tells a process cheaply whether the revocation log may have moved."""

    def current(self) -> int | None:
        """A value that changes whenever a change is committed; None: do not trust caches."""

    def bump(self) -> None:
        """Announce a committed change (called after the commit, before answering)."""

    def close(self) -> None:
        """Release what the feed holds."""


class EpochFile:
    """A counter in a memory-mapped file shared by every process on one SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with _locked(descriptor):
                if os.fstat(descriptor).st_size < _SIZE:
                    os.ftruncate(descriptor, _SIZE)
            self._map = mmap.mmap(descriptor, _SIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor

    def current(self) -> int:
        return int.from_bytes(self._map[:_SIZE], "little")

    def bump(self) -> None:
        with _locked(self._descriptor):
            value = (self.current() + 1) % (1 << 63)
            self._map[:_SIZE] = value.to_bytes(_SIZE, "little")

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._descriptor)


@contextlib.contextmanager
def _locked(descriptor: int) -> Iterator[None]:
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
