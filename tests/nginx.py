"""A real nginx in front of the gateway with ``auth_request``, as the README shows it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.readme import on_loopback, readme_block
from tests.servers import stop_process, wait_listening

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None)

SKELETON = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp-body;
    proxy_temp_path {prefix}/tmp-proxy;
    fastcgi_temp_path {prefix}/tmp-fastcgi;
    uwsgi_temp_path {prefix}/tmp-uwsgi;
    scgi_temp_path {prefix}/tmp-scgi;
"""


def _escaped(snippet: str) -> str:
    return on_loopback(snippet.replace("{", "{{").replace("}", "}}"), gateway="{gateway_port}",
                       upstream="{upstream_port}")


def template_of(snippet: str, http: str = "") -> str:
    """An nginx.conf template: ``snippet`` (``location`` blocks with the README's example
    addresses) as the one server, listening on ``{port}``; ``http``, blocks of the ``http``
    context (an ``upstream``), before it."""
    return (SKELETON + _escaped(http) + "    server {{\n        listen 127.0.0.1:{port};\n"
            + _escaped(snippet) + "    }}\n}}\n")


#: The README's nginx section as written there, with test paths and ports.
README_SNIPPET = readme_block("nginx `auth_request`", "nginx")
CONFIG = template_of(README_SNIPPET)
#: The same with kept-open connections to the gateway: the README's upstream block and its
#: auth location, then the first snippet's other locations.
_KEEPALIVE = "Keeping connections to the gateway open"
KEEPALIVE_CONFIG = template_of(
    readme_block(_KEEPALIVE, "nginx", "location = /_gateway_auth")
    + README_SNIPPET[README_SNIPPET.index("location / {"):],
    http=readme_block(_KEEPALIVE, "nginx", "upstream gateway"))


class Nginx:
    """nginx in the foreground on a free loopback port."""

    def __init__(self, prefix: Path, gateway_port: int, upstream_port: int, *,
                 template: str = CONFIG, port: int | None = None) -> None:
        if NGINX is None:
            if os.environ.get("CI"):
                pytest.fail("nginx is missing in CI: .ci/run should have installed nginx-light")
            pytest.skip("nginx is not installed (.ci/run installs Debian's nginx-light)")
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = prefix
        self.config_text = template.format(
            prefix=prefix, port=self.port, gateway_port=gateway_port, upstream_port=upstream_port,
            # Workers of a root master run as nobody, who cannot enter pytest's 0700 tmp dirs.
            user="user root;" if os.geteuid() == 0 else "",
        )
        (prefix / "nginx.conf").write_text(self.config_text)
        self.process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    async def wait_ready(self) -> None:
        stderr = self.process.stderr
        await wait_listening(self.port, "nginx", self.process,
                             lambda: stderr.read().decode() if stderr else "")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)
        if self.process.stderr:
            self.process.stderr.close()
