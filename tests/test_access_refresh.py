"""docs/access-refresh.md (seed 004): /api/token/, refresh/, verify/, blacklist/ with SimpleJWT bodies."""

from __future__ import annotations

import pytest
from jose import jwt

from gateway.appkeys import STORE
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, add_user

INVALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
NO_ACCOUNT = {"detail": "No active account found with the given credentials", "code": "no_active_account"}
REQUIRED = ["This field is required."]
NULL = ["This field may not be null."]


@pytest.fixture
async def john(client):
    return await add_user(client.app, "johndoe", "example1234", email="johndoe@example.com")


async def obtain(client, **body) -> dict:
    response = await client.post("/api/token/", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def post(client, path, body):
    response = await client.post(path, json=body)
    return response.status, await response.json()


def claims(token: str) -> dict:
    return jwt.decode(token, TEST_SECRET, algorithms=["HS256"],
                      options={"verify_exp": False, "verify_iat": False})


async def test_login_by_email_answers_refresh_and_access(client, john, clock):
    body = await obtain(client, email="johndoe@example.com", password="example1234")
    assert set(body) == {"refresh", "access"}
    refresh, access = claims(body["refresh"]), claims(body["access"])
    assert refresh["token_type"] == "refresh" and access["token_type"] == "access"
    assert refresh["exp"] - refresh["iat"] == 86400
    assert access["exp"] - access["iat"] == 300
    assert access["username"] == "johndoe"


async def test_login_by_email_ignores_case_and_by_username(client, john):
    await obtain(client, email="JohnDoe@Example.com", password="example1234")
    await obtain(client, username="johndoe", password="example1234")


async def test_lifetimes_come_from_config(make_client):
    client = await make_client({"tokens": {"access_lifetime": "1 minute", "refresh_lifetime": "2h"}})
    body = await obtain(client, username="admin", password=ADMIN_PASSWORD)
    assert claims(body["access"])["exp"] - claims(body["access"])["iat"] == 60
    assert claims(body["refresh"])["exp"] - claims(body["refresh"])["iat"] == 7200


@pytest.mark.parametrize(("body", "expected"), [
    ({}, {"email": REQUIRED, "password": REQUIRED}),
    ({"email": "johndoe@example.com"}, {"password": REQUIRED}),
    ({"password": "example1234"}, {"email": REQUIRED}),
    ({"username": "johndoe"}, {"password": REQUIRED}),
    ({"email": "", "password": "x"}, {"email": ["This field may not be blank."]}),
])
async def test_missing_fields_are_drf_field_lists(client, john, body, expected):
    assert await post(client, "/api/token/", body) == (400, expected)


@pytest.mark.parametrize("body", [
    {"email": "johndoe@example.com", "password": "wrong"},
    {"email": "nobody@example.com", "password": "example1234"},
    {"username": "johndoe", "password": "wrong"},
])
async def test_bad_credentials_are_no_active_account(client, john, body):
    assert await post(client, "/api/token/", body) == (401, NO_ACCOUNT)


async def test_a_disabled_user_has_no_active_account(client, john, clock):
    await client.app[STORE].set_disabled(john.id, True, clock())
    body = {"email": "johndoe@example.com", "password": "example1234"}
    assert await post(client, "/api/token/", body) == (401, NO_ACCOUNT)


async def test_refresh_answers_a_new_access_token(client, john, clock):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    clock.advance(10)
    status, body = await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    assert status == 200
    assert set(body) == {"access"}
    assert claims(body["access"])["token_type"] == "access"
    assert claims(body["access"])["iat"] == int(clock.now)
    # Without rotation the same refresh token keeps working.
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 200


async def test_refresh_errors(client, john, clock):
    assert await post(client, "/api/token/refresh/", {}) == (400, {"refresh": REQUIRED})
    assert await post(client, "/api/token/refresh/", {"refresh": "garbage"}) == (401, INVALID)
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    # An access token never refreshes.
    assert await post(client, "/api/token/refresh/", {"refresh": pair["access"]}) == (401, INVALID)
    clock.advance(86401)
    assert await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}) == (401, INVALID)


