"""docs/forward-auth.md: the built-in proxy to ``gateway.upstreams``, against a real upstream on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.conftest import ADMIN_PASSWORD, add_user, free_port

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


class Upstream:
    """A small upstream that records what reached it."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.echo)

    async def echo(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/app/slow":
            await asyncio.sleep(5)
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
        record = {
            "method": request.method, "raw_path": request.raw_path,
            "headers": {k: request.headers.getall(k) for k in request.headers},
            "size": size, "sha256": digest.hexdigest(),
        }
        self.seen.append(record)
        if request.path == "/app/error":
            return web.json_response({"upstream": "broke"}, status=500)
        return web.json_response(record, headers={
            "X-Upstream": "yes", "Set-Cookie": "session=abc; HttpOnly",
            "Connection": "X-Hop", "X-Hop": "should-not-pass",
        })


@pytest.fixture
async def upstream():
    target = Upstream()
    server = TestServer(target.app, host="127.0.0.1")
    await server.start_server()
    target.url = f"http://127.0.0.1:{server.port}"
    yield target
    await server.close()


@pytest.fixture
async def gw(make_client, upstream):
    return await make_client({"gateway": {
        "upstreams": [{"prefix": "/app/", "url": upstream.url},
                      {"prefix": "/media/", "url": upstream.url},
                      {"prefix": "/open/", "url": upstream.url}],
        "rules": [{"path": "^/open/", "policy": "bypass"}],
        "upstream_timeout": 1,
    }})


async def test_no_credentials_is_401_and_nothing_reaches_the_upstream(gw, upstream):
    response = await gw.get("/app/data")
    assert response.status == 401
    assert "WWW-Authenticate" in response.headers
    assert (await response.json())["error"] == "not_authenticated"
    assert upstream.seen == []


async def test_an_allowed_request_goes_through_unchanged_with_identity_headers(gw, upstream):
    # Through the raw session: the test client would normalise %2F in the query itself.
    raw = URL(f"{str(gw.make_url('')).rstrip('/')}/app/a%20b/c?x=1&y=%2F&x=2", encoded=True)
    response = await gw.session.get(raw, headers=ADMIN)
    assert response.status == 200
    seen = await response.json()
    assert seen["method"] == "GET"
    assert seen["raw_path"] == "/app/a%20b/c?x=1&y=%2F&x=2", "path and query pass unchanged"
    assert seen["headers"]["X-Auth-User"] == ["admin"]
    assert seen["headers"]["X-Auth-Tenant"] == ["default"]
    assert seen["headers"]["X-Auth-Roles"] == ["ROLE_ADMIN"]
    assert seen["headers"]["X-Forwarded-For"] == ["127.0.0.1"]
    assert response.headers["X-Upstream"] == "yes"
    assert response.headers["Set-Cookie"].startswith("session=abc")
    assert "X-Hop" not in response.headers, "hop-by-hop headers named in Connection are dropped"


async def test_client_sent_identity_headers_never_reach_the_upstream(make_client, upstream):
    client = await make_client({"gateway": {
        "upstreams": [{"prefix": "/app/", "url": upstream.url}],
        "rules": [{"path": "^/app/public", "policy": "bypass"}],
        "headers": {"user": "X-Remote-User"},
    }})
    await add_user(client.app, "alice", "alice-password")
    spoof = {"X-Remote-User": "root", "x-auth-tenant": "acme", "X-Auth-Token-Id": "forged",
             "X-Auth-Roles": "ROLE_ADMIN"}
    seen = await (await client.get("/app/x", headers={**basic("alice", "alice-password"), **spoof})).json()
    assert seen["headers"]["X-Remote-User"] == ["alice"]
    assert seen["headers"]["X-Auth-Tenant"] == ["default"]
    assert seen["headers"]["X-Auth-Roles"] == [""]
    bypassed = await (await client.get("/app/public", headers=spoof)).json()
    assert bypassed["headers"]["X-Remote-User"] == [""]
    assert bypassed["headers"]["X-Auth-Token-Id"] == [""]


async def test_hop_by_hop_request_headers_are_dropped(gw, upstream):
    headers = {**ADMIN, "Connection": "keep-alive, X-Private", "X-Private": "secret",
               "Proxy-Authorization": "Basic eHg6eXk=", "X-Kept": "1"}
    seen = await (await gw.get("/app/h", headers=headers)).json()
    assert "X-Private" not in seen["headers"] and "Proxy-Authorization" not in seen["headers"]
    assert seen["headers"]["X-Kept"] == ["1"]


async def test_bodies_stream_to_the_upstream_beyond_the_gateways_body_limit(gw, upstream):
    body = bytes(range(256)) * (8 * 4096)  # 8 MiB, above server.max_body_size (1 MiB)

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    for data in (io.BytesIO(body), chunks()):
        response = await gw.post("/app/upload", data=data, headers=ADMIN)
        assert response.status == 200
        seen = await response.json()
        assert seen["size"] == len(body)
        assert seen["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_is_forwarded(gw, method):
    response = await gw.request(method, "/app/m", headers=ADMIN, data=b"x")
    assert response.status == 200
    assert (await response.json())["method"] == method


async def test_upstream_errors_pass_through_as_they_are(gw):
    response = await gw.get("/app/error", headers=ADMIN)
    assert response.status == 500
    assert await response.json() == {"upstream": "broke"}


async def test_an_unreachable_upstream_is_502(make_client):
    client = await make_client({"gateway": {
        "upstreams": [{"prefix": "/app/", "url": f"http://127.0.0.1:{free_port()}"}]}})
    response = await client.get("/app/x", headers=ADMIN)
    assert response.status == 502
    assert await response.json() == {"error": "bad_gateway",
                                     "message": "The upstream service is unavailable"}


async def test_a_slow_upstream_is_504(gw):
    response = await gw.get("/app/slow", headers=ADMIN)
    assert response.status == 504
    assert (await response.json())["error"] == "gateway_timeout"


async def test_the_gateways_own_endpoints_are_not_hidden_by_a_root_prefix(make_client, upstream):
    client = await make_client({"gateway": {"upstreams": [{"prefix": "/", "url": upstream.url}]}})
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/anything", headers=ADMIN)).status == 200
    assert (await client.get("/anything")).status == 401


async def test_rules_apply_to_proxied_requests(make_client, upstream):
    client = await make_client({"gateway": {
        "upstreams": [{"prefix": "/", "url": upstream.url}],
        "rules": [{"path": "^/admin", "policy": "authenticated", "roles": ["ROLE_SUPER"]},
                  {"path": "^/closed", "policy": "deny"}],
    }})
    assert (await client.get("/admin/x", headers=ADMIN)).status == 403
    assert (await client.get("/closed", headers=ADMIN)).status == 403
    assert (await client.get("/public/../admin/x", headers=ADMIN)).status == 403


async def test_a_unique_media_token_downloads_once_through_the_proxy(gw, upstream):
    issued = await (await gw.post("/token", json={"unique": True, "media": {"id": "28"}},
                                  headers=ADMIN)).json()
    url = f"/media/28?signingKey={issued['token']}"
    first = await gw.get(url)
    assert first.status == 200
    seen = await first.json()
    assert seen["headers"]["X-Auth-Token-Id"] == [issued["kid"]]
    second = await gw.get(url)
    assert second.status == 403
    assert (await second.json())["error"] == "token_used"
    other_media = await (await gw.post("/token", json={"unique": False, "media": {"id": "28"}},
                                       headers=ADMIN)).json()
    assert (await gw.get(f"/media/29?token={other_media['token']}")).status == 403
    assert len(upstream.seen) == 1


async def test_a_download_streams_back_with_its_length(make_client):
    size = 3 * 1024 * 1024 + 17

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        sent = 0
        while sent < size:
            chunk = b"z" * min(65536, size - sent)
            await response.write(chunk)
            sent += len(chunk)
        return response

    app = web.Application()
    app.router.add_get("/files/big", download)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        client = await make_client({"gateway": {"upstreams": [
            {"prefix": "/files/", "url": f"http://127.0.0.1:{server.port}"}]}})
        response = await client.get("/files/big", headers=ADMIN)
        assert response.status == 200
        assert response.headers["Content-Length"] == str(size)
        received = 0
        async for chunk in response.content.iter_chunked(65536):
            received += len(chunk)
        assert received == size
    finally:
        await server.close()


def test_upstream_timeout_is_validated():
    from gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"gateway\.upstream_timeout"):
        parse_config({"gateway": {"upstream_timeout": 0}}, {})
    assert parse_config({}, {}).gateway.upstream_timeout == 60
    assert parse_config({"gateway": {"upstream_timeout": "2 minutes"}}, {}).gateway.upstream_timeout == 120
