"""Early answers written by the connection itself (``runner._Connection``): what aiohttp's
handler loop would have done for those requests still happens.

A real ``GatewayRunner`` on loopback, spoken to over raw sockets so that what goes on the
wire (pipelining, pieces, HTTP/1.0, ``Connection: close``, idle connections) is exactly
what the test sends. ``tests/test_auth_from_cache.py`` shows that early answers are the
full path's answers; this file shows that the connection answers them, in order, with
the access line and the metrics, and leaves everything else to the handler loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway import logs
from gateway.app import create_app
from gateway.early import Ready, UnsafeHeader
from gateway.logs import AccessLogger
from gateway.runner import GatewayRunner
from tests.conftest import ADMIN_PASSWORD, Clock, make_config

pytestmark = pytest.mark.storage_independent


@dataclass
class Gateway:
    port: int
    runner: GatewayRunner
    handled: list[str]  # paths of the requests that reached the app's handler

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start(tmp_path: Path, clock: Clock, keepalive_timeout: float = 75.0) -> Gateway:
    runner = GatewayRunner(create_app(make_config(tmp_path), clock=clock),
                           access_log_class=AccessLogger,
                           access_log=logging.getLogger("gateway.access"),
                           keepalive_timeout=keepalive_timeout)
    await runner.setup()
    handled: list[str] = []
    assert runner.server is not None
    handler = runner.server.request_handler

    async def counted(request: web.BaseRequest) -> web.StreamResponse:
        handled.append(request.path)
        return await handler(request)

    runner.server.request_handler = counted  # connections made from now on call it
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return Gateway(runner.addresses[0][1], runner, handled)


@pytest.fixture
async def gateway(tmp_path: Path, clock: Clock) -> AsyncIterator[Gateway]:
    started = await start(tmp_path, clock)
    try:
        yield started
    finally:
        await started.runner.cleanup()


@pytest.fixture
def access_lines(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
                 ) -> Callable[[], list[dict[str, object]]]:
    """The access lines written so far, as ``gateway serve`` writes them."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    stream = io.StringIO()
    monkeypatch.setattr(logs._access_lines, "stream", stream)

    def lines() -> list[dict[str, object]]:
        logs.flush_access_log()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return lines


