"""A 256 MB download through the built-in proxy of a real gateway process stays streamed:
the gateway's peak RSS grows by less than 32 MB, and client-sent identity headers are
replaced before the request reaches the upstream."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.servers import Server, clean_env

SIZE = 256 * 1024 * 1024
CHUNK = b"m" * (256 * 1024)
LIMIT = 32 * 1024 * 1024
PASSWORD = "admin-password-123"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


async def test_a_256_mb_download_does_not_grow_the_gateway(tmp_path):
    seen_users: list[list[str]] = []

    async def big(request: web.Request) -> web.StreamResponse:
        seen_users.append(request.headers.getall("X-Auth-User", []))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = SIZE if request.path == "/big/file" else len(CHUNK)
        await response.prepare(request)
        for _ in range(response.content_length // len(CHUNK)):
            await response.write(CHUNK)
        return response

    upstream_app = web.Application()
    upstream_app.router.add_get("/big/{name}", big)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage: {path: ./state/gateway.db}\n"
        f"gateway: {{upstreams: [{{prefix: /big/, url: 'http://127.0.0.1:{upstream.port}'}}]}}\n"
    )
    server = Server(tmp_path, config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD))
    try:
        await server.wait_ready()
        spoof = {**ADMIN, "X-Auth-User": "root"}
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.get(f"{server.url}/big/warm-up", headers=spoof) as response:
                assert response.status == 200
                await response.read()
            before = memory_kib(server.process.pid)
            received = 0
            async with http.get(f"{server.url}/big/file", headers=spoof) as response:
                assert response.status == 200
                assert response.headers["Content-Length"] == str(SIZE)
                async for chunk in response.content.iter_chunked(1024 * 1024):
                    received += len(chunk)
            after = memory_kib(server.process.pid)
    finally:
        assert server.stop() == 0, server.output()
        await upstream.close()
    assert received == SIZE
    growth = (after["VmHWM"] - before["VmRSS"]) * 1024
    assert growth < LIMIT, f"peak RSS grew by {growth / 2**20:.1f} MiB streaming {SIZE / 2**20:.0f} MiB"
    assert seen_users == [["admin"], ["admin"]], "the client's X-Auth-User never reached the upstream"
