"""The same over a real ``gateway serve`` process, one worker and several."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TEST_SECRET
from tests.servers import Server, clean_env
from tests.test_malformed_http import BASIC, MALFORMED, SECRET, exchange


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_gateway_serve_answers_malformed_http_in_json_and_logs_no_value(tmp_path, workers):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'gateway.db'}}}\n")
    server = Server(tmp_path, config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET,
                                                GATEWAY_ADMIN_PASSWORD="admin-password-123"),
                    "--workers", workers)
    try:
        await server.wait_ready(int(workers))
        for request_bytes in MALFORMED.values():
            status, headers, body = await exchange(server.port, request_bytes)
            assert status == 400 and headers["content-type"].startswith("application/json")
            assert set(json.loads(body)) == {"error", "message"}
    finally:
        server.stop()
    output = server.output()
    assert SECRET not in output and BASIC not in output and "Traceback" not in output
