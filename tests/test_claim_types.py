"""Claims signed with the real key but of the wrong type are refused, never a 500 or a pass.

Numeric claims are finite integers (NaN, Infinity and 1e400 are not); structured claims
have their documented type. Tokens are re-signed by hand (base64url + HMAC) because
python-jose will not write NaN, and the payload text is spliced so any JSON can be sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from jose import jwt

from gateway.appkeys import KEYRING, STORE
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
RAW = "\x00raw\x00"  # stands for a value written into the payload text as it is
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims: dict[str, Any], secret: bytes, kid: str, raw: str = "") -> str:
    """An HS256 JWS of ``claims``; a value equal to ``RAW`` is written as ``raw``."""
    payload = json.dumps(claims).replace(json.dumps(RAW), raw)
    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid})
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def access_claims(client) -> dict[str, Any]:
    response = await client.post("/api/token/", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status == 200, await response.text()
    claims: dict[str, Any] = jwt.get_unverified_claims((await response.json())["access"])
    return claims


async def answers(client, token: str) -> tuple[int, int]:
    """(status of /auth with the token as Bearer, status of /api/token/verify/)."""
    auth = await client.get("/auth", headers={"Authorization": f"Bearer {token}",
                                              "X-Original-URI": "/private"})
    verify = await client.post("/api/token/verify/", json={"token": token})
    return auth.status, verify.status


# User tokens


async def test_a_re_signed_access_token_is_accepted_as_it_was(client):
    # The control: hand signing with the real key yields a token the gateway takes.
    claims = await access_claims(client)
    token = signed(claims, TEST_SECRET.encode(), client.app[KEYRING].user_kid)
    assert await answers(client, token) == (200, 200)


@pytest.mark.parametrize(("name", "value"), [
    ("token_type", ["access"]),
    ("token_type", {"access": True}),
    ("jti", ["x"]),
    ("sub", 1),
    ("username", {"name": "admin"}),
    ("tenant", ["default"]),
    ("exp", "9999999999"),
    ("exp", True),
    ("iat", 1.5),
    ("nbf", None),
])
async def test_a_user_claim_of_the_wrong_type_is_401(client, name, value):
    claims = await access_claims(client)
    claims[name] = value
    token = signed(claims, TEST_SECRET.encode(), client.app[KEYRING].user_kid)
    assert await answers(client, token) == (401, 401)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("raw", NON_FINITE)
async def test_a_non_finite_user_time_is_401(client, name, raw):
    claims = await access_claims(client)
    claims[name] = RAW
    token = signed(claims, TEST_SECRET.encode(), client.app[KEYRING].user_kid, raw)
    assert await answers(client, token) == (401, 401)


# Media tokens


async def media_token(client, body: dict[str, Any]) -> tuple[dict[str, Any], bytes, str]:
    """A real HS256 media token's claims, its tenant key's secret and that key's kid."""
    response = await client.post("/token", json={"algorithm": "HS256", **body}, headers=ADMIN)
    assert response.status == 201, await response.text()
    token = (await response.json())["token"]
    kid = jwt.get_unverified_header(token)["kid"]
    record = await client.app[STORE].get_key(kid)
    assert record is not None
    return jwt.get_unverified_claims(token), base64.urlsafe_b64decode(record.private_key), kid


async def check(client, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/token/check", json={"token": token, "media_id": "28"})
    return response.status, await response.json()


async def test_a_re_signed_media_token_is_accepted_as_it_was(client):
    claims, secret, kid = await media_token(client, {"unique": False, "media": {"id": 28}})
    status, body = await check(client, signed(claims, secret, kid))
    assert status == 200, body
    assert body["expires_at"] == claims["exp"]


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("raw", NON_FINITE)
async def test_a_non_finite_media_time_is_401_never_expires_at_nan(client, name, raw):
    claims, secret, kid = await media_token(client, {"unique": False})
    claims[name] = RAW
    status, body = await check(client, signed(claims, secret, kid, raw))
    assert status == 401, body
    assert "expires_at" not in body


@pytest.mark.parametrize("restriction", [
    {"user": {"username": "somebody-else"}},
    {"user": {"roles": ["ROLE_NOBODY"]}},
    {"media": {"id": 99}},
])
@pytest.mark.parametrize("wrong", ["abc", ["abc"], 1, True, None])
async def test_a_restriction_of_the_wrong_type_is_refused_not_switched_off(client, restriction, wrong):
    claims, secret, kid = await media_token(client, {"unique": False, **restriction})
    # As issued, the restriction holds: this anonymous check of media 28 is refused.
    assert (await check(client, signed(claims, secret, kid)))[0] in (401, 403)
    (field,) = restriction
    claims["context"][field] = wrong
    status, body = await check(client, signed(claims, secret, kid))
    assert status == 401, body


@pytest.mark.parametrize(("field", "wrong"), [
    ("rangeip", "10.0.0.0/8"),
    ("rangeip", [10]),
    ("unique", "yes"),
    ("user", {"username": ["abc"]}),
    ("user", {"roles": "ROLE_ADMIN"}),
    ("media", {"id": {"nested": 1}}),
])
async def test_a_context_member_of_the_wrong_type_is_401(client, field, wrong):
    claims, secret, kid = await media_token(client, {"unique": False})
    claims["context"][field] = wrong
    status, body = await check(client, signed(claims, secret, kid))
    assert status == 401, body


async def test_a_media_token_whose_context_is_not_an_object_is_401(client):
    claims, secret, kid = await media_token(client, {"unique": False})
    claims["context"] = []
    assert (await check(client, signed(claims, secret, kid)))[0] == 401
