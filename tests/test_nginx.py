"""End to end with real nginx: ``auth_request`` to a real gateway, in front of an upstream."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.nginx import Nginx
from tests.servers import Server, clean_env

PASSWORD = "admin-password-123"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture
async def stack(tmp_path: Path):
    """nginx → gateway (/auth) and nginx → upstream; the upstream records what reaches it."""
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
    nginx = Nginx(tmp_path / "nginx", gateway.port, upstream.port)
    try:
        await asyncio.gather(gateway.wait_ready(), nginx.wait_ready())
        yield nginx, gateway, seen
    finally:
        nginx.stop()
        assert gateway.stop() == 0, gateway.output()
        await upstream.close()


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
