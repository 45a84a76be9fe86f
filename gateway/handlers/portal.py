"""The browser sign-in portal's pages: ``/portal/login``, ``/portal/``, ``/portal/logout``.

Server-side HTML (Jinja2 templates with autoescaping, in ``gateway/templates``), one
stylesheet, no JavaScript. The browser is known by its session cookie alone
(``portal.cookie``; see ``portal.cookie`` for its value), never by headers a page could
not have sent. Every POST carries the browser's CSRF token (``portal.csrf``) and is
refused with 403 without it, before anything else is looked at. Every answer of these
routes carries the security headers below, and errors are pages, not JSON.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.appkeys import CLOCK, KEYRING, LOGINS, RESOLVER, SETTINGS, STORE, TENANTS_SEEN, TOKENS
from gateway.config import TENANT_ID_PATTERN
from gateway.errors import Conflict, GatewayError, InvalidCredentials, TooManyAttempts, UserNotFound
from gateway.handlers.common import address_of, read_body
from gateway.handlers.named_tokens import _description, _life
from gateway.identity.credentials import SESSION_KINDS, Identity
from gateway.portal.browsers import csrf_cookie_name
from gateway.portal.cookie import cookie_value, read_cookie
from gateway.portal.csrf import csrf_token, new_nonce, token_matches
from gateway.resources import portal_stylesheet_path
from gateway.storage import TokenRecord
from gateway.tokens.claims import TokenKind

__all__ = ["create_token", "delete_token", "home", "login", "login_form", "logout", "setup_portal",
           "stylesheet"]

#: On every portal answer: no framing, no third-party anything, never cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Where the pages are; in-portal redirects are paths, so they stay on the browser's host.
BASE = "/portal"
HOME = BASE + "/"
SIGN_IN = BASE + "/login"
WRONG_LOGIN = "Wrong username or password."
TOO_MANY = "Too many failed attempts. Try again later."
BAD_FORM = "This form has expired or did not come from this site. Go back, reload the page and try again."
#: Named tokens listed on the portal's page, at most.
TOKENS_SHOWN = 200
_CSRF_PURPOSE = b"portal-csrf"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup_portal(app: web.Application) -> None:
    """The portal's templates, autoescaped (its ``allowed_redirects`` are compiled in
    ``Settings``)."""
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True)


class _Refused(Exception):
    """A page to answer with instead of the one asked for (a bad form, a failed sign-in)."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


def _page(handler: Handler) -> Handler:
    """404 unless the portal is on; the security headers on every answer; errors as pages."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        if not request.app[SETTINGS].config.portal.enabled:
            raise web.HTTPNotFound()
        try:
            response = await handler(request)
        except _Refused as refused:
            response = refused.response
        except GatewayError as error:
            response = _render(request, "error.html", {"message": error.message}, status=error.status)
            response.headers.update(error.headers)
        response.headers.update(SECURITY_HEADERS)
        return response

    return page


def _render(request: web.Request, template: str, context: dict[str, Any], *,
            status: int = 200) -> web.Response:
    """A page; its links and forms start from ``base``, so they work from any portal path."""
    return aiohttp_jinja2.render_template(template, request, {**context, "base": BASE},
                                          status=status)




def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# The browser: its CSRF nonce and its session

def _csrf_key(request: web.Request) -> bytes:
    return request.app[KEYRING].derived_key(_CSRF_PURPOSE)


def _nonce(request: web.Request) -> tuple[str, bool]:
    """The browser's CSRF nonce, and whether it is new (then the answer sets its cookie)."""
    nonce = request.cookies.get(csrf_cookie_name(request.app[SETTINGS].config.portal))
    if nonce and 16 <= len(nonce) <= 64:
        return nonce, False
    return new_nonce(), True


def _form_context(request: web.Request) -> tuple[dict[str, Any], Callable[[web.StreamResponse], None]]:
    """The CSRF token for a page's forms, and what sets the nonce cookie on its answer."""
    nonce, new = _nonce(request)
    portal = request.app[SETTINGS].config.portal

    def remember(response: web.StreamResponse) -> None:
        if new:
            response.set_cookie(csrf_cookie_name(portal), nonce, path="/", domain=portal.cookie.domain,
                                secure=portal.cookie.secure, httponly=True, samesite="Strict")

    return {"csrf": csrf_token(_csrf_key(request), nonce)}, remember


def _require_csrf(request: web.Request, body: dict[str, Any]) -> None:
    """403, with no cookie set, unless the form carries this browser's CSRF token."""
    nonce = request.cookies.get(csrf_cookie_name(request.app[SETTINGS].config.portal))
    if not token_matches(_csrf_key(request), nonce, body.get("csrf")):
        raise _Refused(_render(request, "error.html", {"message": BAD_FORM}, status=403))


async def _session(request: web.Request) -> Identity | None:
    """The user signed in with this browser's cookie, or None (no cookie, or a dead session)."""
    cookie = read_cookie(request.cookies.get(request.app[SETTINGS].config.portal.cookie.name))
    if cookie is None:
        return None
    try:
        return await request.app[RESOLVER].token_identity(cookie.token, cookie.tenant, SESSION_KINDS,
                                                          key=cookie.key)
    except GatewayError:
        return None


def _forget_session(request: web.Request, response: web.StreamResponse) -> None:
    cookie = request.app[SETTINGS].config.portal.cookie
    if cookie.name in request.cookies:
        response.del_cookie(cookie.name, path="/", domain=cookie.domain, secure=cookie.secure,
                            httponly=True, samesite=cookie.same_site.capitalize())


async def _signed_in(request: web.Request) -> Identity:
    """The browser's user, or the answer that sends it to sign in."""
    identity = await _session(request)
    if identity is None:
        response = _see_other(SIGN_IN)
        _forget_session(request, response)
        raise _Refused(response)
    return identity


