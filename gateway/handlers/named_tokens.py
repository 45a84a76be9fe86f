"""Seeds 001/002: named personal tokens under ``/api/v1alpha/token``.

Any credential works (the seeds use Basic; docs/named-tokens.md). A user sees only their own tokens:
another user's id, and a deleted one, is 404. Errors are ``{"message"}`` (``errors.render``).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.appkeys import SETTINGS, STORE, TOKENS
from gateway.authz import require_identity
from gateway.durations import format_duration, parse_duration
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.handlers.common import now, read_body
from gateway.storage import TokenRecord
from gateway.tokens.claims import TokenKind

__all__ = ["create", "delete", "list_tokens", "show"]

MAX_DESCRIPTION_LENGTH = 256
MAX_PAGE = 1000


def _description(body: dict[str, Any]) -> str:
    value = body.get("jwt_token_description")
    if value is None:
        raise BadRequest("jwt_token_description is required")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("jwt_token_description must be a non-blank string")
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"jwt_token_description is longer than {MAX_DESCRIPTION_LENGTH} characters")
    return value


def _life(body: dict[str, Any], max_life: int) -> int:
    value = body.get("jwt_token_life")
    if value is None:
        raise BadRequest("jwt_token_life is required (e.g. \"6 hours\" or 3600)")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"jwt_token_life: {exc}") from None
    if seconds <= 0:
        raise BadRequest("jwt_token_life must be longer than 0 seconds")
    if seconds > max_life:
        raise BadRequest(f"jwt_token_life must be at most {format_duration(max_life)} "
                         f"({max_life} seconds)")
    return seconds


def _page(request: web.Request) -> tuple[int | None, int]:
    def number(name: str, low: int, high: int) -> int | None:
        text = request.query.get(name)
        if text is None:
            return None
        if not re.fullmatch(r"[0-9]{1,10}", text) or not low <= int(text) <= high:
            raise BadRequest(f"{name} must be a whole number from {low} to {high}")
        return int(text)

    return number("limit", 1, MAX_PAGE), number("offset", 0, 10**9) or 0


def _remaining(record: TokenRecord, at: float) -> float:
    if record.revoked_at is not None:
        return 0.0
    return max(0.0, record.expires_at - at)


def _life_of(record: TokenRecord) -> int:
    return int(record.expires_at - record.issued_at)


async def _own_token(request: web.Request) -> TokenRecord:
    identity = await require_identity(request)
    record = await request.app[STORE].get_token(request.match_info["token_id"])
    if (record is None or record.kind != TokenKind.API or record.user_id != identity.user.id
            or record.deleted_at is not None):
        raise NotFound("Token not found")
    return record


async def create(request: web.Request) -> web.Response:
    """Mint a named token for the caller: 201 with the token, its id and its life in seconds."""
    identity = await require_identity(request)
    body = await read_body(request)
    description = _description(body)
    life = _life(body, request.app[SETTINGS].config.tokens.api_token_max_life)
    try:
        issued = await request.app[TOKENS].issue(
            identity.user, TokenKind.API, life, description=description
        )
    except Conflict:
        raise BadRequest(f"A token described {description!r} exists already") from None
    return web.json_response({
        "message": "Token generated",
        "jwt_token_id": issued.jti,
        "jwt_token": issued.token,
        "jwt_token_description": description,
        "jwt_token_life": life,
    }, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """The caller's named tokens by id, with their life and remaining life in seconds."""
    identity = await require_identity(request)
    limit, offset = _page(request)
    records = await request.app[STORE].list_user_tokens(
        identity.user.id, TokenKind.API.value, limit=limit, offset=offset
    )
    at = now(request)
    return web.json_response({
        "message": "Tokens exists",
        "jwt_tokens": {
            record.jti: {
                "jwt_token_description": record.description,
                "jwt_token_life": _life_of(record),
                "jwt_token_remaining_life": _remaining(record, at),
            }
            for record in records
        },
    })


async def show(request: web.Request) -> web.Response:
    """One named token of the caller, with its expiry status."""
    record = await _own_token(request)
    at = now(request)
    if record.revoked_at is not None:
        status = "Revoked"
    elif record.expires_at <= at:
        status = "Expired"
    else:
        status = "Valid"
    return web.json_response({
        "message": "Tokens exists",
        "jwt_token_description": record.description,
        "jwt_token_life": _life_of(record),
        "jwt_token_life_remaining": _remaining(record, at),
        "expiry_status": status,
    })


async def delete(request: web.Request) -> web.Response:
    """Revoke one named token of the caller; from then on its id is 404."""
    record = await _own_token(request)
    if not await request.app[TOKENS].delete(record, (await require_identity(request)).user):
        raise NotFound("Token not found")
    return web.json_response({"message": "Token deleted"})
