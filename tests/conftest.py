"""Shared fixtures: a test config on a tmp_path database, an injected clock, users."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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


def make_config(tmp_path: Path, overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> Config:
    """A Config for tests: a database in ``tmp_path``, a fixed secret and admin password."""
    data: dict[str, Any] = {"storage": {"path": str(tmp_path / "data" / "gateway.db")}}
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, clock: Clock) -> ClientMaker:
    """Start the app on a test server: ``await make_client(overrides={...})``."""

    async def make(overrides: dict[str, Any] | None = None,
                   config: Config | None = None) -> TestClient[web.Request, web.Application]:
        app = create_app(config or make_config(tmp_path, overrides), clock=clock)
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
