"""One signing key per algorithm (RFC 8725 §3.1): the JWKS read by PyJWT, rotation by the
real ``gateway keys rotate``, and a database made before keys had one algorithm.

A database of the old schema is built with the shipped migrations up to the one before
the change (SQLite 0005, PostgreSQL 0001), given keys and tokens the way the gateway
made them then (one RSA key for RS256/384/512, JWKs without ``alg``), then opened by
today's gateway.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk
from jose import jwt as jose_jwt

from gateway.appkeys import STORE
from gateway.keys.material import KEY_TYPE_OF
from gateway.resources import migrations_dir
from gateway.storage.migrations import apply_postgresql_migrations, apply_sqlite_migrations, discover
from tests.conftest import ADMIN_PASSWORD, TEST_SECRET
from tests.jwks import key_set, kid_of, verified_by_pyjwt
from tests.servers import clean_env, run_cli

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
PUBLISHED = ("RS256", "RS384", "RS512", "ES256", "ES384")


async def issue(client: Any, algorithm: str) -> str:
    response = await client.post("/token", json={"unique": False, "algorithm": algorithm},
                                 headers=ADMIN)
    assert response.status == 201, await response.text()
    token: str = (await response.json())["token"]
    return token


async def check(client: Any, token: str) -> int:
    response = await client.post("/token/check", json={"token": token})
    status: int = response.status
    return status


# The served JWKS


async def test_every_published_key_has_kid_alg_and_use_and_verifies_its_tokens(client):
    tokens = {algorithm: await issue(client, algorithm) for algorithm in (*PUBLISHED, "HS256")}
    document = await (await client.get("/.well-known/jwks.json")).json()
    published = {key["kid"]: key for key in document["keys"]}
    assert len(published) == len(PUBLISHED) == len(document["keys"])
    for key in document["keys"]:
        assert key["use"] == "sig" and key["alg"] in PUBLISHED and key["kid"]
    assert sorted(key["alg"] for key in document["keys"]) == sorted(PUBLISHED)
    assert kid_of(tokens["HS256"]) not in published, "HMAC secrets are never published"
    keys = pyjwt.PyJWKSet.from_dict(document)
    for algorithm in PUBLISHED:
        assert published[kid_of(tokens[algorithm])]["alg"] == algorithm
        claims = verified_by_pyjwt(keys, tokens[algorithm])
        assert claims["sub"] == "Media download" and claims["token_type"] == "media"


async def test_a_key_verifies_only_its_own_algorithm(client):
    token = await issue(client, "RS256")
    record = await client.app[STORE].get_key(kid_of(token))
    assert record is not None and record.algorithm == "RS256"
    # The RS256 key's own private half, signing RS384: a valid signature, the wrong algorithm.
    claims = pyjwt.decode(token, options={"verify_signature": False})
    other = jose_jwt.encode(claims, jwk.construct(record.private_key, "RS384"),
                            algorithm="RS384", headers={"kid": record.kid})
    assert await check(client, other) == 401
    assert await check(client, token) == 200


# Rotation by the CLI, while the server runs


def write_config(tmp_path: Path, store_url: str | None) -> Path:
    storage = {"url": store_url} if store_url else {"path": str(tmp_path / "data" / "gateway.db")}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"storage": storage}), encoding="utf-8")
    return path


async def test_gateway_keys_rotate_keeps_old_tokens_and_signs_new_ones_with_new_kids(
        client, tmp_path, store_url):
    old = {algorithm: await issue(client, algorithm) for algorithm in PUBLISHED}
    result = await run_cli(write_config(tmp_path, store_url),
                           clean_env(GATEWAY_SECRET_KEY=TEST_SECRET), "keys", "rotate")
    assert result.returncode == 0, result.stderr
    new = {algorithm: await issue(client, algorithm) for algorithm in PUBLISHED}
    keys = await key_set(client)
    assert len(keys.keys) == 2 * len(PUBLISHED)
    for algorithm in PUBLISHED:
        assert kid_of(new[algorithm]) != kid_of(old[algorithm])
        assert kid_of(new[algorithm]) in result.stdout and kid_of(old[algorithm]) in result.stdout
        for token in (old[algorithm], new[algorithm]):
            assert await check(client, token) == 200
            assert verified_by_pyjwt(keys, token)["token_type"] == "media"
    listing = await run_cli(write_config(tmp_path, store_url),
                            clean_env(GATEWAY_SECRET_KEY=TEST_SECRET), "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[:4] == ["KID", "ALGORITHM", "CREATED", "STATUS"]
    assert f"{kid_of(new['RS384'])} RS384" in " ".join(listing.stdout.split())


# A database made before keys had one algorithm


def old_rsa_key(kid: str) -> tuple[str, str]:
    """(PEM, public JWK) as the gateway stored an RSA key then: no ``alg`` in the JWK."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    public = {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": kid, "use": "sig"}
    return _pem(private), json.dumps(public)


