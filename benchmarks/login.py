"""Login timing over real HTTP on loopback, one gateway process.

Usage: python benchmarks/login.py [--rounds 20]

Prints the median time of a successful login, a wrong password and an unknown user, and
the ratio unknown/wrong (close to 1.0 means an unknown user cannot be told apart by
timing). The three kinds are interleaved so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.app import create_app
from gateway.appkeys import HASHER
from gateway.config import parse_config

PASSWORD = "benchmark-password"


async def run(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        config = parse_config(
            {"storage": {"path": str(Path(directory) / "gateway.db")},
             "login": {"regulation": {"max_retries": 0}}},
            {"GATEWAY_SECRET_KEY": "b" * 40, "GATEWAY_ADMIN_PASSWORD": PASSWORD},
        )
        app = create_app(config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/login"
        cases = {"success": ("admin", PASSWORD, 200), "wrong password": ("admin", "nope-nope", 401),
                 "unknown user": ("nobody", "nope-nope", 401)}
        timings: dict[str, list[float]] = {name: [] for name in cases}
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(2):  # warm-up
                    for username, password, _status in cases.values():
                        await http.post(url, json={"username": username, "password": password})
                for _ in range(rounds):
                    for name, (username, password, status) in cases.items():
                        started = time.perf_counter()
                        async with http.post(url, json={"username": username,
                                                        "password": password}) as response:
                            await response.read()
                            assert response.status == status, response.status
                        timings[name].append(time.perf_counter() - started)
        finally:
            parameters = app[HASHER].parameters
            await runner.cleanup()
    print(f"hash: {parameters}; {rounds} rounds, median per login over HTTP:")
    for name, values in timings.items():
        print(f"  {name:<15} {statistics.median(values) * 1000:7.1f} ms")
    ratio = statistics.median(timings["unknown user"]) / statistics.median(timings["wrong password"])
    print(f"  unknown/wrong ratio: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
