"""gateway.storage.migrations and open_sqlite_store, on real SQLite files in tmp_path."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from gateway.resources import migrations_dir
from gateway.services import open_store
from gateway.storage import AlreadyExists, MigrationError, NewUser, NoSuchParent, open_sqlite_store
from gateway.storage.migrations import (
    apply_postgresql_migrations,
    apply_sqlite_migrations,
    discover,
    split_statements,
)
from tests.conftest import make_config

# split_statements


def test_split_plain_statements() -> None:
    script = "CREATE TABLE a (x INTEGER);\n\nCREATE TABLE b (\n  y TEXT\n);\n"
    assert split_statements(script) == ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (\n  y TEXT\n);"]


def test_split_keeps_a_semicolon_inside_a_string_literal() -> None:
    script = "INSERT INTO t VALUES ('a;b');\nINSERT INTO t VALUES ('c');\n"
    assert split_statements(script) == ["INSERT INTO t VALUES ('a;b');", "INSERT INTO t VALUES ('c');"]


def test_split_keeps_a_string_literal_that_ends_a_line_with_a_semicolon() -> None:
    script = "INSERT INTO t VALUES ('first;\nsecond');\nSELECT 1;\n"
    assert split_statements(script) == ["INSERT INTO t VALUES ('first;\nsecond');", "SELECT 1;"]


def test_split_keeps_a_trigger_body_whole() -> None:
    script = (
        "CREATE TABLE a (x INTEGER);\n"
        "CREATE TRIGGER a_count AFTER INSERT ON a\n"
        "BEGIN\n"
        "    INSERT INTO log VALUES (new.x);\n"
        "    UPDATE counter SET n = n + 1;\n"
        "END;\n"
        "CREATE TABLE log (x INTEGER);\n"
    )
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER a_count")
    assert statements[1].endswith("END;")
    assert "UPDATE counter SET n = n + 1;" in statements[1]


def test_split_ignores_comments_and_blank_lines() -> None:
    assert split_statements("-- only a comment\n\n   \n-- another; with a semicolon\n") == []


def test_split_keeps_leading_comments_with_their_statement() -> None:
    statements = split_statements("-- the table\nCREATE TABLE a (x); -- trailing\n")
    assert len(statements) == 1
    assert "CREATE TABLE a (x);" in statements[0]


def test_split_refuses_an_incomplete_last_statement() -> None:
    with pytest.raises(MigrationError, match="incomplete"):
        split_statements("CREATE TABLE a (x);\nCREATE TABLE b (y)\n")


def test_split_two_statements_on_one_line() -> None:
    assert split_statements("CREATE TABLE a (x); CREATE TABLE b (y);\n") == [
        "CREATE TABLE a (x);", "CREATE TABLE b (y);"]


# apply_sqlite_migrations on a migrations directory of our own


@contextlib.asynccontextmanager
async def connect(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        await connection.close()


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def versions(path: Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [(row[0], row[1]) for row in
                db.execute("SELECT version, name FROM schema_version ORDER BY version")]


THREE = {
    "0001_first.sql": "CREATE TABLE a (x INTEGER);\n",
    # Each later file needs the one before it: applied out of order, they fail.
    "0002_second.sql": "ALTER TABLE a ADD COLUMN y TEXT;\nCREATE TABLE b (z INTEGER);\n",
    "0003_third.sql": "INSERT INTO a (x, y) VALUES (1, 'one;two');\nINSERT INTO b VALUES (2);\n",
    "README.md": "not a migration",
}


async def test_migrations_apply_in_order_with_one_version_row_each(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", THREE)
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        applied = await apply_sqlite_migrations(connection, directory)
    assert applied == ["0001_first.sql", "0002_second.sql", "0003_third.sql"]
    assert versions(db) == [(1, "0001_first.sql"), (2, "0002_second.sql"), (3, "0003_third.sql")]
    with contextlib.closing(sqlite3.connect(db)) as check:
        assert check.execute("SELECT x, y FROM a").fetchall() == [(1, "one;two")]


async def test_running_twice_applies_nothing_the_second_time(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", THREE)
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        await apply_sqlite_migrations(connection, directory)
    async with connect(db) as connection:
        assert await apply_sqlite_migrations(connection, directory) == []
    assert len(versions(db)) == 3
    with contextlib.closing(sqlite3.connect(db)) as check:
        assert check.execute("SELECT COUNT(*) FROM a").fetchone() == (1,)


async def test_a_new_file_is_applied_on_top(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {"0001_first.sql": "CREATE TABLE a (x);\n"})
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        await apply_sqlite_migrations(connection, directory)
        write_migrations(directory, {"0002_more.sql": "CREATE TABLE c (x);\n"})
        assert await apply_sqlite_migrations(connection, directory) == ["0002_more.sql"]
    assert "c" in tables(db)


@pytest.mark.parametrize("name", ["0004-not-a-migration.sql", "0004_upper.SQL", "4_short.sql"])
def test_a_misnamed_sql_file_is_an_error_not_skipped(tmp_path: Path, name: str) -> None:
    directory = write_migrations(tmp_path / "migrations", {**THREE, name: "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        discover(directory)


async def test_failing_migration_leaves_nothing_of_its_file(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {
        "0001_ok.sql": "CREATE TABLE a (x INTEGER);\n",
        "0002_broken.sql": (
            "CREATE TABLE half_done (x INTEGER);\n"
            "INSERT INTO a VALUES (42);\n"
            "INSERT INTO no_such_table VALUES (1);\n"
        ),
    })
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        with pytest.raises(MigrationError, match=r"0002_broken\.sql: no such table: no_such_table"):
            await apply_sqlite_migrations(connection, directory)
        # The connection is usable afterwards: no transaction was left open.
        assert not connection.in_transaction
    assert "a" in tables(db)
    assert "half_done" not in tables(db)
    assert versions(db) == [(1, "0001_ok.sql")]
    with contextlib.closing(sqlite3.connect(db)) as check:
        assert check.execute("SELECT COUNT(*) FROM a").fetchone() == (0,)

    # Fixed, it applies on the next run.
    write_migrations(directory, {"0002_broken.sql": "CREATE TABLE half_done (x INTEGER);\n"})
    async with connect(db) as connection:
        assert await apply_sqlite_migrations(connection, directory) == ["0002_broken.sql"]
    assert "half_done" in tables(db)


async def test_incomplete_migration_file_applies_nothing(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {
        "0001_ok.sql": "CREATE TABLE a (x);\n",
        "0002_cut.sql": "CREATE TABLE b (x);\nCREATE TABLE c (x\n",
    })
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        with pytest.raises(MigrationError, match="incomplete"):
            await apply_sqlite_migrations(connection, directory)
    assert "b" not in tables(db)
    assert versions(db) == [(1, "0001_ok.sql")]


async def test_trigger_migration_applies_and_fires(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {"0001_trigger.sql": (
        "CREATE TABLE a (x INTEGER);\n"
        "CREATE TABLE log (x INTEGER, note TEXT);\n"
        "CREATE TRIGGER a_log AFTER INSERT ON a\n"
        "BEGIN\n"
        "    INSERT INTO log VALUES (new.x, 'inserted; logged');\n"
        "END;\n"
    )})
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        await apply_sqlite_migrations(connection, directory)
        await connection.execute("INSERT INTO a VALUES (7)")
    with contextlib.closing(sqlite3.connect(db)) as check:
        assert check.execute("SELECT x, note FROM log").fetchall() == [(7, "inserted; logged")]


async def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {"0001_first.sql": "CREATE TABLE a (x);\n"})
    db = tmp_path / "db.sqlite"
    async with connect(db) as connection:
        await apply_sqlite_migrations(connection, directory)
        await connection.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (99, '0099_future.sql', 0)")
        with pytest.raises(MigrationError, match="0099"):
            await apply_sqlite_migrations(connection, directory)


def test_discover_refuses_two_files_with_one_number(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {"0001_a.sql": "", "0001_b.sql": ""})
    with pytest.raises(MigrationError, match="0001"):
        discover(directory)


def test_discover_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        discover(tmp_path / "nowhere")


def test_discover_orders_by_number(tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations", {
        "0010_ten.sql": "", "0002_two.sql": "", "0001_one.sql": "", "notes.txt": ""})
    assert [(version, name) for version, name, _ in discover(directory)] == [
        (1, "0001_one.sql"), (2, "0002_two.sql"), (10, "0010_ten.sql")]


# open_sqlite_store with the real migrations


async def test_real_migrations_create_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "data" / "gateway.db"
    store = await open_sqlite_store(db)
    await store.close()
    assert {"schema_version", "tenants", "users", "tokens", "keys"} <= tables(db)
    shipped = [name for _, name, _ in discover(migrations_dir("sqlite"))]
    assert shipped, "the package ships migrations"
    assert [name for _, name in versions(db)] == shipped


async def test_reopening_applies_nothing_new(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    store = await open_sqlite_store(db)
    await store.add_tenant("acme", time.time())
    await store.close()
    before = versions(db)
    store = await open_sqlite_store(db)
    try:
        assert await store.list_tenants() == ["acme"]
    finally:
        await store.close()
    assert versions(db) == before


async def test_open_store_refuses_a_database_from_a_newer_gateway(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    store = await open_sqlite_store(db)
    await store.close()
    with contextlib.closing(sqlite3.connect(db)) as edit:
        edit.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'x', 0)")
        edit.commit()
    # A leaked connection would fail this test (filterwarnings = error).
    with pytest.raises(MigrationError, match="9999"):
        await open_sqlite_store(db)


async def test_store_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    store = await open_sqlite_store(db)
    try:
        # journal_mode=WAL is a property of the file, visible from any connection.
        with contextlib.closing(sqlite3.connect(db)) as check:
            assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await store.close()


async def test_store_writer_enforces_foreign_keys(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.db")
    try:
        with pytest.raises(NoSuchParent, match="tenant 'nope'"):
            await store.add_user(NewUser(tenant="nope", username="alice", password_hash="x"),
                                 time.time())
        assert await store.list_users("nope") == []
    finally:
        await store.close()


async def test_store_writer_and_reader_pragmas(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.db")
    try:
        for connection in (store._writer.raw, store._reader.raw):
            async with connection.execute("PRAGMA foreign_keys") as cursor:
                assert await cursor.fetchone() == (1,)
            async with connection.execute("PRAGMA journal_mode") as cursor:
                assert await cursor.fetchone() == ("wal",)
            async with connection.execute("PRAGMA busy_timeout") as cursor:
                assert await cursor.fetchone() == (5000,)
        async with store._reader.raw.execute("PRAGMA query_only") as cursor:
            assert await cursor.fetchone() == (1,)
    finally:
        await store.close()


async def test_database_file_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "gateway.db"
    store = await open_sqlite_store(db)
    try:
        await store.add_tenant("acme", time.time())
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
        # SQLite gives the WAL file the database file's mode.
        wal = db.with_name(db.name + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        await store.close()


# Username keys on a database from before them, on both backends


#: The last migration of each dialect before users had a username key.
BEFORE_USERNAME_KEY = {"sqlite": 5, "postgresql": 1}
OLD_USERS = ["Admin", "admin", "J\u00f6rg", "\uff22\uff2f\uff22"]  # the last: BOB in fullwidth


async def _an_old_database(tmp_path: Path, store_url: str | None) -> None:
    """Migrate only up to the username key, then add users as an older gateway did."""
    dialect = "sqlite" if store_url is None else "postgresql"
    older = write_migrations(tmp_path / "older", {
        name: path.read_text(encoding="utf-8")
        for version, name, path in discover(migrations_dir(dialect))
        if version <= BEFORE_USERNAME_KEY[dialect]})
    insert_tenant = "INSERT INTO tenants (id, created_at) VALUES ('default', 0)"
    insert_user = ("INSERT INTO users (tenant_id, username, password_hash, created_at, updated_at)"
                   " VALUES ('default', {}, 'h', 0, 0)")
    if store_url is None:
        (tmp_path / "data").mkdir()
        async with connect(tmp_path / "data" / "gateway.db") as connection:
            await apply_sqlite_migrations(connection, older)
            await connection.execute(insert_tenant)
            for name in OLD_USERS:
                await connection.execute(insert_user.format("?"), (name,))
        return
    raw = await asyncpg.connect(store_url)
    try:
        await apply_postgresql_migrations(raw, older)
        await raw.execute(insert_tenant)
        for name in OLD_USERS:
            await raw.execute(insert_user.format("$1"), name)
    finally:
        await raw.close()


async def test_users_of_an_older_database_get_their_username_keys(
        tmp_path: Path, store_url: str | None) -> None:
    await _an_old_database(tmp_path, store_url)
    store = await open_store(make_config(tmp_path, storage_url=store_url))
    try:
        async def found(spelling: str) -> str | None:
            user = await store.get_user("default", spelling)
            return None if user is None else user.username

        assert await found("J\u00d6RG") == "J\u00f6rg"
        assert await found("bob") == "\uff22\uff2f\uff22"
        # Two older users whose names fold alike: each still logs in by its exact name; the
        # first keeps the key, so other spellings find it, and no third one can be added.
        assert await found("admin") == "admin"
        assert await found("Admin") == "Admin"
        assert await found("ADMIN") == "Admin"
        with pytest.raises(AlreadyExists):
            await store.add_user(NewUser(tenant="default", username="aDmin", password_hash="h"),
                                 time.time())
        with pytest.raises(AlreadyExists):
            await store.add_user(NewUser(tenant="default", username="bob", password_hash="h"),
                                 time.time())
        assert len(await store.list_users("default")) == len(OLD_USERS)
    finally:
        await store.close()
