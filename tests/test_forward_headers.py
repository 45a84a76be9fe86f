"""Hostile client headers through real nginx and Caddy, configured with the README's
snippets as they are written there (only addresses swapped for loopback ports).

A client may send anything: the other proxy's headers (``X-Forwarded-Uri`` through nginx,
``X-Original-URI`` through Caddy), duplicates, garbage, forged identity headers. Whatever
it sends, no answer is a 500 (nginx turns any ``/auth`` status but 2xx, 401 and 403 into
one), and no path or method the proxy named is replaced by the client's: a protected path
stays protected. Each front runs with ``gateway.forward_auth.headers`` on ``auto`` and on
its own family, and nginx also with a snippet that does not drop the other proxy's
headers, so the gateway holds on its own too. docs/forward-auth.md describes the setting.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.caddy import Caddy
from tests.conftest import free_port
from tests.nginx import README_SNIPPET, Nginx, template_of
from tests.readme import on_loopback, readme_block
from tests.servers import Server, clean_env

PASSWORD = "admin-password-123"
ADMIN = ("Authorization", "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode())
CONFIG = """\
storage: {{path: ./state/gateway.db}}
gateway:
  forward_auth: {{headers: {headers}}}
  rules:
    - {{path: '^/public/', policy: bypass}}
    - {{path: '^/admin', policy: authenticated, roles: [ROLE_SUPER]}}
    - {{path: '^/upload', methods: [PUT, POST, DELETE], policy: deny}}
"""
#: The README's Caddy site as written, served over plain HTTP on a loopback port.
CADDY_GLOBAL = "{\n    auto_https off\n    admin off\n}\n"
#: The lines of the README's snippets that drop the other proxy's headers.
NGINX_DROPS = ('proxy_set_header X-Forwarded-Uri "";', 'proxy_set_header X-Forwarded-Method "";')
CADDY_DROPS = ("header_up -X-Original-URI", "header_up -X-Original-Method")


@dataclass
class Front:
    """A proxy in front of a gateway and an upstream that records what reaches it."""

    name: str
    port: int
    hardened: bool  # the README's snippet as written (False: without its drop lines)
    seen: list[dict[str, str]] = field(default_factory=list)


def without(snippet: str, lines: tuple[str, ...]) -> str:
    kept = [line for line in snippet.splitlines(keepends=True) if not any(drop in line for drop in lines)]
    assert len(kept) == len(snippet.splitlines()) - len(lines), "the README snippet changed"
    return "".join(kept)


@pytest.fixture(params=[
    ("nginx", "nginx", True), ("nginx", "auto", True),
    ("nginx", "nginx", False), ("nginx", "auto", False),
    ("caddy", "forwarded", True), ("caddy", "auto", True), ("caddy", "auto", False),
], ids=lambda p: f"{p[0]}-{p[1]}-{'readme' if p[2] else 'no-drops'}")
async def front(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Front]:
    name, headers, hardened = request.param
    seen: list[dict[str, str]] = []

    async def record(incoming: web.Request) -> web.Response:
        seen.append({"method": incoming.method, "path": incoming.path_qs,
                     **{k: v for k, v in incoming.headers.items() if k.lower().startswith("x-auth-")}})
        return web.Response(text="upstream")

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", record)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(headers=headers))
    gateway = Server(tmp_path, config, clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD))
    proxy: Nginx | Caddy
    if name == "nginx":
        snippet = README_SNIPPET if hardened else without(README_SNIPPET, NGINX_DROPS)
        proxy = Nginx(tmp_path / "nginx", gateway.port, upstream.port, template=template_of(snippet))
    else:
        site = readme_block("Caddy `forward_auth`", "caddyfile")
        site = site if hardened else without(site, CADDY_DROPS)
        port = free_port()
        site = on_loopback(site, gateway=gateway.port, upstream=upstream.port).replace(
            "app.example.com {", f"http://127.0.0.1:{port} {{\n    bind 127.0.0.1", 1)
        proxy = Caddy(tmp_path / "caddy", CADDY_GLOBAL + site, port)
    try:
        await asyncio.gather(gateway.wait_ready(), proxy.wait_ready())
        yield Front(name, proxy.port, hardened, seen)
    finally:
        proxy.stop()
        assert gateway.stop() == 0, gateway.output()
        await upstream.close()


async def send(front: Front, method: str, target: str, *headers: tuple[str, str]) -> int:
    """Send one request byte for byte as given (duplicates, odd bytes and all); its status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(["Content-Length: 0"] if method in ("PUT", "POST") else []),
             *(f"{name}: {value}" for name, value in headers)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    assert status != 500, f"{method} {target} {headers!r} through {front.name}: 500"
    if status == 400:
        # Only the proxy's own refusal of what it will not forward (Caddy: a control
        # character; nginx: two Authorization headers); /auth itself never answers 400.
        assert b'"error"' not in answer, (target, headers, answer)
    return status


