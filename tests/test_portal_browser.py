"""The sign-in portal in a real headless Chromium, through the built-in proxy, real nginx
and real Caddy, each configured with the README's "Protect a web app" snippets as they
are written there (only addresses swapped for loopback ports).

Everything is started once per module: one browser, an upstream app that shows who the
gateway says the user is, and three gateways on one database (one per front, since
``portal.url`` is the front's address). Without Chromium, its driver, nginx or Caddy
these tests skip, except under ``CI=true``, where they fail: ``.ci/run`` installs them.
"""

from __future__ import annotations

import asyncio
import html
import http.client
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.caddy import Caddy
from tests.conftest import IN_CI, free_port
from tests.nginx import SKELETON, Nginx
from tests.readme import on_loopback, readme_block
from tests.servers import Server, clean_env, run_cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SECTION = "Protect a web app"
PASSWORD = "admin-password-123"
WAIT = 15  # seconds, at most, for any page to arrive

def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing in CI: .ci/run installs it")
    pytest.skip(f"{what} is not installed (.ci/run installs it)")


def loopback(text: str, *, front: int, gateway: int, upstream: int) -> str:
    """A README snippet of the portal section with its example addresses on loopback ports."""
    return on_loopback(text.replace("https://app.example.com", f"http://127.0.0.1:{front}")
                       .replace(r"^https://app\.example\.com/", rf"^http://127\.0\.0\.1:{front}/"),
                       gateway=gateway, upstream=upstream)