async def test_rotation_hands_out_a_new_refresh_and_blacklists_the_old(make_client):
    client = await make_client({"tokens": {"rotate_refresh_tokens": True}})
    pair = await obtain(client, username="admin", password=ADMIN_PASSWORD)
    status, rotated = await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    assert status == 200 and set(rotated) == {"access", "refresh"}
    assert rotated["refresh"] != pair["refresh"]
    assert claims(rotated["refresh"])["token_type"] == "refresh"
    assert (await post(client, "/api/token/refresh/", {"refresh": rotated["refresh"]}))[0] == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(make_client):
    client = await make_client({"tokens": {"rotate_refresh_tokens": True}})
    pair = await obtain(client, username="admin", password=ADMIN_PASSWORD)
    other_login = await obtain(client, username="admin", password=ADMIN_PASSWORD)
    _, rotated = await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    # The thief (or the victim) presents the old refresh token again.
    assert await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}) == (401, INVALID)
    # Everything of that login is now dead: the rotated refresh and every access token.
    assert await post(client, "/api/token/refresh/", {"refresh": rotated["refresh"]}) == (401, INVALID)
    for token in (rotated["access"], pair["access"]):
        assert await post(client, "/api/token/verify/", {"token": token}) == (401, INVALID)
    # Another login of the same user is not touched.
    assert await post(client, "/api/token/verify/", {"token": other_login["access"]}) == (200, {})


async def test_rotation_without_blacklisting_keeps_old_refresh_tokens_valid(make_client):
    client = await make_client({"tokens": {"rotate_refresh_tokens": True,
                                           "blacklist_after_rotation": False}})
    pair = await obtain(client, username="admin", password=ADMIN_PASSWORD)
    _, rotated = await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    assert "refresh" in rotated
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 200
    assert (await post(client, "/api/token/refresh/", {"refresh": rotated["refresh"]}))[0] == 200


async def test_verify_accepts_access_and_refresh_tokens(client, john):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    for token in (pair["access"], pair["refresh"]):
        assert await post(client, "/api/token/verify/", {"token": token}) == (200, {})


async def test_verify_refuses_other_kinds_and_garbage(client, john):
    session = await (await client.post("/login", json={"username": "admin",
                                                       "password": ADMIN_PASSWORD})).json()
    named = await (await client.post(
        "/api/v1alpha/token", json={"jwt_token_description": "x", "jwt_token_life": 60},
        headers={"X-Access-Token": session["token"], "X-Key": session["key"]})).json()
    for token in (session["token"], named["jwt_token"], "garbage", "a.b.c"):
        assert await post(client, "/api/token/verify/", {"token": token}) == (401, INVALID)
    assert await post(client, "/api/token/verify/", {"token": 42}) == (
        400, {"token": ["Not a valid string."]})
    assert await post(client, "/api/token/verify/", {}) == (400, {"token": REQUIRED})


async def test_verify_refuses_expired_tokens(client, john, clock):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    clock.advance(301)
    assert await post(client, "/api/token/verify/", {"token": pair["access"]}) == (401, INVALID)
    assert await post(client, "/api/token/verify/", {"token": pair["refresh"]}) == (200, {})


async def test_blacklist_logs_the_family_out(client, john):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    assert await post(client, "/api/token/blacklist/", {"refresh": pair["refresh"]}) == (200, {})
    assert await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}) == (401, INVALID)
    assert await post(client, "/api/token/verify/", {"token": pair["access"]}) == (401, INVALID)
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 401
    assert await post(client, "/api/token/blacklist/", {"refresh": pair["refresh"]}) == (401, INVALID)
    assert await post(client, "/api/token/blacklist/", {}) == (400, {"refresh": REQUIRED})
    assert await post(client, "/api/token/blacklist/", {"refresh": pair["access"]}) == (401, INVALID)