def old_ec_key(kid: str) -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_numbers()

    def b64(number: int) -> str:
        return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()

    public = {"kty": "EC", "crv": "P-256", "alg": "ES256", "x": b64(point.x), "y": b64(point.y),
              "kid": kid, "use": "sig"}
    return _pem(private), json.dumps(public)


def _pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def media_token(pem: str, kid: str, algorithm: str, now: int) -> tuple[str, str]:
    """(jti, token): a media token as the gateway signed one, valid for an hour."""
    jti = str(uuid.uuid4())
    claims = {
        "token_type": "media", "sub": "Media download", "jti": jti, "kid": f"media-{jti}",
        "tenant": "default", "iss": "gateway", "iat": now, "nbf": now, "exp": now + 3600,
        "context": {"date": {"created_at": now, "start": now}, "rangeip": [], "unique": True,
                    "user": {}, "media": {}},
    }
    return jti, jose_jwt.encode(claims, jwk.construct(pem, algorithm), algorithm=algorithm,
                                headers={"kid": kid})


def migrations_before(tmp_path: Path, dialect: str, last: int) -> Path:
    """The shipped migrations of ``dialect`` up to number ``last``, in a directory of their own."""
    directory = tmp_path / f"migrations-{dialect}-{last:04d}"
    directory.mkdir()
    for version, name, path in discover(migrations_dir(dialect)):
        if version <= last:
            shutil.copy(path, directory / name)
    return directory


OLD_KEYS = "INSERT INTO keys (kid, tenant_id, algorithm, private_key, public_jwk, created_at, retired_at)"
OLD_TOKENS = ("INSERT INTO tokens (jti, kind, tenant_id, issued_at, expires_at, media_kid,"
              " signing_kid)")


async def build_old_database(tmp_path: Path, store_url: str | None,
                             keys: list[tuple[Any, ...]], tokens: list[tuple[Any, ...]]) -> None:
    """A database at the schema before one key per algorithm, holding ``keys`` and ``tokens``."""
    now = time.time()
    if store_url is None:
        path = tmp_path / "data" / "gateway.db"
        path.parent.mkdir(mode=0o700)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            await apply_sqlite_migrations(connection, migrations_before(tmp_path, "sqlite", 5))
        finally:
            await connection.close()
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("INSERT INTO tenants (id, created_at) VALUES ('default', ?)", (now,))
            db.executemany(OLD_KEYS + " VALUES (?, 'default', ?, ?, ?, ?, ?)", keys)
            db.executemany(OLD_TOKENS + " VALUES (?, 'media', 'default', ?, ?, ?, ?)", tokens)
        return
    raw = await asyncpg.connect(store_url)
    try:
        await apply_postgresql_migrations(raw, migrations_before(tmp_path, "postgresql", 1))
        await raw.execute("INSERT INTO tenants (id, created_at) VALUES ('default', $1)", now)
        await raw.executemany(OLD_KEYS + " VALUES ($1, 'default', $2, $3, $4, $5, $6)", keys)
        await raw.executemany(OLD_TOKENS + " VALUES ($1, 'media', 'default', $2, $3, $4, $5)",
                              tokens)
    finally:
        await raw.close()


