"""Schemathesis against a real ``gateway serve`` on loopback and its own ``/openapi.yaml``.

Every check schemathesis has (``--checks all``: server errors, status codes, content
types, headers, response schemas, schema-valid data accepted, schema-invalid data
refused, auth enforced, undeclared methods, use after delete …) in every phase
(examples, coverage, fuzzing, stateful), twice: once with Basic credentials over every
operation, once with a Bearer access token from ``/api/token/`` over the operations
that take one. Examples are bounded and generation is deterministic, so a run is the
same run every time. Without schemathesis the test skips, except under ``CI=true``,
where it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ADMIN_PASSWORD, IN_CI, TEST_SECRET, free_port
from tests.servers import Server, clean_env

REPOSITORY = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = 5
RUN_TIMEOUT = 300

# The operations that take a Bearer token (security: bearer); the rest read no credential
# or are the same whatever the credential, and the Basic run covers them.
BEARER_OPERATIONS = r"^/(admin/|api/v1alpha/token|token$|introspect$|revoke$)"

CONFIG = """\
storage:
  path: ./state/gateway.db
# Schemathesis sends wrong passwords on purpose (the ignored_auth check, generated Basic
# headers): with regulation on, the admin's login and the loopback address would be banned
# within seconds and every later answer would be a 429. Off for this server only;
# regulation has its own tests.
login:
  regulation: {{max_retries: 0, max_retries_per_address: 0}}
# The Bearer token must outlive the run.
tokens: {{access_lifetime: 1 hour}}
# The portal on, so its pages are tested too (off, each of them is a 404).
portal: {{enabled: true, url: '{url}/portal', cookie: {{secure: false}}}}
logging: {{format: json}}
"""

RUN_CONFIG = """\
workers = 1
continue-on-failure = true
hooks = "tests.schemathesis_hooks"

[output.sanitization]
enabled = false

[generation]
deterministic = true
max-examples = {max_examples}

[checks]
enabled = true

# The tenant a request names must exist (else 400 unknown_tenant, tested in
# test_openapi.py); the document cannot list the configured tenants.
[parameters]
"header.X-TENANT-ID" = "default"
"query.tenant" = "default"

{auth}
"""


def require_schemathesis() -> None:
    if importlib.util.find_spec("schemathesis") is None:
        reason = "schemathesis is not installed (pip install '.[test]')"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
async def server(tmp_path: Path):
    require_schemathesis()
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=f"http://127.0.0.1:{port}"))
    server = Server(tmp_path, config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET,
                                                GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD), port=port)
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


async def access_token(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/api/token/", json={"username": "admin", "password": ADMIN_PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["access"]
        return token


def run_schemathesis(server: Server, workdir: Path, name: str, auth: str,
                     *options: str) -> subprocess.CompletedProcess[str]:
    config = workdir / f"schemathesis-{name}.toml"
    config.write_text(RUN_CONFIG.format(max_examples=MAX_EXAMPLES, auth=auth))
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
         f"{server.url}/openapi.yaml", "--url", server.url, "--checks", "all", *options],
        # In the test's directory, so that schemathesis' cache stays out of the checkout.
        cwd=workdir, env=clean_env(PYTHONPATH=str(REPOSITORY), GATEWAY_FUZZ_USER="admin",
                                   NO_COLOR="1"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )


def failures(run: subprocess.CompletedProcess[str]) -> str:
    """The report's failures and summary (the part a reader needs), or all of it."""
    output = run.stdout + run.stderr
    start = output.find("=== FAILURES ===")
    return output[output.rfind("\n", 0, start) + 1:] if start >= 0 else output


async def test_every_operation_with_basic_credentials(server, tmp_path):
    auth = f'[auth.openapi.basic]\nusername = "admin"\npassword = "{ADMIN_PASSWORD}"'
    run = await asyncio.to_thread(run_schemathesis, server, tmp_path, "basic", auth)
    assert run.returncode == 0, failures(run)


async def test_bearer_operations_with_an_access_token(server, tmp_path):
    auth = f'[auth.openapi.bearer]\nbearer = "{await access_token(server.url)}"'
    run = await asyncio.to_thread(run_schemathesis, server, tmp_path, "bearer", auth,
                                  "--include-path-regex", BEARER_OPERATIONS)
    assert run.returncode == 0, failures(run)