async def tokens(base: str) -> tuple[str, str]:
    """A fresh access and refresh token of the admin."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{base}/api/token/", json={"username": "admin", "password": ADMIN_PASSWORD}) as response:
        assert response.status == 200
        pair = await response.json()
    return pair["access"], pair["refresh"]


def auth(token: str, request_id: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET /auth HTTP/{version}", "Host: gateway", f"Authorization: Bearer {token}",
             "X-Original-URI: /app", f"X-Request-ID: {request_id}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def verify(body: bytes, request_id: str, *extra: str,
           content_type: str = "application/json") -> bytes:
    head = ["POST /api/token/verify/ HTTP/1.1", "Host: gateway", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", f"X-Request-ID: {request_id}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    size: int  # bytes on the wire, head and body


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("utf-8").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"{name} twice"
        headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 10)
    return Answer(int(status_line.split(" ")[1]), headers, body, len(head) + len(body))


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(1), 10) == b""


async def test_cached_requests_are_answered_by_the_connection_with_log_and_metrics(
        gateway: Gateway, access_lines: Callable[[], list[dict[str, object]]]) -> None:
    access, refresh = await tokens(gateway.base)
    reader, writer = await connect(gateway.port)
    sizes = {}
    try:
        for number in range(10):
            writer.write(auth(access, f"auth-{number}"))
            answer = await read_answer(reader)
            sizes[f"auth-{number}"] = answer.size
            assert answer.status == 200
            assert answer.headers["x-auth-user"] == "admin"
            assert answer.headers["x-request-id"] == f"auth-{number}"
            assert answer.headers["date"] and answer.headers["server"]
            assert "connection" not in answer.headers
        body = json.dumps({"token": refresh}).encode()
        for number in range(5):
            writer.write(verify(body, f"verify-{number}"))
            answer = await read_answer(reader)
            sizes[f"verify-{number}"] = answer.size
            assert (answer.status, answer.body) == (200, b"{}")
            assert answer.headers["content-type"] == "application/json; charset=utf-8"
            assert answer.headers["x-request-id"] == f"verify-{number}"
    finally:
        writer.close()
    # The first of each reached the app (the cache did not hold the token yet); the
    # others were answered before it.
    assert gateway.handled == ["/api/token/", "/auth", "/api/token/verify/"]
    lines = {line["request_id"]: line for line in access_lines()}
    for number in range(10):
        line = lines[f"auth-{number}"]
        assert (line["method"], line["path"], line["status"]) == ("GET", "/auth", 200)
        assert (line["client"], line["tenant"]) == ("127.0.0.1", "default")
    for request_id, size in sizes.items():  # as aiohttp counts them: head and body
        assert lines[request_id]["bytes"] == size
    assert lines["verify-4"]["path"] == "/api/token/verify/"
    async with aiohttp.ClientSession() as session, session.get(f"{gateway.base}/metrics") as response:
        scrape = await response.text()
    counts = {(sample.labels.get("route"), sample.labels.get("status")): sample.value
              for family in text_string_to_metric_families(scrape) for sample in family.samples
              if sample.name == "gateway_requests_total" and sample.labels.get("method") in ("GET", "POST")}
    assert counts[("/auth", "200")] == 10
    assert counts[("/api/token/verify/", "200")] == 5


async def test_pipelined_requests_are_answered_in_order(gateway: Gateway) -> None:
    access, _ = await tokens(gateway.base)
    reader, writer = await connect(gateway.port)
    try:
        writer.write(auth(access, "warm"))
        assert (await read_answer(reader)).status == 200
        writer.write(auth(access, "one") + b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Request-ID: two\r\n\r\n"
                     + auth("not-a-token", "three") + auth(access, "four"))
        answers = [await read_answer(reader) for _ in range(4)]
    finally:
        writer.close()
    assert [(answer.status, answer.headers["x-request-id"]) for answer in answers] == [
        (200, "one"), (200, "two"), (401, "three"), (200, "four")]
    assert answers[0].headers["x-auth-user"] == answers[3].headers["x-auth-user"] == "admin"


async def test_a_request_arriving_in_pieces_is_answered(gateway: Gateway) -> None:
    access, _ = await tokens(gateway.base)
    reader, writer = await connect(gateway.port)
    try:
        writer.write(auth(access, "warm"))
        assert (await read_answer(reader)).status == 200
        request = auth(access, "pieces")
        for start in range(0, len(request), 40):
            writer.write(request[start:start + 40])
            await writer.drain()
            await asyncio.sleep(0.01)  # each piece its own read on the server
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert (answer.status, answer.headers["x-request-id"]) == (200, "pieces")


@pytest.mark.parametrize("version, extra, connection", [
    ("1.0", (), None),
    ("1.1", ("Connection: close",), "close"),
])
async def test_requests_that_close_the_connection_are_answered_then_closed(
        gateway: Gateway, version: str, extra: tuple[str, ...], connection: str | None) -> None:
    access, _ = await tokens(gateway.base)
    reader, writer = await connect(gateway.port)
    try:
        writer.write(auth(access, "warm"))
        assert (await read_answer(reader)).status == 200
        writer.write(auth(access, "last", *extra, version=version))
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["x-auth-user"]) == (200, "admin")
        assert answer.headers.get("connection") == connection
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_a_verify_body_not_answered_early_reaches_the_handler_whole(gateway: Gateway) -> None:
    reader, writer = await connect(gateway.port)
    try:
        writer.write(verify(b"{}", "warm"))
        assert (await read_answer(reader)).status == 400
        for number in range(3):  # tokens the cache has not seen: the handler decides
            _, refresh = await tokens(gateway.base)
            writer.write(verify(json.dumps({"token": refresh}).encode(), f"fresh-{number}"))
            answer = await read_answer(reader)
            assert (answer.status, answer.body) == (200, b"{}")
        writer.write(verify(json.dumps({"token": "x" * 9000}).encode(), "large"))
        answer = await read_answer(reader)
        assert answer.status == 401 and json.loads(answer.body)["code"] == "token_not_valid"
        # A form body is not for the early answer to read: the handler streams it. Once
        # on the idle connection, once as a last request (asked before the router).
        _, refresh = await tokens(gateway.base)
        form = (f'--b1\r\nContent-Disposition: form-data; name="token"\r\n\r\n{refresh}\r\n'
                '--b1--\r\n').encode()
        for extra in ((), ("Connection: close",)):
            writer.write(verify(form, "form", *extra, content_type="multipart/form-data; boundary=b1"))
            answer = await read_answer(reader)
            assert (answer.status, answer.body) == (200, b"{}")
    finally:
        writer.close()


async def test_the_keep_alive_deadline_moves_with_early_answers(tmp_path: Path, clock: Clock) -> None:
    gateway = await start(tmp_path, clock, keepalive_timeout=0.5)
    try:
        access, _ = await tokens(gateway.base)
        reader, writer = await connect(gateway.port)
        try:
            for number in range(8):  # 1.6 s of early answers, more than the timeout
                writer.write(auth(access, f"busy-{number}"))
                assert (await read_answer(reader)).status == 200
                await asyncio.sleep(0.2)
            assert gateway.handled == ["/api/token/", "/auth"]
            # Idle now: closed once the timeout has passed.
            assert await closed_by_server(reader)
        finally:
            writer.close()
    finally:
        await gateway.runner.cleanup()


async def test_a_revocation_holds_on_the_next_request_of_the_same_connection(gateway: Gateway) -> None:
    reader, writer = await connect(gateway.port)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.base}/login",
                                json={"username": "admin", "password": ADMIN_PASSWORD}) as response:
            login = await response.json()
        session_auth = ("GET /auth HTTP/1.1\r\nHost: g\r\nX-Original-URI: /app\r\n"
                        f"X-Access-Token: {login['token']}\r\nX-Key: {login['key']}\r\n\r\n").encode()
        try:
            for _ in range(5):
                writer.write(session_auth)
                assert (await read_answer(reader)).status == 200
            async with session.post(f"{gateway.base}/logout", headers={
                    "X-Access-Token": login["token"], "X-Key": login["key"]}) as response:
                assert response.status == 200
            writer.write(session_auth)
            assert (await read_answer(reader)).status == 401
        finally:
            writer.close()



async def test_a_verify_that_expects_100_continue_gets_it(gateway: Gateway) -> None:
    _, refresh = await tokens(gateway.base)
    body = json.dumps({"token": refresh}).encode()
    reader, writer = await connect(gateway.port)
    try:
        for number in range(2):  # the second time, the cache knows the token
            request = verify(body, f"expect-{number}", "Expect: 100-continue")
            writer.write(request[:-len(body)])  # the head only: the body waits for the 100
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            writer.write(body)
            answer = await read_answer(reader)
            assert (answer.status, answer.body) == (200, b"{}")
    finally:
        writer.close()


async def test_head_is_answered_without_a_body(gateway: Gateway) -> None:
    access, _ = await tokens(gateway.base)
    reader, writer = await connect(gateway.port)
    try:
        for number in range(3):
            writer.write(auth(access, f"head-{number}").replace(b"GET ", b"HEAD ", 1))
            answer = await read_answer(reader)
            assert (answer.status, answer.headers["x-auth-user"]) == (200, "admin")
            assert "content-length" not in answer.headers  # as aiohttp answers a HEAD
        writer.write(auth(access, "after"))  # nothing left over on the connection
        assert (await read_answer(reader)).headers["x-request-id"] == "after"
    finally:
        writer.close()


@pytest.mark.parametrize("headers", [
    {"X-Auth-User": "a\r\nX-Injected: 1"},
    {"X-Auth-User": "a\x00b"},
    {"X-Auth\nUser": "a"},
    {"Content-Length": "5"},
    {"x-request-id": "mine"},
    {"X-Auth-User": "a\udc80"},
])
def test_a_ready_answer_refuses_headers_it_cannot_send_as_they_are(headers: dict[str, str]) -> None:
    with pytest.raises(UnsafeHeader):
        Ready.of(headers)
    assert Ready.of({"X-Auth-User": "josé", "X-Auth-Roles": "A,B"}).lines == \
        "X-Auth-User: josé\r\nX-Auth-Roles: A,B\r\n".encode()
