"""Regressions from the security review: each test is one finding, fixed."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import STORE, TOKENS
from gateway.tokens.claims import TokenKind
from tests.conftest import ADMIN_PASSWORD, add_user

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
RULES = {"gateway": {"rules": [
    {"path": "^/public", "policy": "bypass"},
    {"path": "^/admin", "methods": ["GET"], "policy": "authenticated", "roles": ["ROLE_SUPER"]},
]}}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


# /auth: a client cannot choose the path or method the rules see


async def test_a_client_sent_original_uri_cannot_override_the_proxys(make_client):
    client = await make_client(RULES)
    # Traefik sets X-Forwarded-Uri; the client adds X-Original-URI to reach a bypass rule.
    response = await client.get("/auth", headers={"X-Forwarded-Uri": "/admin/panel",
                                                  "X-Original-URI": "/public/x"})
    assert response.status == 403
    assert (await response.json())["error"] == "conflicting_forward_headers"
    # nginx sets X-Original-URI; the client adds X-Forwarded-Uri.
    response = await client.get("/auth", headers={"X-Original-URI": "/admin/panel",
                                                  "X-Forwarded-Uri": "/public/x"})
    assert response.status == 403
    # Agreeing values (or just one of them) are fine.
    agreed = await client.get("/auth", headers={"X-Original-URI": "/public/x",
                                                "X-Forwarded-Uri": "/public/x"})
    assert agreed.status == 200


async def test_a_client_sent_original_method_cannot_override_the_proxys(make_client):
    client = await make_client(RULES)
    await add_user(client.app, "alice", "alice-password")
    headers = {**basic("alice", "alice-password"), "X-Forwarded-Uri": "/admin/panel",
               "X-Forwarded-Method": "GET"}
    assert (await client.get("/auth", headers=headers)).status == 403
    assert (await client.get("/auth", headers={**headers, "X-Original-Method": "POST"})).status == 403


async def test_head_is_covered_by_a_get_rule(make_client):
    client = await make_client(RULES)
    await add_user(client.app, "alice", "alice-password")
    headers = {**basic("alice", "alice-password"), "X-Original-URI": "/admin/panel"}
    for method in ("GET", "HEAD"):
        response = await client.get("/auth", headers={**headers, "X-Original-Method": method})
        assert response.status == 403, method


async def test_a_backslash_path_is_refused_with_a_403(make_client):
    client = await make_client(RULES)
    for uri in ("/public/..\\admin", "/public/..%5Cadmin"):
        response = await client.get("/auth", headers={**ADMIN, "X-Original-URI": uri})
        assert response.status == 403, uri  # a 400 would be a 500 through nginx
        assert (await response.json())["error"] == "bad_request"


# Regulation cannot be sidestepped


async def test_the_ban_holds_for_every_spelling_of_a_login_and_every_endpoint(client):
    await add_user(client.app, "alice", "alice-password", email="alice@x.org")
    for index in range(5):
        response = await client.post("/api/token/", json={"email": "alice@x.org", "password": "nope"},
                                     headers={"X-Forwarded-For": f"198.51.100.{index}"})
        assert response.status == 401
        response = await client.post("/login", json={"username": "alice", "password": "nope"},
                                     headers={"X-Forwarded-For": f"198.51.100.{index}"})
        assert response.status == 401
    elsewhere = {"X-Forwarded-For": "203.0.113.50"}
    by_case = await client.post("/api/token/", json={"email": "ALICE@X.ORG", "password": "alice-password"},
                                headers=elsewhere)
    assert by_case.status == 429
    by_name = await client.post("/api/token/", json={"username": "ALICE", "password": "alice-password"},
                                headers=elsewhere)
    assert by_name.status == 429
    by_basic = await client.get("/api/v1alpha/token",
                                headers={**basic("Alice", "alice-password"), **elsewhere})
    assert by_basic.status == 429


async def test_concurrent_guesses_are_counted_against_each_other(client):
    async def guess() -> int:
        response = await client.post("/login", json={"username": "admin", "password": "nope"})
        return response.status

    statuses = await asyncio.gather(*(guess() for _ in range(20)))
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 15


# A one-time media token is not used up by a refused request


async def test_bad_user_credentials_do_not_spend_a_unique_token(client):
    issued = await (await client.post("/token", json={"unique": True}, headers=ADMIN)).json()
    uri = f"/media/28?signingKey={issued['token']}"
    stale = await client.get("/auth", headers={"X-Original-URI": uri,
                                               "Authorization": "Bearer stale.expired.token"})
    assert stale.status == 401
    assert (await client.get("/auth", headers={"X-Original-URI": uri})).status == 200
    assert (await client.get("/auth", headers={"X-Original-URI": uri})).status == 403


# Malformed input is a 400, never a 500


@pytest.mark.parametrize(("path", "body"), [
    ("/login", b'{"username": ' + b"1" * 5000 + b', "password": "x"}'),
    ("/login", b'{"username": "\\ud800", "password": "x"}'),
    ("/api/token/", b'{"email": "a@b", "password": "\\udfff"}'),
    ("/token/check", b'{"token": ' + b"9" * 5000 + b"}"),
])
async def test_numbers_past_the_digit_limit_and_lone_surrogates_are_400(client, path, body):
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_a_lone_surrogate_in_a_named_token_description_is_400(client):
    response = await client.post("/api/v1alpha/token", headers={**ADMIN, "Content-Type": "application/json"},
                                 data=b'{"jwt_token_description": "\\ud800", "jwt_token_life": 60}')
    assert response.status == 400


async def test_a_non_utf8_session_key_is_refused_not_a_crash(client):
    session = await (await client.post("/login", json={"username": "admin",
                                                       "password": ADMIN_PASSWORD})).json()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    request = (b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n"
               b"X-Access-Token: " + session["token"].encode() + b"\r\nX-Key: \xff"
               + session["key"].encode() + b"\r\n\r\n")
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"401"


@pytest.mark.parametrize("value", ["²", "٣", "1e3", " 5"])
async def test_non_ascii_digits_in_paging_are_400(client, value):
    response = await client.get("/api/v1alpha/token", params={"limit": value}, headers=ADMIN)
    assert response.status == 400


async def test_an_unknown_form_charset_is_400(client):
    response = await client.post("/token", data=b"unique=1", headers={
        **ADMIN, "Content-Type": "application/x-www-form-urlencoded; charset=bogus"})
    assert response.status == 400


# Revocation covers tokens kept alive by leeway


async def test_a_password_change_revokes_tokens_inside_the_leeway(make_client, clock):
    client = await make_client({"tokens": {"leeway": "2 minutes"}})
    user = await client.app[STORE].get_user("default", "admin")
    issued = await client.app[TOKENS].issue(user, TokenKind.ACCESS, 300)
    clock.advance(330)
    bearer = {"Authorization": f"Bearer {issued.token}"}
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 200
    await client.app[STORE].set_password(user.id, user.password_hash, clock())
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 401


# The proxy passes no spoofed identity, address or password upstream


async def test_the_proxy_drops_spoofed_spellings_addresses_and_passwords(make_client):
    seen: list[dict[str, list[str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append({k: request.headers.getall(k) for k in request.headers})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/app/{tail:.*}", record)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    try:
        client = await make_client({"server": {"trusted_proxies": []}, "gateway": {
            "upstreams": [{"prefix": "/app/", "url": f"http://127.0.0.1:{upstream.port}"}]}})
        await add_user(client.app, "alice", "alice-password")
        response = await client.get("/app/x", headers={
            **basic("alice", "alice-password"), "X_Auth_User": "admin", "X_Auth_Roles": "ROLE_ADMIN",
            "X-Real-IP": "10.9.9.9", "X-Forwarded-For": "10.8.8.8", "Forwarded": "for=10.7.7.7"})
        assert response.status == 200
    finally:
        await upstream.close()
    headers = seen[0]
    assert "X_Auth_User" not in headers and "X_Auth_Roles" not in headers
    assert headers["X-Auth-User"] == ["alice"]
    assert headers["X-Real-IP"] == ["127.0.0.1"]
    assert headers["X-Forwarded-For"] == ["127.0.0.1"], "an untrusted peer's chain is not kept"
    assert "Forwarded" not in headers
    assert "Authorization" not in headers, "a Basic password goes no further than the gateway"
