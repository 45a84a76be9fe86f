"""Numbered SQL migrations per dialect (``migrations/sqlite``, ``migrations/postgresql``),
each file applied whole in one transaction together with its ``schema_version`` row.

SQLite: ``executescript`` commits before it runs, so files are split into statements with
``sqlite3.complete_statement`` and run one by one inside a ``BEGIN IMMEDIATE``
transaction. PostgreSQL runs a whole file as one simple query inside a transaction that
first takes an advisory lock. Several processes starting at once are safe: the lock
serialises them and each re-checks what is applied inside its transaction.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

if TYPE_CHECKING:
    from gateway.storage.postgresql import RawConnection

__all__ = [
    "MigrationError",
    "apply_postgresql_migrations",
    "apply_sqlite_migrations",
    "discover",
    "split_statements",
]

_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The migrations on disk and in the database do not fit together."""


def discover(directory: Path) -> list[tuple[int, str, Path]]:
    """The migration files of ``directory`` as (version, name, path), in order."""
    found: dict[int, tuple[int, str, Path]] = {}
    if not directory.is_dir():
        raise MigrationError(f"{directory}: migrations directory not found")
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if not match:
            if path.suffix.lower() == ".sql":
                raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version:04d}")
        found[version] = (version, path.name, path)
    return [found[v] for v in sorted(found)]


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (triggers and quoted ';' included)."""
    statements: list[str] = []
    buffer = ""
    for char in script:
        buffer += char
        # Only a ';' can end a statement; complete_statement knows quotes and triggers.
        if char == ";" and sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement.strip(";").strip():
                statements.append(statement)
            buffer = ""
    rest = "\n".join(
        line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")
    )
    if rest.strip():
        raise MigrationError(f"incomplete SQL statement at the end: {rest.strip()[:60]!r}")
    return statements


def _refuse_newer(migrations: list[tuple[int, str, Path]], applied: list[int]) -> None:
    known = {version for version, _, _ in migrations}
    newer = sorted(version for version in applied if version not in known)
    if newer:
        raise MigrationError(
            f"the database has migration {newer[-1]:04d}, which this gateway does not know; "
            "run a newer gateway"
        )


async def apply_sqlite_migrations(connection: aiosqlite.Connection, directory: Path) -> list[str]:
    """Apply what is not yet applied; return the names applied now."""
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    migrations = discover(directory)
    async with connection.execute("SELECT version FROM schema_version") as cursor:
        _refuse_newer(migrations, [row[0] for row in await cursor.fetchall()])
    applied_now: list[str] = []
    for version, name, path in migrations:
        statements = split_statements(path.read_text(encoding="utf-8"))
        await connection.execute("BEGIN IMMEDIATE")
        try:
            async with connection.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (version,)
            ) as cursor:
                done = await cursor.fetchone()
            if done is None:
                for statement in statements:
                    try:
                        await connection.execute(statement)
                    except sqlite3.Error as exc:
                        raise MigrationError(f"{name}: {exc}") from exc
                await connection.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                applied_now.append(name)
            await connection.execute("COMMIT")
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
    return applied_now


#: Advisory lock key of migrations (the first of the two keys ``serialize`` uses elsewhere).
_MIGRATION_LOCK = 0x6761_7465


async def apply_postgresql_migrations(connection: RawConnection,
                                      directory: Path) -> list[str]:
    """Apply what is not yet applied; return the names applied now."""
    import asyncpg

    migrations = discover(directory)
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        rows = await connection.fetch("SELECT version FROM schema_version")
    _refuse_newer(migrations, [row[0] for row in rows])
    applied_now: list[str] = []
    for version, name, path in migrations:
        async with connection.transaction():
            # One migrating process at a time in this database, each re-checking inside.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            if await connection.fetchval(
                "SELECT 1 FROM schema_version WHERE version = $1", version
            ) is not None:
                continue
            try:
                await connection.execute(path.read_text(encoding="utf-8"))
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{name}: {exc}") from exc
            await connection.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                version, name, time.time(),
            )
            applied_now.append(name)
    return applied_now
