"""A real Caddy in front of the gateway with ``forward_auth``, as the README shows it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CADDY = shutil.which("caddy") or next(
    (path for path in ("/usr/bin/caddy", "/usr/local/bin/caddy") if Path(path).exists()), None)


class Caddy:
    """``caddy run`` in the foreground with ``config_text`` (listening on ``port``), its state
    kept in ``prefix``."""

    def __init__(self, prefix: Path, config_text: str, port: int) -> None:
        if CADDY is None:
            if IN_CI:
                pytest.fail("caddy is missing in CI: .ci/run should have installed Debian's caddy")
            pytest.skip("caddy is not installed (.ci/run installs Debian's caddy)")
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_text = config_text
        config = prefix / "Caddyfile"
        config.write_text(self.config_text)
        # Caddy keeps its state under $HOME / $XDG_*: in the test's directory, not the user's.
        env = {**os.environ, "HOME": str(prefix), "XDG_DATA_HOME": str(prefix / "data"),
               "XDG_CONFIG_HOME": str(prefix / "config")}
        self.log = prefix / "caddy.log"
        self._handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"],
            stdout=self._handle, stderr=subprocess.STDOUT, env=env, cwd=prefix,
        )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"caddy exited: {self.log.read_text(errors='replace')}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        pytest.fail("caddy did not start listening in 10 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()
