"""Every endpoint that reads a body answers form-urlencoded and multipart bodies as it answers
the same fields in JSON: each case runs once per encoding with one expected answer."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from tests.bodies import ENCODINGS, encoded
from tests.conftest import ADMIN_PASSWORD, add_user

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
INVALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
REQUIRED = ["This field is required."]

each_encoding = pytest.mark.parametrize("encoding", ENCODINGS)


async def post(client, path, encoding, fields, headers=None):
    response = await client.post(path, headers=headers, **encoded(encoding, fields))
    return response.status, await response.json()


async def pair(client):
    response = await client.post("/api/token/", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status == 200
    return await response.json()


# Seed 003


@each_encoding
async def test_login(client, encoding):
    status, body = await post(client, "/login", encoding, {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200
    assert set(body) == {"key", "username", "expires", "token", "role"}
    assert (body["username"], body["role"]) == ("admin", 0)


@each_encoding
@pytest.mark.parametrize(("fields", "status", "info"), [
    ({"username": "admin"}, 400, "User name is required"),
    ({"username": "admin", "password": ""}, 400, "User name is required"),
    ({"username": "admin", "password": "wrong"}, 401, "Invalid credentials"),
])
async def test_login_errors(client, encoding, fields, status, info):
    assert await post(client, "/login", encoding, fields) == (status, {"status": "error", "info": info})


# Seed 004


@each_encoding
async def test_obtain(client, encoding):
    await add_user(client.app, "johndoe", "example1234", email="johndoe@example.com")
    status, body = await post(client, "/api/token/", encoding,
                              {"email": "johndoe@example.com", "password": "example1234"})
    assert status == 200 and set(body) == {"refresh", "access"}


@each_encoding
@pytest.mark.parametrize(("fields", "status", "expected"), [
    ({"username": "admin"}, 400, {"password": REQUIRED}),
    ({"email": "", "password": "x"}, 400, {"email": ["This field may not be blank."]}),
    ({"username": "admin", "password": "wrong"}, 401,
     {"detail": "No active account found with the given credentials", "code": "no_active_account"}),
])
async def test_obtain_errors(client, encoding, fields, status, expected):
    assert await post(client, "/api/token/", encoding, fields) == (status, expected)


@each_encoding
async def test_refresh(client, encoding):
    tokens = await pair(client)
    status, body = await post(client, "/api/token/refresh/", encoding, {"refresh": tokens["refresh"]})
    assert status == 200 and set(body) == {"access"}
    assert await post(client, "/api/token/refresh/", encoding, {"refresh": "garbage"}) == (401, INVALID)
    assert await post(client, "/api/token/refresh/", encoding, {"token": "x"}) == (400, {"refresh": REQUIRED})


@each_encoding
async def test_verify(client, encoding):
    tokens = await pair(client)
    assert await post(client, "/api/token/verify/", encoding, {"token": tokens["access"]}) == (200, {})
    assert await post(client, "/api/token/verify/", encoding, {"token": tokens["refresh"]}) == (200, {})
    assert await post(client, "/api/token/verify/", encoding, {"token": "garbage"}) == (401, INVALID)


@each_encoding
async def test_blacklist(client, encoding):
    tokens = await pair(client)
    assert await post(client, "/api/token/blacklist/", encoding, {"refresh": tokens["refresh"]}) == (200, {})
    assert await post(client, "/api/token/verify/", encoding, {"token": tokens["refresh"]}) == (401, INVALID)
    assert await post(client, "/api/token/blacklist/", encoding, {}) == (400, {"refresh": REQUIRED})


# Seeds 001/002


@each_encoding
async def test_named_token(client, encoding):
    fields = {"jwt_token_description": "ci", "jwt_token_life": "1 hour"}
    status, body = await post(client, "/api/v1alpha/token", encoding, fields, headers=ADMIN)
    assert status == 201
    assert (body["message"], body["jwt_token_description"], body["jwt_token_life"]) == (
        "Token generated", "ci", 3600)
    bearer = {"Authorization": f"Bearer {body['jwt_token']}"}
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 200


@each_encoding
async def test_named_token_errors(client, encoding):
    answer = await post(client, "/api/v1alpha/token", encoding, {"jwt_token_description": "ci"},
                        headers=ADMIN)
    assert answer == (400, {"message": 'jwt_token_life is required (e.g. "6 hours" or 3600)'})


# Seed 000


@each_encoding
async def test_media_token_and_check(client, encoding):
    status, issued = await post(client, "/token", encoding, {"unique": "0", "expire": "600"},
                                headers=ADMIN)
    assert status == 201 and issued["expires_at"] - issued["start_at"] == 600
    status, checked = await post(client, "/token/check", encoding,
                                 {"token": issued["token"], "media_id": "28"})
    assert status == 200 and checked["valid"] is True and checked["kid"] == issued["kid"]
    status, refused = await post(client, "/token/check", encoding, {"token": "garbage"})
    assert (status, refused["error"]) == (401, "token_not_valid")


# What only a form can carry


async def test_a_file_upload_is_refused_with_the_family_error_body(client):
    form = aiohttp.FormData()
    form.add_field("refresh", b"x", filename="refresh.txt")
    response = await client.post("/api/token/refresh/", data=form)
    assert response.status == 400
    assert await response.json() == {"detail": "refresh: file uploads are not accepted here",
                                     "code": "bad_request"}


@pytest.mark.parametrize("path", ["/login", "/api/token/"])
async def test_json_sent_as_a_form_is_read_as_json(client, path):
    # curl -d '{…}' without -H 'Content-Type: application/json' labels JSON as a form.
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD})
    response = await client.post(path, data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
