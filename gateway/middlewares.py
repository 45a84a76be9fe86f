"""The request chain — request id → errors → client address → tenant → identity — as one
middleware that runs the steps in that order.

One middleware rather than five: each aiohttp middleware is another coroutine (and
wrapper) per request, and on ``/auth`` that overhead is most of what the gateway adds to
a bare app. The steps stay separate functions, each doing only what it must on the common
path: the client address and the tenant are remembered per process (peer and header
values are few), the request id is a per-process prefix and a counter.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDictProxy, istr

from gateway.appkeys import (
    CLIENT_ADDRESS,
    CLIENT_ADDRESSES,
    COUNTS,
    CREDENTIALS,
    IDENTITY,
    REQUEST_ID,
    STORE,
    TENANT,
    TENANTS_SEEN,
)
from gateway.audit import ORIGIN, Origin
from gateway.config import TENANT_ID_PATTERN
from gateway.errors import (
    BadRequest,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnknownTenant,
    challenge_for,
    render,
    shape_for_path,
    status_for_path,
)
from gateway.identity.credentials import parse_credentials
from gateway.netaddr import ClientAddresses, IPAddress
from gateway.storage import StorageUnavailable

__all__ = ["MIDDLEWARES", "error_response"]

log = logging.getLogger("gateway")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}
DEFAULT_TENANT = "default"

# Header names as multidict's ``istr``: looked up without case-folding them each time.
_X_FORWARDED_FOR = istr("X-Forwarded-For")
_X_REAL_IP = istr("X-Real-IP")
_X_REQUEST_ID = istr("X-Request-ID")
_X_TENANT_ID = istr("X-TENANT-ID")

# Request ids: 32 hex digits, unique across processes (a random prefix per process, then a
# counter) without the cost of a UUID each.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def error_response(request: web.Request, error: GatewayError, status: int) -> web.Response:
    """Render ``error`` in the body shape of the request's API family."""
    shape = shape_for_path(request.path)
    status = status_for_path(request.path, status)
    response = web.json_response(render(shape, error), status=status, headers=error.headers)
    challenge = challenge_for(shape, error, status)
    if challenge is not None:
        response.headers.setdefault("WWW-Authenticate", challenge)
    return response


def request_id(headers: CIMultiDictProxy[str]) -> str:
    """A sane client ``X-Request-ID`` (it goes out in headers and log lines as it is), else
    a new one."""
    offered = headers.get(_X_REQUEST_ID)
    if offered is not None and _REQUEST_ID.fullmatch(offered):
        return offered
    return f"{_ID_PREFIX}{next(_ID_COUNTER):020x}"


def record_early_answer(request: web.BaseRequest, rid: str, address: IPAddress | None,
                        tenant: str) -> None:
    """For an answer given before the middleware (``runner.GatewayRunner``): the request id,
    client address and tenant stored as the chain stores them, for the access line."""
    request[REQUEST_ID] = rid
    request[CLIENT_ADDRESS] = address
    request[TENANT] = tenant


def address_of_client(addresses: ClientAddresses, peer: str | None,
                      headers: CIMultiDictProxy[str]) -> IPAddress | None:
    """The client's address, from forwarding headers only when the peer (the connection's
    remote address) is a trusted proxy."""
    forwarded = headers.getall(_X_FORWARDED_FOR, None)
    return addresses(peer, ",".join(forwarded) if forwarded else None, headers.get(_X_REAL_IP))


def known_tenant(tenants: set[str], headers: CIMultiDictProxy[str]) -> str | None:
    """The tenant of ``X-TENANT-ID`` (absent: ``default``) when it is one of ``tenants``
    (those seen to exist), else None (``tenant_of`` decides, with a database read or a 400)."""
    values = headers.getall(_X_TENANT_ID, None)
    if values is None:
        return DEFAULT_TENANT
    if len(values) == 1 and (tenant := values[0].strip()) in tenants:
        return tenant
    return None


async def tenant_of(request: web.Request) -> str:
    """The tenant from ``X-TENANT-ID`` (absent: ``default``); unknown ones are 400.

    Tenants are never deleted, so one seen to exist needs no database read again.
    """
    known = known_tenant(request.app[TENANTS_SEEN], request.headers)
    if known is not None:
        return known
    values = request.headers.getall("X-TENANT-ID")  # present: known_tenant answers absence
    if len(values) > 1:
        raise BadRequest("X-TENANT-ID is given more than once")
    tenant = values[0].strip()
    seen = request.app[TENANTS_SEEN]
    if not tenant:
        raise BadRequest("X-TENANT-ID is empty")
    if not TENANT_ID_PATTERN.match(tenant) or not await request.app[STORE].tenant_exists(tenant):
        raise UnknownTenant(f"Unknown tenant {tenant[:64]!r}")
    seen.add(tenant)
    return tenant


def _mapped(request: web.Request, exc: web.HTTPException) -> web.Response:
    error_class = _HTTP_ERRORS.get(exc.status)
    mapped = error_class() if error_class else BadRequest(exc.reason)
    response = error_response(request, mapped, exc.status)
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the chain's steps, then the handler; every error becomes a JSON answer.

    Credentials are only read here; ``authz.authenticate`` resolves them when a handler
    needs an identity, so a public route never pays for a password check.
    """
    started = time.perf_counter()
    rid = request_id(request.headers)
    request[REQUEST_ID] = rid
    try:
        request[CLIENT_ADDRESS] = address_of_client(request.app[CLIENT_ADDRESSES], request.remote,
                                                    request.headers)
        ORIGIN.set(Origin(request[CLIENT_ADDRESS], rid))  # for the audit events it causes
        request[TENANT] = await tenant_of(request)
        request[CREDENTIALS] = parse_credentials(request.headers, request.query)
        request[IDENTITY] = None
        response = await handler(request)
    except GatewayError as error:
        response = error_response(request, error, error.status)
    except StorageUnavailable as exc:
        log.warning("request %s: %s", rid, exc)  # names the host, never the password
        response = error_response(request, ServiceUnavailable(), 503)
    except UnicodeError:
        # Text the request carried that cannot be encoded or decoded: the client's fault.
        response = error_response(request, BadRequest("Request contains text that is not valid UTF-8"),
                                  400)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers["X-Request-ID"] = rid
            _count(request, exc.status, started)
            raise
        response = _mapped(request, exc)
    except Exception as exc:
        if isinstance(exc, ConnectionError) and (request.transport is None
                                                 or request.transport.is_closing()):
            # The client went away during the request (a body cut short): its fault, and
            # nobody is left to read the answer (aiohttp gives up writing it quietly).
            log.info("request %s: the client closed the connection", rid)
            response = error_response(
                request, BadRequest("The connection closed before the request was read"), 400)
        else:
            log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                          rid)
            response = error_response(request, InternalError(), 500)
    response.headers["X-Request-ID"] = rid
    _count(request, response.status, started)
    return response


def _count(request: web.Request, status: int, started: float) -> None:
    """The request in the metrics, under its route's pattern (never the raw path)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[COUNTS].request(route, request.method, status, time.perf_counter() - started)


MIDDLEWARES = (gateway_middleware,)
