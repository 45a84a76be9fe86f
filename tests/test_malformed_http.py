"""HTTP that aiohttp cannot parse gets a JSON 4xx; no header value is echoed or logged.

Raw bytes over a real socket to the app served by ``GatewayRunner``, as the CLI serves it:
these requests never reach the app's middleware, so only a real connection shows them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.logs import AccessLogger, flush_access_log
from gateway.runner import GatewayRunner
from tests.conftest import Clock, make_config

SECRET = "hunter2-very-secret-value"
BASIC = base64.b64encode(f"admin:{SECRET}".encode()).decode()
HOST = b"Host: gateway\r\n"
PADDING = "p" * 9000

MALFORMED = {
    "control character after a Basic credential":
        b"GET /login HTTP/1.1\r\n" + HOST + f"Authorization: Basic {BASIC}".encode() + b"\x01\r\n\r\n",
    "NUL inside an X-Key":
        b"GET /login HTTP/1.1\r\n" + HOST + f"X-Key: {SECRET}".encode() + b"\x00x\r\n\r\n",
    "control character in a header name":
        b"GET /login HTTP/1.1\r\n" + HOST + f"X-K\x01ey: {SECRET}\r\n\r\n".encode(),
    "an X-Key over 8,190 bytes":
        b"GET /login HTTP/1.1\r\n" + HOST + f"X-Key: {SECRET}{PADDING}\r\n\r\n".encode(),
    "an Authorization over 8,190 bytes":
        b"GET /login HTTP/1.1\r\n" + HOST + f"Authorization: Basic {BASIC}{PADDING}\r\n\r\n".encode(),
    "a request line over 8,190 bytes":
        f"GET /login?access_token={SECRET}{PADDING} HTTP/1.1\r\n".encode() + HOST + b"\r\n",
    "more headers than allowed":
        b"GET /login HTTP/1.1\r\n" + HOST
        + b"".join(f"X-Key-{n}: {SECRET}\r\n".encode() for n in range(200)) + b"\r\n",
    "a bare LF inside a header value":
        b"GET /login HTTP/1.1\r\n" + HOST + f"X-Key: {SECRET}\nX: y\r\n\r\n".encode(),
}


@pytest.fixture
async def port(tmp_path: Path, clock: Clock) -> AsyncIterator[int]:
    """The app on a real loopback port, served as ``gateway serve`` serves it."""
    runner = GatewayRunner(create_app(make_config(tmp_path), clock=clock),
                           access_log_class=AccessLogger,
                           access_log=logging.getLogger("gateway.access"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address = runner.addresses[0]
    yield int(address[1])
    await runner.cleanup()


async def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` raw, read the answer to the end: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_http_is_a_json_400_that_quotes_nothing(port, caplog, capfd, request_bytes):
    caplog.set_level(logging.DEBUG)
    status, headers, body = await exchange(port, request_bytes)

    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert len(headers["x-request-id"]) == 32
    answer = json.loads(body)
    assert set(answer) == {"error", "message"} and answer["error"] == "bad_request"
    assert SECRET.encode() not in body and BASIC.encode() not in body
    assert b"ppppp" not in body

    flush_access_log()
    logged = caplog.text + capfd.readouterr().err
    assert SECRET not in logged and BASIC not in logged and "ppppp" not in logged
    assert "Traceback" not in logged
    refusals = [record for record in caplog.records if record.name == "gateway.http"]
    assert len(refusals) == 1 and refusals[0].levelno == logging.INFO


async def test_the_server_keeps_serving_after_malformed_requests(port):
    for request_bytes in MALFORMED.values():
        assert (await exchange(port, request_bytes))[0] == 400
    status, _, body = await exchange(port, b"GET /healthz HTTP/1.1\r\n" + HOST
                                     + b"Connection: close\r\n\r\n")
    assert status == 200, body


async def test_an_overlong_line_says_so(port):
    status, _, body = await exchange(port, MALFORMED["an X-Key over 8,190 bytes"])
    assert status == 400
    assert json.loads(body)["message"] == "The request line or a header is too long"


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_http_on_auth_is_a_json_403(port, request_bytes):
    # A proxy's forward-auth request carries the client's headers: nginx auth_request turns
    # a 400 into a 500 for its client, a 403 it passes on.
    status, headers, body = await exchange(port, request_bytes.replace(b"GET /login", b"GET /auth", 1))
    assert status == 403
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "bad_request"
    assert SECRET.encode() not in body and BASIC.encode() not in body


@pytest.mark.parametrize("path", ["/api/token/", "/api/token/verify/", "/login"])
async def test_a_body_cut_short_is_no_server_error(port, caplog, path):
    """A client that closes the connection in the middle of its body is gone, not a bug:
    no 'unhandled error', no traceback, and the server keeps serving."""
    caplog.set_level(logging.INFO)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\n".encode() + HOST
                 + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    for _ in range(100):  # until the server has seen the connection end
        if "closed the connection" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "closed the connection" in caplog.text
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    status, _, _ = await exchange(port, b"GET /healthz HTTP/1.1\r\n" + HOST
                                  + b"Connection: close\r\n\r\n")
    assert status == 200
