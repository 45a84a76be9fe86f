"""The access log: one valid JSON line per request, whatever the path holds, no query string."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway import logs
from gateway.appkeys import CLIENT_ADDRESS, REQUEST_ID, TENANT
from gateway.netaddr import parse_address


@pytest.mark.parametrize("path", ["/auth", '/a"b', "/a\\b", "/caf%C3%A9", "/a%01b", "/a%20b",
                                  "/%E2%80%8B"])
async def test_every_line_is_json_and_names_the_path_without_its_query(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(logs._access_lines, "stream", stream)
    request = make_mocked_request("GET", f"{path}?access_token=secret-token")
    request[REQUEST_ID] = "abc-123"
    request[CLIENT_ADDRESS] = parse_address("203.0.113.9")
    request[TENANT] = "default"
    logger = logs.AccessLogger(logging.getLogger("gateway.access"), "")
    logger.log(request, web.Response(status=204), 0.0015)
    logs.flush_access_log()
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    entry = json.loads(line)
    assert entry["path"] == request.path
    assert "secret-token" not in line
    assert entry["request_id"] == "abc-123"
    assert entry["client"] == "203.0.113.9"
    assert entry["tenant"] == "default"
    assert entry["status"] == 204
    assert entry["duration_ms"] == 1.5


async def test_a_request_refused_before_its_tenant_was_read_logs_nulls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(logs._access_lines, "stream", stream)
    request = make_mocked_request("GET", "/x")
    logs.AccessLogger(logging.getLogger("gateway.access"), "").log(request, web.Response(), 0.0)
    logs.flush_access_log()
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] is None and entry["tenant"] is None
