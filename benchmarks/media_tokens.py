"""POST /token throughput, one gateway process, over real HTTP on loopback.

Usage: python benchmarks/media_tokens.py [--requests 400] [--concurrency 16] [--synchronous full]

Issues media tokens with RS256, ES256 and HS256 (Bearer access token, so no argon2 per
request) and measures GET /healthz in the same run as the baseline: machines here are
shared and noisy, so the ratios are the figures to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.app import create_app
from gateway.config import parse_config

PASSWORD = "benchmark-password"


async def rate(http: aiohttp.ClientSession, method: str, url: str, requests: int, concurrency: int,
               expect: int, **kwargs: object) -> float:
    """Requests per second for ``requests`` calls spread over ``concurrency`` clients."""
    remaining = iter(range(requests))

    async def client() -> None:
        for _ in remaining:
            async with http.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
                await response.read()
                assert response.status == expect, response.status

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def run(requests: int, concurrency: int, synchronous: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        config = parse_config(
            {"storage": {"path": str(Path(directory) / "gateway.db"), "synchronous": synchronous}},
            {"GATEWAY_SECRET_KEY": "b" * 40, "GATEWAY_ADMIN_PASSWORD": PASSWORD},
        )
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        results: dict[str, float] = {}
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
                async with http.post(f"{base}/api/token/",
                                     json={"username": "admin", "password": PASSWORD}) as response:
                    access = (await response.json())["access"]
                headers = {"Authorization": f"Bearer {access}"}
                for algorithm in ("RS256", "ES256", "HS256"):  # warm-up makes each tenant key
                    await rate(http, "POST", f"{base}/token", 20, 4, 201, headers=headers,
                               json={"algorithm": algorithm, "unique": False})
                await rate(http, "GET", f"{base}/healthz", 200, concurrency, 200)
                results["GET /healthz (baseline)"] = await rate(
                    http, "GET", f"{base}/healthz", requests, concurrency, 200)
                for algorithm in ("RS256", "ES256", "HS256"):
                    results[f"POST /token {algorithm}"] = await rate(
                        http, "POST", f"{base}/token", requests, concurrency, 201, headers=headers,
                        json={"algorithm": algorithm, "unique": False})
        finally:
            await runner.cleanup()
    baseline = results["GET /healthz (baseline)"]
    print(f"{requests} requests each, {concurrency} concurrent clients, one process, "
          f"storage.synchronous={synchronous}:")
    for name, value in results.items():
        print(f"  {name:<26} {value:8.0f} req/s   ({value / baseline:.2f} x baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.requests, arguments.concurrency, arguments.synchronous))


if __name__ == "__main__":
    main()