def refused(status: int) -> bool:
    return status in (400, 401, 403)


#: Headers a client adds to name another path than the one it asks for.
OTHER_PATH = [
    [("X-Forwarded-Uri", "/public/x")],
    [("X-Original-URI", "/public/x")],
    [("X-Forwarded-Uri", "/public/x"), ("X-Original-URI", "/public/x")],
    [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Uri", "/public/y")],
    [("X-Original-URI", "/public/x"), ("X-Original-URI", "/public/x")],
    [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "evil"),
     ("X-Forwarded-Proto", "https")],
]
#: Garbage in the headers /auth reads, and in the ones every request has.
GARBAGE = [
    [("X-Forwarded-Uri", "")],
    [("X-Forwarded-Uri", "public/x")],
    [("X-Original-URI", "%ff%00")],
    [("X-Forwarded-Uri", "/public/..\\admin")],
    [("X-Forwarded-Uri", "/public/\x01x")],
    [("X-Forwarded-Method", "G E T")],
    [("X-Original-Method", "")],
    [("X-Forwarded-Uri", "/public/" + "x" * 6000)],
    [("X-TENANT-ID", "nope")],
    [("X-TENANT-ID", "default"), ("X-TENANT-ID", "default")],
    [("X-TENANT-ID", "")],
    [("Authorization", "Basic !!!")],
    [("Authorization", "Bearer a.b.c")],
    [("X-Access-Token", "garbage")],
    [("X-Request-ID", "\x7f" * 10)],
    [("X-Request-ID", "\x01")],
    [("X-Key", "\x7f"), ("X-Access-Token", "a\x1bb")],
    [("Authorization", "Basic \x01\x02")],
    [(f"X-Junk-{index}", "x") for index in range(140)],
]


async def test_a_client_cannot_open_a_protected_path(front: Front) -> None:
    for headers in OTHER_PATH + GARBAGE:
        for path in ("/private", "/admin/panel", "/public/../admin/panel", "/public/..%5Cadmin"):
            assert refused(await send(front, "GET", path, *headers)), (path, headers)
        # Good credentials, a role the rule wants that the user lacks: still refused.
        assert refused(await send(front, "GET", "/admin/panel", ADMIN, *headers)), headers
    assert front.seen == []


async def test_a_client_cannot_change_the_method_the_rules_see(front: Front) -> None:
    for headers in ([("X-Forwarded-Method", "GET")], [("X-Original-Method", "GET")],
                    [("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")],
                    [("X-Forwarded-Method", "GET"), ("X-Forwarded-Method", "HEAD")]):
        for method in ("PUT", "POST", "DELETE"):
            assert await send(front, method, "/upload/file", ADMIN, *headers) == 403, (method, headers)
    assert front.seen == []


async def test_forged_identity_headers_never_reach_the_app(front: Front) -> None:
    forged = [("X-Auth-User", "root"), ("X-Auth-Roles", "ROLE_SUPER"), ("X-Auth-Tenant", "acme"),
              ("X-Auth-Token-Id", "forged")]
    assert await send(front, "GET", "/public/page", *forged) == 200
    assert front.seen[-1].get("X-Auth-User", "") == ""
    assert front.seen[-1].get("X-Auth-Roles", "") == ""
    assert front.seen[-1].get("X-Auth-Token-Id", "") == ""
    assert await send(front, "GET", "/private", ADMIN, *forged) == 200
    assert front.seen[-1]["X-Auth-User"] == "admin"
    assert front.seen[-1]["X-Auth-Roles"] == "ROLE_ADMIN"
    assert front.seen[-1]["X-Auth-Tenant"] == "default"


async def test_with_the_readme_snippet_the_other_proxys_headers_are_harmless(front: Front) -> None:
    # Dropped by the snippet (or ignored by the gateway's setting): a request that may pass
    # still passes, as what the proxy named.
    other = ([("X-Forwarded-Uri", "/admin/x"), ("X-Forwarded-Method", "DELETE")] if front.name == "nginx"
             else [("X-Original-URI", "/admin/x"), ("X-Original-Method", "DELETE")])
    status = await send(front, "GET", "/private?x=1", ADMIN, *other)
    if front.hardened:
        assert status == 200
        assert front.seen[-1]["path"] == "/private?x=1" and front.seen[-1]["method"] == "GET"
    else:
        assert status in (200, 403)  # 403 on auto: the two disagree


async def test_a_regulated_login_is_refused_not_a_500(front: Front) -> None:
    wrong = ("Authorization", "Basic " + base64.b64encode(b"admin:wrong-password").decode())
    statuses = [await send(front, "GET", "/private", wrong) for _ in range(6)]
    assert statuses == [401] * 5 + [403]
    assert front.seen == []
