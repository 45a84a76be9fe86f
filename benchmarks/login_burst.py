"""Does a burst of logins stall the event loop? /healthz latency under 32 concurrent logins.

Usage: python benchmarks/login_burst.py [--clients 32] [--logins 8] [--interval 0.01]

Starts one ``gateway serve`` process (its own temporary data directory, regulation off so
the burst is not banned), then measures ``GET /healthz`` latency twice, from a separate
client process (this one): alone, and while ``--clients`` clients each log in ``--logins``
times back to back (argon2id, m=19 MiB t=2, in the gateway's thread pool of one thread per
core). It prints p50/p99/max of /healthz for both, and the logins per second. The promise
(SPEC §9): under 32 concurrent logins /healthz keeps a p99 under 20 ms, because argon2
runs off the event loop and the pool is bounded.
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

PASSWORD = "benchmark-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("the gateway did not become ready")


async def healthz_latencies(http: aiohttp.ClientSession, url: str, stop: asyncio.Event,
                            interval: float, limit: int = 5000) -> list[float]:
    """Poll /healthz every ``interval`` until ``stop`` (at most ``limit`` polls)."""
    latencies: list[float] = []
    while not stop.is_set() and len(latencies) < limit:
        started = time.perf_counter()
        async with http.get(f"{url}/healthz") as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(interval)
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
            f"max {ordered[-1] * 1000:6.2f} ms  ({len(ordered)} requests)")


async def measure(url: str, clients: int, logins: int, interval: float) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 4)) as http:
        stop = asyncio.Event()
        quiet = asyncio.create_task(healthz_latencies(http, url, stop, interval))
        await asyncio.sleep(2.0)
        stop.set()
        alone = await quiet

        async def client() -> None:
            for _ in range(logins):
                async with http.post(f"{url}/login",
                                     json={"username": "admin", "password": PASSWORD}) as response:
                    await response.read()
                    assert response.status == 200, response.status

        stop = asyncio.Event()
        poller = asyncio.create_task(healthz_latencies(http, url, stop, interval))
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        stop.set()
        loaded = await poller
    print(f"/healthz alone:                  {summary(alone)}")
    print(f"/healthz under {clients} concurrent logins: {summary(loaded)}")
    print(f"logins: {clients * logins} in {elapsed:.1f} s = {clients * logins / elapsed:.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--logins", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "config.yaml"
        config.write_text("storage: {path: ./data/gateway.db}\n"
                          "login: {regulation: {max_retries: 0}}\n")
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
        env.update(GATEWAY_SECRET_KEY="b" * 40, GATEWAY_ADMIN_PASSWORD=PASSWORD)
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
            cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_ready(url))
            asyncio.run(measure(url, args.clients, args.logins, args.interval))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
