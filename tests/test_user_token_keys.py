"""``tokens.algorithm: RS256 | ES256``: user tokens signed with the tenant's key, verified
downstream from the served JWKS alone (PyJWT), kept through rotation, and never accepted
with another algorithm or another tenant's key. HS256, the default, keeps the shared secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from jose import jwk
from jose import jwt as jose_jwt

from gateway.appkeys import STORE
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, add_user
from tests.jwks import key_set, kid_of, verified_by_pyjwt
from tests.readme import on_loopback, readme_block
from tests.servers import clean_env, run_cli

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
DAY = 86400


@pytest.fixture(params=["ES256", "RS256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def signed(make_client: Any, algorithm: str) -> Any:
    """A gateway whose user tokens are signed with the tenant's ``algorithm`` key."""
    return await make_client({"tokens": {"algorithm": algorithm}})


async def pair(client: Any, username: str = "admin", password: str = ADMIN_PASSWORD,
               tenant: str = "default") -> dict[str, str]:
    response = await client.post("/api/token/", json={"username": username, "password": password},
                                 headers={"X-TENANT-ID": tenant})
    assert response.status == 200, await response.text()
    body: dict[str, str] = await response.json()
    return body


async def session_and_named(client: Any) -> tuple[dict[str, str], str]:
    """A /login session ({"token", "key"}) and a named token made with it."""
    session = await (await client.post("/login", json={"username": "admin",
                                                       "password": ADMIN_PASSWORD})).json()
    response = await client.post(
        "/api/v1alpha/token", json={"jwt_token_description": "ci", "jwt_token_life": 60},
        headers={"X-Access-Token": session["token"], "X-Key": session["key"]})
    assert response.status == 201, await response.text()
    return session, str((await response.json())["jwt_token"])


async def auth(client: Any, token: str, tenant: str = "default") -> int:
    """``/auth`` (forward auth, as nginx asks) with ``token`` as the Bearer credential."""
    response = await client.get("/auth", headers={
        "Authorization": f"Bearer {token}", "X-Original-URI": "/app", "X-Original-Method": "GET",
        "X-TENANT-ID": tenant})
    status: int = response.status
    return status


async def verify(client: Any, token: str) -> int:
    status: int = (await client.post("/api/token/verify/", json={"token": token})).status
    return status


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made by hand (python-jose refuses a PEM as an HMAC secret; an attacker
    does not ask)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# Verified downstream from the JWKS alone


