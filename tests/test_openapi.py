"""openapi.yaml describes every route the app registers, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.proxy.upstreams import UpstreamResource
from gateway.resources import openapi_path
from tests.conftest import ADMIN_PASSWORD, make_config

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent


def registered_operations(tmp_path) -> set[tuple[str, str]]:
    app = create_app(make_config(tmp_path))
    operations = set()
    for route in app.router.routes():
        if route.method in {"HEAD", "OPTIONS"} or isinstance(route.resource, UpstreamResource):
            continue  # proxied paths are the upstreams' API, not the gateway's
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        methods = ["get", "post", "put", "patch", "delete"] if route.method == "*" else [route.method.lower()]
        for method in methods:
            operations.add((path, method))
    return operations


def described_operations() -> set[tuple[str, str]]:
    document = yaml.safe_load(openapi_path().read_text())
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_document_is_valid_openapi_3_1():
    document = yaml.safe_load(openapi_path().read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_registered_route_is_described(tmp_path):
    missing = registered_operations(tmp_path) - described_operations()
    assert not missing, f"routes missing from openapi.yaml: {sorted(missing)}"


def test_nothing_is_described_that_is_not_served(tmp_path):
    extra = described_operations() - registered_operations(tmp_path)
    assert not extra, f"openapi.yaml describes routes the app does not have: {sorted(extra)}"


def test_every_request_body_takes_json_and_both_form_encodings():
    document = yaml.safe_load(openapi_path().read_text())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body is None:
                continue
            if "$ref" in body:
                body = document["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
            assert set(body["content"]) == {
                "application/json", "application/x-www-form-urlencoded", "multipart/form-data",
            }, f"{method.upper()} {path}"


# The document agrees with the server: what it answers, what it refuses


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(openapi_path().read_text())
    return loaded


def statuses(path: str, method: str) -> set[int]:
    return {int(code) for code in document()["paths"][path][method]["responses"]}


def parameter_schema(path: str, method: str, name: str) -> dict[str, Any]:
    doc = document()
    item = doc["paths"][path]
    for parameter in [*item.get("parameters", ()), *item[method].get("parameters", ())]:
        if "$ref" in parameter:
            parameter = doc["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["name"] == name:
            schema: dict[str, Any] = parameter["schema"]
            return schema
    raise AssertionError(f"{method.upper()} {path} has no parameter {name}")


def body_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document()["components"]["schemas"][name]
    return schema


def accepts(schema: dict[str, Any], value: object) -> bool:
    return Draft202012Validator(schema).is_valid(value)


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


#: Every operation that takes Basic credentials (declared, or read when sent: /auth, /token/check).
BASIC_OPERATIONS = [
    ("post", "/api/v1alpha/token", "/api/v1alpha/token", {"jwt_token_description": "x",
                                                          "jwt_token_life": 60}),
    ("get", "/api/v1alpha/token", "/api/v1alpha/token", None),
    ("get", "/api/v1alpha/token/{token_id}", "/api/v1alpha/token/abc", None),
    ("delete", "/api/v1alpha/token/{token_id}", "/api/v1alpha/token/abc", None),
    ("post", "/token", "/token", {}),
]


def test_every_operation_declaring_basic_documents_429():
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if any("basic" in requirement for requirement in operation.get("security", ())):
                assert 429 in statuses(path, method), f"{method.upper()} {path}"


async def test_a_banned_basic_credential_is_a_documented_429_everywhere(client):
    for _ in range(5):
        await client.post("/login", json={"username": "admin", "password": "wrong-password"})
    for method, path, url, body in BASIC_OPERATIONS:
        response = await client.request(method, url, json=body,
                                        headers=basic("admin", ADMIN_PASSWORD))
        assert response.status == 429, f"{method.upper()} {url}"
        assert int(response.headers["Retry-After"]) > 0
        assert 429 in statuses(path, method), f"{method.upper()} {path}"
        assert "json" in response.content_type
    # /auth answers a proxy, which passes on only 401 and 403: the ban is a 403 there.
    response = await client.get("/auth", headers=basic("admin", ADMIN_PASSWORD))
    assert response.status == 403 and int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"] == "too_many_attempts"
    assert 403 in statuses("/auth", "get")


async def test_an_unknown_tenant_is_a_documented_400(client):
    for method, path, url in [("post", "/logout", "/logout"),
                              ("get", "/api/v1alpha/token/{token_id}", "/api/v1alpha/token/abc"),
                              ("delete", "/api/v1alpha/token/{token_id}", "/api/v1alpha/token/abc")]:
        response = await client.request(method, url, headers={"X-TENANT-ID": "nope"})
        assert response.status == 400, f"{method.upper()} {url}"
        assert "Unknown tenant" in await response.text()
        assert 400 in statuses(path, method), f"{method.upper()} {path}"


async def test_the_schema_refuses_what_the_server_refuses(client):
    for header in ("X-Original-URI", "X-Forwarded-Uri"):
        schema = parameter_schema("/auth", "get", header)
        assert accepts(schema, "/media/1") and not accepts(schema, "media/1")
        refused = await client.get("/auth", headers={header: "media/1"})
        assert refused.status == 403 and (await refused.json())["error"] == "bad_request"

    offset = parameter_schema("/api/v1alpha/token", "get", "offset")
    assert accepts(offset, 10**9) and not accepts(offset, 10**9 + 1)
    admin = basic("admin", ADMIN_PASSWORD)
    assert (await client.get("/api/v1alpha/token?offset=1000000000", headers=admin)).status == 200
    assert (await client.get("/api/v1alpha/token?offset=1000000001", headers=admin)).status == 400

    login = body_schema("LoginRequest")
    assert not accepts(login, {"username": "admin", "password": ""})
    assert not accepts(login, {"username": "", "password": "x"})
    assert (await client.post("/login", json={"username": "admin", "password": ""})).status == 400
    obtain = body_schema("TokenObtainRequest")
    for blank in ("", "   "):
        assert not accepts(obtain, {"username": "admin", "password": blank})
        response = await client.post("/api/token/", json={"username": "admin", "password": blank})
        assert response.status == 400
