"""Seed 004, SimpleJWT style: ``/api/token/``, ``refresh/``, ``verify/``, ``blacklist/``.

Errors keep SimpleJWT's bodies: ``{"detail", "code"}``, and DRF field lists for missing
fields (chosen in ``errors.render`` by path).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy, istr

from gateway.appkeys import (
    CLIENT_ADDRESSES,
    LOGINS,
    RESOLVER,
    TENANT,
    TENANTS_SEEN,
    TOKENS,
)
from gateway.early import Early, Incoming, Ready
from gateway.errors import FieldErrors, InvalidCredentials, UserNotFound
from gateway.handlers.common import address_of, read_body
from gateway.middlewares import address_of_client, known_tenant, request_id

__all__ = ["CachedVerify", "blacklist", "obtain", "refresh", "verify"]

NO_ACTIVE_ACCOUNT = "No active account found with the given credentials"
_CONTENT_TYPE = istr("Content-Type")


class NoActiveAccount(InvalidCredentials):
    """SimpleJWT's answer to any failed login (401)."""

    code = "no_active_account"
    default_message = NO_ACTIVE_ACCOUNT


def _strings(body: dict[str, Any], *names: str) -> dict[str, str]:
    """The named string fields, or FieldErrors naming each missing, null or blank one."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if name not in body:
            errors[name] = FieldErrors.REQUIRED
        elif value is None:
            errors[name] = FieldErrors.NULL
        elif not isinstance(value, str):
            errors[name] = "Not a valid string."
        elif not value.strip():
            errors[name] = FieldErrors.BLANK
        else:
            values[name] = value
    if errors:
        raise FieldErrors(errors)
    return values


async def obtain(request: web.Request) -> web.Response:
    """Log in with ``email`` (or ``username``) and ``password``: a refresh and an access token."""
    body = await read_body(request)
    by_email = "email" in body or "username" not in body
    fields = _strings(body, "email" if by_email else "username", "password")
    login = fields["email"] if by_email else fields["username"]
    try:
        user = await request.app[LOGINS].check(
            request[TENANT], login, fields["password"], address_of(request), by_email=by_email
        )
    except (InvalidCredentials, UserNotFound):
        raise NoActiveAccount() from None
    refresh_token, access_token = await request.app[TOKENS].issue_pair(user)
    return web.json_response({"refresh": refresh_token.token, "access": access_token.token})


async def refresh(request: web.Request) -> web.Response:
    """A new access token (and, when rotating, a new refresh token) from a refresh token."""
    token = _strings(await read_body(request), "refresh")["refresh"]
    access, new_refresh = await request.app[TOKENS].refresh(token, request[TENANT])
    body = {"access": access.token}
    if new_refresh is not None:
        body["refresh"] = new_refresh.token
    return web.json_response(body)


async def verify(request: web.Request) -> web.Response:
    """200 ``{}`` for a live access or refresh token; 401 ``token_not_valid`` otherwise."""
    token = _strings(await read_body(request), "token")["token"]
    await request.app[RESOLVER].verify(token, request[TENANT])
    return web.json_response({})


class CachedVerify:
    """``POST /api/token/verify/`` answered before aiohttp's router and middleware
    (``gateway.early``) when the identity cache alone shows the token live.

    Only a complete JSON body ``{"token": "<text>"}`` (of at most ``early.MAX_BODY``
    bytes) is read here, and only a 200 is given here: anything else (another method or content
    type, a body of another shape, a tenant to look up, a token the cache does not hold as
    a live access or refresh token of the tenant, a feed that moved) goes the full path,
    which reads the same body and decides as it always does.
    """

    _READY = Ready.of({"Content-Type": "application/json; charset=utf-8"}, b"{}")

    #: Bodies (of up to ``MEMORY_BODY`` bytes) whose token was read, remembered with it: a
    #: client verifies the same token again and again. Cleared when full (at most 4 MiB).
    #: The token is still checked on every request.
    MEMORY, MEMORY_BODY = 4096, 1024

    def __init__(self, app: web.Application) -> None:
        self._resolver = app[RESOLVER]
        self._addresses = app[CLIENT_ADDRESSES]
        self._tenants = app[TENANTS_SEEN]
        self._tokens: dict[bytes, str] = {}

    @staticmethod
    def reads(method: str, headers: CIMultiDictProxy[str]) -> bool:
        """Whether a request's body is for this to read: a POST of JSON (any other body is
        left unread for the full path, which may stream it)."""
        content_type = headers.get(_CONTENT_TYPE, "")
        return method == "POST" and content_type.partition(";")[0].strip().lower() == "application/json"

    def __call__(self, request: Incoming) -> Early | None:
        """200 ``{}``, or None: ask the full path. ``request.body`` is given only when
        ``reads`` said so."""
        raw = request.body
        if raw is None:
            return None
        headers = request.headers
        tenant = known_tenant(self._tenants, headers)
        if tenant is None:
            return None
        token = self._tokens.get(raw)
        if token is None:
            token = _token_of(raw)
            if token is None:
                return None
            if len(raw) <= self.MEMORY_BODY:
                if len(self._tokens) >= self.MEMORY:
                    self._tokens.clear()
                self._tokens[raw] = token
        if not self._resolver.verified_in_cache(token, tenant):
            return None
        return Early(self._READY, request_id(headers),
                     address_of_client(self._addresses, request.peer, headers), tenant,
                     request.url.path)


def _token_of(raw: bytes) -> str | None:
    """The token of a body that is exactly ``{"token": "<text>"}``, else None."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if type(body) is not dict or len(body) != 1:
        return None
    token = body.get("token")
    return token if type(token) is str else None


async def blacklist(request: web.Request) -> web.Response:
    """Revoke a refresh token's family: log that login out everywhere."""
    token = _strings(await read_body(request), "refresh")["refresh"]
    await request.app[TOKENS].blacklist(token, request[TENANT])
    return web.json_response({})