class Upstream:
    """The protected app: a page that shows the user, path and cookies the gateway sent on."""

    def __init__(self) -> None:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                user = html.escape(self.headers.get("X-Auth-User") or "nobody")
                cookies = html.escape(self.headers.get("Cookie") or "")
                body = (f"<!doctype html><title>app</title><h1 id=user>Hello {user}</h1>"
                        f"<p id=path>{html.escape(self.path)}</p><p id=cookies>{cookies}</p>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    fronts: dict[str, str]
    gateways: dict[str, Server]
    config: Path
    env: dict[str, str]
    #: Session cookie values the browser was given, to look for in the logs.
    cookies: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    """Chromium, closed before the servers stop (its idle connections would hold them up)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _missing("Debian's chromium and chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium (the test extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--no-first-run", "--password-store=basic"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("portal")
    upstream = Upstream()
    ports = {"builtin": free_port(), "nginx": free_port(), "caddy": free_port()}
    env = clean_env(GATEWAY_ADMIN_PASSWORD=PASSWORD)
    portal_yaml = readme_block(SECTION, "yaml", "prefix: /app/")
    configs: dict[str, Path] = {}
    for name in ports:
        config = workdir / f"{name}.yaml"
        # Only the built-in proxy's gateway proxies the app; behind nginx and Caddy, the portal alone.
        text = portal_yaml if name == "builtin" else "portal:" + portal_yaml.split("portal:", 1)[1]
        text = loopback(text, front=ports[name], gateway=ports[name], upstream=upstream.port)
        config.write_text(f"storage: {{path: {workdir / 'state' / 'gateway.db'}}}\n{text}")
        configs[name] = config
    gateways: dict[str, Server] = {}
    fronts: list[Nginx | Caddy] = []
    try:
        # The first server makes the database; the others open it.
        gateways["builtin"] = Server(workdir, configs["builtin"], env, port=ports["builtin"])
        asyncio.run(gateways["builtin"].wait_ready())
        for name in ("nginx", "caddy"):
            gateways[name] = Server(workdir, configs[name], env)
        nginx_servers = loopback(readme_block(SECTION, "nginx", "error_page 401 = @portal"),
                                 front=ports["nginx"], gateway=gateways["nginx"].port,
                                 upstream=upstream.port)
        nginx_servers = nginx_servers.replace("listen 80;", f"listen 127.0.0.1:{ports['nginx']};")
        nginx_servers = nginx_servers.replace("{", "{{").replace("}", "}}")
        nginx = Nginx(workdir / "nginx", gateways["nginx"].port, upstream.port, port=ports["nginx"],
                      template=SKELETON + nginx_servers + "}}\n")
        fronts.append(nginx)
        site = loopback(readme_block(SECTION, "caddyfile", "forward_auth"), front=ports["caddy"],
                        gateway=gateways["caddy"].port, upstream=upstream.port)
        # A loopback port over plain HTTP: no certificates, no admin endpoint.
        site = site.replace("app.example.com {",
                            f"http://127.0.0.1:{ports['caddy']} {{\n    bind 127.0.0.1", 1)
        caddy = Caddy(workdir / "caddy", "{\n    auto_https off\n    admin off\n}\n" + site,
                      ports["caddy"])
        fronts.append(caddy)

        async def ready() -> None:
            await asyncio.gather(gateways["nginx"].wait_ready(), gateways["caddy"].wait_ready(),
                                 nginx.wait_ready(), caddy.wait_ready())

        asyncio.run(ready())
        yield Stack(
            fronts={"builtin": gateways["builtin"].url, "nginx": nginx.url, "caddy": caddy.url},
            gateways=gateways, config=configs["builtin"], env=env,
        )
    finally:
        for front in fronts:
            front.stop()
        for server in gateways.values():
            assert server.stop() == 0, server.output()
        upstream.close()


# Driving the browser

def wait_until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition)
    except TimeoutException:
        pytest.fail(f"waited {WAIT}s for {what}; at {driver.current_url}:\n{driver.page_source[:2000]}")


def element(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    def found(d: Any) -> Any:
        matches = d.find_elements(By.ID, element_id)
        return matches[0] if matches else False

    return wait_until(driver, found, f"#{element_id}")


def fresh(driver: Any) -> None:
    """A browser with no cookies at all (every test starts signed out)."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def sign_in(driver: Any, username: str, password: str) -> None:
    """Fill in and submit the sign-in form the browser is on."""
    field = element(driver, "username")
    field.clear()
    field.send_keys(username)
    element(driver, "password").send_keys(password)
    page = driver.find_element("tag name", "html")
    field.submit()
    wait_until(driver, lambda d: _stale(page), "the next page after signing in")


def _stale(old_page: Any) -> bool:
    """Whether the page ``old_page`` belonged to is gone (the browser navigated)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        old_page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        # Asked in the middle of the navigation, Chromium may say so in other words.
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, css).click()
    wait_until(driver, lambda d: _stale(page), f"the page after clicking {css}")


def on_sign_in(driver: Any, front: str) -> bool:
    return bool(driver.current_url.startswith(f"{front}/portal/login")
                and driver.find_elements("id", "password"))


# Flows

@pytest.mark.parametrize("proxy", ["builtin", "nginx", "caddy"])
def test_sign_in_reload_sign_out(browser: Any, stack: Stack, proxy: str) -> None:
    front = stack.fronts[proxy]
    page = f"{front}/app/page?x=1&y=2"
    fresh(browser)
    browser.get(page)
    assert on_sign_in(browser, front), browser.current_url
    assert "rd=" in browser.current_url

    sign_in(browser, "admin", PASSWORD)
    assert browser.current_url == page
    assert element(browser, "user").text == "Hello admin"
    assert element(browser, "path").text == "/app/page?x=1&y=2"
    if proxy == "builtin":
        assert "gateway_session" not in element(browser, "cookies").text  # stripped on the way
    cookie = browser.get_cookie("gateway_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    stack.cookies.append(cookie["value"])

    browser.refresh()
    assert browser.current_url == page
    assert element(browser, "user").text == "Hello admin"

    browser.get(f"{front}/portal/")
    assert element(browser, "who").text == "admin"
    click(browser, "#sign-out")
    assert on_sign_in(browser, front)
    assert browser.get_cookie("gateway_session") is None
    browser.get(page)
    assert on_sign_in(browser, front)


@pytest.mark.parametrize("proxy", ["builtin", "nginx", "caddy"])
def test_without_a_browser_each_front_answers_as_documented(stack: Stack, proxy: str) -> None:
    front = urlsplit(stack.fronts[proxy])

    def ask(accept: str) -> tuple[int, str | None]:
        connection = http.client.HTTPConnection(front.hostname, front.port, timeout=WAIT)
        try:
            connection.request("GET", "/app/x?a=1&b=2", headers={"Accept": accept})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Location")
        finally:
            connection.close()

    status, location = ask("text/html")
    assert status == 302
    assert location == (f"{stack.fronts[proxy]}/portal/login?rd="
                        + quote(f"{stack.fronts[proxy]}/app/x?a=1&b=2", safe=""))
    assert ask("application/json")[0] == 401


def test_wrong_password_shows_an_error_and_sets_no_cookie(browser: Any, stack: Stack) -> None:
    front = stack.fronts["builtin"]
    fresh(browser)
    browser.get(f"{front}/app/private")
    sign_in(browser, "admin", "not-the-password")
    assert element(browser, "login-error").text == "Wrong username or password."
    assert on_sign_in(browser, front)
    assert browser.get_cookie("gateway_session") is None
    # The form still goes on to the page once the password is right.
    element(browser, "password").clear()
    sign_in(browser, "admin", PASSWORD)
    assert browser.current_url == f"{front}/app/private"


def test_a_named_token_made_on_the_portal_works_until_deleted(browser: Any, stack: Stack) -> None:
    front = stack.fronts["builtin"]
    fresh(browser)
    browser.get(f"{front}/portal/login")
    sign_in(browser, "admin", PASSWORD)
    assert browser.current_url == f"{front}/portal/"
    element(browser, "description").send_keys("ci script")
    life = element(browser, "life")
    life.clear()
    life.send_keys("1 hour")
    click(browser, "#create-token")
    token = element(browser, "new-token").get_attribute("value")
    assert token.count(".") == 2

    def curl(token: str) -> str:
        return subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
             "-H", f"Authorization: Bearer {token}", f"{front}/api/v1alpha/token"],
            capture_output=True, text=True, timeout=20, check=True).stdout

    assert curl(token) == "200"
    click(browser, 'button[aria-label="Delete token ci script"]')
    assert browser.current_url == f"{front}/portal/"
    assert "ci script" not in browser.page_source
    assert curl(token) == "401"


def test_a_password_change_sends_the_browser_back_to_sign_in(browser: Any, stack: Stack) -> None:
    front = stack.fronts["nginx"]
    added = asyncio.run(run_cli(stack.config, stack.env, "users", "add", "carol", "--roles", "ROLE_USER",
                                "--password-stdin", stdin="carol-password-1\n"))
    assert added.returncode == 0, added.stderr
    fresh(browser)
    browser.get(f"{front}/app/carol")
    sign_in(browser, "carol", "carol-password-1")
    assert element(browser, "user").text == "Hello carol"

    changed = asyncio.run(run_cli(stack.config, stack.env, "users", "passwd", "carol", "--password-stdin",
                                  stdin="carol-password-2\n"))
    assert changed.returncode == 0, changed.stderr
    browser.get(f"{front}/app/carol")
    assert on_sign_in(browser, front)
    sign_in(browser, "carol", "carol-password-2")
    assert element(browser, "user").text == "Hello carol"


def test_no_log_holds_a_session(stack: Stack) -> None:
    assert len(stack.cookies) == 3
    for server in stack.gateways.values():
        output = server.output()
        assert "/portal/login" in output  # the access lines are there
        for value in stack.cookies:
            _, key, token = value.split("~")
            assert key not in output and token.split(".")[2] not in output
