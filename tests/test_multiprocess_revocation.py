"""Revocation is immediate across processes: two real servers on one SQLite file.

Every authenticated request reads its token's row from the shared file, so a revocation
committed by one process is seen by the next request to any other.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import pytest

from tests.servers import Server, clean_env, run_cli

PASSWORD = "admin-password-123"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: ./state/gateway.db}\n"
                      "tokens: {rotate_refresh_tokens: true}\n")
    return config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD)


async def post(http, url, body=None, headers=None) -> tuple[int, dict]:
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def get(http, url, headers=None) -> int:
    async with http.get(url, headers=headers) as response:
        return response.status


async def test_a_revocation_through_one_server_holds_on_the_other(tmp_path, setup):
    config, env = setup
    first = Server(tmp_path, config, env)
    second = Server(tmp_path, config, env)
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        a, b = first.url, second.url
        async with aiohttp.ClientSession() as http:
            # Seed 004: blacklist on A, verify on B.
            _, pair = await post(http, f"{a}/api/token/", {"username": "admin", "password": PASSWORD})
            assert await post(http, f"{b}/api/token/verify/", {"token": pair["access"]}) == (200, {})
            assert await post(http, f"{a}/api/token/blacklist/", {"refresh": pair["refresh"]}) == (200, {})
            status, _ = await post(http, f"{b}/api/token/verify/", {"token": pair["access"]})
            assert status == 401

            # Refresh reuse: rotate on A, replay the old refresh token on B, family dead on A.
            _, pair = await post(http, f"{b}/api/token/", {"username": "admin", "password": PASSWORD})
            status, rotated = await post(http, f"{a}/api/token/refresh/", {"refresh": pair["refresh"]})
            assert status == 200
            assert (await post(http, f"{b}/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401
            assert (await post(http, f"{a}/api/token/verify/", {"token": rotated["access"]}))[0] == 401

            # Seed 001: a named token deleted through A stops working on B.
            status, named = await post(http, f"{a}/api/v1alpha/token",
                                       {"jwt_token_description": "ci", "jwt_token_life": "1 hour"},
                                       headers=BASIC)
            assert status == 201
            bearer = {"Authorization": f"Bearer {named['jwt_token']}"}
            assert await get(http, f"{b}/api/v1alpha/token", headers=bearer) == 200
            async with http.delete(f"{a}/api/v1alpha/token/{named['jwt_token_id']}",
                                   headers=BASIC) as response:
                assert response.status == 200
            assert await get(http, f"{b}/api/v1alpha/token", headers=bearer) == 401

            # Seed 003: logout through B ends the session everywhere.
            _, session = await post(http, f"{a}/login", {"username": "admin", "password": PASSWORD})
            headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
            assert await get(http, f"{a}/api/v1alpha/token", headers=headers) == 200
            assert (await post(http, f"{b}/logout", headers=headers))[0] == 200
            assert await get(http, f"{a}/api/v1alpha/token", headers=headers) == 401

            # A password change by the CLI (a third process) revokes on both servers.
            _, pair = await post(http, f"{a}/api/token/", {"username": "admin", "password": PASSWORD})
            changed = await run_cli(config, env, "users", "passwd", "admin", "--password-stdin",
                                    stdin="new-password-456\n")
            assert changed.returncode == 0, changed.stderr
            for url in (a, b):
                assert (await post(http, f"{url}/api/token/verify/", {"token": pair["access"]}))[0] == 401
    finally:
        assert first.stop() == 0, first.output()
        assert second.stop() == 0, second.output()


async def test_workers_share_one_port_and_every_worker_sees_a_revocation(tmp_path, setup):
    config, env = setup
    server = Server(tmp_path, config, env, "--workers", "2")
    try:
        await server.wait_ready(workers=2)
        # A fresh connection per request lets the kernel spread them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            _, pair = await post(http, f"{server.url}/api/token/",
                                 {"username": "admin", "password": PASSWORD})
            for _ in range(10):
                status, _ = await post(http, f"{server.url}/api/token/verify/", {"token": pair["access"]})
                assert status == 200
            await post(http, f"{server.url}/api/token/blacklist/", {"refresh": pair["refresh"]})
            for _ in range(20):
                status, _ = await post(http, f"{server.url}/api/token/verify/", {"token": pair["access"]})
                assert status == 401
    finally:
        assert server.stop() == 0, server.output()
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    rejected_by = {line["pid"] for line in lines
                   if line["path"] == "/api/token/verify/" and line["status"] == 401}
    assert len(rejected_by) == 2, "both workers served (and refused) the revoked token"
