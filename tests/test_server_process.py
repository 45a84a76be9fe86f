"""The real ``gateway serve`` in a subprocess, over real HTTP on loopback, across a restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port

STARTUP_TIMEOUT = 20.0


class Server:
    """One ``gateway serve`` process; stderr goes to a file the test reads."""

    def __init__(self, tmp_path: Path, config: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"server-{self.port}.log"
        self._handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--port", str(self.port)],
            stdout=self._handle, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"server exited early:\n{self.output()}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"server not ready in {STARTUP_TIMEOUT}s:\n{self.output()}")

    def stop(self) -> int:
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


@pytest.fixture
def environment(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  path: ./state/gateway.db\nlogging: {format: json}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    return config, env


async def login(http: aiohttp.ClientSession, url: str, username: str, password: str) -> dict:
    async with http.post(f"{url}/login", json={"username": username, "password": password}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def logout(http: aiohttp.ClientSession, url: str, session: dict) -> int:
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    async with http.post(f"{url}/logout", headers=headers) as response:
        return response.status


async def test_users_and_revocations_survive_a_restart(tmp_path, environment):
    config, env = environment
    server = Server(tmp_path, config, env)
    try:
        await server.wait_ready()
        printed = re.findall(r"with password: (\S+)", server.output())
        assert len(printed) == 1, server.output()
        admin_password = printed[0]
        add = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway", "users", "add", "alice", "--password-stdin",
             "--config", str(config)],
            input="alice-password\n", capture_output=True, text=True, env=env, cwd=tmp_path,
            timeout=60, check=False,
        )
        assert add.returncode == 0, add.stderr
        async with aiohttp.ClientSession() as http:
            admin = await login(http, server.url, "admin", admin_password)
            assert admin["role"] == 0
            revoked = await login(http, server.url, "alice", "alice-password")
            live = await login(http, server.url, "alice", "alice-password")
            assert await logout(http, server.url, revoked) == 200
    finally:
        first_exit = server.stop()
    first_output = server.output()
    assert first_exit == 0, first_output

    restarted = Server(tmp_path, config, env)
    try:
        await restarted.wait_ready()
        async with aiohttp.ClientSession() as http:
            assert (await login(http, restarted.url, "alice", "alice-password"))["role"] == 2
            assert await logout(http, restarted.url, revoked) == 401
            assert await logout(http, restarted.url, live) == 200
    finally:
        assert restarted.stop() == 0
    second_output = restarted.output()
    assert "with password" not in second_output, "the bootstrap password is printed only once"
    secrets_seen = [admin_password, "alice-password", revoked["token"], revoked["key"], live["key"]]
    logs = first_output.replace(f"with password: {admin_password}", "") + second_output
    for secret in secrets_seen:
        assert secret not in logs, "a secret reached the log"
    assert '"path": "/login"' in logs, "one JSON access line per request"
