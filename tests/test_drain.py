"""SIGTERM drains: a real ``gateway serve`` finishes what it already received, then exits 0.

Two requests are in flight when the signal comes: a proxied download that the upstream
streams slowly, and a ``/login`` whose body is still arriving byte by byte. Both must
complete with 200; new connections are refused meanwhile; then the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, free_port
from tests.servers import Server, clean_env

CHUNKS = 10
CHUNK_DELAY = 0.2


async def slow_download(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = CHUNKS * 1024
    await response.prepare(request)
    for _ in range(CHUNKS):
        await response.write(b"x" * 1024)
        await asyncio.sleep(CHUNK_DELAY)
    return response


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/files/big", slow_download)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def trickled_login(port: int, started: asyncio.Event,
                         go_on: asyncio.Event) -> tuple[int, dict[str, object]]:
    """POST /login over a raw socket: headers and half the body, then the rest after ``go_on``."""
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /login HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
        half = len(body) // 2
        writer.write(body[:half])
        await writer.drain()
        started.set()
        await go_on.wait()
        for index in range(half, len(body)):  # the rest, one byte at a time
            writer.write(body[index:index + 1])
            await writer.drain()
            await asyncio.sleep(0.02)
        answer = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload)


async def test_sigterm_finishes_a_slow_download_and_a_trickling_login(
        tmp_path: Path, upstream: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage: {path: ./data/gateway.db}\n"
        "server: {shutdown_timeout: 15 seconds}\n"
        "gateway:\n"
        "  rules: [{path: '^/files/', policy: bypass}]\n"
        f"  upstreams: [{{prefix: /files/, url: 'http://127.0.0.1:{upstream}'}}]\n")
    server = Server(tmp_path, config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET,
                                                GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD))
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/files/big") as download:
                assert download.status == 200
                first = await download.content.readexactly(1024)
                started, go_on = asyncio.Event(), asyncio.Event()
                login = asyncio.create_task(trickled_login(server.port, started, go_on))
                await asyncio.wait_for(started.wait(), 10)
                await asyncio.sleep(0.2)  # the gateway has the headers and half the body
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                # Stopped accepting: a new connection is refused while the two finish.
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with aiohttp.ClientSession() as fresh:
                        await fresh.get(f"{server.url}/healthz")
                go_on.set()
                rest = await download.content.read()
                assert len(first) + len(rest) == CHUNKS * 1024
            status, body = await login
        assert status == 200 and body["username"] == "admin"
        exit_code = await asyncio.to_thread(server.process.wait, 20)
        assert exit_code == 0, server.output()
    finally:
        server.stop()
