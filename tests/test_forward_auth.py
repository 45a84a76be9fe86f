"""``/auth`` as nginx ``auth_request`` and Traefik/Caddy ``ForwardAuth`` call it (docs/forward-auth.md).

Every test speaks to the real app the way a proxy does: the original request's URI and
method in ``X-Original-*`` (nginx) or ``X-Forwarded-*`` (Traefik), its credentials passed
on as they came, and the answer read from the status and the identity headers.
"""

from __future__ import annotations

import base64

import pytest
from jose import jwt

from gateway.config import ConfigError, parse_config
from tests.conftest import ADMIN_PASSWORD, add_user

# Request parsing and HTTP shapes, the same whatever the storage: SQLite only.
pytestmark = pytest.mark.storage_independent

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
IDENTITY_HEADERS = ("X-Auth-User", "X-Auth-Roles", "X-Auth-Tenant", "X-Auth-Token-Id")

RULES = [
    {"path": "^/public", "policy": "bypass"},
    {"path": "^/admin", "policy": "authenticated", "roles": ["ROLE_ADMIN"]},
    {"path": "^/closed", "policy": "deny"},
    {"path": "^/put-only", "methods": ["PUT"], "policy": "deny"},
]
GATEWAY = {"rules": RULES}

NGINX = ("X-Original-URI", "X-Original-Method")
TRAEFIK = ("X-Forwarded-Uri", "X-Forwarded-Method")


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ask(client, uri, method="GET", *, headers=None, proxy=NGINX, verb="GET"):
    """Ask ``/auth`` about ``method uri``, as the proxy ``proxy`` would."""
    uri_header, method_header = proxy
    sent = {uri_header: uri, method_header: method, **(headers or {})}
    return await client.request(verb, "/auth", headers=sent)


async def assert_401(response) -> dict:
    assert response.status == 401, await response.text()
    assert "WWW-Authenticate" in response.headers
    assert "Basic" in response.headers["WWW-Authenticate"] or "Bearer" in response.headers["WWW-Authenticate"]
    body = await response.json()
    assert set(body) == {"error", "message"} and body["message"]
    assert "X-Auth-User" not in response.headers
    return body


async def assert_403(response) -> dict:
    assert response.status == 403, await response.text()
    body = await response.json()
    assert set(body) == {"error", "message"}
    assert "X-Auth-User" not in response.headers
    return body


def identity(response) -> dict[str, str]:
    return {name: response.headers.get(name) for name in IDENTITY_HEADERS}


def jti_of(token: str) -> str:
    return jwt.get_unverified_claims(token)["jti"]


