"""The browser sign-in portal without a browser: redirects, CSRF, headers, cookies, and
what ``/auth`` answers a browser (the real-browser flows are in test_portal_browser.py)."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.config import ConfigError, parse_config
from gateway.portal.cookie import cookie_value, read_cookie
from gateway.portal.csrf import csrf_token, new_nonce, token_matches
from gateway.portal.redirects import RedirectPolicy, normalise_target, sign_in_url
from tests.conftest import ADMIN_PASSWORD, add_user

pytestmark = pytest.mark.sqlite_only

GOOD = "app.example.com"
PORTAL = {
    "enabled": True,
    "url": "https://auth.example.com/portal",
    "allowed_redirects": [r"^https://app\.example\.com", r"^http://127\.0\.0\.1:8080/"],
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

#: Every spelling that must never send a browser off GOOD: the usual open-redirect tricks.
EVIL_TARGETS = [
    "//evil.com/",
    "///evil.com/",
    "/\\evil.com/",
    "\\\\evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https:\\\\evil.com",
    "https:/\\evil.com",
    "http://app.example.com@evil.com/",
    "https://app.example.com:443@evil.com/",
    "https://app.example.com%40evil.com/",
    "https://app.example.com%2F@evil.com/",
    "https://evil.com\\@app.example.com/",
    "https://evil.com#@app.example.com/",
    "https://evil.com?https://app.example.com/",
    "https://app.example.com.evil.com/",
    "https://app.example.comevil.com/",
    "https://app.example.com:8443/",
    "https://app.example.com%2eevil.com/",
    "%2F%2Fevil.com",
    "%2f%2fevil.com%2f",
    "https%3A%2F%2Fevil.com",
    "https://evil%2Ecom/",
    "HTTPS://EVIL.COM/",
    "hTtP://evil.com",
    " https://evil.com/",
    "\thttps://evil.com/",
    "https://evil.com/\n",
    "https://app.example.com\t.evil.com/",
    "https://app.example.com\n@evil.com/",
    "https://\tevil.com/",
    "javascript:alert(1)//app.example.com",
    "data:text/html,<script>alert(1)</script>",
    "https://\uff41pp.example.com/",  # a fullwidth "a"
    "https://evil.com/https://app.example.com/",
    "ftp://app.example.com/",
    "https://app.example.com:99999/",
    "",
]
GOOD_TARGETS = {
    "https://app.example.com/page?x=1&y=2": "https://app.example.com/page?x=1&y=2",
    "HTTPS://APP.EXAMPLE.COM/Page": "https://app.example.com/Page",
    "https://app.example.com:443/": "https://app.example.com/",
    "https://app.example.com": "https://app.example.com/",
    "http://127.0.0.1:8080/app/": "http://127.0.0.1:8080/app/",
}


def location_host(location: str) -> str | None:
    """The host a browser would go to for ``location`` (None: the same host)."""
    parts = urlsplit(location)
    assert not location.startswith(("//", "/\\")), location
    return parts.hostname


# Pure parts

@pytest.mark.parametrize("rd", EVIL_TARGETS)
def test_no_spelling_of_another_host_is_followed(rd):
    assert RedirectPolicy(PORTAL["allowed_redirects"]).target(rd) is None


@pytest.mark.parametrize(("rd", "expected"), GOOD_TARGETS.items())
def test_allowed_targets_are_followed_normalised(rd, expected):
    assert RedirectPolicy(PORTAL["allowed_redirects"]).target(rd) == expected


def test_a_pattern_must_cover_the_whole_host():
    url, origin_length = normalise_target("https://app.example.com.evil.com/x")
    assert url[:origin_length] == "https://app.example.com.evil.com"
    assert RedirectPolicy([r"^https://app\.example\.com"]).target(url) is None
    assert RedirectPolicy([r"app\.example\.com"]).target("https://evil.com/?app.example.com") is None
    assert RedirectPolicy([]).target("https://app.example.com/") is None


def test_the_sign_in_url_carries_the_target_encoded():
    url = sign_in_url("https://auth.example.com/portal", "https://app.example.com/a?x=1&rd=//evil")
    assert url.startswith("https://auth.example.com/portal/login?rd=")
    assert parse_qs(urlsplit(url).query) == {"rd": ["https://app.example.com/a?x=1&rd=//evil"]}


def test_csrf_tokens_are_bound_to_the_nonce():
    key, nonce = b"k" * 32, new_nonce()
    token = csrf_token(key, nonce)
    assert token_matches(key, nonce, token)
    assert not token_matches(key, new_nonce(), token)
    assert not token_matches(b"x" * 32, nonce, token)
    assert not token_matches(key, None, token)
    assert not token_matches(key, nonce, "")
    assert not token_matches(key, nonce, ["list"])


def test_cookie_value_round_trip():
    value = cookie_value("acme", "8a0b7c1e-4a2b-4c9d-8e7f-0123456789ab", "aaa.bbb.ccc")
    cookie = read_cookie(value)
    assert cookie is not None and (cookie.tenant, cookie.token) == ("acme", "aaa.bbb.ccc")
    for bad in (None, "", "acme~nokey~aaa", "acme~8a0b7c1e-4a2b-4c9d-8e7f-0123456789ab~", "x" * 50):
        assert read_cookie(bad) is None


def test_portal_config_defaults_and_errors():
    portal = parse_config({}, {}).portal
    assert (portal.enabled, portal.url, portal.session_lifetime) == (False, "http://127.0.0.1:25441/portal",
                                                                     43200)
    assert (portal.cookie.name, portal.cookie.secure, portal.cookie.same_site) == ("gateway_session",
                                                                                   True, "lax")
    assert parse_config({"portal": {"url": "https://a.example/portal/"}}, {}).portal.url == \
        "https://a.example/portal"
    for bad, where in (({"url": "https://a.example/sso"}, "portal.url"),
                       ({"allowed_redirects": ["(unclosed"]}, "portal.allowed_redirects"),
                       ({"cookie": {"same_site": "none", "secure": False}}, "portal.cookie"),
                       ({"cookie": {"name": "bad name;"}}, "portal.cookie.name"),
                       ({"session_lifetime": 0}, "portal.session_lifetime")):
        with pytest.raises(ConfigError, match=rf"^{re.escape(where)}"):
            parse_config({"portal": bad}, {})


# Over HTTP

class Browserish:
    """A test client that keeps cookies by hand (the portal's are Secure, and the test server
    speaks plain HTTP) and reads each page's CSRF token."""

    def __init__(self, client):
        self.client = client
        self.cookies: dict[str, str] = {}

    def _headers(self, headers):
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return sent

    def _keep(self, response):
        for header in response.headers.getall("Set-Cookie", []):
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    async def get(self, path, headers=None):
        response = await self.client.get(path, headers=self._headers(headers), allow_redirects=False)
        await response.read()
        self._keep(response)
        return response

    async def post(self, path, data, headers=None):
        response = await self.client.post(path, data=data, headers=self._headers(headers),
                                          allow_redirects=False)
        await response.read()
        self._keep(response)
        return response

    async def csrf(self, path="/portal/login"):
        response = await self.get(path)
        if response.status == 303:  # signed in already: the account page has forms too
            response = await self.get("/portal/")
        page = await response.text()
        return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)

    async def sign_in(self, username="admin", password=ADMIN_PASSWORD, rd=""):
        token = await self.csrf()
        return await self.post("/portal/login", {"csrf": token, "username": username,
                                                 "password": password, "rd": rd})


