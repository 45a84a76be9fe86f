"""POST /introspect (RFC 7662), POST /revoke (RFC 7009) and the authorization server
metadata (RFC 8414), over HTTP on both backends."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from jose import jwt

from gateway.appkeys import STORE
from tests.bodies import ENCODINGS, encoded
from tests.conftest import ADMIN_PASSWORD, add_user

PASSWORD = "alice-password-1"
USER_KINDS = ("access", "refresh", "session", "api")


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


ADMIN = basic("admin", ADMIN_PASSWORD)
ALICE = basic("alice", PASSWORD)
BOB = basic("bob", PASSWORD)


async def post(client: Any, path: str, token: object, headers: dict[str, str] | None = None,
               encoding: str = "urlencoded", **fields: str) -> tuple[int, Any]:
    body: dict[str, Any] = {"token": token, **fields}
    arguments = {"json": body} if not isinstance(token, str) else encoded(encoding, body)
    response = await client.post(path, headers=headers, **arguments)
    return response.status, await response.json()


async def introspect(client: Any, token: object, headers: dict[str, str] | None = None,
                     **kwargs: Any) -> dict[str, Any]:
    status, body = await post(client, "/introspect", token, ADMIN if headers is None else headers,
                              **kwargs)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def tokens_of(client: Any, username: str, headers: dict[str, str] | None = None
                    ) -> dict[str, str]:
    """One live token of every user kind for ``username`` (password ``PASSWORD``)."""
    headers = headers or {}
    credentials = {"username": username, "password": PASSWORD}
    pair = await (await client.post("/api/token/", json=credentials, headers=headers)).json()
    session = await (await client.post("/login", json=credentials, headers=headers)).json()
    named = await client.post("/api/v1alpha/token", headers={**headers, **basic(username, PASSWORD)},
                              json={"jwt_token_description": f"ci {uuid.uuid4()}",
                                    "jwt_token_life": 3600})
    assert named.status == 201, await named.text()
    return {"access": pair["access"], "refresh": pair["refresh"], "session": session["token"],
            "api": (await named.json())["jwt_token"]}


@pytest.fixture
async def alice(client):
    return await add_user(client.app, "alice", PASSWORD, roles=("ROLE_USER", "ROLE_EDITOR"))


# Introspection: what it says


async def test_every_live_user_token_is_active_with_its_owner(client, alice):
    tokens = await tokens_of(client, "alice")
    for kind in USER_KINDS:
        claims = jwt.get_unverified_claims(tokens[kind])
        assert await introspect(client, tokens[kind]) == {
            "active": True, "token_type": kind, "sub": str(alice.id), "username": "alice",
            "tenant": "default", "roles": ["ROLE_USER", "ROLE_EDITOR"], "exp": claims["exp"],
            "iat": claims["iat"], "jti": claims["jti"], "iss": "gateway",
        }, kind


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_every_body_encoding_with_a_type_hint(client, alice, encoding):
    token = (await tokens_of(client, "alice"))["access"]
    for hint in ("access_token", "refresh_token", "made_up"):
        answer = await introspect(client, token, encoding=encoding, token_type_hint=hint)
        assert answer["active"] is True and answer["token_type"] == "access"


async def test_answers_are_never_cached(client, alice):
    token = (await tokens_of(client, "alice"))["access"]
    response = await client.post("/introspect", data={"token": token}, headers=ADMIN)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 20000, 5, None, ["a"], {"t": 1}])
async def test_garbage_is_inactive_not_an_error(client, token):
    assert await introspect(client, token) == {"active": False}


async def test_a_media_token_is_inactive(client):
    response = await client.post("/token", json={"unique": False}, headers=ADMIN)
    media = (await response.json())["token"]
    assert await introspect(client, media) == {"active": False}


async def test_expired_tokens_are_inactive(client, alice, clock):
    tokens = await tokens_of(client, "alice")
    clock.advance(301)  # past tokens.access_lifetime (5 minutes)
    assert await introspect(client, tokens["access"]) == {"active": False}
    assert (await introspect(client, tokens["refresh"]))["active"] is True
    clock.advance(86400)  # past the refresh and session lifetimes (1 day); the named token lives on
    for kind in ("refresh", "session", "api"):
        assert await introspect(client, tokens[kind]) == {"active": False}, kind


async def test_revoked_tokens_are_inactive(client, alice, clock):
    tokens = await tokens_of(client, "alice")
    for kind in USER_KINDS:  # prime every process cache with the live answer first
        assert (await introspect(client, tokens[kind]))["active"] is True
    session_key = (await client.post("/login", json={"username": "alice", "password": PASSWORD}))
    session = await session_key.json()
    logout = await client.post("/logout", headers={"X-Access-Token": session["token"],
                                                   "X-Key": session["key"]})
    assert logout.status == 200
    assert await introspect(client, session["token"]) == {"active": False}
    blacklist = await client.post("/api/token/blacklist/", json={"refresh": tokens["refresh"]})
    assert blacklist.status == 200
    for kind in ("refresh", "access"):  # the access token shares the refresh token's family
        assert await introspect(client, tokens[kind]) == {"active": False}, kind
    assert (await introspect(client, tokens["api"]))["active"] is True
    await client.app[STORE].set_disabled(alice.id, True, clock())
    for kind in USER_KINDS:
        assert await introspect(client, tokens[kind]) == {"active": False}, kind


async def test_a_token_of_another_tenant_is_inactive(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "alice", PASSWORD, tenant="acme")
    await add_user(client.app, "boss", PASSWORD, tenant="acme", role=1)
    acme_tokens = await tokens_of(client, "alice", headers={"X-TENANT-ID": "acme"})
    for kind in USER_KINDS:
        assert await introspect(client, acme_tokens[kind]) == {"active": False}, kind
    # Acme's admin, asking in acme, sees them.
    boss = {**basic("boss", PASSWORD), "X-TENANT-ID": "acme"}
    for kind in USER_KINDS:
        answer = await introspect(client, acme_tokens[kind], headers=boss)
        assert answer["active"] is True and answer["tenant"] == "acme", kind


# Introspection: who may ask


async def test_who_may_introspect(make_client):
    client = await make_client(overrides={"introspection": {"clients": ["Svc"]}})
    await add_user(client.app, "alice", PASSWORD)
    await add_user(client.app, "svc", PASSWORD)
    await add_user(client.app, "manager", PASSWORD, role=1)
    await add_user(client.app, "editor", PASSWORD, roles=("ROLE_ADMIN",))
    token = (await tokens_of(client, "alice"))["access"]
    bearer = {"Authorization": f"Bearer {(await tokens_of(client, 'manager'))['access']}"}
    for allowed in (ADMIN, basic("manager", PASSWORD), basic("svc", PASSWORD), bearer):
        assert (await introspect(client, token, headers=allowed))["active"] is True
    refused = [{}, basic("alice", PASSWORD), basic("editor", PASSWORD),
               basic("admin", "wrong-password"), {"Authorization": "Bearer not-a-token"},
               {"Authorization": f"Bearer {token}"}]
    for headers in refused:
        status, body = await post(client, "/introspect", token, headers)
        assert status == 401, (headers, body)
        assert body["error"] in ("not_authenticated", "token_not_valid")
    response = await client.post("/introspect", data={"token": token})
    assert response.status == 401 and "WWW-Authenticate" in response.headers


async def test_a_missing_token_parameter_is_a_400(client):
    response = await client.post("/introspect", data={"token_type_hint": "access_token"},
                                 headers=ADMIN)
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"


# Revocation


async def verify(client: Any, token: str) -> int:
    status: int = (await client.post("/api/token/verify/", json={"token": token})).status
    return status


async def test_a_user_revokes_their_own_tokens(client, alice):
    tokens = await tokens_of(client, "alice")
    for kind in USER_KINDS:
        assert (await introspect(client, tokens[kind]))["active"] is True
        status, body = await post(client, "/revoke", tokens[kind], ALICE)
        assert (status, body) == (200, {}), kind
        assert await introspect(client, tokens[kind]) == {"active": False}, kind
    assert await verify(client, tokens["access"]) == 401
    bearer = {"Authorization": f"Bearer {tokens['api']}"}
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 401
    listed = await (await client.get("/api/v1alpha/token", headers=ALICE)).json()
    (named_id,) = listed["jwt_tokens"]
    shown = await (await client.get(f"/api/v1alpha/token/{named_id}", headers=ALICE)).json()
    assert shown["expiry_status"] == "Revoked"


async def test_revoking_a_refresh_token_ends_its_access_tokens(client, alice):
    tokens = await tokens_of(client, "alice")
    other = await tokens_of(client, "alice")
    assert await post(client, "/revoke", tokens["refresh"], ALICE) == (200, {})
    assert await verify(client, tokens["access"]) == 401
    assert await verify(client, other["access"]) == 200, "another login is not touched"
    refresh = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert refresh.status == 401


async def test_the_caller_may_use_the_token_it_revokes(client, alice):
    access = (await tokens_of(client, "alice"))["access"]
    assert await post(client, "/revoke", access, {"Authorization": f"Bearer {access}"}) == (200, {})
    assert await verify(client, access) == 401
    # Revoked, it authenticates nothing any more.
    status, _ = await post(client, "/revoke", access, {"Authorization": f"Bearer {access}"})
    assert status == 401


async def test_a_user_cannot_revoke_anothers_token_an_admin_can(client, alice):
    await add_user(client.app, "bob", PASSWORD)
    await add_user(client.app, "manager", PASSWORD, role=1)
    tokens = await tokens_of(client, "alice")
    status, body = await post(client, "/revoke", tokens["access"], BOB)
    assert status == 403 and body["error"] == "forbidden"
    assert await verify(client, tokens["access"]) == 200
    assert await post(client, "/revoke", tokens["access"], basic("manager", PASSWORD)) == (200, {})
    assert await verify(client, tokens["access"]) == 401
    assert await post(client, "/revoke", tokens["session"], ADMIN) == (200, {})
    assert await introspect(client, tokens["session"]) == {"active": False}


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_revoke_answers_200_whether_or_not_the_token_was_live(client, alice, clock, encoding):
    tokens = await tokens_of(client, "alice")
    assert await post(client, "/revoke", tokens["access"], ALICE, encoding) == (200, {})
    assert await post(client, "/revoke", tokens["access"], ALICE, encoding) == (200, {})
    for garbage in ("", "garbage", "a.b.c"):
        assert await post(client, "/revoke", garbage, ALICE, encoding) == (200, {})
    media = await (await client.post("/token", json={"unique": False}, headers=ADMIN)).json()
    assert await post(client, "/revoke", media["token"], ADMIN, encoding) == (200, {})
    clock.advance(86401)
    assert await post(client, "/revoke", tokens["refresh"], ALICE, encoding) == (200, {})


async def test_revoke_needs_a_caller_and_a_token(client, alice):
    token = (await tokens_of(client, "alice"))["access"]
    status, body = await post(client, "/revoke", token, {})
    assert status == 401 and body["error"] == "not_authenticated"
    response = await client.post("/revoke", data={"token_type_hint": "x"}, headers=ALICE)
    assert response.status == 400
    assert await verify(client, token) == 200


async def test_revoking_another_tenants_token_changes_nothing(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "alice", PASSWORD, tenant="acme")
    token = (await tokens_of(client, "alice", headers={"X-TENANT-ID": "acme"}))["access"]
    assert await post(client, "/revoke", token, ADMIN) == (200, {})
    response = await client.post("/api/token/verify/", json={"token": token},
                                 headers={"X-TENANT-ID": "acme"})
    assert response.status == 200


# Metadata


async def test_the_metadata_urls_answer(client, alice):
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    document = await response.json()
    origin = f"http://{client.host}:{client.port}"
    assert document["issuer"] == "gateway"
    assert document["token_endpoint"] == f"{origin}/api/token/"
    assert document["introspection_endpoint"] == f"{origin}/introspect"
    assert document["revocation_endpoint"] == f"{origin}/revoke"
    assert document["jwks_uri"] == f"{origin}/.well-known/jwks.json"
    assert document["token_signing_alg_values_supported"] == ["HS256"]
    assert document["media_token_signing_alg_values_supported"] == [
        "RS256", "RS384", "RS512", "ES256", "ES384", "HS256"]
    session = client.session
    async with session.post(document["token_endpoint"],
                            json={"username": "alice", "password": PASSWORD}) as answer:
        assert answer.status == 200
        access = (await answer.json())["access"]
    async with session.post(document["introspection_endpoint"], data={"token": access},
                            headers=ADMIN) as answer:
        assert answer.status == 200 and (await answer.json())["active"] is True
    async with session.post(document["revocation_endpoint"], data={"token": access},
                            headers=ALICE) as answer:
        assert answer.status == 200
    async with session.get(document["jwks_uri"]) as answer:
        assert answer.status == 200 and "keys" in await answer.json()


async def test_the_metadata_names_the_tenant_and_the_proxy_host(make_client, clock):
    client = await make_client()
    await client.app[STORE].add_tenant("acme", clock())
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "auth.example.com",
                 "X-TENANT-ID": "acme"}
    document = await (await client.get("/.well-known/oauth-authorization-server",
                                       headers=forwarded)).json()
    assert document["introspection_endpoint"] == "https://auth.example.com/introspect"
    assert document["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json?tenant=acme"
    # A host header that is no host does not make it into the document.
    document = await (await client.get("/.well-known/oauth-authorization-server",
                                       headers={"X-Forwarded-Host": "evil.com/x?@"})).json()
    assert document["token_endpoint"] == "http://localhost/api/token/"


async def test_forwarded_headers_count_only_from_trusted_proxies(make_client):
    client = await make_client(overrides={"server": {"trusted_proxies": []}})
    document = await (await client.get(
        "/.well-known/oauth-authorization-server",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"})).json()
    assert document["revocation_endpoint"] == f"http://{client.host}:{client.port}/revoke"