async def access_token(client, username="admin", password=ADMIN_PASSWORD, tenant=None) -> str:
    headers = {"X-TENANT-ID": tenant} if tenant else None
    response = await client.post("/api/token/", json={"username": username, "password": password},
                                 headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["access"]


async def login(client, username="admin", password=ADMIN_PASSWORD) -> dict:
    response = await client.post("/login", json={"username": username, "password": password})
    assert response.status == 200, await response.text()
    return await response.json()


async def issue_media(client, body=None, headers=None) -> dict:
    response = await client.post("/token", json=body or {}, headers=headers or ADMIN)
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
async def gw(make_client):
    return await make_client({"gateway": GATEWAY})


# Who is asking: no, good and bad credentials


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
async def test_no_credentials_is_401_with_a_challenge(gw, proxy):
    body = await assert_401(await ask(gw, "/app/page", proxy=proxy))
    assert body["error"] == "not_authenticated"


async def test_basic_credentials_pass_with_the_identity_headers(gw):
    await add_user(gw.app, "alice", "alice-password", roles=("ROLE_USER", "ROLE_EDITOR"))
    response = await ask(gw, "/app/page", headers=basic("alice", "alice-password"))
    assert response.status == 200, await response.text()
    assert identity(response) == {
        "X-Auth-User": "alice", "X-Auth-Roles": "ROLE_USER,ROLE_EDITOR",
        "X-Auth-Tenant": "default", "X-Auth-Token-Id": "",
    }


async def test_a_user_without_roles_has_an_empty_roles_header(gw):
    await add_user(gw.app, "plain", "plain-password")
    response = await ask(gw, "/app", headers=basic("plain", "plain-password"))
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "plain"
    assert response.headers["X-Auth-Roles"] == ""


async def test_a_bearer_access_token_passes_with_its_jti(gw):
    token = await access_token(gw)
    response = await ask(gw, "/app", headers=bearer(token))
    assert response.status == 200, await response.text()
    assert identity(response) == {
        "X-Auth-User": "admin", "X-Auth-Roles": "ROLE_ADMIN",
        "X-Auth-Tenant": "default", "X-Auth-Token-Id": jti_of(token),
    }


async def test_a_named_token_passes_with_its_id(gw):
    created = await gw.post("/api/v1alpha/token", headers=ADMIN,
                            json={"jwt_token_description": "ci", "jwt_token_life": "1 hour"})
    assert created.status == 201
    body = await created.json()
    response = await ask(gw, "/app", headers=bearer(body["jwt_token"]))
    assert response.status == 200, await response.text()
    assert response.headers["X-Auth-User"] == "admin"
    assert response.headers["X-Auth-Token-Id"] == body["jwt_token_id"] == jti_of(body["jwt_token"])


async def test_a_session_passes_with_its_key(gw):
    session = await login(gw)
    for headers in ({"X-Access-Token": session["token"], "X-Key": session["key"]},
                    {**bearer(session["token"]), "X-Key": session["key"]}):
        response = await ask(gw, "/app", headers=headers)
        assert response.status == 200, await response.text()
        assert response.headers["X-Auth-User"] == "admin"
        assert response.headers["X-Auth-Token-Id"] == jti_of(session["token"])


async def test_a_session_without_its_key_is_401(gw):
    session = await login(gw)
    await assert_401(await ask(gw, "/app", headers={"X-Access-Token": session["token"]}))
    await assert_401(await ask(gw, "/app", headers={"X-Access-Token": session["token"], "X-Key": "wrong"}))
    await assert_401(await ask(gw, "/app", headers=bearer(session["token"])))


async def test_session_query_parameters_in_the_original_uri_authenticate(gw):
    session = await login(gw)
    uri = f"/app/video?access_token={session['token']}&x_key={session['key']}"
    response = await ask(gw, uri)
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "admin"


async def test_the_identity_headers_follow_the_user_not_the_request(gw):
    # A client's own X-Auth-* headers, passed on by the proxy, are never echoed as identity.
    await add_user(gw.app, "alice", "alice-password")
    spoofed = {"X-Auth-User": "admin", "X-Auth-Roles": "ROLE_ADMIN", **basic("alice", "alice-password")}
    response = await ask(gw, "/app", headers=spoofed)
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "alice" and response.headers["X-Auth-Roles"] == ""
    await assert_403(await ask(gw, "/admin", headers=spoofed))
    await assert_401(await ask(gw, "/app", headers={"X-Auth-User": "admin"}))


async def test_bad_credentials_are_401(gw, clock):
    await add_user(gw.app, "alice", "alice-password")
    pair = await (await gw.post("/api/token/", json={"username": "admin",
                                                     "password": ADMIN_PASSWORD})).json()
    for headers in (
        basic("alice", "wrong-password"),
        basic("nobody", "whatever-password"),
        bearer("not.a.jwt"),
        bearer(pair["refresh"]),  # a refresh token is no access token
        {"Authorization": "Digest username=admin"},
    ):
        await assert_401(await ask(gw, "/app", headers=headers))
    clock.advance(301)  # past tokens.access_lifetime
    await assert_401(await ask(gw, "/app", headers=bearer(pair["access"])))


async def test_a_revoked_token_is_refused_at_once(gw):
    session = await login(gw)
    headers = {"X-Access-Token": session["token"], "X-Key": session["key"]}
    assert (await ask(gw, "/app", headers=headers)).status == 200
    logout = await gw.post("/logout", headers=headers)
    assert logout.status == 200
    await assert_401(await ask(gw, "/app", headers=headers))


# Policies


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
@pytest.mark.parametrize("uri", ["/public", "/public/", "/public/css/site.css?v=3", "/publicity"])
async def test_bypass_needs_no_credentials(gw, proxy, uri):
    response = await ask(gw, uri, proxy=proxy)
    assert response.status == 200, await response.text()
    assert response.headers["X-Auth-User"] == ""
    assert response.headers["X-Auth-Tenant"] == "default"


async def test_bypass_is_not_broken_by_stale_credentials(gw):
    assert (await ask(gw, "/public", headers=bearer("expired.or.garbage"))).status == 200


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
@pytest.mark.parametrize("uri", ["/closed", "/closed/", "/closed/deep/file.txt?x=1"])
async def test_deny_is_403_even_with_good_credentials(gw, proxy, uri):
    body = await assert_403(await ask(gw, uri, headers=ADMIN, proxy=proxy))
    assert body["error"] == "forbidden"
    await assert_403(await ask(gw, uri, proxy=proxy))


async def test_a_role_rule_needs_one_of_its_roles(gw):
    await add_user(gw.app, "alice", "alice-password", roles=("ROLE_USER",))
    await add_user(gw.app, "manager", "manager-password", role=1)  # admin by number, no ROLE_ADMIN
    await add_user(gw.app, "editor", "editor-password", roles=("ROLE_USER", "ROLE_ADMIN"))
    await assert_401(await ask(gw, "/admin/users"))
    body = await assert_403(await ask(gw, "/admin/users", headers=basic("alice", "alice-password")))
    assert "ROLE_ADMIN" in body["message"]
    await assert_403(await ask(gw, "/admin/users", headers=basic("manager", "manager-password")))
    allowed = await ask(gw, "/admin/users", headers=basic("editor", "editor-password"))
    assert allowed.status == 200
    assert allowed.headers["X-Auth-User"] == "editor"
    assert allowed.headers["X-Auth-Roles"] == "ROLE_USER,ROLE_ADMIN"
    by_token = await ask(gw, "/admin", headers=bearer(await access_token(gw)))
    assert by_token.status == 200 and by_token.headers["X-Auth-User"] == "admin"


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
async def test_methods_come_from_the_proxy_header(gw, proxy):
    await assert_403(await ask(gw, "/put-only", "PUT", headers=ADMIN, proxy=proxy))
    await assert_403(await ask(gw, "/put-only/x", "put", headers=ADMIN, proxy=proxy))
    # Other methods fall through to the default policy (authenticated).
    for method in ("GET", "POST", "DELETE"):
        assert (await ask(gw, "/put-only", method, headers=ADMIN, proxy=proxy)).status == 200
        await assert_401(await ask(gw, "/put-only", method, proxy=proxy))


async def test_the_method_header_wins_over_the_method_of_the_auth_request(gw):
    # Traefik and Caddy always call /auth with GET; nginx may use the original one.
    await assert_403(await ask(gw, "/put-only", "PUT", headers=ADMIN, verb="GET"))
    assert (await ask(gw, "/put-only", "GET", headers=ADMIN, verb="PUT")).status == 200


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
@pytest.mark.parametrize("uri", [
    "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin",
    "/public%2F..%2Fadmin", "/public/..%2fadmin", "//admin", "/public/./x/../../admin/users",
])
async def test_path_tricks_do_not_bypass_a_rule(gw, proxy, uri):
    await add_user(gw.app, "alice", "alice-password")
    await assert_401(await ask(gw, uri, proxy=proxy))
    await assert_403(await ask(gw, uri, headers=basic("alice", "alice-password"), proxy=proxy))
    assert (await ask(gw, uri, headers=ADMIN, proxy=proxy)).status == 200


@pytest.mark.parametrize("uri", ["/public/../closed", "/public/%2e%2e/closed", "/public%2F..%2Fclosed"])
async def test_path_tricks_do_not_escape_a_deny(gw, uri):
    await assert_403(await ask(gw, uri))
    await assert_403(await ask(gw, uri, headers=ADMIN))


@pytest.mark.parametrize("uri", ["/public/%00/x", "/public/%ff", "public/x", "%2Fpublic"])
async def test_an_unreadable_path_is_refused_not_a_pass(gw, uri):
    response = await ask(gw, uri, headers=ADMIN)
    # A 403, not a 400: nginx auth_request turns anything but 2xx, 401 and 403 into a 500.
    assert response.status == 403, await response.text()
    body = await response.json()
    assert set(body) == {"error", "message"} and body["error"] == "bad_request"
    assert "X-Auth-User" not in response.headers


async def test_default_policy_bypass(make_client):
    client = await make_client({"gateway": {"default_policy": "bypass", "rules": RULES}})
    response = await ask(client, "/anything/at/all")
    assert response.status == 200 and response.headers["X-Auth-User"] == ""
    await assert_403(await ask(client, "/closed"))
    await assert_401(await ask(client, "/admin"))


async def test_default_policy_deny(make_client):
    client = await make_client({"gateway": {"default_policy": "deny", "rules": RULES}})
    await assert_403(await ask(client, "/anything", headers=ADMIN))
    await assert_403(await ask(client, "/anything"))
    assert (await ask(client, "/public/page")).status == 200
    assert (await ask(client, "/admin", headers=ADMIN)).status == 200


async def test_no_rules_and_the_default_default_policy_is_authenticated(client):
    await assert_401(await ask(client, "/anything"))
    assert (await ask(client, "/anything", headers=ADMIN)).status == 200


async def test_custom_identity_header_names(make_client):
    client = await make_client({"gateway": {"rules": RULES, "headers": {
        "user": "Remote-User", "roles": "Remote-Groups", "token_id": "Remote-Token"}}})
    token = await access_token(client)
    response = await ask(client, "/app", headers=bearer(token))
    assert response.status == 200
    assert response.headers["Remote-User"] == "admin"
    assert response.headers["Remote-Groups"] == "ROLE_ADMIN"
    assert response.headers["Remote-Token"] == jti_of(token)
    assert response.headers["X-Auth-Tenant"] == "default"  # not overridden: the default name
    for name in ("X-Auth-User", "X-Auth-Roles", "X-Auth-Token-Id"):
        assert name not in response.headers


@pytest.mark.parametrize("verb", ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_auth_answers_any_method(gw, verb):
    allowed = await ask(gw, "/app", headers=ADMIN, verb=verb)
    assert allowed.status == 200
    assert allowed.headers["X-Auth-User"] == "admin"
    refused = await ask(gw, "/app", verb=verb)
    assert refused.status == 401 and "WWW-Authenticate" in refused.headers
    assert (await ask(gw, "/closed", headers=ADMIN, verb=verb)).status == 403


# Tenants


@pytest.fixture
async def tenants(make_client):
    client = await make_client({
        "tenants": {"default": {}, "acme": {}},
        "gateway": {"rules": [{"path": "^/acme-open", "tenant": "acme", "policy": "bypass"}, *RULES]},
    })
    await add_user(client.app, "bob", "bob-password", tenant="acme", roles=("ROLE_USER",))
    return client


async def test_an_unknown_or_repeated_tenant_is_403(tenants):
    response = await ask(tenants, "/public", headers={"X-TENANT-ID": "nope"})
    assert response.status == 403
    body = await response.json()
    assert body["error"] == "unknown_tenant" and set(body) == {"error", "message"}
    repeated = await tenants.get("/auth", headers=[("X-Original-URI", "/public"), ("X-TENANT-ID", "acme"),
                                                   ("X-TENANT-ID", "default")])
    assert repeated.status == 403
    assert (await repeated.json())["error"] == "bad_request"


async def test_a_user_of_a_tenant_passes_with_its_header(tenants):
    acme = {"X-TENANT-ID": "acme"}
    response = await ask(tenants, "/app", headers={**acme, **basic("bob", "bob-password")})
    assert response.status == 200, await response.text()
    assert identity(response) == {"X-Auth-User": "bob", "X-Auth-Roles": "ROLE_USER",
                                  "X-Auth-Tenant": "acme", "X-Auth-Token-Id": ""}
    token = await access_token(tenants, "bob", "bob-password", tenant="acme")
    by_token = await ask(tenants, "/app", headers={**acme, **bearer(token)})
    assert by_token.status == 200 and by_token.headers["X-Auth-Token-Id"] == jti_of(token)
    # Without the header, bob is looked for in the default tenant.
    await assert_401(await ask(tenants, "/app", headers=basic("bob", "bob-password")))


async def test_a_token_of_another_tenant_is_403(tenants):
    acme = {"X-TENANT-ID": "acme"}
    default_token = await access_token(tenants)
    await assert_403(await ask(tenants, "/app", headers={**acme, **bearer(default_token)}))
    acme_token = await access_token(tenants, "bob", "bob-password", tenant="acme")
    await assert_403(await ask(tenants, "/app", headers=bearer(acme_token)))
    # A default-tenant password means nothing in acme.
    await assert_401(await ask(tenants, "/app", headers={**acme, **ADMIN}))


async def test_a_tenant_rule_applies_to_its_tenant_only(tenants):
    response = await ask(tenants, "/acme-open/page", headers={"X-TENANT-ID": "acme"})
    assert response.status == 200 and response.headers["X-Auth-Tenant"] == "acme"
    await assert_401(await ask(tenants, "/acme-open/page"))


# Media URLs (media.url_pattern, default '^/media/(?P<id>[^/?]+)')


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
@pytest.mark.parametrize("parameter", ["signingKey", "token"])
async def test_a_media_token_in_the_url_opens_its_media(gw, proxy, parameter):
    issued = await issue_media(gw, {"unique": False, "media": {"id": "28"}})
    response = await ask(gw, f"/media/28?{parameter}={issued['token']}", proxy=proxy)
    assert response.status == 200, await response.text()
    assert identity(response) == {"X-Auth-User": "", "X-Auth-Roles": "",
                                  "X-Auth-Tenant": "default", "X-Auth-Token-Id": issued["kid"]}


async def test_a_media_token_as_bearer_opens_its_media(gw):
    issued = await issue_media(gw, {"unique": False, "media": {"id": "28"}, "kid": "bearer-kid"})
    response = await ask(gw, "/media/28/stream.m3u8", headers=bearer(issued["token"]))
    assert response.status == 200, await response.text()
    assert response.headers["X-Auth-Token-Id"] == "bearer-kid"
    assert response.headers["X-Auth-User"] == ""


async def test_a_media_token_for_another_media_is_403(gw):
    token = (await issue_media(gw, {"unique": False, "media": {"id": "28"}}))["token"]
    body = await assert_403(await ask(gw, f"/media/29?signingKey={token}"))
    assert body["error"] == "media_not_allowed"
    body = await assert_403(await ask(gw, "/media/29", headers=bearer(token)))
    assert body["error"] == "media_not_allowed"


async def test_a_unique_media_token_passes_once(gw):
    token = (await issue_media(gw, {"unique": True, "media": {"id": "28"}}))["token"]
    assert (await ask(gw, f"/media/28?signingKey={token}")).status == 200
    body = await assert_403(await ask(gw, f"/media/28?signingKey={token}"))
    assert body["error"] == "token_used"
    body = await assert_403(await ask(gw, f"/media/28?token={token}", proxy=TRAEFIK))
    assert body["error"] == "token_used"


async def test_a_failed_use_does_not_spend_a_unique_media_token(gw):
    token = (await issue_media(gw, {"unique": True, "media": {"id": "28"}}))["token"]
    await assert_403(await ask(gw, f"/media/29?signingKey={token}"))
    assert (await ask(gw, f"/media/28?signingKey={token}")).status == 200


async def test_an_expired_media_token_is_401(gw, clock):
    token = (await issue_media(gw, {"unique": False, "expire": 600}))["token"]
    assert (await ask(gw, f"/media/28?signingKey={token}")).status == 200
    clock.advance(601)
    body = await assert_401(await ask(gw, f"/media/28?signingKey={token}"))
    assert body["error"] == "token_expired"


async def test_a_media_token_not_yet_valid_is_401(gw, clock):
    token = (await issue_media(gw, {"unique": False, "start": 60, "expire": 600}))["token"]
    body = await assert_401(await ask(gw, f"/media/28?signingKey={token}"))
    assert body["error"] == "token_not_yet_valid"
    clock.advance(60)
    assert (await ask(gw, f"/media/28?signingKey={token}")).status == 200


async def test_a_media_token_does_not_open_other_urls(gw):
    token = (await issue_media(gw, {"unique": False}))["token"]
    for uri in (f"/app?signingKey={token}", f"/app?token={token}", f"/x/media/28?signingKey={token}",
                f"/medias/28?signingKey={token}"):
        await assert_401(await ask(gw, uri))
    await assert_401(await ask(gw, "/app", headers=bearer(token)))
    await assert_401(await ask(gw, f"/admin?signingKey={token}"))


async def test_a_forged_media_token_is_401(gw):
    token = (await issue_media(gw, {"unique": False}))["token"]
    head, payload, _ = token.split(".")
    await assert_401(await ask(gw, f"/media/28?signingKey={head}.{payload}.AAAA"))
    await assert_401(await ask(gw, "/media/28?signingKey=garbage"))


async def test_a_user_token_in_the_media_parameter_is_no_media_token(gw):
    access = await access_token(gw)
    await assert_401(await ask(gw, f"/media/28?signingKey={access}"))


async def test_without_a_media_token_a_media_url_follows_the_policy(gw):
    await assert_401(await ask(gw, "/media/28"))
    response = await ask(gw, "/media/28", headers=ADMIN)
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "admin" and response.headers["X-Auth-Token-Id"] == ""


async def test_a_deny_rule_beats_a_media_token(make_client):
    client = await make_client({"gateway": {"rules": [{"path": "^/media/secret", "policy": "deny"}]}})
    token = (await issue_media(client, {"unique": False}))["token"]
    await assert_403(await ask(client, f"/media/secret?signingKey={token}"))
    assert (await ask(client, f"/media/public?signingKey={token}")).status == 200


async def test_a_media_token_is_bound_to_its_tenant(tenants):
    token = (await issue_media(tenants, {"unique": False}))["token"]
    body = await assert_403(await ask(tenants, f"/media/28?signingKey={token}",
                                      headers={"X-TENANT-ID": "acme"}))
    assert body["error"] == "wrong_tenant"
    assert (await ask(tenants, f"/media/28?signingKey={token}")).status == 200


async def test_a_media_token_for_a_user_needs_that_user(gw):
    await add_user(gw.app, "viewer", "viewer-password")
    await add_user(gw.app, "other", "other-password")
    token = (await issue_media(gw, {"unique": False, "user": {"username": "viewer"}}))["token"]
    body = await assert_401(await ask(gw, f"/media/28?signingKey={token}"))
    assert body["error"] == "user_credential_required"
    response = await ask(gw, f"/media/28?signingKey={token}", headers=basic("viewer", "viewer-password"))
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "viewer"
    body = await assert_403(await ask(gw, f"/media/28?signingKey={token}",
                                      headers=basic("other", "other-password")))
    assert body["error"] == "user_not_allowed"


# Media tokens and the client address


async def test_the_address_range_uses_x_forwarded_for_from_a_trusted_proxy(gw):
    token = (await issue_media(gw, {"unique": False, "ipRange": ["203.0.113.0/24"]}))["token"]
    uri = f"/media/28?signingKey={token}"
    body = await assert_403(await ask(gw, uri))  # the peer itself is 127.0.0.1
    assert body["error"] == "ip_not_allowed"
    assert (await ask(gw, uri, headers={"X-Forwarded-For": "203.0.113.9"})).status == 200
    assert (await ask(gw, uri, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})).status == 200
    await assert_403(await ask(gw, uri, headers={"X-Forwarded-For": "198.51.100.7"}))
    # The rightmost untrusted hop is the client; a left entry is the client's own claim.
    await assert_403(await ask(gw, uri, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}))