@pytest.fixture
async def portal_client(make_client):
    return await make_client(overrides={"portal": PORTAL})


async def test_the_portal_is_off_by_default(client):
    assert (await client.get("/portal/login")).status == 404
    assert (await client.get("/portal/")).status == 404
    response = await client.get("/auth", headers={**HTML, "X-Forwarded-Uri": "/app",
                                                  "X-Forwarded-Method": "GET"})
    assert response.status == 401 and "Location" not in response.headers


async def test_no_rd_spelling_leaves_the_allowed_hosts(portal_client):
    browser = Browserish(portal_client)
    for rd in EVIL_TARGETS:
        response = await browser.sign_in(rd=rd)
        assert response.status == 303, rd
        assert response.headers["Location"] == "/portal/", rd
        # Signed in now: the form sends on at once, through the same check.
        response = await browser.get("/portal/login?rd=" + rd.replace("%", "%25").replace("#", "%23")
                                     .replace("&", "%26").replace("+", "%2B"))
        assert response.status == 303, rd
        assert response.headers["Location"] == "/portal/", rd
    for rd, expected in GOOD_TARGETS.items():
        response = await browser.sign_in(rd=rd)
        assert (response.status, response.headers["Location"]) == (303, expected)
        assert location_host(expected) in (GOOD, "127.0.0.1")


