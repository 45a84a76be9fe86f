"""SIGHUP reloads config.yaml: rules, upstreams, tenants, regulation, portal and logging
change for the next request; a broken file is refused and the running config kept."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.appkeys import SETTINGS
from gateway.config import load_config
from gateway.reload import merge, reload_config
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET
from tests.servers import Server, clean_env

PRIVATE = {"X-Original-URI": "/private/page", "X-Original-Method": "GET"}

RULES_DENY = """\
storage: {path: ./data/gateway.db}
gateway:
  rules: [{path: '^/private', policy: deny}]
"""
RULES_BYPASS = RULES_DENY.replace("policy: deny", "policy: bypass")


def test_merge_takes_the_reloadable_sections_and_names_the_others(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(RULES_DENY + "server: {port: 8001}\n")
    second.write_text(RULES_BYPASS + "server: {port: 8002}\nlogin: {regulation: {max_retries: 2}}\n"
                      "tokens: {access_lifetime: 60}\n")
    running, loaded = load_config(first, {}), load_config(second, {})
    merged, kept = merge(running, loaded)
    assert merged.gateway == loaded.gateway and merged.login == loaded.login
    assert merged.server == running.server and merged.tokens == running.tokens
    assert kept == ["server", "tokens"]


async def test_a_reload_applies_rules_upstreams_tenants_and_regulation(
        aiohttp_client: Any, tmp_path: Path) -> None:
    async def file(request: web.Request) -> web.Response:
        return web.Response(text="from upstream")

    upstream = web.Application()
    upstream.router.add_get("/files/{name}", file)
    upstream_client = await aiohttp_client(upstream)
    path = tmp_path / "config.yaml"
    path.write_text(RULES_DENY)
    app = create_app(load_config(path, {"GATEWAY_SECRET_KEY": TEST_SECRET,
                                        "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}))
    client = await aiohttp_client(app)
    assert (await client.get("/auth", headers=PRIVATE)).status == 403
    assert (await client.get("/files/a")).status == 404
    assert (await client.get("/healthz", headers={"X-TENANT-ID": "acme"})).status == 400

    upstream_url = f"http://127.0.0.1:{upstream_client.port}"
    reloaded = f"""\
storage: {{path: ./data/gateway.db}}
gateway:
  rules: [{{path: '^/private', policy: bypass}}, {{path: '^/files/', policy: bypass}}]
  upstreams: [{{prefix: /files/, url: '{upstream_url}'}}]
tenants: {{default: {{}}, acme: {{}}}}
login: {{regulation: {{max_retries: 1}}}}
"""
    path.write_text(reloaded + "unknown_section: 1\n")
    assert not await reload_config(app, path)  # an unknown key: refused, nothing changes
    assert (await client.get("/auth", headers=PRIVATE)).status == 403

    path.write_text(reloaded)
    assert await reload_config(app, path)
    assert app[SETTINGS].config.login.regulation.max_retries == 1
    assert (await client.get("/auth", headers=PRIVATE)).status == 200
    proxied = await client.get("/files/a")
    assert (proxied.status, await proxied.text()) == (200, "from upstream")
    assert (await client.get("/healthz", headers={"X-TENANT-ID": "acme"})).status == 200
    wrong = {"username": "admin", "password": "not-the-password"}
    assert (await client.post("/login", json=wrong)).status == 401
    assert (await client.post("/login", json=wrong)).status == 429  # one retry now


async def answers(url: str, count: int) -> list[int]:
    """``count`` requests for the private page, each on a fresh connection."""
    statuses = []
    connector = aiohttp.TCPConnector(force_close=True)  # the kernel spreads connections
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(count):
            async with session.get(f"{url}/auth", headers=PRIVATE) as response:
                statuses.append(response.status)
    return statuses


async def wait_for_lines(server: Server, text: str, count: int, since: int) -> None:
    deadline = time.monotonic() + 20
    while server.output()[since:].count(text) < count:
        assert time.monotonic() < deadline, server.output()[since:]
        await asyncio.sleep(0.05)


def pids_after(server: Server, since: int) -> set[int]:
    pids = set()
    for line in server.output()[since:].splitlines():
        if line.startswith("{") and '"pid"' in line:
            pids.add(json.loads(line)["pid"])
    return pids


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sighup_reaches_every_worker_and_a_broken_file_is_refused(
        tmp_path: Path, workers: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(RULES_DENY)
    server = Server(tmp_path, config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET,
                                                GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD),
                    "--workers", workers)
    count = int(workers)
    try:
        await server.wait_ready(workers=count)
        assert set(await answers(server.url, 10)) == {403}

        config.write_text(RULES_BYPASS)
        mark = len(server.output())
        server.process.send_signal(signal.SIGHUP)
        await wait_for_lines(server, "config reloaded", count, mark)
        # Every worker reloaded before these requests: each answers with the new rules.
        mark = len(server.output())
        deadline = time.monotonic() + 20
        while len(pids_after(server, mark)) < count:
            assert time.monotonic() < deadline
            assert set(await answers(server.url, 10)) == {200}
            await asyncio.sleep(0.1)  # access lines are written in batches

        config.write_text("gateway: {rules: [\n")  # broken YAML
        mark = len(server.output())
        server.process.send_signal(signal.SIGHUP)
        await wait_for_lines(server, "config reload refused", 1, mark)
        assert "not valid YAML" in server.output()[mark:]
        await asyncio.sleep(0.3)
        assert set(await answers(server.url, 10)) == {200}
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0, server.output()