# Pages

@_page
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form; a browser signed in already goes on to ``rd`` at once."""
    target = request.app[SETTINGS].redirects.target(request.query.get("rd"))
    if await _session(request) is not None:
        return _see_other(target or HOME)
    return _login_page(request, target=target)


def _login_page(request: web.Request, *, target: str | None, error: str | None = None,
                username: str = "", tenant: str = "", status: int = 200) -> web.StreamResponse:
    context, remember = _form_context(request)
    context.update(rd=target or "", error=error, username=username, tenant=tenant,
                   ask_tenant=len(request.app[TENANTS_SEEN]) > 1)
    response = _render(request, "login.html", context, status=status)
    remember(response)
    return response


@_page
async def login(request: web.Request) -> web.StreamResponse:
    """Check the form's username and password; on success set the session cookie, 303 on."""
    body = await read_body(request)
    _require_csrf(request, body)
    target = request.app[SETTINGS].redirects.target(body.get("rd"))
    username, password = body.get("username"), body.get("password")
    tenant = body.get("tenant") or "default"
    if not isinstance(username, str):
        username = ""
    if not isinstance(tenant, str):
        tenant = ""

    def refused(message: str, status: int) -> _Refused:
        return _Refused(_login_page(request, target=target, error=message, username=username,
                                    tenant=tenant, status=status))

    if not (username and isinstance(password, str) and password and TENANT_ID_PATTERN.match(tenant)
            and (tenant in request.app[TENANTS_SEEN] or await request.app[STORE].tenant_exists(tenant))):
        raise refused(WRONG_LOGIN, 401)
    try:
        user = await request.app[LOGINS].check(tenant, username, password, address_of(request))
    except (InvalidCredentials, UserNotFound):
        raise refused(WRONG_LOGIN, 401) from None
    except TooManyAttempts as exc:
        banned = refused(TOO_MANY, 429)
        banned.response.headers.update(exc.headers)
        raise banned from None

    previous = await _session(request)
    if previous is not None:
        await request.app[TOKENS].logout(previous)  # one browser, one live session
    portal = request.app[SETTINGS].config.portal
    issued, key = await request.app[TOKENS].start_session(user, portal.session_lifetime)
    response = _see_other(target or HOME)
    response.set_cookie(portal.cookie.name, cookie_value(user.tenant, key, issued.token),
                        max_age=portal.session_lifetime, path="/", domain=portal.cookie.domain,
                        secure=portal.cookie.secure, httponly=True,
                        samesite=portal.cookie.same_site.capitalize())
    return response


@_page
async def home(request: web.Request) -> web.StreamResponse:
    """Who is signed in, their named tokens with create and delete, and sign-out."""
    identity = await _signed_in(request)
    return await _home_page(request, identity)


async def _home_page(request: web.Request, identity: Identity, *, created: dict[str, Any] | None = None,
                     error: str | None = None, status: int = 200) -> web.StreamResponse:
    context, remember = _form_context(request)
    records = await request.app[STORE].list_user_tokens(identity.user.id, TokenKind.API.value,
                                                        limit=TOKENS_SHOWN)
    now = request.app[CLOCK]()
    context.update(user=identity.user, created=created, error=error,
                   tokens=[_token_row(record, now) for record in records])
    response = _render(request, "home.html", context, status=status)
    remember(response)
    return response


def _token_row(record: TokenRecord, now: float) -> dict[str, Any]:
    if record.revoked_at is not None:
        state = "revoked"
    elif record.expires_at <= now:
        state = "expired"
    else:
        state = "valid"
    return {"id": record.jti, "description": record.description or "", "state": state,
            "expires": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(record.expires_at))}


@_page
async def create_token(request: web.Request) -> web.StreamResponse:
    """Mint a named token for the signed-in user; its text is shown this once."""
    body = await read_body(request)
    _require_csrf(request, body)
    identity = await _signed_in(request)
    try:
        description = _description(body)
        life = _life(body, request.app[SETTINGS].config.tokens.api_token_max_life)
        issued = await request.app[TOKENS].issue(identity.user, TokenKind.API, life,
                                                 description=description)
    except Conflict:
        return await _home_page(request, identity, status=400,
                                error="A token with that description exists already.")
    except GatewayError as error:
        return await _home_page(request, identity, error=error.message, status=error.status)
    return await _home_page(request, identity, created={"description": description,
                                                        "token": issued.token})


@_page
async def delete_token(request: web.Request) -> web.StreamResponse:
    """Delete one named token of the signed-in user (revoked at once), then back to the page."""
    body = await read_body(request)
    _require_csrf(request, body)
    identity = await _signed_in(request)
    record = await request.app[STORE].get_token(request.match_info["token_id"])
    if (record is not None and record.kind == TokenKind.API and record.user_id == identity.user.id
            and record.deleted_at is None):
        await request.app[TOKENS].delete(record)
    return _see_other(HOME)


@_page
async def logout(request: web.Request) -> web.StreamResponse:
    """End this browser's session (revoked everywhere at once), clear the cookie, 303 to sign-in."""
    body = await read_body(request)
    _require_csrf(request, body)
    identity = await _session(request)
    if identity is not None:
        await request.app[TOKENS].logout(identity)
    response = _see_other(SIGN_IN)
    _forget_session(request, response)
    return response


@_page
async def stylesheet(request: web.Request) -> web.StreamResponse:
    """The portal's one stylesheet."""
    return web.Response(body=_stylesheet(), content_type="text/css", charset="utf-8")


@functools.cache
def _stylesheet() -> bytes:
    return portal_stylesheet_path().read_bytes()
