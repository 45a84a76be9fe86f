"""The identity chain (docs/README.md), through a test-only route that requires an identity.

The API families that use it (named tokens, access/refresh, admin) build on exactly this.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.appkeys import IDENTITY_CACHE, STORE, TOKENS
from gateway.authz import require_identity
from gateway.storage import Revocation, Scope
from gateway.tokens.claims import TokenKind
from tests.conftest import ADMIN_PASSWORD, add_user, make_config


async def whoami(request: web.Request) -> web.Response:
    identity = await require_identity(request)
    return web.json_response({"username": identity.user.username, "method": identity.method,
                              "tenant": identity.user.tenant})


@pytest.fixture
async def client(aiohttp_client, tmp_path, clock):
    app = create_app(make_config(tmp_path), clock=clock)
    app.router.add_get("/whoami", whoami)
    return await aiohttp_client(app)


def basic(username: str, password: str, encoding: str = "utf-8") -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode(encoding)).decode()
    return {"Authorization": f"Basic {token}"}


async def issue(client, username="admin", kind=TokenKind.ACCESS, tenant="default"):
    user = await client.app[STORE].get_user(tenant, username)
    return await client.app[TOKENS].issue(user, kind, 300)


async def test_no_credentials_is_401_with_a_challenge(client):
    response = await client.get("/whoami")
    assert response.status == 401
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert (await response.json())["error"] == "not_authenticated"


async def test_basic_auth(client):
    response = await client.get("/whoami", headers=basic("admin", ADMIN_PASSWORD))
    assert response.status == 200
    assert await response.json() == {"username": "admin", "method": "basic", "tenant": "default"}


async def test_basic_password_may_contain_colons(client):
    await add_user(client.app, "alice", "pass:with:colons")
    response = await client.get("/whoami", headers=basic("alice", "pass:with:colons"))
    assert response.status == 200


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_basic_credentials_in_utf8_or_latin1(client, encoding):
    # Browsers and curl send UTF-8; requests sends Latin-1 (RFC 7617's historical default).
    await add_user(client.app, "jörg", "pässwörd")
    response = await client.get("/whoami", headers=basic("jörg", "pässwörd", encoding))
    assert response.status == 200
    assert (await response.json())["username"] == "jörg"
    wrong = await client.get("/whoami", headers=basic("jörg", "passwörd", encoding))
    assert wrong.status == 401


@pytest.mark.parametrize("authorization", [
    "Basic not-base64!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic",
    "Digest username=admin", "Bearer", "Bearer not.a.jwt",
])
async def test_unreadable_or_bad_credentials_are_401(client, authorization):
    response = await client.get("/whoami", headers={"Authorization": authorization})
    assert response.status == 401


async def test_a_wrong_basic_password_is_401_and_counts_toward_the_ban(client):
    for _ in range(5):
        response = await client.get("/whoami", headers=basic("admin", "wrong-password"))
        assert response.status == 401
    login = await client.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status == 429
    assert (await client.get("/whoami", headers=basic("admin", ADMIN_PASSWORD))).status == 429


async def test_access_and_api_tokens_work_as_bearer(client):
    for kind in (TokenKind.ACCESS, TokenKind.API):
        issued = await issue(client, kind=kind)
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {issued.token}"})
        assert response.status == 200
        assert (await response.json())["method"] == "bearer"


async def test_a_refresh_token_never_authenticates(client):
    issued = await issue(client, kind=TokenKind.REFRESH)
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {issued.token}"})
    assert response.status == 401
    assert (await response.json())["error"] == "token_not_valid"


async def test_a_session_token_needs_its_key(client):
    session = await (await client.post(
        "/login", json={"username": "admin", "password": ADMIN_PASSWORD})).json()
    bare = await client.get("/whoami", headers={"Authorization": f"Bearer {session['token']}"})
    assert bare.status == 401
    with_key = await client.get("/whoami", headers={"Authorization": f"Bearer {session['token']}",
                                                    "X-Key": session["key"]})
    assert with_key.status == 200
    assert (await with_key.json())["method"] == "session"
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    assert (await client.get("/whoami", headers=headers)).status == 200


async def test_an_access_token_is_not_a_session(client):
    issued = await issue(client, kind=TokenKind.ACCESS)
    headers = {"X-Access-Token": issued.token, "X-Key": "anything"}
    assert (await client.get("/whoami", headers=headers)).status == 401


async def test_a_revoked_token_is_refused_on_the_next_request(client, clock):
    issued = await issue(client)
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert (await client.get("/whoami", headers=headers)).status == 200
    assert await client.app[STORE].revoke(Revocation(Scope.TOKEN, issued.jti, "test"), clock()) == 1
    assert (await client.get("/whoami", headers=headers)).status == 401


async def test_a_token_of_another_tenant_is_403(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "bob", "acme-password", tenant="acme")
    issued = await issue(client, "bob", tenant="acme")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert (await client.get("/whoami", headers=headers)).status == 403
    acme = await client.get("/whoami", headers={**headers, "X-TENANT-ID": "acme"})
    assert acme.status == 200
    assert (await acme.json())["tenant"] == "acme"


async def test_basic_auth_acts_within_the_header_tenant(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "bob", "acme-password", tenant="acme")
    assert (await client.get("/whoami", headers=basic("bob", "acme-password"))).status == 401
    headers = {**basic("bob", "acme-password"), "X-TENANT-ID": "acme"}
    assert (await client.get("/whoami", headers=headers)).status == 200


async def test_credentials_do_not_break_a_public_route(client):
    # Stale or bad credentials on /login or /healthz are ignored, not a 401.
    headers = {"Authorization": "Bearer stale.token.here", "X-Access-Token": "stale"}
    assert (await client.get("/healthz", headers=headers)).status == 200
    login = await client.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                              headers=headers)
    assert login.status == 200


async def test_many_concurrent_basic_requests_share_one_password_check(client, clock):
    """A client opening many connections with the right password is never banned: before
    the first check answers, the others wait for it instead of counting as attempts."""
    headers = basic("admin", ADMIN_PASSWORD)
    statuses = await asyncio.gather(*(client.get("/whoami", headers=headers) for _ in range(32)))
    assert [response.status for response in statuses] == [200] * 32
    # The same when the remembered credential runs out while requests keep coming.
    clock.advance(client.app[IDENTITY_CACHE].basic_ttl + 1)
    statuses = await asyncio.gather(*(client.get("/whoami", headers=headers) for _ in range(32)))
    assert [response.status for response in statuses] == [200] * 32


async def test_one_wrong_password_sent_concurrently_is_one_guess(client):
    """The same wrong credential on many connections at once is checked once: 401 for all,
    and it counts as one failure, not as a flood that bans the account."""
    headers = basic("admin", "not-the-password")
    statuses = await asyncio.gather(*(client.get("/whoami", headers=headers) for _ in range(8)))
    assert {response.status for response in statuses} == {401}
