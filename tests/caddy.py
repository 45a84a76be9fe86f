"""A real Caddy in front of the gateway with ``forward_auth``, as the README shows it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.servers import stop_process, wait_listening

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
        await wait_listening(self.port, "caddy", self.process,
                             lambda: self.log.read_text(errors="replace"))

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM)
        self._handle.close()
