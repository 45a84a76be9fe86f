"""The middleware chain and the operations endpoints (docs/operations.md)."""

from __future__ import annotations

import os
import stat

from gateway.appkeys import SETTINGS
from gateway.tokens.keyring import SECRET_FILE_NAME
from tests.conftest import make_config


async def test_healthz_and_readyz(client):
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_openapi_is_served_as_yaml(client):
    response = await client.get("/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    assert (await response.text()).startswith("openapi: 3.1")


async def test_every_response_carries_a_request_id(client):
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 32
    echoed = await client.get("/nope", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["X-Request-ID"] != "bad id\twith spaces"


async def test_unknown_routes_and_methods_answer_json_in_the_family_shape(client):
    missing = await client.get("/nope")
    assert missing.status == 404
    assert await missing.json() == {"error": "not_found", "message": "Not found"}
    wrong_method = await client.get("/login")
    assert wrong_method.status == 405
    assert await wrong_method.json() == {"status": "error", "info": "Method not allowed"}
    assert "POST" in wrong_method.headers["Allow"]
    simplejwt = await client.get("/api/token/nothing-here")
    assert await simplejwt.json() == {"detail": "Not found", "code": "not_found"}
    named = await client.get("/api/v1alpha/token-nothing")
    assert await named.json() == {"message": "Not found"}


async def test_unknown_tenant_is_400_everywhere(client):
    response = await client.get("/healthz", headers={"X-TENANT-ID": "acme"})
    assert response.status == 400
    assert await response.json() == {"error": "unknown_tenant", "message": "Unknown tenant 'acme'"}
    odd = await client.get("/healthz", headers={"X-TENANT-ID": "../../etc"})
    assert odd.status == 400


async def test_config_tenants_exist_from_the_start(make_client):
    client = await make_client({"tenants": {"default": {}, "acme": {}}})
    response = await client.get("/healthz", headers={"X-TENANT-ID": "acme"})
    assert response.status == 200


async def test_generated_secret_and_database_are_private(tmp_path, aiohttp_client):
    from gateway.app import create_app

    config = make_config(tmp_path, env={"GATEWAY_SECRET_KEY": ""})
    client = await aiohttp_client(create_app(config))
    assert (await client.get("/readyz")).status == 200
    secret = config.data_dir / SECRET_FILE_NAME
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert len(secret.read_bytes().strip()) >= 32
    assert stat.S_IMODE(os.stat(client.app[SETTINGS].config.storage.path).st_mode) == 0o600


async def test_the_generated_secret_is_reused_on_the_next_start(tmp_path, aiohttp_client):
    from jose import jwt

    from gateway.app import create_app
    from tests.conftest import ADMIN_PASSWORD

    config = make_config(tmp_path, env={"GATEWAY_SECRET_KEY": ""})
    first = await aiohttp_client(create_app(config))
    body = await (await first.post("/login", json={"username": "admin",
                                                   "password": ADMIN_PASSWORD})).json()
    await first.close()
    secret = (config.data_dir / SECRET_FILE_NAME).read_text().strip()
    jwt.decode(body["token"], secret, algorithms=["HS256"], options={"verify_exp": False})
    second = await aiohttp_client(create_app(config))
    headers = {"X-Access-Token": body["token"], "X-Key": body["key"]}
    assert (await second.post("/logout", headers=headers)).status == 200