async def test_a_database_of_the_old_schema_keeps_verifying_its_tokens(
        make_client, tmp_path, store_url, clock):
    now = int(clock.now)
    rsa_pem, rsa_jwk = old_rsa_key("default-rsa-old")
    retired_pem, retired_jwk = old_rsa_key("default-rsa-older")
    ec_pem, ec_jwk = old_ec_key("default-ec-p256-old")
    keys = [
        ("default-rsa-older", "RSA", retired_pem, retired_jwk, now - 7200.0, now - 600.0),
        ("default-rsa-old", "RSA", rsa_pem, rsa_jwk, now - 600.0, None),
        ("default-ec-p256-old", "EC-P256", ec_pem, ec_jwk, now - 7200.0, None),
    ]
    signed = {
        "RS256": media_token(rsa_pem, "default-rsa-old", "RS256", now),
        "RS384": media_token(rsa_pem, "default-rsa-old", "RS384", now),
        "RS512": media_token(retired_pem, "default-rsa-older", "RS512", now - 700),
        "ES256": media_token(ec_pem, "default-ec-p256-old", "ES256", now),
    }
    kid_of_token = {"RS256": "default-rsa-old", "RS384": "default-rsa-old",
                    "RS512": "default-rsa-older", "ES256": "default-ec-p256-old"}
    await build_old_database(tmp_path, store_url, keys, [
        (jti, now, now + 3600, pyjwt.decode(token, options={"verify_signature": False})["kid"],
         kid_of_token[algorithm])
        for algorithm, (jti, token) in signed.items()
    ])

    client = await make_client()
    store = client.app[STORE]
    migrated = {key.kid: key for key in await store.list_keys("default")}
    assert {kid: (key.algorithm, key.legacy_algorithms) for kid, key in migrated.items()} == {
        "default-rsa-older": ("RS256", ("RS384", "RS512")),
        "default-rsa-old": ("RS256", ("RS384", "RS512")),
        "default-ec-p256-old": ("ES256", ()),
    }
    # Every token the old keys signed still passes (and, being one-time, only once).
    for algorithm, (_, token) in signed.items():
        assert await check(client, token) == 200, algorithm
        assert await check(client, token) == 403, algorithm
    # The JWKS names each old key's one algorithm now.
    document = await (await client.get("/.well-known/jwks.json")).json()
    assert {key["kid"]: (key["alg"], key["use"]) for key in document["keys"]} == {
        "default-rsa-older": ("RS256", "sig"),
        "default-rsa-old": ("RS256", "sig"),
        "default-ec-p256-old": ("ES256", "sig"),
    }
    keyset = pyjwt.PyJWKSet.from_dict(document)
    assert verified_by_pyjwt(keyset, signed["RS256"][1])["jti"] == signed["RS256"][0]
    assert verified_by_pyjwt(keyset, signed["ES256"][1])["jti"] == signed["ES256"][0]
    # The migrated key goes on signing RS256; RS384 and RS512 get keys of their own.
    assert kid_of(await issue(client, "RS256")) == "default-rsa-old"
    assert kid_of(await issue(client, "ES256")) == "default-ec-p256-old"
    for algorithm in ("RS384", "RS512"):
        token = await issue(client, algorithm)
        assert kid_of(token) not in migrated
        record = await store.get_key(kid_of(token))
        assert record is not None and record.algorithm == algorithm
        assert record.legacy_algorithms == () and KEY_TYPE_OF[algorithm] == "RSA"
        assert verified_by_pyjwt(await key_set(client), token)["sub"] == "Media download"
    # The old RSA key verifies only what RSA keys signed: an ES256 header with its kid fails.
    claims = pyjwt.decode(signed["RS256"][1], options={"verify_signature": False})
    forged = jose_jwt.encode({**claims, "jti": str(uuid.uuid4())},
                             jwk.construct(ec_pem, "ES256"), algorithm="ES256",
                             headers={"kid": "default-rsa-old"})
    assert await check(client, forged) == 401
