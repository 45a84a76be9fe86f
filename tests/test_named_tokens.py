"""docs/named-tokens.md (seeds 001/002): named personal tokens under /api/v1alpha/token."""

from __future__ import annotations

import base64
import uuid

import pytest
from jose import jwt

from gateway.appkeys import STORE
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, add_user

URL = "/api/v1alpha/token"


def basic(username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


async def create(client, description="Token specter", life="6 hours", headers=None):
    return await client.post(URL, json={"jwt_token_description": description, "jwt_token_life": life},
                             headers=headers or basic())


async def created(client, description="Token specter", life="6 hours", headers=None) -> dict:
    response = await create(client, description, life, headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_post_answers_the_seed_body(client, clock):
    body = await created(client)
    assert set(body) == {"message", "jwt_token_id", "jwt_token", "jwt_token_description", "jwt_token_life"}
    assert body["message"] == "Token generated"
    assert uuid.UUID(body["jwt_token_id"])
    assert body["jwt_token_description"] == "Token specter"
    assert body["jwt_token_life"] == 21600


async def test_the_jwt_carries_the_seed_claims(client, clock):
    body = await created(client)
    claims = jwt.decode(body["jwt_token"], TEST_SECRET, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["username"] == "admin"
    assert claims["jwt_token_id"] == body["jwt_token_id"]
    assert claims["jwt_token_description"] == "Token specter"
    assert claims["exp"] - claims["iat"] == 21600
    assert claims["iat"] == int(clock.now)
    assert claims["token_type"] == "api" and claims["tenant"] == "default"


@pytest.mark.parametrize(("life", "seconds"), [
    ("6 hours", 21600), (3600, 3600), ("3600", 3600), ("90s", 90), ("2h30m", 9000),
    ("1 day 2 hours", 93600), ("30 minutes", 1800),
])
async def test_lives_in_human_durations(client, life, seconds):
    body = await created(client, life=life)
    assert body["jwt_token_life"] == seconds


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"jwt_token_life": "1 hour"}, "jwt_token_description"),
    ({"jwt_token_description": "", "jwt_token_life": "1 hour"}, "jwt_token_description"),
    ({"jwt_token_description": "   ", "jwt_token_life": "1 hour"}, "jwt_token_description"),
    ({"jwt_token_description": 42, "jwt_token_life": "1 hour"}, "jwt_token_description"),
    ({"jwt_token_description": "x" * 257, "jwt_token_life": "1 hour"}, "jwt_token_description"),
    ({"jwt_token_description": "a"}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": "forever"}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": 0}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": -5}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": "0 seconds"}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": "366 days"}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": True}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": [1]}, "jwt_token_life"),
    ({"jwt_token_description": "a", "jwt_token_life": 1.5}, "jwt_token_life"),
])
async def test_bad_bodies_are_400_naming_the_field(client, payload, fragment):
    response = await client.post(URL, json=payload, headers=basic())
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"message"}
    assert fragment in body["message"]


async def test_max_life_comes_from_config(make_client):
    client = await make_client({"tokens": {"api_token_max_life": "1 day"}})
    assert (await create(client, life="1 day")).status == 201
    response = await create(client, "second", life="1 day 1 second")
    assert response.status == 400
    assert "1 day" in (await response.json())["message"]


async def test_a_description_is_unique_per_user(client):
    await add_user(client.app, "alice", "alice-password")
    await created(client, "Token alpha")
    duplicate = await create(client, "Token alpha")
    assert duplicate.status == 400
    assert "Token alpha" in (await duplicate.json())["message"]
    # Another user may use the same description.
    assert (await create(client, "Token alpha", headers=basic("alice", "alice-password"))).status == 201


async def test_a_deleted_tokens_description_is_free_again(client):
    body = await created(client, "Token alpha")
    assert (await client.delete(f"{URL}/{body['jwt_token_id']}", headers=basic())).status == 200
    assert (await create(client, "Token alpha")).status == 201


async def test_list_answers_the_seed_body(client, clock):
    beta = await created(client, "Token beta", 5400)
    alpha = await created(client, "Token alpha", 360)
    clock.advance(127.8)
    response = await client.get(URL, headers=basic())
    assert response.status == 200
    body = await response.json()
    assert body["message"] == "Tokens exists"
    assert body["jwt_tokens"] == {
        beta["jwt_token_id"]: {"jwt_token_description": "Token beta", "jwt_token_life": 5400,
                               "jwt_token_remaining_life": pytest.approx(5400 - 127.8)},
        alpha["jwt_token_id"]: {"jwt_token_description": "Token alpha", "jwt_token_life": 360,
                                "jwt_token_remaining_life": pytest.approx(360 - 127.8)},
    }
    assert isinstance(body["jwt_tokens"][alpha["jwt_token_id"]]["jwt_token_remaining_life"], float)


async def test_list_with_no_tokens(client):
    response = await client.get(URL, headers=basic())
    assert response.status == 200
    assert await response.json() == {"message": "Tokens exists", "jwt_tokens": {}}


async def test_list_remaining_life_is_zero_once_expired(client, clock):
    body = await created(client, life=60)
    clock.advance(61)
    listing = await (await client.get(URL, headers=basic())).json()
    assert listing["jwt_tokens"][body["jwt_token_id"]]["jwt_token_remaining_life"] == 0


async def test_list_pages_with_limit_and_offset(client, clock):
    ids = []
    for index in range(5):
        ids.append((await created(client, f"token {index}", 3600))["jwt_token_id"])
        clock.advance(1)
    page = await (await client.get(URL, params={"limit": "2", "offset": "1"}, headers=basic())).json()
    assert list(page["jwt_tokens"]) == ids[1:3]
    rest = await (await client.get(URL, params={"offset": "3"}, headers=basic())).json()
    assert list(rest["jwt_tokens"]) == ids[3:]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "-1"}, {"limit": "x"},
                                    {"offset": "-3"}, {"limit": "100000"}])
