"""The middleware chain of SPEC §4: request id → errors → client address → tenant → identity."""

from __future__ import annotations

import logging
import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.appkeys import (
    CLIENT_ADDRESS,
    CONFIG,
    CREDENTIALS,
    IDENTITY,
    REQUEST_ID,
    STORE,
    TENANT,
    TENANTS_SEEN,
)
from gateway.config import TENANT_ID_PATTERN
from gateway.errors import (
    BadRequest,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnknownTenant,
    family_for_path,
    render,
)
from gateway.identity.credentials import parse_credentials
from gateway.netaddr import client_address

__all__ = ["MIDDLEWARES"]

log = logging.getLogger("gateway")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}
DEFAULT_TENANT = "default"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a sane client ``X-Request-ID`` or make one; echo it on the response."""
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-ID"] = request_id
        raise
    response.headers["X-Request-ID"] = request_id
    return response


def error_response(request: web.Request, error: GatewayError, status: int) -> web.Response:
    """Render ``error`` in the body shape of the request's API family."""
    body = render(family_for_path(request.path), error)
    response = web.json_response(body, status=status, headers=error.headers)
    if status == 401 and getattr(error, "challenge", None):
        response.headers.setdefault("WWW-Authenticate", error.challenge)  # type: ignore[attr-defined]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a JSON answer; log the unexpected ones once, with the request id."""
    try:
        return await handler(request)
    except GatewayError as error:
        return error_response(request, error, error.status)
    except UnicodeError:
        # Text the request carried that cannot be encoded or decoded: the client's fault.
        return error_response(request, BadRequest("Request contains text that is not valid UTF-8"), 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_class = _HTTP_ERRORS.get(exc.status)
        mapped = error_class() if error_class else BadRequest(exc.reason)
        response = error_response(request, mapped, exc.status)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                      request.get(REQUEST_ID, "-"))
        return error_response(request, InternalError(), 500)


@web.middleware
async def client_address_middleware(request: web.Request,
                                    handler: Handler) -> web.StreamResponse:
    """The client's address, from forwarding headers only when the peer is a trusted proxy."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    request[CLIENT_ADDRESS] = client_address(
        request.remote,
        ",".join(forwarded) if forwarded else None,
        request.headers.get("X-Real-IP"),
        request.app[CONFIG].server.trusted_proxies,
    )
    return await handler(request)


@web.middleware
async def tenant_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The tenant from ``X-TENANT-ID`` (absent: ``default``); unknown ones are 400."""
    tenant = request.headers.get("X-TENANT-ID", "").strip() or DEFAULT_TENANT
    seen = request.app[TENANTS_SEEN]
    if tenant not in seen:
        if not TENANT_ID_PATTERN.match(tenant) or not await request.app[STORE].tenant_exists(tenant):
            raise UnknownTenant(f"Unknown tenant {tenant[:64]!r}")
        seen.add(tenant)
    request[TENANT] = tenant
    return await handler(request)


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the credentials; ``authz.authenticate`` resolves them when needed."""
    request[CREDENTIALS] = parse_credentials(request.headers, request.query)
    request[IDENTITY] = None
    return await handler(request)


MIDDLEWARES = (
    request_id_middleware,
    error_middleware,
    client_address_middleware,
    tenant_middleware,
    identity_middleware,
)
