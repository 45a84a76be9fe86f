"""docs/media-tokens.md (seed 000): POST /token, POST /token/check, JWKS, keys — over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import aiohttp
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from jose import jwt

from gateway.appkeys import SIGNING_KEYS, STORE
from tests.conftest import ADMIN_PASSWORD, add_user

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}

SEED_FORM = [
    ("unique", "1"), ("kid", "abc"), ("ipRange[]", "10.0.0.0/8"), ("ipRange[]", "127.0.0.1"),
    ("user[username]", "abc"), ("user[roles][]", "ROLE_USER"), ("user[roles][]", "ROLE_ADMIN"),
    ("media[id]", "28"), ("start", "0"), ("expire", "3600"), ("algorithm", "RS256"),
]


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


async def issue(client, body=None, headers=None, **kwargs):
    response = await client.post("/token", json=body or {}, headers=headers or ADMIN, **kwargs)
    assert response.status == 201, await response.text()
    return await response.json()


async def check(client, token, headers=None, **body):
    response = await client.post("/token/check", json={"token": token, **body}, headers=headers)
    return response.status, await response.json()


def claims_of(token: str) -> dict:
    return jwt.get_unverified_claims(token)


# Issuing


async def test_the_seed_multipart_example(client, clock):
    form = aiohttp.FormData(SEED_FORM, default_to_multipart=True)
    response = await client.post("/token", data=form, headers=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert set(body) == {"kid", "token", "algorithm", "start_at", "expires_at"}
    assert body["kid"] == "abc" and body["algorithm"] == "RS256"
    assert body["start_at"] == int(clock.now) and body["expires_at"] == int(clock.now) + 3600
    claims = claims_of(body["token"])
    assert claims["sub"] == "Media download" and claims["kid"] == "abc"
    assert claims["tenant"] == "default" and claims["token_type"] == "media"
    assert claims["nbf"] == claims["iat"] and claims["exp"] == claims["iat"] + 3600
    assert claims["context"] == {
        "date": {"created_at": claims["iat"], "start": claims["iat"]},
        "rangeip": ["10.0.0.0/8", "127.0.0.1/32"],
        "unique": True,
        "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
        "media": {"id": "28"},
    }
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "RS256" and header["kid"] != "abc"


async def test_urlencoded_multipart_and_json_make_the_same_claims(client):
    form = [(name, value if name != "kid" else "k-form") for name, value in SEED_FORM]
    urlencoded = await (await client.post("/token", data=form, headers=ADMIN)).json()
    as_json = await issue(client, {
        "unique": True, "kid": "k-json", "ipRange": ["10.0.0.0/8", "127.0.0.1"],
        "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
        "media": {"id": 28}, "start": 0, "expire": 3600, "algorithm": "RS256",
    })
    first, second = claims_of(urlencoded["token"]), claims_of(as_json["token"])
    assert first["context"] == second["context"]


async def test_unset_fields_take_the_config_defaults(client, clock):
    body = await issue(client)
    claims = claims_of(body["token"])
    assert body["algorithm"] == "RS256"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["context"]["unique"] is True and claims["context"]["rangeip"] == []
    assert len(body["kid"]) >= 16


async def test_tenant_overrides_apply_to_their_tenant_only(make_client, clock):
    client = await make_client({"tenants": {"default": {}, "acme": {
        "media": {"token": {"expire": 600, "unique": False, "algorithm": "ES256"}}}}})
    await add_user(client.app, "boss", "boss-password", tenant="acme", role=1)
    acme = await issue(client, headers={**basic("boss", "boss-password"), "X-TENANT-ID": "acme"})
    claims = claims_of(acme["token"])
    assert acme["algorithm"] == "ES256" and claims["exp"] - claims["iat"] == 600
    assert claims["context"]["unique"] is False and claims["tenant"] == "acme"
    default = claims_of((await issue(client))["token"])
    assert default["exp"] - default["iat"] == 3600 and default["context"]["unique"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"uniq": "1"}, "uniq"),
    ({"unique": "maybe"}, "unique"),
    ({"kid": "a b"}, "kid"),
    ({"ipRange": ["10.0.0.0/8", "not-an-ip"]}, "ipRange[1]"),
    ({"ipRange": "300.1.1.1"}, "ipRange"),
    ({"user": "abc"}, "user"),
    ({"user": {"name": "abc"}}, "user.name"),
    ({"media": 28}, "media"),
    ({"start": -1}, "start"),
    ({"start": "soon"}, "start"),
    ({"expire": 0}, "expire"),
    ({"expire": -5}, "expire"),
    ({"start": 100, "expire": 100}, "start"),
    ({"start": 200, "expire": 100}, "start"),
    ({"algorithm": "none"}, "algorithm"),
    ({"algorithm": "HS512"}, "algorithm"),
])
async def test_each_bad_parameter_is_a_400_naming_it(client, body, field):
    response = await client.post("/token", json=body, headers=ADMIN)
    assert response.status == 400
    error = await response.json()
    assert error["error"] == "bad_request" and field in error["message"]


async def test_bad_forms_are_400(client):
    bad_name = await client.post("/token", data=[("user[username", "x")], headers=ADMIN)
    assert bad_name.status == 400 and "user[username" in (await bad_name.json())["message"]
    upload = aiohttp.FormData()
    upload.add_field("media", b"binary", filename="movie.mp4")
    file_response = await client.post("/token", data=upload, headers=ADMIN)
    assert file_response.status == 400 and "media" in (await file_response.json())["message"]
    broken = await client.post("/token", data=b"--x\r\nbroken", headers={
        **ADMIN, "Content-Type": "multipart/form-data; boundary=x"})
    assert broken.status == 400


async def test_an_algorithm_outside_the_config_allow_list_is_400(make_client):
    client = await make_client({"media": {"algorithms": ["RS256"]}})
    response = await client.post("/token", json={"algorithm": "ES256"}, headers=ADMIN)
    assert response.status == 400 and "algorithm" in (await response.json())["message"]


async def test_a_kid_is_registered_once_per_tenant(client, clock):
    await issue(client, {"kid": "once"})
    again = await client.post("/token", json={"kid": "once"}, headers=ADMIN)
    assert again.status == 400 and "once" in (await again.json())["message"]
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "boss", "boss-password", tenant="acme", role=1)
    other = await issue(client, {"kid": "once"},
                        headers={**basic("boss", "boss-password"), "X-TENANT-ID": "acme"})
    assert other["kid"] == "once"


async def test_issuing_needs_an_admin(client):
    assert (await client.post("/token", json={})).status == 401
    await add_user(client.app, "alice", "alice-password")
    denied = await client.post("/token", json={}, headers=basic("alice", "alice-password"))
    assert denied.status == 403
    await add_user(client.app, "editor", "editor-password", roles=("ROLE_ADMIN",))
    assert (await client.post("/token", json={}, headers=basic("editor", "editor-password"))).status == 201
    await add_user(client.app, "manager", "manager-password", role=1)
    assert (await client.post("/token", json={}, headers=basic("manager", "manager-password"))).status == 201


async def test_unknown_tenant_is_400(client):
    response = await client.post("/token", json={}, headers={**ADMIN, "X-TENANT-ID": "nope"})
    assert response.status == 400
    assert (await response.json())["error"] == "unknown_tenant"


# Checking


async def test_a_plain_token_passes_and_is_reusable_when_not_unique(client):
    token = (await issue(client, {"unique": False}))["token"]
    for _ in range(3):
        status, body = await check(client, token)
        assert status == 200 and body["valid"] is True and body["unique"] is False


async def test_a_unique_token_passes_once(client):
    token = (await issue(client, {"unique": True, "kid": "one-shot"}))["token"]
    assert (await check(client, token))[0] == 200
    status, body = await check(client, token)
    assert status == 403 and body["error"] == "token_used"


async def test_a_failed_check_does_not_use_up_a_unique_token(client):
    token = (await issue(client, {"unique": True, "media": {"id": "28"}}))["token"]
    assert (await check(client, token, media_id="29"))[0] == 403
    assert (await check(client, token, media_id="28"))[0] == 200


@pytest.mark.parametrize(("ranges", "address", "allowed"), [
    (["10.0.0.0/8"], "10.0.0.0", True),
    (["10.0.0.0/8"], "10.255.255.255", True),
    (["10.0.0.0/8"], "11.0.0.0", False),
    (["10.0.0.0/8"], "9.255.255.255", False),
    (["192.168.1.16/28"], "192.168.1.31", True),
    (["192.168.1.16/28"], "192.168.1.32", False),
    (["2001:db8::/32"], "2001:db8:ffff::1", True),
    (["2001:db8::/32"], "2001:db9::1", False),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
    (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::5", True),
])
async def test_address_ranges_on_their_edges(client, ranges, address, allowed):
    token = (await issue(client, {"unique": False, "ipRange": ranges}))["token"]
    status, body = await check(client, token, ip=address)
    assert status == (200 if allowed else 403)
    if not allowed:
        assert body["error"] == "ip_not_allowed"


async def test_the_client_address_comes_from_trusted_proxies(client):
    token = (await issue(client, {"unique": False, "ipRange": ["203.0.113.0/24"]}))["token"]
    assert (await check(client, token))[0] == 403
    via_proxy = {"X-Forwarded-For": "203.0.113.9"}
    assert (await check(client, token, headers=via_proxy))[0] == 200
    mapped = {"X-Forwarded-For": "::ffff:203.0.113.9"}
    assert (await check(client, token, headers=mapped))[0] == 200


async def test_the_address_header_of_an_untrusted_peer_is_ignored(make_client):
    client = await make_client({"server": {"trusted_proxies": ["10.0.0.0/8"]}})
    token = (await issue(client, {"unique": False, "ipRange": ["203.0.113.0/24"]}))["token"]
    assert (await check(client, token, headers={"X-Forwarded-For": "203.0.113.9"}))[0] == 403


@pytest.mark.parametrize(("offset", "leeway", "expected"), [
    (-1, 0, 401), (0, 0, 200), (3600, 0, 200), (3601, 0, 401),
    (-1, 1, 200), (3601, 1, 200), (-2, 1, 401), (3602, 1, 401),
])
async def test_not_before_and_expiry_on_their_edges(make_client, clock, offset, leeway, expected):
    client = await make_client({"tokens": {"leeway": leeway}})
    token = (await issue(client, {"unique": False, "start": 100, "expire": 3700}))["token"]
    clock.advance(100 + offset)
    status, body = await check(client, token)
    assert status == expected, body
    if expected == 401:
        assert body["error"] in {"token_expired", "token_not_yet_valid"}


async def test_media_id_must_match(client):
    token = (await issue(client, {"unique": False, "media": {"id": 28}}))["token"]
    assert (await check(client, token, media_id="28"))[0] == 200
    assert (await check(client, token, media_id=28))[0] == 200
    status, body = await check(client, token, media_id="29")
    assert status == 403 and body["error"] == "media_not_allowed"
    assert (await check(client, token))[0] == 403
    free = (await issue(client, {"unique": False}))["token"]
    assert (await check(client, free, media_id="anything"))[0] == 200


async def test_user_restrictions_need_a_matching_user_credential(client):
    await add_user(client.app, "abc", "abc-password")
    await add_user(client.app, "viewer", "viewer-password", roles=("ROLE_VIEWER",))
    await add_user(client.app, "other", "other-password", roles=("ROLE_USER",))
    token = (await issue(client, {"unique": False,
                                  "user": {"username": "abc", "roles": ["ROLE_VIEWER"]}}))["token"]
    status, body = await check(client, token)
    assert status == 401 and body["error"] == "user_credential_required"
    assert (await check(client, token, headers=basic("abc", "abc-password")))[0] == 200
    assert (await check(client, token, headers=basic("viewer", "viewer-password")))[0] == 200
    status, body = await check(client, token, headers=basic("other", "other-password"))
    assert status == 403 and body["error"] == "user_not_allowed"
    assert (await check(client, token, headers=basic("abc", "wrong-password")))[0] == 401


async def test_a_token_of_tenant_a_is_refused_for_tenant_b(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    token = (await issue(client, {"unique": False}))["token"]
    status, body = await check(client, token, headers={"X-TENANT-ID": "acme"})
    assert status == 403 and body["error"] == "wrong_tenant"
    assert (await check(client, token))[0] == 200


async def test_check_needs_a_token(client):
    for body in ({}, {"token": ""}, {"token": 5}):
        response = await client.post("/token/check", json=body)
        assert response.status == 400
    response = await client.post("/token/check", json={"token": "x.y.z", "ip": "nope"})
    assert response.status == 400


# Attacks


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_known_attacks_fail(client):
    token = (await issue(client, {"unique": False}))["token"]
    header, claims = jwt.get_unverified_header(token), claims_of(token)
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    public = pyjwt.PyJWK(jwks["keys"][0]).key
    public_pem = public.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = [
        f"{b64({'alg': 'none', 'kid': header['kid']})}.{b64(claims)}.",
        # RS/HS confusion: HMAC with the published public key as the secret (PyJWT and
        # python-jose both refuse to make this token, so it is made by hand).
        _hmac_token(claims, public_pem, header["kid"]),
        jwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": "made-up"}),
        token[:-10] + ("A" * 10),
        token.rsplit(".", 1)[0] + ".",
        f"{b64({**header, 'jku': 'http://127.0.0.1:1/keys'})}.{token.split('.', 1)[1]}",
        "x" * 10000,
    ]
    for candidate in forged:
        status, body = await check(client, candidate)
        assert status == 401, (candidate[:40], body)


def _hmac_token(claims: dict, secret: bytes, kid: str) -> str:
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_a_user_token_is_no_media_token(client):
    pair = await (await client.post("/api/token/", json={"username": "admin",
                                                         "password": ADMIN_PASSWORD})).json()
    assert (await check(client, pair["access"]))[0] == 401


async def test_a_media_token_does_not_authenticate_a_user(client):
    token = (await issue(client, {"unique": False}))["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1alpha/token", headers=bearer)).status == 401
    verify = await client.post("/api/token/verify/", json={"token": token})
    assert verify.status == 401


async def test_a_kid_of_another_tenant_key_does_not_pass(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "boss", "boss-password", tenant="acme", role=1)
    acme = (await issue(client, {"unique": False},
                        headers={**basic("boss", "boss-password"), "X-TENANT-ID": "acme"}))["token"]
    own = (await issue(client, {"unique": False}))["token"]
    # A default-tenant token re-signed under acme's kid header is still checked with acme's key.
    claims = claims_of(own)
    acme_kid = jwt.get_unverified_header(acme)["kid"]
    header = {"alg": "RS256", "kid": acme_kid, "typ": "JWT"}
    swapped = f"{b64(header)}.{b64(claims)}.{own.split('.')[2]}"
    assert (await check(client, swapped))[0] == 401


# Keys, rotation and JWKS


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "ES256", "ES384"])
async def test_jwks_verifies_tokens_with_an_independent_library(client, algorithm):
    token = (await issue(client, {"unique": False, "algorithm": algorithm}))["token"]
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    key_set = pyjwt.PyJWKSet.from_dict(jwks)
    # The key alone tells PyJWT the algorithm: each JWK has kid, alg and use.
    key = key_set[jwt.get_unverified_header(token)["kid"]]
    assert key.algorithm_name == algorithm
    claims = pyjwt.decode(token, key, algorithms=[algorithm], issuer="gateway",
                          options={"verify_aud": False})
    assert claims["sub"] == "Media download"


async def test_jwks_publishes_public_keys_only(client):
    for algorithm in ("RS256", "ES256", "ES384", "HS256"):
        await issue(client, {"unique": False, "algorithm": algorithm})
    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    keys = (await response.json())["keys"]
    assert sorted(k["kty"] for k in keys) == ["EC", "EC", "RSA"]
    for key in keys:
        assert "d" not in key and "k" not in key and key["use"] == "sig"
        assert key["kid"] and key["alg"] in ("RS256", "ES256", "ES384")
    assert pyjwt.PyJWK(next(k for k in keys if k["kty"] == "RSA")).key.key_size >= 2048


async def test_jwks_by_header_or_query(client, clock):
    await client.app[STORE].add_tenant("acme", clock())
    await add_user(client.app, "boss", "boss-password", tenant="acme", role=1)
    await issue(client, {"unique": False}, headers={**basic("boss", "boss-password"), "X-TENANT-ID": "acme"})
    by_header = await (await client.get("/.well-known/jwks.json", headers={"X-TENANT-ID": "acme"})).json()
    by_query = await (await client.get("/.well-known/jwks.json", params={"tenant": "acme"})).json()
    assert by_header == by_query and len(by_header["keys"]) == 1
    assert (await (await client.get("/.well-known/jwks.json")).json()) == {"keys": []}
    unknown = await client.get("/.well-known/jwks.json", params={"tenant": "nope"})
    assert unknown.status == 400


async def test_keys_are_made_on_first_need_one_per_algorithm(client):
    assert await client.app[STORE].list_keys("default") == []
    kids = {}
    for algorithm in ("RS256", "RS384", "RS512", "RS256", "RS384"):
        token = (await issue(client, {"unique": False, "algorithm": algorithm}))["token"]
        kid = jwt.get_unverified_header(token)["kid"]
        assert kids.setdefault(algorithm, kid) == kid, "reused for its algorithm"
    assert len(set(kids.values())) == 3, "a key is used with one algorithm only"
    keys = await client.app[STORE].list_keys("default")
    assert sorted(k.algorithm for k in keys) == ["RS256", "RS384", "RS512"]
    assert {k.kid: k.algorithm for k in keys} == {kid: alg for alg, kid in kids.items()}


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(client):
    old = (await issue(client, {"unique": False}))["token"]
    retired, created = await client.app[SIGNING_KEYS].rotate("default")
    assert len(retired) == 1 and len(created) == 1
    new = (await issue(client, {"unique": False}))["token"]
    assert jwt.get_unverified_header(new)["kid"] == created[0]
    assert jwt.get_unverified_header(old)["kid"] == retired[0]
    assert (await check(client, old))[0] == 200
    assert (await check(client, new))[0] == 200
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {retired[0], created[0]}