async def test_every_user_token_verifies_with_the_served_jwks(signed, algorithm):
    tokens = await pair(signed)
    session, named = await session_and_named(signed)
    kinds = {"access": tokens["access"], "refresh": tokens["refresh"],
             "session": session["token"], "api": named}
    keys = await key_set(signed)
    document = await (await signed.get("/.well-known/jwks.json")).json()
    published = {key["kid"]: key for key in document["keys"]}
    for kind, token in kinds.items():
        header = pyjwt.get_unverified_header(token)
        assert header["alg"] == algorithm and header["kid"] in published
        assert published[header["kid"]]["alg"] == algorithm
        assert published[header["kid"]]["use"] == "sig"
        claims = verified_by_pyjwt(keys, token)
        assert claims["token_type"] == kind and claims["tenant"] == "default"
        # The row names the key, so pruning keeps a retired key while the token lives.
        found = await signed.app[STORE].get_token_and_user(claims["jti"])
        assert found is not None and found[0].signing_kid == header["kid"]
    assert len({kid_of(token) for token in kinds.values()}) == 1, "one key per algorithm"
    access_claims = verified_by_pyjwt(keys, tokens["access"])
    assert access_claims["user_id"] == access_claims["sub"]
    assert await auth(signed, tokens["access"]) == 200
    assert await auth(signed, named) == 200
    assert await verify(signed, tokens["access"]) == 200
    listed = await signed.get("/api/v1alpha/token", headers={"X-Access-Token": session["token"],
                                                              "X-Key": session["key"]})
    assert listed.status == 200
    metadata = await (await signed.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_signing_alg_values_supported"] == [algorithm]


async def test_user_and_media_tokens_share_the_tenants_key_of_their_algorithm(signed, algorithm):
    access = (await pair(signed))["access"]
    media = await signed.post("/token", json={"unique": False, "algorithm": algorithm},
                              headers=ADMIN)
    assert media.status == 201
    media_token = (await media.json())["token"]
    assert kid_of(media_token) == kid_of(access)
    # Same key, different kinds: neither passes for the other.
    assert await auth(signed, media_token) == 401
    check = await signed.post("/token/check", json={"token": access})
    assert check.status == 401


async def test_refresh_issues_tokens_signed_with_the_tenant_key(signed, algorithm):
    tokens = await pair(signed)
    response = await signed.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert response.status == 200
    access = (await response.json())["access"]
    assert pyjwt.get_unverified_header(access)["alg"] == algorithm
    assert verified_by_pyjwt(await key_set(signed), access)["token_type"] == "access"


async def test_the_readmes_pyjwt_snippet_verifies_access_tokens_across_a_rotation(make_client):
    client = await make_client({"tokens": {"algorithm": "ES256"}})
    snippet = readme_block("Verifying user tokens with the JWKS (PyJWT, FastAPI, Kong, Envoy)",
                           "python", "PyJWKClient")
    namespace: dict[str, Any] = {}
    exec(on_loopback(snippet, gateway=client.server.port, upstream=0), namespace)  # noqa: S102
    verify_access_token = namespace["verify_access_token"]
    old = await pair(client)
    # PyJWKClient fetches with urllib: off the loop that serves the gateway.
    claims = await asyncio.to_thread(verify_access_token, old["access"])
    assert claims["token_type"] == "access" and claims["user_id"] == claims["sub"]
    with pytest.raises(pyjwt.InvalidTokenError):
        await asyncio.to_thread(verify_access_token, old["refresh"])
    assert (await client.post("/admin/keys/rotate", headers=ADMIN)).status == 200
    new = (await pair(client))["access"]
    assert kid_of(new) != kid_of(old["access"])
    # PyJWKClient refetches the set for an unknown kid once its cooldown (30 s) has passed.
    namespace["JWKS"].cooldown_duration = 0
    for token in (new, old["access"]):
        assert (await asyncio.to_thread(verify_access_token, token))["tenant"] == "default"


# Rotation


async def test_rotation_keeps_old_tokens_and_signs_new_ones_with_the_new_key(signed, clock):
    old = await pair(signed)  # not used before the rotation: nothing of it is cached
    rotated = await signed.post("/admin/keys/rotate", headers=ADMIN)
    assert rotated.status == 200
    body = await rotated.json()
    assert body["retired"] == [kid_of(old["access"])] and len(body["created"]) == 1
    new = await pair(signed)
    assert kid_of(new["access"]) == kid_of(new["refresh"]) == body["created"][0]
    keys = await key_set(signed)
    for token in (old["access"], old["refresh"], new["access"], new["refresh"]):
        assert verified_by_pyjwt(keys, token)["iss"] == "gateway"
    assert await auth(signed, old["access"]) == 200
    assert await auth(signed, new["access"]) == 200
    refreshed = await signed.post("/api/token/refresh/", json={"refresh": old["refresh"]})
    assert refreshed.status == 200
    assert kid_of((await refreshed.json())["access"]) == body["created"][0]

    # Pruning keeps the retired key while a token it signed is unexpired, then drops it.
    store = signed.app[STORE]
    await store.prune(clock(), clock() - DAY, clock() - DAY)
    assert await store.get_key(kid_of(old["access"])) is not None
    later = clock() + 2 * DAY
    await store.prune(later, later - DAY, later - DAY)
    assert await store.get_key(kid_of(old["access"])) is None
    assert await store.get_key(body["created"][0]) is not None


async def test_gateway_keys_rotate_while_serving(make_client, tmp_path, store_url):
    client = await make_client({"tokens": {"algorithm": "ES256"}})
    old = (await pair(client))["access"]
    storage = {"url": store_url} if store_url else {"path": str(tmp_path / "data" / "gateway.db")}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"storage": storage, "tokens": {"algorithm": "ES256"}}),
                      encoding="utf-8")
    result = await run_cli(config, clean_env(GATEWAY_SECRET_KEY=TEST_SECRET), "keys", "rotate")
    assert result.returncode == 0, result.stderr
    new = (await pair(client))["access"]
    assert kid_of(new) != kid_of(old)
    assert kid_of(old) in result.stdout and kid_of(new) in result.stdout
    keys = await key_set(client)
    for token in (old, new):
        assert verified_by_pyjwt(keys, token)["token_type"] == "access"
        assert await auth(client, token) == 200


# Attacks


