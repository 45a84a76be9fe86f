"""docs/login.md (seed 003): POST /login and POST /logout, every status and body."""

from __future__ import annotations

import io
import uuid

import pytest
from jose import jwt

from gateway.appkeys import STORE
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, add_user

ERROR = {"status": "error"}


async def login(client, username, password, **kwargs):
    return await client.post("/login", json={"username": username, "password": password}, **kwargs)


async def session_of(client, username="admin", password=ADMIN_PASSWORD, **kwargs):
    response = await login(client, username, password, **kwargs)
    assert response.status == 200, await response.text()
    return await response.json()


def session_headers(session, **extra):
    return {"X-Access-Token": session["token"], "X-Key": session["key"], **extra}


# POST /login: success


async def test_login_answers_the_seed_body(client, clock):
    body = await session_of(client)
    assert set(body) == {"key", "username", "expires", "token", "role"}
    assert uuid.UUID(body["key"]).version == 4
    assert body["username"] == "admin"
    assert body["role"] == 0
    assert body["expires"] == (int(clock.now) + 86400) * 1000


async def test_login_token_is_a_typed_hs256_jwt_a_downstream_can_verify(client, clock):
    body = await session_of(client)
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "HS256" and header["kid"]
    claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["token_type"] == "session"
    assert claims["username"] == "admin"
    assert claims["tenant"] == "default"
    assert claims["iss"] == "gateway"
    assert claims["exp"] * 1000 == body["expires"]
    assert claims["exp"] - claims["iat"] == 86400
    assert claims["jti"]


@pytest.mark.parametrize(("role", "expected"), [(0, 0), (1, 1), (2, 2)])
async def test_login_role_is_the_seed_number(client, role, expected):
    await add_user(client.app, "100@mydomain.com", "secret-pass", role=role)
    body = await session_of(client, "100@mydomain.com", "secret-pass")
    assert body["role"] == expected
    assert body["username"] == "100@mydomain.com"


async def test_session_lifetime_comes_from_config(make_client, clock):
    client = await make_client({"tokens": {"session_lifetime": "2 hours"}})
    body = await session_of(client)
    assert body["expires"] == (int(clock.now) + 7200) * 1000


async def test_each_login_is_a_new_session(client):
    first = await session_of(client)
    second = await session_of(client)
    assert first["key"] != second["key"] and first["token"] != second["token"]


# POST /login: errors


