"""A downstream Django service with stock SimpleJWT verifies gateway access tokens by itself.

Django is configured once for this process, in this module only, with exactly the settings
the README names (``SIGNING_KEY`` = the gateway's secret, ``ALGORITHM`` HS256). A DRF view
behind ``JWTAuthentication`` (user looked up in Django's database by ``user_id``) and one
behind ``JWTStatelessUserAuthentication`` (no database) accept an access token from
``/api/token/`` and refuse refresh, session and named tokens, and tokens signed with another
secret. Django's ORM refuses to run on an event loop's thread, and an in-memory SQLite
database lives in one connection, so every Django call runs on one worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, TEST_SECRET, add_user, make_config

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

#: What the README tells a downstream Django to set.
SIMPLE_JWT = {"SIGNING_KEY": TEST_SECRET, "ALGORITHM": "HS256"}
INVALID_TOKEN = 401

Answer = tuple[int, dict[str, Any], str | None]


class Downstream:
    """The Django service: ``await downstream.get(view, token)`` → (status, body, challenge)."""

    def __init__(self, thread: ThreadPoolExecutor, views: dict[str, Callable[..., Any]],
                 add_django_user: Callable[[int, str], None]) -> None:
        self._thread = thread
        self._views = views
        self._add_django_user = add_django_user

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def add_user(self, user_id: int, username: str) -> None:
        await self.run(self._add_django_user, user_id, username)

    async def get(self, view: str, token: str) -> Answer:
        return await self.run(self._call, view, token)  # type: ignore[no-any-return]

    def _call(self, view: str, token: str) -> Answer:
        from rest_framework.test import APIRequestFactory

        request = APIRequestFactory().get("/me", HTTP_AUTHORIZATION=f"Bearer {token}")
        response = self._views[view](request)
        return response.status_code, dict(response.data), response.get("WWW-Authenticate")


def _configure_django() -> tuple[dict[str, Callable[..., Any]], Callable[[int, str], None]]:
    """Configure Django (once per process) and build the two views; runs on the Django thread."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="the-downstream-service-has-its-own-django-secret",
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            DEFAULT_AUTO_FIELD="django.db.models.AutoField",
            USE_TZ=True,
            SIMPLE_JWT=SIMPLE_JWT,
        )
        django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from rest_framework_simplejwt.authentication import (
        JWTAuthentication,
        JWTStatelessUserAuthentication,
    )

    call_command("migrate", run_syncdb=True, verbosity=0)

    class Me(APIView):
        authentication_classes = (JWTAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({"id": request.user.pk, "username": request.user.get_username()})

    class StatelessMe(Me):
        authentication_classes = (JWTStatelessUserAuthentication,)

        def get(self, request: Request) -> Response:
            return Response({"id": request.user.id, "username": request.user.username})

    def add_django_user(user_id: int, username: str) -> None:
        # The gateway's database is new in every test; Django's lives as long as the module.
        users = get_user_model().objects
        users.filter(username=username).exclude(id=user_id).delete()
        users.update_or_create(id=user_id, defaults={"username": username})

    return {"db": Me.as_view(), "stateless": StatelessMe.as_view()}, add_django_user


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()


@pytest.fixture(scope="module")
def downstream() -> Iterator[Downstream]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="django") as thread:
        views, add_django_user = thread.submit(_configure_django).result()
        yield Downstream(thread, views, add_django_user)
        thread.submit(_close_connections).result()


async def tokens_of_every_kind(client: Any) -> dict[str, str]:
    """An access, refresh, session and named token of ``johndoe`` from the gateway."""
    pair = await (await client.post("/api/token/", json={"username": "johndoe",
                                                         "password": "example1234"})).json()
    session = await (await client.post("/login", json={"username": "johndoe",
                                                       "password": "example1234"})).json()
    basic = "Basic " + base64.b64encode(b"johndoe:example1234").decode()
    named = await (await client.post("/api/v1alpha/token", headers={"Authorization": basic},
                                     json={"jwt_token_description": "ci", "jwt_token_life": 60})).json()
    return {"access": pair["access"], "refresh": pair["refresh"], "session": session["token"],
            "named": named["jwt_token"]}


def reasons(body: dict[str, Any]) -> list[str]:
    """Why SimpleJWT refused a token, one reason per token class it tried."""
    return [str(message["message"]) for message in body["messages"]]


@pytest.mark.parametrize("view", ["db", "stateless"])
async def test_stock_simplejwt_accepts_a_gateway_access_token(client, downstream, view):
    john = await add_user(client.app, "johndoe", "example1234", email="johndoe@example.com")
    await downstream.add_user(john.id, "johndoe")
    tokens = await tokens_of_every_kind(client)
    status, body, _ = await downstream.get(view, tokens["access"])
    assert status == 200
    assert (str(body["id"]), body["username"]) == (str(john.id), "johndoe")


@pytest.mark.parametrize("view", ["db", "stateless"])
@pytest.mark.parametrize("kind", ["refresh", "session", "named"])
async def test_stock_simplejwt_refuses_every_other_kind(client, downstream, view, kind):
    john = await add_user(client.app, "johndoe", "example1234", email="johndoe@example.com")
    await downstream.add_user(john.id, "johndoe")
    tokens = await tokens_of_every_kind(client)
    status, body, challenge = await downstream.get(view, tokens[kind])
    assert (status, body["code"], challenge) == (INVALID_TOKEN, "token_not_valid", 'Bearer realm="api"')
    assert reasons(body) == ["Token has wrong type"]


async def test_stock_simplejwt_refuses_a_token_signed_with_another_secret(make_client, tmp_path,
                                                                          downstream):
    other = await make_client(config=make_config(
        tmp_path / "other", env={"GATEWAY_SECRET_KEY": "another-gateway-secret-0123456789-abcdef"}))
    response = await other.post("/api/token/", json={"username": "admin", "password": ADMIN_PASSWORD})
    access = (await response.json())["access"]
    await downstream.add_user(1, "admin")
    for view in ("db", "stateless"):
        status, body, _ = await downstream.get(view, access)
        assert (status, body["code"]) == (INVALID_TOKEN, "token_not_valid")
        assert reasons(body) == ["Token is invalid"]
