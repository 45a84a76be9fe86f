"""An error answer quotes what the client sent only in part: a 15 KB field name or value
does not come back whole in a 400."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from gateway.errors import FIELD_NAME_LIMIT, MESSAGE_LIMIT, FieldErrors, clipped, render, shape_for_path
from tests.conftest import ADMIN_PASSWORD

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
DEEP_KEY = "a" + "[a]" * 5000  # 15 KB


def test_clipped_keeps_the_start_and_the_end():
    assert clipped("short", 10) == "short"
    text = "x" * 1000 + ": nested too deep"
    shortened = clipped(text, 64)
    assert len(shortened) == 64
    assert shortened.startswith("xxx") and "…" in shortened
    assert shortened.endswith(": nested too deep")


def test_field_lists_are_clipped_too():
    body = render(shape_for_path("/api/token/"), FieldErrors({"f" * 5000: "e" * 5000}))
    ((field, (text,)),) = body.items()
    assert len(field) == FIELD_NAME_LIMIT and len(text) == MESSAGE_LIMIT


@pytest.mark.parametrize("multipart", [False, True])
async def test_a_form_key_nested_5000_levels_deep_is_not_echoed(client, multipart):
    form = aiohttp.FormData([(DEEP_KEY, "x")], default_to_multipart=multipart)
    response = await client.post("/token", data=form, headers=ADMIN)
    assert response.status == 400
    assert len(await response.read()) < 2 * MESSAGE_LIMIT
    body = await response.json()
    assert body["error"] == "bad_request"
    assert len(body["message"]) <= MESSAGE_LIMIT
    if not multipart:  # a multipart part header this long is refused before decoding
        assert body["message"].startswith("a[a][a]")
        assert body["message"].endswith("nested deeper than 5 levels")


async def test_a_huge_unknown_field_name_is_not_echoed(client):
    response = await client.post("/token", json={"k" * 20000: 1}, headers=ADMIN)
    assert response.status == 400
    message = (await response.json())["message"]
    assert len(message) <= MESSAGE_LIMIT
    assert message.startswith("kkk") and "…" in message
    assert "is not a known parameter" in message


async def test_a_huge_nested_field_name_is_not_echoed(client):
    response = await client.post("/token", json={"media": {"m" * 20000: [1]}}, headers=ADMIN)
    assert response.status == 400
    message = (await response.json())["message"]
    assert len(message) <= MESSAGE_LIMIT and message.startswith("media.mmm")