async def test_a_post_without_the_csrf_token_is_403_and_sets_no_cookie(portal_client):
    browser = Browserish(portal_client)
    token = await browser.csrf()
    form = {"username": "admin", "password": ADMIN_PASSWORD}
    for csrf in (None, "", "0" * 64, token[:-1] + ("0" if token[-1] != "0" else "1")):
        data = form if csrf is None else {**form, "csrf": csrf}
        response = await browser.post("/portal/login", data)
        assert response.status == 403, csrf
        assert "Set-Cookie" not in response.headers
        assert response.headers["X-Frame-Options"] == "DENY"
    # The token of another browser (another nonce) is no good either.
    other = Browserish(portal_client)
    response = await other.post("/portal/login", {**form, "csrf": token})
    assert response.status == 403 and "Set-Cookie" not in response.headers
    # A browser whose nonce cookie is gone cannot post the token it was given.
    stranger = Browserish(portal_client)
    stranger.cookies = {}
    response = await stranger.post("/portal/login", {**form, "csrf": token})
    assert response.status == 403 and "Set-Cookie" not in response.headers

    # Signed in, every other POST wants the token too, and leaves the session alone.
    assert (await browser.sign_in()).status == 303
    for path, data in (("/portal/logout", {}), ("/portal/tokens", {"jwt_token_description": "x",
                                                                   "jwt_token_life": "1 hour"}),
                       ("/portal/tokens/abc/delete", {})):
        response = await browser.post(path, {**data, "csrf": "f" * 64})
        assert response.status == 403, path
        assert "Set-Cookie" not in response.headers
    assert (await browser.get("/portal/")).status == 200


async def test_sign_in_sets_the_cookie_with_its_flags(portal_client):
    browser = Browserish(portal_client)
    response = await browser.sign_in(rd="https://app.example.com/x")
    assert (response.status, response.headers["Location"]) == (303, "https://app.example.com/x")
    [cookie] = [header for header in response.headers.getall("Set-Cookie")
                if header.startswith("gateway_session=")]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= flags
    assert "Path=/" in cookie and "SameSite=Lax" in cookie and "Max-Age=43200" in cookie
    assert "Domain" not in cookie
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


async def test_cookie_settings_are_honoured(make_client):
    client = await make_client(overrides={"portal": {
        **PORTAL, "session_lifetime": "1 hour",
        "cookie": {"name": "sso", "domain": "example.com", "secure": False, "same_site": "strict"},
    }})
    browser = Browserish(client)
    response = await browser.sign_in()
    [cookie] = [header for header in response.headers.getall("Set-Cookie") if header.startswith("sso=")]
    assert "Domain=example.com" in cookie and "SameSite=Strict" in cookie and "Max-Age=3600" in cookie
    assert "HttpOnly" in cookie and "Secure" not in cookie


async def test_pages_carry_the_security_headers(portal_client):
    browser = Browserish(portal_client)
    pages = [await browser.get("/portal/login"), await browser.get("/portal/"),
             await browser.get("/portal/style.css"),
             await browser.post("/portal/login", {"csrf": "nope"}),
             await browser.post("/portal/login", {"csrf": await browser.csrf(), "username": "admin",
                                                  "password": "wrong-password"})]
    await browser.sign_in()
    pages += [await browser.get("/portal/"), await browser.get("/portal/login")]
    for response in pages:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    assert pages[2].content_type == "text/css"


async def test_wrong_password_and_unknown_user_read_the_same(portal_client):
    await add_user(portal_client.app, "bob", "bob-password-1")
    browser = Browserish(portal_client)
    answers = []
    for username, password in (("bob", "wrong-password"), ("nobody", "wrong-password")):
        token = await browser.csrf()
        response = await browser.post("/portal/login", {"csrf": token, "username": username,
                                                        "password": password})
        assert response.status == 401
        assert not any(h.startswith("gateway_session=") for h in response.headers.getall("Set-Cookie", []))
        text = await response.text()
        answers.append(text.replace(username, "USER").replace(token, "CSRF"))
    assert answers[0] == answers[1]
    assert "Wrong username or password." in answers[0]
    assert "gateway_session" not in browser.cookies


async def test_input_is_escaped(portal_client):
    browser = Browserish(portal_client)
    token = await browser.csrf()
    response = await browser.post("/portal/login", {"csrf": token, "username": '"><script>x()</script>',
                                                    "password": "p", "rd": '"><b>'})
    text = await response.text()
    assert "<script>x()" not in text and "&lt;script&gt;" in text
    assert "<b>" not in text


async def test_regulation_applies_to_the_portal(make_client):
    client = await make_client(overrides={
        "portal": PORTAL, "login": {"regulation": {"max_retries": 2, "find_time": 60, "ban_time": 60}}})
    browser = Browserish(client)
    statuses = []
    for _ in range(3):
        token = await browser.csrf()
        response = await browser.post("/portal/login", {"csrf": token, "username": "admin",
                                                        "password": "wrong-password"})
        statuses.append(response.status)
    assert statuses == [401, 401, 429]
    assert "Retry-After" in response.headers
    assert (await browser.sign_in()).status == 429  # banned: not even the right password


