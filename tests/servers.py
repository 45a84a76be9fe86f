"""Real ``gateway serve`` processes for tests, on free loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port

STARTUP_TIMEOUT = 20.0


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GATEWAY_* variable, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    env.update(extra)
    return env


class Server:
    """One ``gateway serve`` process; its output goes to a file the test reads."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str], *args: str,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self._handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--port", str(self.port), *args],
            stdout=self._handle, stderr=subprocess.STDOUT, env=env, cwd=workdir,
        )

    async def wait_ready(self, workers: int = 1) -> None:
        """Poll /readyz until ``workers`` distinct processes have answered it (bounded).

        With ``--workers N`` each worker starts on its own; the pid in the access lines
        tells which one answered, and a fresh connection per poll lets the kernel spread them.
        """
        deadline = time.monotonic() + STARTUP_TIMEOUT
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"server exited early:\n{self.output()}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200 and len(self.pids_seen()) >= workers:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        pytest.fail(f"server not ready in {STARTUP_TIMEOUT}s:\n{self.output()}")

    def pids_seen(self) -> set[int]:
        """The worker pids named in the access lines so far."""
        pids = set()
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    pids.add(json.loads(line)["pid"])
                except (ValueError, KeyError):
                    continue
        return pids

    def stop(self) -> int:
        """SIGTERM, wait for a graceful exit (kill after 15 s); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()
        return self.process.returncode

    def output(self) -> str:
        if not self._handle.closed:
            self._handle.flush()
        return self.log.read_text(errors="replace")


async def run_cli(config: Path, env: dict[str, str], *args: str,
                  stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``gateway ARGS --config CONFIG`` in a subprocess without blocking the loop."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False,
    )


async def wait_listening(port: int, name: str, process: subprocess.Popen[bytes],
                         errors: Callable[[], str], seconds: float = 10) -> None:
    """Poll until something accepts connections on ``port``; fail when ``process`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited: {errors()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    pytest.fail(f"{name} did not start listening in {seconds:g} s")


def stop_process(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` and wait (kill after 10 s)."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
