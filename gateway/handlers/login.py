"""Seed 003: ``POST /login`` and ``POST /logout`` with X-Access-Token + X-Key."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import CREDENTIALS, LOGINS, RESOLVER, SETTINGS, TENANT, TOKENS
from gateway.errors import BadCaller, BadRequest, GatewayError
from gateway.handlers.common import address_of, read_body
from gateway.identity.credentials import SESSION_KINDS

__all__ = ["login", "logout"]


async def login(request: web.Request) -> web.Response:
    """Check a username and password; answer a session token and its key."""
    body = await read_body(request)
    username, password = body.get("username"), body.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise BadRequest("User name is required")
    user = await request.app[LOGINS].check(
        request[TENANT], username, password, address_of(request),
        reveal_unknown=request.app[SETTINGS].config.login.reveal_unknown_user,
    )
    issued, key = await request.app[TOKENS].start_session(user)
    return web.json_response({
        "key": key,
        "username": user.username,
        "expires": issued.expires_at * 1000,
        "token": issued.token,
        "role": user.role,
    })


async def logout(request: web.Request) -> web.Response:
    """End the session named by X-Access-Token and X-Key; anything else is a bad caller."""
    credentials = request[CREDENTIALS]
    if credentials is None or credentials.scheme != "session" or not credentials.key:
        raise BadCaller()
    try:
        identity = await request.app[RESOLVER].token_identity(
            credentials.token, request[TENANT], SESSION_KINDS, key=credentials.key
        )
    except GatewayError:
        raise BadCaller() from None
    if not await request.app[TOKENS].logout(identity):
        raise BadCaller()
    return web.json_response({"status": "OK", "info": "Successful logout."})
