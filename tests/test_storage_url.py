"""Choosing the backend: ``storage.url`` and ``$GATEWAY_STORAGE_URL``, and what a user sees
when PostgreSQL cannot be reached (one line, never the password; 503, never a 500)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.appkeys import STORE
from gateway.config import ConfigError, parse_config
from gateway.storage.postgresql import PostgreSQLStore, redact_url
from tests.conftest import ADMIN_PASSWORD, free_port, make_config
from tests.servers import clean_env, run_cli


def test_path_alone_is_sqlite(tmp_path: Path) -> None:
    config = parse_config({"storage": {"path": str(tmp_path / "x.db")}}, {})
    assert config.storage.backend == "sqlite" and config.storage.url is None


def test_a_sqlite_url_sets_the_path() -> None:
    relative = parse_config({"storage": {"url": "sqlite:///data/g.db"}}, {})
    absolute = parse_config({"storage": {"url": "sqlite:////var/lib/g.db"}}, {})
    assert (relative.storage.backend, str(relative.storage.path)) == ("sqlite", "data/g.db")
    assert str(absolute.storage.path) == "/var/lib/g.db"


def test_a_postgresql_url_and_the_environment_variable() -> None:
    url = "postgresql://gw:pw@db:5432/gw"
    assert parse_config({"storage": {"url": url}}, {}).storage.backend == "postgresql"
    from_env = parse_config({"storage": {"path": "x.db"}}, {"GATEWAY_STORAGE_URL": url})
    assert from_env.storage.url == url and from_env.storage.backend == "postgresql"


@pytest.mark.parametrize("url", ["mysql://root:s3cret@db/gw", "sqlite://relative.db", "s3cret"])
def test_a_bad_url_is_one_line_without_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"storage": {"url": url}}, {})
    assert str(caught.value).startswith("storage: url:")
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_redact_url() -> None:
    assert redact_url("postgresql://gw:s3cret@db:5432/x") == "postgresql://gw:***@db:5432/x"
    assert redact_url("postgresql://gw@db/x") == "postgresql://gw@db/x"


async def test_an_unreachable_server_is_one_line_naming_the_host_not_the_password(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    port = free_port()
    config.write_text(f"storage: {{url: 'postgresql://gw:s3cret@127.0.0.1:{port}/gw'}}\n")
    result = await run_cli(config, clean_env(GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD), "migrate")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "cannot connect to PostgreSQL" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout


async def test_requests_answer_503_while_the_database_is_gone(
        aiohttp_client: object, tmp_path: Path, postgres_url: str) -> None:
    app = create_app(make_config(tmp_path, storage_url=postgres_url))
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    assert (await client.get("/readyz")).status == 200
    store = app[STORE]
    assert isinstance(store, PostgreSQLStore)
    await store._pool.close()  # what a lost database looks like to the pool's callers
    response = await client.post("/login", json={"username": "admin", "password": "whatever"})
    assert response.status == 503
    assert (await response.json())["status"] == "error"
    ready = await client.get("/readyz")
    assert ready.status == 503
