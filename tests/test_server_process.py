"""The real ``gateway serve`` in a subprocess, over real HTTP on loopback, across a restart."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from tests.servers import Server, clean_env, run_cli


@pytest.fixture
def environment(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  path: ./state/gateway.db\nlogging: {format: json}\n")
    return config, clean_env()


async def login(http: aiohttp.ClientSession, url: str, username: str, password: str) -> dict:
    async with http.post(f"{url}/login", json={"username": username, "password": password}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def logout(http: aiohttp.ClientSession, url: str, session: dict) -> int:
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    async with http.post(f"{url}/logout", headers=headers) as response:
        return response.status


async def test_users_and_revocations_survive_a_restart(tmp_path, environment):
    config, env = environment
    server = Server(tmp_path, config, env)
    try:
        await server.wait_ready()
        printed = re.findall(r"with password: (\S+)", server.output())
        assert len(printed) == 1, server.output()
        admin_password = printed[0]
        add = await run_cli(config, env, "users", "add", "alice", "--password-stdin",
                            stdin="alice-password\n")
        assert add.returncode == 0, add.stderr
        async with aiohttp.ClientSession() as http:
            admin = await login(http, server.url, "admin", admin_password)
            assert admin["role"] == 0
            revoked = await login(http, server.url, "alice", "alice-password")
            live = await login(http, server.url, "alice", "alice-password")
            assert await logout(http, server.url, revoked) == 200
    finally:
        first_exit = server.stop()
    first_output = server.output()
    assert first_exit == 0, first_output

    restarted = Server(tmp_path, config, env)
    try:
        await restarted.wait_ready()
        async with aiohttp.ClientSession() as http:
            assert (await login(http, restarted.url, "alice", "alice-password"))["role"] == 2
            assert await logout(http, restarted.url, revoked) == 401
            assert await logout(http, restarted.url, live) == 200
    finally:
        assert restarted.stop() == 0
    second_output = restarted.output()
    assert "with password" not in second_output, "the bootstrap password is printed only once"
    secrets_seen = [admin_password, "alice-password", revoked["token"], revoked["key"], live["key"]]
    logs = first_output.replace(f"with password: {admin_password}", "") + second_output
    for secret in secrets_seen:
        assert secret not in logs, "a secret reached the log"
    assert '"path": "/login"' in logs, "one JSON access line per request"