async def test_a_password_change_revokes_every_pair(client, john, clock):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    await client.app[STORE].set_password(john.id, john.password_hash, clock())
    assert await post(client, "/api/token/verify/", {"token": pair["access"]}) == (401, INVALID)
    assert await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}) == (401, INVALID)


async def test_tokens_of_another_tenant_do_not_pass(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "bob", "acme-password", tenant="acme")
    response = await client.post("/api/token/", json={"username": "bob", "password": "acme-password"},
                                 headers={"X-TENANT-ID": "acme"})
    pair = await response.json()
    assert await post(client, "/api/token/verify/", {"token": pair["access"]}) == (401, INVALID)
    assert await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}) == (401, INVALID)
    acme = await client.post("/api/token/verify/", json={"token": pair["access"]},
                             headers={"X-TENANT-ID": "acme"})
    assert acme.status == 200


async def test_malformed_bodies_are_400_in_simplejwt_shape(client):
    response = await client.post("/api/token/", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"detail", "code"}
    status, body = await post(client, "/api/token/", {"email": ["x"], "password": 1})
    assert status == 400 and set(body) == {"email", "password"}


async def test_failed_logins_here_count_toward_the_ban(client):
    for _ in range(5):
        assert (await post(client, "/api/token/", {"username": "admin", "password": "nope"}))[0] == 401
    login = await client.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status == 429
    status, body = await post(client, "/api/token/", {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 429 and set(body) == {"detail", "code"}


# As stock SimpleJWT: its claims, its slashes, its null, its challenge


async def test_access_tokens_carry_simplejwt_user_id_beside_sub(client, john):
    pair = await obtain(client, email="johndoe@example.com", password="example1234")
    access = claims(pair["access"])
    assert access["user_id"] == access["sub"] == str(john.id)
    assert {"token_type", "jti", "exp", "iat"} <= access.keys()
    refreshed = (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[1]
    assert claims(refreshed["access"])["user_id"] == str(john.id)


async def test_every_endpoint_answers_without_the_trailing_slash(client, john):
    response = await client.post("/api/token", json={"username": "johndoe", "password": "example1234"},
                                 allow_redirects=False)
    assert response.status == 200
    pair = await response.json()
    assert await post(client, "/api/token/verify", {"token": pair["access"]}) == (200, {})
    status, body = await post(client, "/api/token/refresh", {"refresh": pair["refresh"]})
    assert status == 200 and set(body) == {"access"}
    assert await post(client, "/api/token/blacklist", {"refresh": pair["refresh"]}) == (200, {})
    assert await post(client, "/api/token/verify", {"token": pair["refresh"]}) == (401, INVALID)
    assert await post(client, "/api/token", {"username": "johndoe"}) == (400, {"password": REQUIRED})


@pytest.mark.parametrize(("body", "expected"), [
    ({"email": "johndoe@example.com", "password": None}, {"password": NULL}),
    ({"username": "johndoe", "password": None}, {"password": NULL}),
    ({"email": None, "password": None}, {"email": NULL, "password": NULL}),
])
async def test_a_null_field_may_not_be_null(client, john, body, expected):
    assert await post(client, "/api/token/", body) == (400, expected)


@pytest.mark.parametrize("path", ["/api/token/refresh/", "/api/token/blacklist/", "/api/token/refresh"])
async def test_a_refused_refresh_token_challenges_bearer_only(client, path):
    response = await client.post(path, json={"refresh": "garbage"})
    assert (response.status, await response.json()) == (401, INVALID)
    assert response.headers.getall("WWW-Authenticate") == ['Bearer realm="api"']


async def test_a_refused_verify_and_login_challenge_bearer_only(client, john):
    for path, body in (("/api/token/verify/", {"token": "garbage"}),
                       ("/api/token/", {"username": "johndoe", "password": "wrong"})):
        response = await client.post(path, json=body)
        assert response.status == 401
        assert response.headers.getall("WWW-Authenticate") == ['Bearer realm="api"']