async def test_bad_paging_is_400(client, params):
    response = await client.get(URL, params=params, headers=basic())
    assert response.status == 400
    assert "message" in await response.json()


async def test_get_one_answers_the_seed_body(client, clock):
    body = await created(client, "Token alpha", 360)
    clock.advance(127.5)
    response = await client.get(f"{URL}/{body['jwt_token_id']}", headers=basic())
    assert response.status == 200
    assert await response.json() == {
        "message": "Tokens exists",
        "jwt_token_description": "Token alpha",
        "jwt_token_life": 360,
        "jwt_token_life_remaining": pytest.approx(232.5),
        "expiry_status": "Valid",
    }


async def test_expiry_status_expired_and_revoked(client, clock):
    user = await add_user(client.app, "alice", "alice-password")
    alice = basic("alice", "alice-password")
    short = await created(client, "short", 60, headers=alice)
    long = await created(client, "long", 3600, headers=alice)
    clock.advance(60)
    expired = await (await client.get(f"{URL}/{short['jwt_token_id']}", headers=alice)).json()
    assert expired["expiry_status"] == "Expired"
    assert expired["jwt_token_life_remaining"] == 0
    await client.app[STORE].set_password(user.id, user.password_hash, clock())
    revoked = await (await client.get(f"{URL}/{long['jwt_token_id']}", headers=alice)).json()
    assert revoked["expiry_status"] == "Revoked"
    assert revoked["jwt_token_life_remaining"] == 0


async def test_delete_answers_the_seed_body_and_then_404(client):
    body = await created(client)
    url = f"{URL}/{body['jwt_token_id']}"
    response = await client.delete(url, headers=basic())
    assert response.status == 200
    assert await response.json() == {"message": "Token deleted"}
    for method in ("GET", "DELETE"):
        gone = await client.request(method, url, headers=basic())
        assert gone.status == 404
        assert await gone.json() == {"message": "Token not found"}
    listing = await (await client.get(URL, headers=basic())).json()
    assert listing["jwt_tokens"] == {}


async def test_trailing_slashes_are_accepted(client):
    response = await client.post(f"{URL}/", json={"jwt_token_description": "a", "jwt_token_life": 60},
                                 headers=basic())
    assert response.status == 201
    token_id = (await response.json())["jwt_token_id"]
    assert (await client.get(f"{URL}/", headers=basic())).status == 200
    assert (await client.get(f"{URL}/{token_id}/", headers=basic())).status == 200
    assert (await client.delete(f"{URL}/{token_id}/", headers=basic())).status == 200


async def test_another_users_token_is_404(client):
    await add_user(client.app, "alice", "alice-password")
    body = await created(client)
    alice = basic("alice", "alice-password")
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{URL}/{body['jwt_token_id']}", headers=alice)
        assert response.status == 404
    assert (await (await client.get(URL, headers=alice)).json())["jwt_tokens"] == {}
    assert (await client.get(f"{URL}/{body['jwt_token_id']}", headers=basic())).status == 200


async def test_an_unknown_id_is_404(client):
    for token_id in (str(uuid.uuid4()), "not-a-uuid", "%27%20OR%201%3D1"):
        response = await client.get(f"{URL}/{token_id}", headers=basic())
        assert response.status == 404


@pytest.mark.parametrize("headers", [{}, basic("admin", "wrong-password"),
                                     {"Authorization": "Bearer garbage"}])
async def test_without_good_credentials_it_is_401(client, headers):
    for method, url in (("POST", URL), ("GET", URL), ("GET", f"{URL}/x"), ("DELETE", f"{URL}/x")):
        response = await client.request(method, url, headers=headers, json={})
        assert response.status == 401
        assert set(await response.json()) == {"message"}
        assert "WWW-Authenticate" in response.headers


async def test_a_named_token_is_a_bearer_credential_until_deleted(client):
    body = await created(client)
    bearer = {"Authorization": f"Bearer {body['jwt_token']}"}
    assert (await client.get(URL, headers=bearer)).status == 200
    assert (await client.delete(f"{URL}/{body['jwt_token_id']}", headers=basic())).status == 200
    assert (await client.get(URL, headers=bearer)).status == 401


async def test_a_named_token_expires(client, clock):
    body = await created(client, life=60)
    bearer = {"Authorization": f"Bearer {body['jwt_token']}"}
    clock.advance(61)
    assert (await client.get(URL, headers=bearer)).status == 401


async def test_session_and_access_credentials_work_too(client):
    session = await (await client.post("/login", json={"username": "admin",
                                                       "password": ADMIN_PASSWORD})).json()
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    assert (await create(client, "via session", headers=headers)).status == 201
    pair = await (await client.post("/api/token/", json={"username": "admin",
                                                         "password": ADMIN_PASSWORD})).json()
    headers = {"Authorization": f"Bearer {pair['access']}"}
    assert (await create(client, "via access", headers=headers)).status == 201
    refresh = {"Authorization": f"Bearer {pair['refresh']}"}
    assert (await create(client, "via refresh", headers=refresh)).status == 401


async def test_disabling_a_user_revokes_their_named_tokens(client, clock):
    user = await add_user(client.app, "alice", "alice-password")
    body = await created(client, headers=basic("alice", "alice-password"))
    bearer = {"Authorization": f"Bearer {body['jwt_token']}"}
    await client.app[STORE].set_disabled(user.id, True, clock())
    await client.app[STORE].set_disabled(user.id, False, clock())
    assert (await client.get(URL, headers=bearer)).status == 401