async def test_auth_sends_browsers_to_sign_in(portal_client):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": GOOD,
                 "X-Forwarded-Uri": "/app/page?x=1&y=2", "X-Forwarded-Method": "GET"}
    # Traefik / Caddy: a 302 to the portal with the original URL.
    response = await portal_client.get("/auth", headers={**forwarded, **HTML}, allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("https://auth.example.com/portal/login?rd=")
    assert parse_qs(urlsplit(location).query)["rd"] == ["https://app.example.com/app/page?x=1&y=2"]
    # nginx: a 401 (all auth_request passes), the sign-in URL in Location for error_page.
    nginx = {"X-Original-URI": "/app/page", "X-Original-Method": "GET", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": GOOD}
    response = await portal_client.get("/auth", headers={**nginx, **HTML})
    assert response.status == 401
    assert response.headers["Location"].endswith("rd=https%3A%2F%2Fapp.example.com%2Fapp%2Fpage")
    # API clients, and anything but a navigation, keep the JSON 401.
    for headers in ({**forwarded, "Accept": "application/json"}, {**forwarded},
                    {**forwarded, **HTML, "X-Forwarded-Method": "POST"},
                    {**forwarded, **HTML, "Authorization": "Bearer not-a-token"}):
        response = await portal_client.get("/auth", headers=headers, allow_redirects=False)
        assert response.status == 401, headers
        assert "Location" not in response.headers
        assert (await response.json())["error"]

    # The portal's cookie is a credential; once signed out, the browser is sent to sign in.
    browser = Browserish(portal_client)
    await browser.sign_in()
    response = await browser.get("/auth", headers={**forwarded, **HTML})
    assert response.status == 200 and response.headers["X-Auth-User"] == "admin"
    assert response.headers["X-Auth-Tenant"] == "default"
    session = browser.cookies["gateway_session"]
    await browser.post("/portal/logout", {"csrf": await browser.csrf("/portal/")})
    assert "gateway_session" not in browser.cookies
    browser.cookies["gateway_session"] = session  # a copy kept from before the logout
    response = await browser.get("/auth", headers={**forwarded, **HTML})
    assert response.status == 302
    response = await browser.get("/auth", headers={**forwarded, "Accept": "application/json"})
    assert response.status == 401


async def test_a_cookie_with_another_key_is_refused(portal_client):
    browser = Browserish(portal_client)
    await browser.sign_in()
    tenant, key, token = browser.cookies["gateway_session"].split("~")
    browser.cookies["gateway_session"] = "~".join((tenant, "0" * 8 + key[8:], token))
    headers = {"X-Forwarded-Uri": "/app", "X-Forwarded-Method": "GET", "Accept": "application/json"}
    assert (await browser.get("/auth", headers=headers)).status == 401
    assert (await browser.get("/portal/")).status == 303


async def test_a_user_of_another_tenant_signs_in_with_the_tenant_field(make_client):
    client = await make_client(overrides={"portal": PORTAL, "tenants": {"default": {}, "acme": {}}})
    await add_user(client.app, "dana", "dana-password-1", tenant="acme", roles=("ROLE_ACME",))
    browser = Browserish(client)
    page = await (await browser.get("/portal/login")).text()
    assert 'name="tenant"' in page and '<label for="tenant">' in page
    token = await browser.csrf()
    form = {"csrf": token, "username": "dana", "password": "dana-password-1"}
    assert (await browser.post("/portal/login", form)).status == 401  # not in tenant default
    response = await browser.post("/portal/login", {**form, "tenant": "acme"})
    assert response.status == 303
    assert browser.cookies["gateway_session"].startswith("acme~")
    # The browser sends no X-TENANT-ID: its requests are made for the cookie's tenant.
    response = await browser.get("/auth", headers={"X-Forwarded-Uri": "/app", "X-Forwarded-Method": "GET"})
    assert response.status == 200
    assert (response.headers["X-Auth-User"], response.headers["X-Auth-Tenant"]) == ("dana", "acme")
    page = await (await browser.get("/portal/")).text()
    assert "ROLE_ACME" in page and "acme" in page
    # Another tenant's header with this cookie is refused, as for any token.
    response = await browser.get("/auth", headers={"X-Forwarded-Uri": "/app", "X-Forwarded-Method": "GET",
                                                   "X-TENANT-ID": "default"})
    assert response.status == 403
