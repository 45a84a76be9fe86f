"""One-time media tokens across worker processes, and key rotation by the CLI (real processes)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from jose import jwt

from tests.servers import Server, clean_env, run_cli

PASSWORD = "admin-password-123"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
USES = 200


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("storage: {path: ./state/gateway.db}\n")
    return config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD)


async def test_a_unique_token_succeeds_exactly_once_across_four_workers(tmp_path, setup):
    config, env = setup
    server = Server(tmp_path, config, env, "--workers", "4")
    try:
        await server.wait_ready(workers=4)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/token", json={"unique": True, "kid": "once"},
                                 headers=ADMIN) as response:
                assert response.status == 201
                token = (await response.json())["token"]
        # Every use on its own connection, all at once: the kernel spreads them over the workers.
        connector = aiohttp.TCPConnector(force_close=True, limit=USES)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def use() -> tuple[int, str]:
                async with http.post(f"{server.url}/token/check", json={"token": token}) as r:
                    return r.status, (await r.json()).get("error", "ok")

            results = await asyncio.gather(*(use() for _ in range(USES)))
    finally:
        assert server.stop() == 0, server.output()
    assert Counter(results) == Counter({(200, "ok"): 1, (403, "token_used"): USES - 1})
    checks = [json.loads(line) for line in server.output().splitlines()
              if line.startswith("{") and '"/token/check"' in line]
    assert len({line["pid"] for line in checks}) == 4, "all four workers answered uses"


async def test_cli_rotation_reaches_a_running_server(tmp_path, setup):
    config, env = setup
    server = Server(tmp_path, config, env)
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as http:
            async def issue() -> str:
                async with http.post(f"{server.url}/token", json={"unique": False},
                                     headers=ADMIN) as response:
                    assert response.status == 201
                    return (await response.json())["token"]

            async def check(token: str) -> int:
                async with http.post(f"{server.url}/token/check", json={"token": token}) as r:
                    return r.status

            old = await issue()
            rotated = await run_cli(config, env, "keys", "rotate")
            assert rotated.returncode == 0, rotated.stderr
            new = await issue()
            old_kid, new_kid = (jwt.get_unverified_header(t)["kid"] for t in (old, new))
            assert old_kid != new_kid and new_kid in rotated.stdout
            assert await check(old) == 200 and await check(new) == 200
            listing = await run_cli(config, env, "keys", "list")
            assert f"{old_kid}" in listing.stdout and "retired" in listing.stdout
    finally:
        assert server.stop() == 0, server.output()
