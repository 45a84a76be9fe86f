"""Shared fixtures: a test config on a tmp_path database, an injected clock, users.

Tests that take ``config``, ``make_client``, ``client`` or ``store_url`` run twice: on a
SQLite file in ``tmp_path`` and on a fresh schema of a PostgreSQL database made for this
test session (``GATEWAY_TEST_POSTGRES_URL``, default the local server; dropped at the
end). Without a reachable server the PostgreSQL runs skip, except under ``CI=true``, where
they fail. ``@pytest.mark.sqlite_only`` keeps a test on SQLite (it reads the file itself);
``@pytest.mark.storage_independent`` too, for tests whose subject (request parsing, HTTP
shapes, rules) the backend cannot change: the storage-facing tests run on both.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.appkeys import HASHER, STORE
from gateway.config import Config, parse_config
from gateway.storage import NewUser, User

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
ADMIN_PASSWORD = "admin-password-123"


class Clock:
    """A clock the tests move by hand: no sleeping to let time pass."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def make_config(tmp_path: Path, overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None, *, storage_url: str | None = None) -> Config:
    """A Config for tests: a database in ``tmp_path`` (or at ``storage_url``), a fixed secret
    and admin password. The generated files (secret) stay in ``tmp_path`` either way."""
    data: dict[str, Any] = {"storage": {"path": str(tmp_path / "data" / "gateway.db"),
                                        "url": storage_url}}
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    environment = {"GATEWAY_SECRET_KEY": TEST_SECRET, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    environment.update(env or {})
    return parse_config(data, environment)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(url: str, database: str) -> str:
    return urlsplit(url)._replace(path=f"/{database}").geturl()


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The url of a database made for this test session, dropped at its end."""
    name = f"gateway_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        asyncio.run(_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL at {POSTGRES_URL} not usable: {exc}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        asyncio.run(_admin(POSTGRES_URL, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A url whose connections work in a fresh, empty schema of the session's database."""
    schema = f"t_{secrets.token_hex(6)}"
    asyncio.run(_admin(postgres_database, f'CREATE SCHEMA "{schema}"'))
    return f"{postgres_database}?search_path={schema}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_url" in metafunc.fixturenames:
        only_sqlite = any(metafunc.definition.get_closest_marker(name) is not None
                          for name in ("sqlite_only", "storage_independent"))
        metafunc.parametrize("store_url", ["sqlite"] if only_sqlite else ["sqlite", "postgresql"],
                             indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: run only on the SQLite backend")
    config.addinivalue_line("markers", "storage_independent: what is tested does not depend on "
                            "the backend; run on SQLite only")


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str | None:
    """The backend of this run: None for SQLite in tmp_path, else a PostgreSQL url."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path, store_url: str | None) -> Config:
    return make_config(tmp_path, storage_url=store_url)


ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, clock: Clock,
                store_url: str | None) -> ClientMaker:
    """Start the app on a test server: ``await make_client(overrides={...})``."""

    async def make(overrides: dict[str, Any] | None = None,
                   config: Config | None = None) -> TestClient[web.Request, web.Application]:
        app = create_app(config or make_config(tmp_path, overrides, storage_url=store_url),
                         clock=clock)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client: ClientMaker) -> TestClient[web.Request, web.Application]:
    return await make_client()


async def add_user(app: web.Application, username: str, password: str, *, tenant: str = "default",
                   role: int = 2, roles: tuple[str, ...] = (), email: str | None = None) -> User:
    """Create a user directly through the app's store (the CLI is tested on its own)."""
    password_hash = await app[HASHER].hash(password)
    return await app[STORE].add_user(
        NewUser(tenant=tenant, username=username, password_hash=password_hash, email=email,
                role=role, roles=roles),
        time.time(),
    )