async def test_the_address_range_uses_x_real_ip_from_a_trusted_proxy(gw):
    token = (await issue_media(gw, {"unique": False, "ipRange": ["203.0.113.0/24"]}))["token"]
    uri = f"/media/28?signingKey={token}"
    assert (await ask(gw, uri, headers={"X-Real-IP": "203.0.113.9"})).status == 200
    body = await assert_403(await ask(gw, uri, headers={"X-Real-IP": "198.51.100.7"}))
    assert body["error"] == "ip_not_allowed"


async def test_forwarding_headers_of_an_untrusted_peer_are_ignored(make_client):
    client = await make_client({"gateway": GATEWAY, "server": {"trusted_proxies": ["10.0.0.0/8"]}})
    token = (await issue_media(client, {"unique": False, "ipRange": ["203.0.113.0/24"]}))["token"]
    uri = f"/media/28?signingKey={token}"
    for headers in ({"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "203.0.113.9"}):
        body = await assert_403(await ask(client, uri, headers=headers))
        assert body["error"] == "ip_not_allowed"
    loopback = (await issue_media(client, {"unique": False, "ipRange": ["127.0.0.0/8"]}))["token"]
    allowed = await ask(client, f"/media/28?signingKey={loopback}",
                        headers={"X-Forwarded-For": "203.0.113.9"})
    assert allowed.status == 200


# Media tokens under a rule with roles


@pytest.fixture
async def vip(make_client):
    client = await make_client({"gateway": {"rules": [{"path": "^/media/", "roles": ["ROLE_VIP"]}]}})
    await add_user(client.app, "vip", "vip-password", roles=("ROLE_VIP",))
    await add_user(client.app, "pleb", "pleb-password", roles=("ROLE_USER",))
    return client


async def test_a_role_rule_on_media_needs_the_role_besides_the_token(vip):
    token = (await issue_media(vip, {"unique": False}))["token"]
    uri = f"/media/28?signingKey={token}"
    await assert_403(await ask(vip, uri, headers=basic("pleb", "pleb-password")))
    response = await ask(vip, uri, headers=basic("vip", "vip-password"))
    assert response.status == 200
    assert response.headers["X-Auth-User"] == "vip"
    assert response.headers["X-Auth-Token-Id"] == jwt.get_unverified_claims(token)["kid"]


async def test_a_role_rule_on_media_without_any_user_credential_is_401(vip):
    token = (await issue_media(vip, {"unique": False}))["token"]
    await assert_401(await ask(vip, f"/media/28?signingKey={token}"))


async def test_a_use_refused_for_its_roles_does_not_spend_a_unique_token(vip):
    token = (await issue_media(vip, {"unique": True}))["token"]
    uri = f"/media/28?signingKey={token}"
    await assert_403(await ask(vip, uri, headers=basic("pleb", "pleb-password")))
    response = await ask(vip, uri, headers=basic("vip", "vip-password"))
    assert response.status == 200, await response.text()


# Which headers name the original request: gateway.forward_auth.headers


def forward_auth(headers: str) -> dict:
    return {"gateway": {"rules": RULES, "forward_auth": {"headers": headers}}}


async def test_nginx_headers_ignore_what_traefik_and_caddy_would_send(make_client):
    client = await make_client(forward_auth("nginx"))
    # A client behind nginx adds X-Forwarded-*: ignored, whatever it says.
    hostile = {"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "PUT"}
    await assert_401(await ask(client, "/admin/panel", headers=hostile))
    await assert_403(await ask(client, "/closed", headers={**ADMIN, **hostile}))
    assert (await ask(client, "/put-only/x", "GET", headers={**ADMIN, **hostile})).status == 200
    # Traefik's headers alone decide nothing: the URI is "/" as when nginx sent none.
    await assert_401(await ask(client, "/public/x", proxy=TRAEFIK))


async def test_forwarded_headers_ignore_what_nginx_would_send(make_client):
    client = await make_client(forward_auth("forwarded"))
    hostile = {"X-Original-URI": "/public/x", "X-Original-Method": "PUT"}
    await assert_401(await ask(client, "/admin/panel", headers=hostile, proxy=TRAEFIK))
    await assert_403(await ask(client, "/closed", headers={**ADMIN, **hostile}, proxy=TRAEFIK))
    allowed = await ask(client, "/put-only/x", "GET", headers={**ADMIN, **hostile}, proxy=TRAEFIK)
    assert allowed.status == 200
    await assert_401(await ask(client, "/public/x", proxy=NGINX))


@pytest.mark.parametrize("proxy", [NGINX, TRAEFIK])
async def test_auto_refuses_the_two_families_when_they_disagree(gw, proxy):
    uri_header, method_header = NGINX if proxy is TRAEFIK else TRAEFIK  # the other proxy's
    for extra in ({uri_header: "/public/x"}, {method_header: "PUT"}):
        response = await ask(gw, "/app", headers={**ADMIN, **extra}, proxy=proxy)
        body = await assert_403(response)
        assert body["error"] == "conflicting_forward_headers"
    # The same values twice are one value.
    agreeing = {uri_header: "/app", method_header: "GET"}
    assert (await ask(gw, "/app", headers={**ADMIN, **agreeing}, proxy=proxy)).status == 200


@pytest.mark.parametrize("source", ["auto", "nginx", "forwarded"])
async def test_a_repeated_header_with_different_values_is_403(make_client, source):
    client = await make_client(forward_auth(source))
    uri_header = "X-Forwarded-Uri" if source == "forwarded" else "X-Original-URI"
    response = await client.get("/auth", headers=[(uri_header, "/admin/panel"), (uri_header, "/public/x")])
    assert (await assert_403(response))["error"] == "conflicting_forward_headers"
    same = await client.get("/auth", headers=[(uri_header, "/public/x"), (uri_header, "/public/x")])
    assert same.status == 200


async def test_every_refusal_of_auth_is_a_401_or_403(gw, clock):
    # A regulated login is a 403 with its code (nginx would make a 429 a 500).
    wrong = basic("admin", "wrong-password")
    statuses = [(await ask(gw, "/app", headers=wrong)).status for _ in range(5)]
    assert statuses == [401] * 5
    banned = await ask(gw, "/app", headers=wrong)
    assert (await assert_403(banned))["error"] == "too_many_attempts"
    assert "Retry-After" in banned.headers


def test_an_unknown_header_source_is_a_config_error():
    with pytest.raises(ConfigError, match=r"gateway\.forward_auth\.headers"):
        parse_config({"gateway": {"forward_auth": {"headers": "traefik"}}})
