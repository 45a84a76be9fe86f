"""What ``repository`` needs of a database connection, so that its SQL serves both backends.

The SQL is written once, with ``?`` placeholders, in the dialect SQLite and PostgreSQL
share (``ON CONFLICT … DO NOTHING``, ``RETURNING``, ``lower()``). Each backend wraps its
driver's connection in a ``Connection`` (``SQLiteConnection``, ``PostgreSQLConnection``),
which also supplies the two things the dialects do differently: holding a named lock for
the rest of the transaction, and announcing a committed change to other processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

__all__ = ["Connection", "ConstraintViolation", "Row"]

Row = Sequence[Any]


class ConstraintViolation(Exception):
    """A statement broke a constraint; ``detail`` names it (for the repository to map)."""

    def __init__(self, kind: Literal["unique", "foreign_key", "other"], detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Connection(Protocol):
    """One database connection, inside the transaction its store opened (or none: reads)."""

    #: Set by ``announce_change``: the store tells its change feed after the COMMIT.
    announced: bool

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        """The first row of ``sql``, or None."""

    async def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Every row of ``sql``."""

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; the number of rows it inserted, updated or deleted."""

    async def serialize(self, name: str) -> None:
        """Hold the lock ``name`` until the transaction ends.

        For what no constraint can say (read, then write what depends on it). SQLite's
        write transactions hold the whole database already; PostgreSQL takes an advisory
        transaction lock.
        """

    async def announce_change(self) -> None:
        """Mark this transaction as one that logged a revocation (PostgreSQL also NOTIFYs,
        delivered to every listening node when the transaction commits)."""