@pytest.mark.parametrize("payload", [
    {},
    {"username": "admin"},
    {"password": ADMIN_PASSWORD},
    {"username": "", "password": ADMIN_PASSWORD},
    {"username": "admin", "password": ""},
    {"username": 5, "password": ADMIN_PASSWORD},
    {"username": "admin", "password": ["x"]},
    {"username": None, "password": None},
])
async def test_login_without_username_or_password_is_400(client, payload):
    response = await client.post("/login", json=payload)
    assert response.status == 400
    assert await response.json() == {**ERROR, "info": "User name is required"}


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\xff\xfe", b'"text"', b"{" * 100000])
async def test_login_with_a_malformed_body_is_a_clear_400(client, raw):
    response = await client.post("/login", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["status"] == "error" and body["info"]


async def test_login_with_a_huge_body_is_413_not_a_crash(client):
    response = await client.post("/login", data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    assert response.status == 413
    assert (await response.json())["status"] == "error"
    assert (await client.get("/healthz")).status == 200


async def test_wrong_password_is_401(client):
    response = await login(client, "admin", "wrong-password")
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Invalid credentials"}


async def test_unknown_user_is_401_by_default(client):
    response = await login(client, "nobody", "whatever-pass")
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Invalid credentials"}


async def test_unknown_user_is_404_when_revealed(make_client):
    client = await make_client({"login": {"reveal_unknown_user": True}})
    response = await login(client, "nobody", "whatever-pass")
    assert response.status == 404
    assert await response.json() == {**ERROR, "info": "User not found"}
    wrong = await login(client, "admin", "wrong-password")
    assert wrong.status == 401
    assert await wrong.json() == {**ERROR, "info": "Invalid credentials"}


async def test_disabled_user_cannot_log_in(client, clock):
    user = await add_user(client.app, "alice", "alice-password")
    await client.app[STORE].set_disabled(user.id, True, clock())
    response = await login(client, "alice", "alice-password")
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Invalid credentials"}
    await client.app[STORE].set_disabled(user.id, False, clock())
    assert (await login(client, "alice", "alice-password")).status == 200


async def test_usernames_are_per_tenant(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "bob", "acme-password", tenant="acme")
    assert (await login(client, "bob", "acme-password")).status == 401
    ok = await login(client, "bob", "acme-password", headers={"X-TENANT-ID": "acme"})
    assert ok.status == 200
    claims = jwt.get_unverified_claims((await ok.json())["token"])
    assert claims["tenant"] == "acme"


async def test_unknown_tenant_is_400(client):
    response = await login(client, "admin", ADMIN_PASSWORD, headers={"X-TENANT-ID": "nope"})
    assert response.status == 400
    assert await response.json() == {**ERROR, "info": "Unknown tenant 'nope'"}


# Regulation (429)


async def test_failures_ban_the_account_then_the_ban_ends(client, clock):
    for _ in range(5):
        assert (await login(client, "admin", "wrong-password")).status == 401
    banned = await login(client, "admin", ADMIN_PASSWORD)
    assert banned.status == 429
    assert (await banned.json())["status"] == "error"
    assert 0 < int(banned.headers["Retry-After"]) <= 300
    clock.advance(301)
    assert (await login(client, "admin", ADMIN_PASSWORD)).status == 200


async def test_account_ban_holds_from_every_address(client):
    for index in range(5):
        headers = {"X-Forwarded-For": f"198.51.100.{index}"}
        assert (await login(client, "admin", "wrong-password", headers=headers)).status == 401
    other = await login(client, "admin", ADMIN_PASSWORD, headers={"X-Forwarded-For": "203.0.113.7"})
    assert other.status == 429


async def test_address_ban_holds_for_every_account(make_client):
    client = await make_client({"login": {"regulation": {"max_retries_per_address": 5}}})
    await add_user(client.app, "alice", "alice-password")
    attacker = {"X-Forwarded-For": "198.51.100.9"}
    for index in range(5):
        assert (await login(client, f"user{index}", "guess-password", headers=attacker)).status == 401
    assert (await login(client, "alice", "alice-password", headers=attacker)).status == 429
    elsewhere = {"X-Forwarded-For": "203.0.113.7"}
    assert (await login(client, "alice", "alice-password", headers=elsewhere)).status == 200


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(make_client):
    client = await make_client({"server": {"trusted_proxies": ["10.0.0.0/8"]},
                                "login": {"regulation": {"max_retries_per_address": 5}}})
    for index in range(5):
        headers = {"X-Forwarded-For": f"198.51.100.{index}"}
        assert (await login(client, f"user{index}", "guess-password", headers=headers)).status == 401
    # Every failure counted for the real peer (127.0.0.1), whatever the header claimed.
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    assert (await login(client, "admin", ADMIN_PASSWORD, headers=spoofed)).status == 429


async def test_failures_spread_wider_than_find_time_do_not_ban(client, clock):
    for _ in range(5):
        assert (await login(client, "admin", "wrong-password")).status == 401
        clock.advance(31)
    assert (await login(client, "admin", ADMIN_PASSWORD)).status == 200


async def test_success_clears_the_account_failures(client):
    for _ in range(4):
        await login(client, "admin", "wrong-password")
    assert (await login(client, "admin", ADMIN_PASSWORD)).status == 200
    assert (await login(client, "admin", "wrong-password")).status == 401
    assert (await login(client, "admin", ADMIN_PASSWORD)).status == 200


async def test_regulation_off_with_zero_retries(make_client):
    client = await make_client({"login": {"regulation": {"max_retries": 0}}})
    for _ in range(8):
        assert (await login(client, "admin", "wrong-password")).status == 401
    assert (await login(client, "admin", ADMIN_PASSWORD)).status == 200


# POST /logout


async def test_logout_answers_the_seed_body(client):
    session = await session_of(client)
    response = await client.post("/logout", headers=session_headers(session))
    assert response.status == 200
    assert await response.json() == {"status": "OK", "info": "Successful logout."}


async def test_session_is_rejected_after_logout(client):
    session = await session_of(client)
    assert (await client.post("/logout", headers=session_headers(session))).status == 200
    again = await client.post("/logout", headers=session_headers(session))
    assert again.status == 401
    assert await again.json() == {**ERROR, "info": "Bad caller"}


async def test_logout_ends_only_that_session(client):
    first, second = await session_of(client), await session_of(client)
    assert (await client.post("/logout", headers=session_headers(first))).status == 200
    assert (await client.post("/logout", headers=session_headers(second))).status == 200


@pytest.mark.parametrize("headers", [
    {},
    {"X-Key": "8fd26a17-eb28-4c74-aa6f-a3794f4f466c"},
    {"X-Access-Token": "not-a-jwt", "X-Key": "8fd26a17-eb28-4c74-aa6f-a3794f4f466c"},
    {"Authorization": "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtMTIz"},
])
async def test_logout_without_a_session_is_a_bad_caller(client, headers):
    response = await client.post("/logout", headers=headers)
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Bad caller"}


async def test_logout_without_the_key_is_a_bad_caller(client):
    session = await session_of(client)
    response = await client.post("/logout", headers={"X-Access-Token": session["token"]})
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Bad caller"}
    assert (await client.post("/logout", headers=session_headers(session))).status == 200


async def test_a_key_of_another_session_is_rejected(client):
    first, second = await session_of(client), await session_of(client)
    crossed = {"X-Access-Token": first["token"], "X-Key": second["key"]}
    response = await client.post("/logout", headers=crossed)
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Bad caller"}
    assert (await client.post("/logout", headers=session_headers(first))).status == 200


async def test_an_expired_session_is_a_bad_caller(client, clock):
    session = await session_of(client)
    clock.advance(86400 + 1)
    response = await client.post("/logout", headers=session_headers(session))
    assert response.status == 401


async def test_a_session_of_a_disabled_user_is_rejected(client, clock):
    user = await add_user(client.app, "alice", "alice-password")
    session = await session_of(client, "alice", "alice-password")
    await client.app[STORE].set_disabled(user.id, True, clock())
    response = await client.post("/logout", headers=session_headers(session))
    assert response.status == 401
    assert await response.json() == {**ERROR, "info": "Bad caller"}
    # Enabling the user again does not bring the revoked session back.
    await client.app[STORE].set_disabled(user.id, False, clock())
    assert (await client.post("/logout", headers=session_headers(session))).status == 401


async def test_a_password_change_ends_every_session(client, clock):
    user = await add_user(client.app, "alice", "alice-password")
    session = await session_of(client, "alice", "alice-password")
    await client.app[STORE].set_password(user.id, user.password_hash, clock())
    assert (await client.post("/logout", headers=session_headers(session))).status == 401


async def test_logout_accepts_query_parameters(client):
    session = await session_of(client)
    response = await client.post(
        "/logout", params={"access_token": session["token"], "x_key": session["key"]}
    )
    assert response.status == 200


async def test_a_session_of_another_tenant_is_rejected(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "bob", "acme-password", tenant="acme")
    session = await session_of(client, "bob", "acme-password", headers={"X-TENANT-ID": "acme"})
    response = await client.post("/logout", headers=session_headers(session))
    assert response.status == 401
    ok = await client.post("/logout", headers=session_headers(session, **{"X-TENANT-ID": "acme"}))
    assert ok.status == 200


async def test_a_token_signed_with_another_secret_is_rejected(client):
    session = await session_of(client)
    claims = jwt.get_unverified_claims(session["token"])
    header = jwt.get_unverified_header(session["token"])
    forged = jwt.encode(claims, "another-secret-that-is-long-enough-000000", algorithm="HS256",
                        headers={"kid": header["kid"]})
    response = await client.post("/logout", headers={"X-Access-Token": forged, "X-Key": session["key"]})
    assert response.status == 401