async def test_hs256_signed_with_the_public_key_is_refused(signed):
    tokens = await pair(signed)
    access = tokens["access"]
    kid = kid_of(access)
    public = (await key_set(signed))[kid].key
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    document = await (await signed.get("/.well-known/jwks.json")).json()
    [published] = [key for key in document["keys"] if key["kid"] == kid]
    claims = pyjwt.decode(access, options={"verify_signature": False})
    for secret in (pem, pem.strip(), json.dumps(published).encode()):
        forged = hs256({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, secret)
        assert await auth(signed, forged) == 401
        assert await verify(signed, forged) == 401
        introspected = await signed.post("/introspect", data={"token": forged}, headers=ADMIN)
        assert (await introspected.json()) == {"active": False}
    forged_refresh = hs256({"alg": "HS256", "kid": kid},
                           pyjwt.decode(tokens["refresh"], options={"verify_signature": False}), pem)
    response = await signed.post("/api/token/refresh/", json={"refresh": forged_refresh})
    assert response.status == 401
    assert await auth(signed, access) == 200


async def test_a_token_naming_another_tenants_key_is_refused(signed, clock, algorithm):
    store = signed.app[STORE]
    await store.add_tenant("acme", clock())
    await add_user(signed.app, "bob", "acme-password", tenant="acme")
    acme_kid = kid_of((await pair(signed, "bob", "acme-password", "acme"))["access"])
    tokens = await pair(signed)
    access = tokens["access"]
    assert acme_kid != kid_of(access)
    assert acme_kid not in {key.key_id for key in (await key_set(signed)).keys}
    assert acme_kid in {key.key_id for key in (await key_set(signed, "acme")).keys}

    # The header names acme's key; the signature is default's.
    header = {**pyjwt.get_unverified_header(access), "kid": acme_kid}
    _, payload, signature = access.split(".")
    swapped = f"{b64(json.dumps(header).encode())}.{payload}.{signature}"
    # Signed with acme's key itself, claiming the default tenant (and a live default row).
    record = await store.get_key(acme_kid)
    assert record is not None and record.algorithm == algorithm
    claims = pyjwt.decode(access, options={"verify_signature": False})
    foreign = jose_jwt.encode(claims, jwk.construct(record.private_key, algorithm),
                              algorithm=algorithm, headers={"kid": acme_kid})
    refresh_claims = pyjwt.decode(tokens["refresh"], options={"verify_signature": False})
    foreign_refresh = jose_jwt.encode(refresh_claims, jwk.construct(record.private_key, algorithm),
                                      algorithm=algorithm, headers={"kid": acme_kid})
    for token in (swapped, foreign):
        assert await auth(signed, token) == 401
        assert await auth(signed, token, "acme") == 401
        assert await verify(signed, token) == 401
    response = await signed.post("/api/token/refresh/", json={"refresh": foreign_refresh})
    assert response.status == 401
    assert await auth(signed, access) == 200


async def test_a_forged_or_unknown_kid_is_refused(signed):
    access = (await pair(signed))["access"]
    _, payload, signature = access.split(".")
    for kid in ("nope", "x" * 500, 42, None):
        forged = {**pyjwt.get_unverified_header(access), "kid": kid}
        assert await auth(signed, f"{b64(json.dumps(forged).encode())}.{payload}.{signature}") == 401


# HS256, the default, and changing the algorithm


async def test_hs256_default_keeps_the_shared_secret_and_publishes_nothing(make_client):
    client = await make_client()
    tokens = await pair(client)
    header = pyjwt.get_unverified_header(tokens["access"])
    assert header["alg"] == "HS256" and header["kid"].startswith("hs256-")
    claims = pyjwt.decode(tokens["access"], TEST_SECRET, algorithms=["HS256"], issuer="gateway")
    found = await client.app[STORE].get_token_and_user(claims["jti"])
    assert found is not None and found[0].signing_kid is None
    assert (await (await client.get("/.well-known/jwks.json")).json()) == {"keys": []}
    metadata = await (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_signing_alg_values_supported"] == ["HS256"]
    # The tenant's RS256 media key signs no user token that passes here.
    media = await client.post("/token", json={"unique": False, "algorithm": "RS256"},
                              headers=ADMIN)
    record = await client.app[STORE].get_key(kid_of((await media.json())["token"]))
    assert record is not None
    forged = jose_jwt.encode(claims, jwk.construct(record.private_key, "RS256"),
                             algorithm="RS256", headers={"kid": record.kid})
    assert await auth(client, forged) == 401
    assert await auth(client, tokens["access"]) == 200


async def test_tokens_of_another_algorithm_stop_passing_when_it_changes(make_client):
    shared = await make_client()
    hs_access = (await pair(shared))["access"]
    keyed = await make_client({"tokens": {"algorithm": "ES256"}})
    es_access = (await pair(keyed))["access"]
    assert await auth(keyed, hs_access) == 401
    assert await auth(keyed, es_access) == 200
    assert await auth(shared, es_access) == 401
