"""End to end with real nginx: ``auth_request`` to a real gateway, in front of an upstream."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.nginx import CONFIG, KEEPALIVE_CONFIG, Nginx
from tests.servers import Server, clean_env

PASSWORD = "admin-password-123"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture(params=[CONFIG, KEEPALIVE_CONFIG], ids=["connection-per-request", "kept-open"])
async def stack(tmp_path: Path, request: pytest.FixtureRequest):
    """nginx → gateway (/auth) and nginx → upstream; the upstream records what reaches it.
    nginx as the README configures it: a connection per ``auth_request``, or kept open."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, **{k: v for k, v in request.headers.items()
                                                   if k.lower().startswith("x-auth-")}})
        return web.Response(text=f"content of {request.path}")

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", record)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage: {path: ./state/gateway.db}\n"
        "gateway:\n"
        "  rules:\n"
        "    - {path: '^/public/', policy: bypass}\n"
        "    - {path: '^/admin', policy: authenticated, roles: [ROLE_SUPER]}\n"
    )
    gateway = Server(tmp_path, config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD))
    nginx = Nginx(tmp_path / "nginx", gateway.port, upstream.port, template=request.param)
    try:
        await asyncio.gather(gateway.wait_ready(), nginx.wait_ready())
        yield nginx, gateway, seen
    finally:
        nginx.stop()
        assert gateway.stop() == 0, gateway.output()
        await upstream.close()


def open_connections(port: int) -> int:
    """Established TCP connections accepted on the loopback ``port`` (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        if int(local.rpartition(":")[2], 16) == port and state == "01":
            count += 1
    return count


async def get(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None):
    async with http.get(url, headers=headers) as response:
        return response.status, await response.text()


async def test_nginx_auth_request_end_to_end(stack):
    nginx, gateway, seen = stack
    async with aiohttp.ClientSession() as http:
        # No credentials: 401 from nginx (which passes the gateway's challenge on), and
        # nothing reaches the upstream.
        async with http.get(f"{nginx.url}/hello") as response:
            assert response.status == 401
            assert "Basic" in response.headers.get("WWW-Authenticate", "")
        assert seen == []

        # Good credentials: 200, the user header reaches the upstream; the client's own
        # X-Auth-User is replaced, never passed on.
        status, body = await get(http, f"{nginx.url}/hello", {**ADMIN, "X-Auth-User": "root"})
        assert (status, body) == (200, "content of /hello")
        assert seen[-1]["X-Auth-User"] == "admin"
        assert seen[-1]["X-Auth-Tenant"] == "default"
        assert seen[-1]["X-Auth-Roles"] == "ROLE_ADMIN"

        # Bypass rule: no credentials needed.
        assert (await get(http, f"{nginx.url}/public/logo.png"))[0] == 200

        # Good credentials, but the rule wants a role the user lacks: 403.
        count = len(seen)
        assert (await get(http, f"{nginx.url}/admin/panel", ADMIN))[0] == 403
        assert (await get(http, f"{nginx.url}/public/../admin/panel", ADMIN))[0] == 403
        assert len(seen) == count

        # A one-time media token downloads exactly once through nginx.
        async with http.post(f"{gateway.url}/token", headers=ADMIN,
                             json={"unique": True, "media": {"id": "28"}}) as response:
            assert response.status == 201
            issued = await response.json()
        url = f"{nginx.url}/media/28?signingKey={issued['token']}"
        status, body = await get(http, url)
        assert (status, body) == (200, "content of /media/28")
        assert seen[-1]["X-Auth-Token-Id"] == issued["kid"]
        assert (await get(http, url))[0] == 403
        assert (await get(http, f"{nginx.url}/media/29?signingKey={issued['token']}"))[0] == 403


async def test_a_token_used_again_and_again_is_refused_after_logout(stack):
    nginx, gateway, seen = stack
    # Straight to the gateway on connections closed after each answer: the only ones left
    # open to it are nginx's.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as direct, \
            aiohttp.ClientSession() as http:
        async with direct.post(f"{gateway.url}/login",
                               json={"username": "admin", "password": PASSWORD}) as response:
            login = await response.json()
        session = {"X-Access-Token": login["token"], "X-Key": login["key"]}
        for _ in range(20):
            assert await get(http, f"{nginx.url}/hello", session) == (200, "content of /hello")
        assert seen[-1]["X-Auth-User"] == "admin"
        # Kept open: nginx's connections to the gateway outlive the requests.
        assert (open_connections(gateway.port) > 0) == ("keepalive" in nginx.config_text)
        async with direct.post(f"{gateway.url}/logout", headers=session) as response:
            assert response.status == 200
        assert (await get(http, f"{nginx.url}/hello", session))[0] == 401
