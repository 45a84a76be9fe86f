"""Built-in proxy throughput against a direct download, in the same run.

Usage: python benchmarks/proxy.py [--megabytes 256] [--rounds 3]

Starts an upstream process that streams N MB, and a gateway process (``gateway serve``)
proxying to it; downloads the file directly and through the gateway, alternating, and
prints MB/s, the ratio proxied/direct, and the gateway's peak RSS growth. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

UPSTREAM = """
import sys
from aiohttp import web
size = int(sys.argv[2]) * 1024 * 1024
chunk = b"p" * (256 * 1024)
async def big(request):
    response = web.StreamResponse()
    response.content_length = size
    await response.prepare(request)
    for _ in range(size // len(chunk)):
        await response.write(chunk)
    return response
app = web.Application()
app.router.add_get("/files/big", big)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
PASSWORD = "benchmark-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def download(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    size = 0
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_chunked(1024 * 1024):
            size += len(chunk)
    return size / (time.perf_counter() - started) / 2**20


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run(megabytes: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        up_port, gw_port = free_port(), free_port()
        script = Path(directory) / "upstream.py"
        script.write_text(UPSTREAM)
        config = Path(directory) / "config.yaml"
        config.write_text(
            f"storage: {{path: '{directory}/gateway.db'}}\n"
            "logging: {level: warning}\n"
            f"gateway: {{upstreams: [{{prefix: /files/, url: 'http://127.0.0.1:{up_port}'}}]}}\n")
        env = {**os.environ, "GATEWAY_ADMIN_PASSWORD": PASSWORD}
        upstream = subprocess.Popen([sys.executable, str(script), str(up_port), str(megabytes)])
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(gw_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_for(f"http://127.0.0.1:{up_port}/nothing")
            await wait_for(f"http://127.0.0.1:{gw_port}/healthz")
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{gw_port}/api/token/",
                                     json={"username": "admin", "password": PASSWORD}) as response:
                    access = (await response.json())["access"]
                bearer = {"Authorization": f"Bearer {access}"}
                await download(http, f"http://127.0.0.1:{gw_port}/files/big", bearer)  # warm-up
                rss_before = peak_rss_kib(gateway.pid)
                direct, proxied = [], []
                for _ in range(rounds):
                    direct.append(await download(http, f"http://127.0.0.1:{up_port}/files/big", {}))
                    proxied.append(await download(http, f"http://127.0.0.1:{gw_port}/files/big", bearer))
                rss_after = peak_rss_kib(gateway.pid)
        finally:
            for process in (gateway, upstream):
                process.terminate()
                process.wait()
    d, p = statistics.median(direct), statistics.median(proxied)
    print(f"{megabytes} MB x {rounds} rounds, median:")
    print(f"  direct       {d:8.1f} MB/s")
    print(f"  via gateway  {p:8.1f} MB/s   ratio {p / d:.2f}")
    print(f"  gateway peak RSS growth over the runs: {(rss_after - rss_before) / 1024:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.megabytes, arguments.rounds))


if __name__ == "__main__":
    main()
