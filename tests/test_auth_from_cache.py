"""``/auth`` answered from the identity cache before the router (``answer_from_cache``)
answers exactly what the full path answers.

Two apps on one database: one served by ``GatewayRunner`` as ``gateway serve`` serves it
(the cache is asked first), one by aiohttp's plain ``AppRunner`` (always the full path).
Every request goes to both, twice (so the second finds the cache warm), and the answers
must agree: status, identity headers, challenge and error body. Revocations must hold on
the very next request either way.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
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
