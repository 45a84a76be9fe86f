"""``/auth`` and token verification answered early from the identity cache
(``gateway.early``: ``forward_auth.CachedAnswers``, ``access_refresh.CachedVerify``) answer
exactly what the full path answers.

Two apps on one database: one served by ``GatewayRunner`` as ``gateway serve`` serves it
(the cache is asked first: by the connection for requests on a keep-alive connection, as
the client's sessions send them, else before the router), one by aiohttp's plain
``AppRunner`` (always the full path).
Every request goes to both, twice (so the second finds the cache warm), and the answers
must agree: status, identity headers, challenge and error body. Revocations must hold on
the very next request either way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.appkeys import SETTINGS
from gateway.runner import GatewayRunner
from tests.conftest import ADMIN_PASSWORD, Clock, make_config

IDENTITY = ("X-Auth-User", "X-Auth-Roles", "X-Auth-Tenant", "X-Auth-Token-Id")
RULES = {
    "gateway": {"rules": [
        {"path": "^/closed", "policy": "deny"},
        {"path": "^/open", "policy": "bypass"},
        {"path": "^/staff", "policy": "authenticated", "roles": ["ROLE_STAFF"]},
        {"path": "^/admins", "policy": "authenticated", "roles": ["ROLE_ADMIN"]},
    ]},
    "tenants": {"default": {}, "acme": {}},
}


async def serve(runner: web.AppRunner) -> str:
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def servers(tmp_path: Path, clock: Clock) -> AsyncIterator[tuple[str, str]]:
    fast = GatewayRunner(create_app(make_config(tmp_path, RULES), clock=clock))
    plain = web.AppRunner(create_app(make_config(tmp_path, RULES), clock=clock))
    try:
        yield await serve(fast), await serve(plain)
    finally:
        await fast.cleanup()
        await plain.cleanup()


async def answer(session: aiohttp.ClientSession, base: str, headers: dict[str, str]
                 ) -> tuple[Any, ...]:
    async with session.get(f"{base}/auth", headers=headers) as response:
        body = await response.read()
        assert response.status != 500
        assert response.headers.get("X-Request-ID")
        return (response.status, tuple(response.headers.get(name) for name in IDENTITY),
                response.headers.get("WWW-Authenticate"), body if response.status != 200 else b"")


async def agree(session: aiohttp.ClientSession, servers: tuple[str, str],
                headers: dict[str, str]) -> tuple[Any, ...]:
    fast, plain = servers
    first = await answer(session, plain, headers)
    for _ in range(3):  # cold, then warm in the fast server's cache
        assert await answer(session, fast, headers) == first, headers
    assert await answer(session, plain, headers) == first
    return first


async def test_every_case_answers_as_the_full_path(servers: tuple[str, str]) -> None:
    fast, _ = servers
    async with aiohttp.ClientSession() as session:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        async with session.post(f"{fast}/api/token/", json=login) as response:
            access = (await response.json())["access"]
        async with session.post(f"{fast}/login", json=login) as response:
            session_token = await response.json()
        async with session.post(f"{fast}/api/v1alpha/token", json={
                "jwt_token_description": "ci", "jwt_token_life": 600},
                headers={"Authorization": f"Bearer {access}"}) as response:
            named = (await response.json())["jwt_token"]
        basic = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()

        def at(path: str, **extra: str) -> dict[str, str]:
            return {"X-Original-URI": path, "X-Original-Method": "GET", **extra}

        credentials = {
            "bearer": {"Authorization": f"Bearer {access}"},
            "named": {"Authorization": f"Bearer {named}"},
            "session": {"X-Access-Token": session_token["token"], "X-Key": session_token["key"]},
            "wrong key": {"X-Access-Token": session_token["token"], "X-Key": "not-the-key"},
            "basic": {"Authorization": basic},
            "garbage": {"Authorization": "Bearer not.a.token"},
            "none": {},
        }
        passed = 0
        for credential in credentials.values():
            for path in ("/app", "/closed", "/open", "/staff", "/admins", "/media/28"):
                for tenant in ({}, {"X-TENANT-ID": "acme"}, {"X-TENANT-ID": "nope"}):
                    status = (await agree(session, servers, at(path, **credential, **tenant)))[0]
                    passed += status == 200
        assert passed >= 4  # some cases do pass: the comparison is not of refusals only
        # The original request named twice, differently: a refusal either way.
        conflicting = at("/app", **credentials["bearer"], **{"X-Forwarded-Uri": "/open"})
        assert (await agree(session, servers, conflicting))[0] == 403


async def test_a_revocation_holds_on_the_next_request(servers: tuple[str, str]) -> None:
    fast, plain = servers
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fast}/login", json={"username": "admin",
                                                        "password": ADMIN_PASSWORD}) as response:
            issued = await response.json()
        headers = {"X-Access-Token": issued["token"], "X-Key": issued["key"],
                   "X-Original-URI": "/app"}
        for _ in range(5):
            assert (await answer(session, fast, headers))[0] == 200
        async with session.post(f"{plain}/logout", headers=headers) as response:
            assert response.status == 200  # revoked through the other app
        assert (await answer(session, fast, headers))[0] == 401


async def test_a_remembered_answer_follows_expiry_reload_and_repeated_headers(
        tmp_path: Path, clock: Clock) -> None:
    """What a token proved is remembered by the fast path; it still ends at the token's
    expiry, takes a reloaded config's header names at once, and never answers a request
    whose tenant or original URI is named twice."""
    config = make_config(tmp_path, {**RULES, "tokens": {"access_lifetime": 60}})
    app = create_app(config, clock=clock)
    runner = GatewayRunner(app)
    base = await serve(runner)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/token/", json={
                    "username": "admin", "password": ADMIN_PASSWORD}) as response:
                access = (await response.json())["access"]
            headers = {"Authorization": f"Bearer {access}", "X-Original-URI": "/app"}
            for _ in range(3):
                assert (await answer(session, base, headers))[1][0] == "admin"

            renamed = make_config(tmp_path, {**RULES, "tokens": {"access_lifetime": 60},
                                             "gateway": {**RULES["gateway"],
                                                         "headers": {"user": "X-Who"}}})
            app[SETTINGS].replace(renamed)
            async with session.get(f"{base}/auth", headers=headers) as response:
                assert response.status == 200
                assert response.headers["X-Who"] == "admin" and "X-Auth-User" not in response.headers

            # Named twice: the full path decides (400 → 403 on /auth for the tenant,
            # 403 for URIs that disagree, 200 for URIs that agree).
            twice_tenant = [("Authorization", f"Bearer {access}"), ("X-Original-URI", "/app"),
                            ("X-TENANT-ID", "default"), ("X-TENANT-ID", "default")]
            async with session.get(f"{base}/auth", headers=twice_tenant) as response:
                assert response.status == 403
            disagreeing = [("Authorization", f"Bearer {access}"), ("X-Original-URI", "/app"),
                           ("X-Original-URI", "/open")]
            async with session.get(f"{base}/auth", headers=disagreeing) as response:
                assert response.status == 403
            agreeing = [("Authorization", f"Bearer {access}"), ("X-Original-URI", "/app"),
                        ("X-Original-URI", "/app")]
            async with session.get(f"{base}/auth", headers=agreeing) as response:
                assert response.status == 200

            clock.advance(61)
            assert (await answer(session, base, headers))[0] == 401
    finally:
        await runner.cleanup()


async def test_media_urls_answer_as_the_full_path(servers: tuple[str, str], clock: Clock) -> None:
    """A media token that the cache holds is answered before the router only when it alone
    decides; every restriction answers as the full path does, warm or cold."""
    fast, _ = servers
    async with aiohttp.ClientSession() as session:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        async with session.post(f"{fast}/api/token/", json=login) as response:
            access = (await response.json())["access"]
        admin = {"Authorization": f"Bearer {access}"}

        async def media(body: dict[str, Any]) -> str:
            async with session.post(f"{fast}/token", json={"unique": False, **body},
                                    headers=admin) as response:
                assert response.status == 201, await response.text()
                return str((await response.json())["token"])

        tokens = {
            "any": await media({}),
            "media 28": await media({"media": {"id": "28"}}),
            "media 29": await media({"media": {"id": "29"}}),
            "elsewhere": await media({"ipRange": ["10.0.0.0/8"]}),
            "loopback": await media({"ipRange": ["127.0.0.0/8"]}),
            "for alice": await media({"user": {"username": "alice"}}),
            "for admin": await media({"user": {"username": "admin"}}),
            "later": await media({"start": 600, "expire": 3600}),
            "short": await media({"expire": 30}),
        }
        users = {"nobody": {}, "admin": admin, "garbage": {"Authorization": "Bearer not.a.token"},
                 "another tenant": {"X-TENANT-ID": "acme"}}
        passed = 0
        for _ in range(2):  # the second round after the short token expired
            for token in tokens.values():
                for path in ("/media/28", "/media/29", "/closed/media/28", "/staff/media/28"):
                    for param in ("signingKey", "token"):
                        for user in users.values():
                            headers = {"X-Original-URI": f"{path}?{param}={token}", **user}
                            passed += (await agree(session, servers, headers))[0] == 200
            clock.advance(60)
        assert passed >= 20

        once = await media({"unique": True})
        headers = {"X-Original-URI": f"/media/28?signingKey={once}"}
        assert (await answer(session, fast, headers))[0] == 200
        assert (await answer(session, fast, headers))[0] == 403  # one use, not remembered


async def test_token_verify_answers_as_the_full_path(servers: tuple[str, str]) -> None:
    """``POST /api/token/verify/`` answered from the cache says what the full path says,
    for every body, content type and tenant; a blacklisted token fails at once."""
    fast, plain = servers
    async with aiohttp.ClientSession() as session:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        async with session.post(f"{fast}/api/token/", json=login) as response:
            pair = await response.json()
        async with session.post(f"{fast}/login", json=login) as response:
            session_token = (await response.json())["token"]

        async def verify(base: str, path: str, body: bytes, headers: dict[str, str]
                         ) -> tuple[Any, ...]:
            async with session.post(f"{base}{path}", data=body, headers=headers) as response:
                assert response.status != 500
                assert response.headers.get("X-Request-ID")
                return response.status, response.headers.get("Content-Type"), await response.read()

        json_type = {"Content-Type": "application/json"}
        cases = [
            (json.dumps({"token": pair["access"]}).encode(), json_type),
            (json.dumps({"token": pair["refresh"]}).encode(), json_type),
            (json.dumps({"token": session_token}).encode(), json_type),
            (json.dumps({"token": pair["access"], "extra": 1}).encode(), json_type),
            (json.dumps({"token": pair["access"]}).encode(), {**json_type, "X-TENANT-ID": "acme"}),
            (json.dumps({"token": pair["access"]}).encode(), {**json_type, "X-TENANT-ID": "nope"}),
            (json.dumps({"token": pair["access"]}).encode("utf-16"), json_type),
            (json.dumps({"token": pair["access"] + " "}).encode(), json_type),
            (json.dumps({"token": None}).encode(), json_type),
            (json.dumps([pair["access"]]).encode(), json_type),
            (b"", json_type),
            (b"{", json_type),
            (f"token={pair['access']}".encode(), {"Content-Type": "application/x-www-form-urlencoded"}),
            (json.dumps({"token": pair["access"]}).encode(), {"Content-Type": "text/plain"}),
        ]
        passed = 0
        for path in ("/api/token/verify/", "/api/token/verify"):
            for body, headers in cases:
                first = await verify(plain, path, body, headers)
                for _ in range(3):
                    assert await verify(fast, path, body, headers) == first, (path, body, headers)
                passed += first[0] == 200
        assert passed >= 4

        body = json.dumps({"token": pair["access"]}).encode()
        async with session.post(f"{plain}/api/token/blacklist/",
                                json={"refresh": pair["refresh"]}) as response:
            assert response.status == 200
        refresh_body = json.dumps({"token": pair["refresh"]}).encode()
        assert (await verify(fast, "/api/token/verify/", refresh_body, json_type))[0] == 401
        # The family's access token: whatever the full path says, the fast path says at once.
        assert (await verify(fast, "/api/token/verify/", body, json_type)
                == await verify(plain, "/api/token/verify/", body, json_type))
