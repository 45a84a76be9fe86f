"""The admin API under /admin over real HTTP, on both backends: every route, every status,
who may do what, and revocations that hold on the very next request."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.appkeys import STORE
from tests.conftest import ADMIN_PASSWORD, Clock, add_user

Client = TestClient[web.Request, web.Application]

ROOT = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
PASSWORD = "a-good-password"

#: Every admin route, with a body that would be valid for root.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/users", None),
    ("POST", "/admin/users", {"username": "newcomer", "password": PASSWORD}),
    ("GET", "/admin/users/bob", None),
    ("PATCH", "/admin/users/bob", {"roles": ["ROLE_X"]}),
    ("DELETE", "/admin/users/bob", None),
    ("GET", "/admin/users/bob/tokens", None),
    ("DELETE", "/admin/users/bob/tokens", None),
    ("GET", "/admin/tenants", None),
    ("POST", "/admin/tenants", {"id": "globex"}),
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys/rotate", None),
    ("GET", "/admin/audit", None),
]


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def in_tenant(tenant: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-TENANT-ID": tenant}


async def answer(client: Client, method: str, path: str, status: int, *,
                 headers: dict[str, str] | None = None, json: Any = None) -> Any:
    response = await client.request(method, path, headers=headers or {}, json=json)
    body = await response.json()
    assert response.status == status, (method, path, response.status, body)
    if status >= 400:
        assert set(body) == {"error", "message"}, body
    return body


async def acme(client: Client) -> None:
    """Tenant acme with admin ada and user bob; default gets user carol and admin dan."""
    app = client.app
    await app[STORE].add_tenant("acme", 0.0)
    await add_user(app, "ada", PASSWORD, tenant="acme", role=1)
    await add_user(app, "bob", PASSWORD, tenant="acme", roles=("ROLE_USER",))
    await add_user(app, "carol", PASSWORD)
    await add_user(app, "dan", PASSWORD, role=1)


ADA = in_tenant("acme", basic("ada"))
BOB = in_tenant("acme", basic("bob"))


async def test_no_credentials_is_401_and_a_plain_user_403_on_every_route(client: Client) -> None:
    await acme(client)
    await answer(client, "GET", "/admin/users", 401, headers=basic("admin", "wrong-password"))
    for method, path, body in ROUTES:
        response = await client.request(method, path, json=body)
        assert response.status == 401, (method, path)
        assert "Basic" in response.headers["WWW-Authenticate"]
        assert (await response.json())["error"] == "not_authenticated"
        await answer(client, method, path, 401, json=body, headers={"Authorization": "Bearer nope"})
        denied = await answer(client, method, path, 403, headers=BOB, json=body)
        assert denied["error"] == "forbidden"
    # Nothing was changed by the refused calls.
    assert await client.app[STORE].get_user("acme", "newcomer") is None
    assert "globex" not in await client.app[STORE].list_tenants()


async def test_users_every_status(client: Client) -> None:
    await acme(client)
    created = await answer(client, "POST", "/admin/users", 201, headers=ROOT, json={
        "username": "erin", "password": PASSWORD, "email": "erin@example.com", "role": "admin",
        "roles": ["ROLE_USER", "ROLE_ADMIN"]})
    user = created["user"]
    assert {key: user[key] for key in ("tenant", "username", "email", "role", "roles", "disabled")} == {
        "tenant": "default", "username": "erin", "email": "erin@example.com", "role": 1,
        "roles": ["ROLE_USER", "ROLE_ADMIN"], "disabled": False}
    assert "password" not in str(created) and "argon2" not in str(created)
    # Form bodies too, roles as a comma-separated string.
    form = await client.post("/admin/users", headers=ROOT, data={
        "username": "frank", "password": PASSWORD, "roles": "ROLE_A,ROLE_B"})
    assert form.status == 201 and (await form.json())["user"]["roles"] == ["ROLE_A", "ROLE_B"]

    conflict = await answer(client, "POST", "/admin/users", 409, headers=ROOT,
                            json={"username": "ERIN", "password": PASSWORD})
    assert conflict["error"] == "conflict"
    for body, says in (
        ({"username": "x"}, "password: is required"),
        ({"username": "x", "password": "short"}, "password: the password must be at least 8"),
        ({"username": "x", "password": PASSWORD, "role": 7}, "role: expected 0 (root)"),
        ({"username": "x", "password": PASSWORD, "roles": ["bad role"]}, "roles: invalid role"),
        ({"username": "x\r\ny", "password": PASSWORD}, "username: invalid username"),
        ({"username": "x", "password": PASSWORD, "admin": True}, "admin: unknown field"),
    ):
        refused = await answer(client, "POST", "/admin/users", 400, headers=ROOT, json=body)
        assert refused["message"].startswith(says), refused
        assert "short" not in refused["message"]
    bad_json = await client.post("/admin/users", headers={**ROOT, "Content-Type": "application/json"},
                                 data=b"{nope")
    assert bad_json.status == 400

    listed = await answer(client, "GET", "/admin/users", 200, headers=ROOT)
    assert [u["username"] for u in listed["users"]] == ["admin", "carol", "dan", "erin", "frank"]
    shown = await answer(client, "GET", "/admin/users/Erin", 200, headers=ROOT)
    assert shown["user"]["username"] == "erin"
    assert (await answer(client, "GET", "/admin/users/nobody", 404, headers=ROOT))["error"] == "not_found"

    patched = await answer(client, "PATCH", "/admin/users/erin", 200, headers=ROOT,
                           json={"roles": ["ROLE_X"], "role": 2})
    assert (patched["user"]["roles"], patched["user"]["role"], patched["revoked"]) == (["ROLE_X"], 2, 0)
    await answer(client, "PATCH", "/admin/users/erin", 400, headers=ROOT, json={})
    await answer(client, "PATCH", "/admin/users/erin", 400, headers=ROOT, json={"disabled": "maybe"})
    await answer(client, "PATCH", "/admin/users/nobody", 404, headers=ROOT, json={"disabled": True})

    deleted = await answer(client, "DELETE", "/admin/users/erin", 200, headers=ROOT)
    assert deleted["user"]["disabled"] is True
    await answer(client, "DELETE", "/admin/users/nobody", 404, headers=ROOT)
    # Deleted means disabled: the user can no longer sign in.
    await answer(client, "GET", "/admin/users", 401, headers=basic("erin"))

    await answer(client, "GET", "/admin/users/bob/tokens", 404, headers=ROOT)
    await answer(client, "DELETE", "/admin/users/nobody/tokens", 404, headers=ROOT)
    assert (await answer(client, "GET", "/admin/users/carol/tokens", 200, headers=ROOT)) == {"tokens": []}
    assert (await answer(client, "DELETE", "/admin/users/carol/tokens", 200, headers=ROOT)) == {"revoked": 0}


async def test_root_names_another_tenant_with_the_query(client: Client) -> None:
    await acme(client)
    listed = await answer(client, "GET", "/admin/users?tenant=acme", 200, headers=ROOT)
    assert (listed["tenant"], [u["username"] for u in listed["users"]]) == ("acme", ["ada", "bob"])
    await answer(client, "GET", "/admin/users/bob?tenant=acme", 200, headers=ROOT)
    await answer(client, "GET", "/admin/users/bob", 404, headers=ROOT)  # not in default
    unknown = await answer(client, "GET", "/admin/users?tenant=nope", 400, headers=ROOT)
    assert unknown["error"] == "unknown_tenant"
    invalid = await answer(client, "GET", "/admin/users?tenant=bad%20id", 400, headers=ROOT)
    assert invalid["message"].startswith("tenant: invalid tenant id")
    made = await answer(client, "POST", "/admin/users?tenant=acme", 201, headers=ROOT,
                        json={"username": "root2", "password": PASSWORD, "role": 0})
    assert (made["user"]["tenant"], made["user"]["role"]) == ("acme", 0)


async def test_an_admin_stays_in_their_tenant_and_below_root(client: Client) -> None:
    await acme(client)
    listed = await answer(client, "GET", "/admin/users", 200, headers=ADA)
    assert [u["username"] for u in listed["users"]] == ["ada", "bob"]
    assert (await answer(client, "GET", "/admin/users?tenant=acme", 200, headers=ADA))["tenant"] == "acme"
    for method, path, body in ROUTES:
        query = "&" if "?" in path else "?"
        await answer(client, method, f"{path}{query}tenant=default", 403, headers=ADA, json=body)
        await answer(client, method, f"{path}{query}tenant=nope", 403, headers=ADA, json=body)
    await answer(client, "GET", "/admin/tenants", 403, headers=ADA)
    await answer(client, "POST", "/admin/tenants", 403, headers=ADA, json={"id": "globex"})
    # Nobody is made root by an admin, by creation or by change.
    for role in (0, "0", "root"):
        refused = await answer(client, "POST", "/admin/users", 403, headers=ADA,
                               json={"username": "mallory", "password": PASSWORD, "role": role})
        assert "root" in refused["message"]
        await answer(client, "PATCH", "/admin/users/bob", 403, headers=ADA, json={"role": role})
    await answer(client, "PATCH", "/admin/users/ada", 403, headers=ADA, json={"role": 0})
    bob = await client.app[STORE].get_user("acme", "bob")
    assert bob is not None and bob.role == 2
    assert await client.app[STORE].get_user("acme", "mallory") is None
    # An admin of default sees root but cannot change, disable or log them out.
    dan = basic("dan")
    await answer(client, "GET", "/admin/users/admin", 200, headers=dan)
    await answer(client, "PATCH", "/admin/users/admin", 403, headers=dan, json={"password": "x" * 12})
    await answer(client, "DELETE", "/admin/users/admin", 403, headers=dan)
    await answer(client, "DELETE", "/admin/users/admin/tokens", 403, headers=dan)
    # What an admin may do in their own tenant.
    await answer(client, "POST", "/admin/users", 201, headers=ADA,
                 json={"username": "newbie", "password": PASSWORD, "role": 1})
    patched = await answer(client, "PATCH", "/admin/users/bob", 200, headers=ADA,
                           json={"roles": "ROLE_A", "role": 1})
    assert (patched["user"]["roles"], patched["user"]["role"]) == (["ROLE_A"], 1)
    await answer(client, "GET", "/admin/keys", 200, headers=ADA)
    await answer(client, "GET", "/admin/audit", 200, headers=ADA)


async def test_tenants_and_keys(client: Client) -> None:
    assert (await answer(client, "GET", "/admin/tenants", 200, headers=ROOT)) == {"tenants": ["default"]}
    assert (await answer(client, "POST", "/admin/tenants", 201, headers=ROOT, json={"id": "acme"})) == {
        "id": "acme"}
    await answer(client, "POST", "/admin/tenants", 409, headers=ROOT, json={"id": "acme"})
    for bad in ({"id": "bad id"}, {"id": "\uff41cme"}, {}, {"id": 5}):
        await answer(client, "POST", "/admin/tenants", 400, headers=ROOT, json=bad)
    tenants = await answer(client, "GET", "/admin/tenants", 200, headers=ROOT)
    assert tenants["tenants"] == ["acme", "default"]
    # The new tenant is usable at once.
    assert (await client.get("/healthz", headers={"X-TENANT-ID": "acme"})).status == 200

    assert (await answer(client, "GET", "/admin/keys", 200, headers=ROOT))["keys"] == []
    nothing = await answer(client, "POST", "/admin/keys/rotate", 200, headers=ROOT)
    assert (nothing["created"], nothing["retired"]) == ([], [])
    assert (await client.post("/token", json={}, headers=ROOT)).status == 201
    [key] = (await answer(client, "GET", "/admin/keys", 200, headers=ROOT))["keys"]
    assert set(key) == {"kid", "algorithm", "created", "active"} and key["active"] is True
    rotated = await answer(client, "POST", "/admin/keys/rotate", 200, headers=ROOT)
    assert rotated["retired"] == [key["kid"]] and len(rotated["created"]) == 1
    keys = (await answer(client, "GET", "/admin/keys", 200, headers=ROOT))["keys"]
    assert {k["kid"]: k["active"] for k in keys} == {key["kid"]: False, rotated["created"][0]: True}
    assert (await answer(client, "GET", "/admin/keys?tenant=acme", 200, headers=ROOT))["keys"] == []


# Revocations on the next request


async def session(client: Client, username: str, tenant: str = "acme") -> dict[str, str]:
    response = await client.post("/login", json={"username": username, "password": PASSWORD},
                                 headers={"X-TENANT-ID": tenant})
    assert response.status == 200, await response.text()
    body = await response.json()
    return {"X-Access-Token": body["token"], "X-Key": body["key"], "X-TENANT-ID": tenant}


async def pair(client: Client, username: str, tenant: str = "acme") -> dict[str, str]:
    response = await client.post("/api/token/", json={"username": username, "password": PASSWORD},
                                 headers={"X-TENANT-ID": tenant})
    assert response.status == 200, await response.text()
    body: dict[str, str] = await response.json()
    return body


async def named(client: Client, username: str, tenant: str = "acme") -> str:
    response = await client.post("/api/v1alpha/token", headers=in_tenant(tenant, basic(username)),
                                 json={"jwt_token_description": "ci", "jwt_token_life": "1 hour"})
    assert response.status == 201, await response.text()
    token: str = (await response.json())["jwt_token"]
    return token


def bearer(token: str, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-TENANT-ID": tenant}


async def auth_status(client: Client, headers: dict[str, str]) -> int:
    return (await client.get("/auth", headers=headers)).status


async def test_patch_disabled_and_password_end_live_tokens_at_once(client: Client,
                                                                   clock: Clock) -> None:
    await acme(client)
    for change in ({"disabled": True}, {"password": "another-password"}):
        if change.get("disabled"):
            user = "bob"
        else:
            await add_user(client.app, "bob2", PASSWORD, tenant="acme")
            user = "bob2"
        cookie = await session(client, user)
        tokens = await pair(client, user)
        assert await auth_status(client, cookie) == 200
        assert await auth_status(client, bearer(tokens["access"])) == 200  # and now cached
        patched = await answer(client, "PATCH", f"/admin/users/{user}", 200, headers=ADA, json=change)
        assert patched["revoked"] == 3  # session, refresh, access
        assert await auth_status(client, cookie) == 401
        assert await auth_status(client, bearer(tokens["access"])) == 401
        refreshed = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]},
                                      headers={"X-TENANT-ID": "acme"})
        assert refreshed.status == 401
    await answer(client, "GET", "/admin/users", 401, headers=in_tenant("acme", basic("bob2")))
    assert await auth_status(client, in_tenant("acme", basic("bob2", "another-password"))) == 200
    # Enabling again does not bring the revoked tokens back.
    await answer(client, "PATCH", "/admin/users/bob", 200, headers=ADA, json={"disabled": False})
    assert await auth_status(client, BOB) == 200


async def test_log_out_everywhere_ends_every_kind_at_once(client: Client) -> None:
    await acme(client)
    cookie = await session(client, "bob")
    tokens = await pair(client, "bob")
    api = await named(client, "bob")
    for headers in (cookie, bearer(tokens["access"]), bearer(api)):
        assert await auth_status(client, headers) == 200
    listed = (await answer(client, "GET", "/admin/users/bob/tokens", 200, headers=ADA))["tokens"]
    assert sorted(t["kind"] for t in listed) == ["access", "api", "refresh", "session"]
    for token in listed:
        assert set(token) == {"jti", "kind", "issued", "expires", "description"}
    text = str(listed)
    assert not any(part in text for part in (cookie["X-Access-Token"], cookie["X-Key"],
                                             tokens["access"], tokens["refresh"], api))

    assert (await answer(client, "DELETE", "/admin/users/bob/tokens", 200, headers=ADA)) == {"revoked": 4}
    for headers in (cookie, bearer(tokens["access"]), bearer(api)):
        assert await auth_status(client, headers) == 401
    refreshed = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]},
                                  headers={"X-TENANT-ID": "acme"})
    assert refreshed.status == 401
    assert (await answer(client, "GET", "/admin/users/bob/tokens", 200, headers=ADA)) == {"tokens": []}
    # The user may sign in again: it was a logout, not a ban.
    assert await auth_status(client, await session(client, "bob")) == 200


async def test_a_bearer_token_works_for_the_admin_api(client: Client) -> None:
    await acme(client)
    tokens = await pair(client, "ada")
    listed = await answer(client, "GET", "/admin/users", 200, headers=bearer(tokens["access"]))
    assert [u["username"] for u in listed["users"]] == ["ada", "bob"]
    await answer(client, "GET", "/admin/users", 403, headers=bearer((await pair(client, "bob"))["access"]))


async def test_audit_query(client: Client, clock: Clock) -> None:
    await acme(client)
    await session(client, "bob")
    clock.advance(3600)
    await answer(client, "PATCH", "/admin/users/bob", 200, headers=ADA, json={"roles": ["ROLE_Z"]})
    events = (await answer(client, "GET", "/admin/audit", 200, headers=ADA))["events"]
    assert [e["action"] for e in events] == ["user_changed", "token_issued", "login_succeeded"]
    assert events[0]["detail"] == {"roles": ["ROLE_Z"]}
    assert (events[0]["actor"], events[0]["subject"], events[0]["tenant"]) == ("ada", "bob", "acme")
    assert events[0]["address"] == "127.0.0.1" and events[0]["request_id"]
    recent = (await answer(client, "GET", "/admin/audit?since=30m", 200, headers=ADA))["events"]
    assert [e["action"] for e in recent] == ["user_changed"]
    by_time = (await answer(client, "GET", "/admin/audit?since=" + events[1]["time"], 200,
                            headers=ADA))["events"]
    assert len(by_time) == 3
    assert len((await answer(client, "GET", "/admin/audit?limit=1", 200, headers=ADA))["events"]) == 1
    assert len((await answer(client, "GET", "/admin/audit?user=ADA", 200, headers=ADA))["events"]) == 1
    assert (await answer(client, "GET", "/admin/audit?user=nobody", 200, headers=ADA))["events"] == []
    for bad in ("limit=0", "limit=1001", "limit=x", "since=yesterday", "since=2025-13-01"):
        await answer(client, "GET", f"/admin/audit?{bad}", 400, headers=ADA)
    # Root reads another tenant's trail; default's has none of acme's events.
    assert len((await answer(client, "GET", "/admin/audit?tenant=acme", 200, headers=ROOT))["events"]) == 3
    default = (await answer(client, "GET", "/admin/audit", 200, headers=ROOT))["events"]
    assert all(e["tenant"] == "default" for e in default)
