"""Seed 004, SimpleJWT style: ``/api/token/``, ``refresh/``, ``verify/``, ``blacklist/``.

Errors keep SimpleJWT's bodies: ``{"detail", "code"}``, and DRF field lists for missing
fields (chosen in ``errors.render`` by path).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import LOGINS, RESOLVER, TENANT, TOKENS
from gateway.errors import FieldErrors, InvalidCredentials, UserNotFound
from gateway.handlers.common import address_of, read_body

__all__ = ["blacklist", "obtain", "refresh", "verify"]

NO_ACTIVE_ACCOUNT = "No active account found with the given credentials"


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


async def blacklist(request: web.Request) -> web.Response:
    """Revoke a refresh token's family: log that login out everywhere."""
    token = _strings(await read_body(request), "refresh")["refresh"]
    await request.app[TOKENS].blacklist(token, request[TENANT])
    return web.json_response({})
