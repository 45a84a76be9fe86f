"""What ``/auth`` and the built-in proxy do for browsers when the portal is on.

The portal's session cookie is taken as the request's credential when it carries no
other (an ``Authorization`` header or ``X-Access-Token`` always wins, and an API client
is never judged by a cookie it happens to hold). A browser navigation (``GET``/``HEAD``
accepting ``text/html``) that has no credential, or only a cookie that no longer works,
is sent to the sign-in page instead of getting a bare 401.
"""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import CREDENTIALS, SETTINGS, TENANT
from gateway.config import PortalConfig
from gateway.identity.credentials import Credentials
from gateway.portal.cookie import read_cookie
from gateway.portal.redirects import sign_in_url

__all__ = ["csrf_cookie_name", "navigation_sign_in", "take_cookie", "without_portal_cookies"]

_PAGE_METHODS = frozenset({"GET", "HEAD"})


def take_cookie(request: web.Request) -> bool:
    """Use the session cookie as the credential of a request that has none.

    True when the request may be sent to sign in: the portal is on and it carries no
    credential but (perhaps) the cookie. Without ``X-TENANT-ID`` the request is made for
    the cookie's tenant.
    """
    portal = request.app[SETTINGS].config.portal
    if not portal.enabled or request[CREDENTIALS] is not None:
        return False
    cookie = read_cookie(request.cookies.get(portal.cookie.name))
    if cookie is not None:
        request[CREDENTIALS] = Credentials("session", token=cookie.token, key=cookie.key)
        if "X-TENANT-ID" not in request.headers:
            request[TENANT] = cookie.tenant
    return True


def navigation_sign_in(request: web.Request, method: str, target: str) -> str | None:
    """The sign-in URL that brings a browser navigation back to ``target``, or None when
    the request is no browser navigation (an API client keeps its JSON 401)."""
    if method.upper() not in _PAGE_METHODS:
        return None
    if "text/html" not in request.headers.get("Accept", "").lower():
        return None
    return sign_in_url(request.app[SETTINGS].config.portal.url, target)


def without_portal_cookies(portal: PortalConfig, headers: list[str]) -> str:
    """The ``Cookie`` header values without the portal's own cookies (the session and its
    CSRF nonce), for the upstream: a session token goes no further than the gateway."""
    names = {portal.cookie.name, csrf_cookie_name(portal)}
    kept = [pair.strip() for header in headers for pair in header.split(";")
            if pair.strip() and pair.partition("=")[0].strip() not in names]
    return "; ".join(kept)


def csrf_cookie_name(portal: PortalConfig) -> str:
    """The name of the cookie holding the browser's CSRF nonce."""
    return f"{portal.cookie.name}_csrf"
