"""openapi.yaml describes every route the app registers, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import yaml
from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.resources import openapi_path
from tests.conftest import make_config


def registered_operations(tmp_path) -> set[tuple[str, str]]:
    app = create_app(make_config(tmp_path))
    operations = set()
    for route in app.router.routes():
        if route.method in {"HEAD", "OPTIONS"}:
            continue
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
