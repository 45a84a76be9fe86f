"""The runner the app is served with: aiohttp's, with malformed HTTP answered in JSON.

A request aiohttp cannot parse (a control character in a header, a request line or a
header over 8,190 bytes, too many headers) never reaches the app or its middleware:
aiohttp's connection handler answers it itself, with a text/plain 400 quoting the
offending line, and logs that line with a traceback. The line may hold a Basic
credential or an ``X-Key``. Here the connection handler's ``handle_error`` answers
``{"error", "message"}`` like every other error and logs only the kind of error and the
peer; no header value is read.

The same handler keeps reading the body of the request in progress during a drain
(``_Connection.data_received``), which aiohttp stops doing once shutdown has begun.

``/auth`` answers and token verifications that the identity cache alone decides skip
the app's router and middleware (``forward_auth.CachedAnswers``,
``access_refresh.CachedVerify``): on the hot path those cost as much as the answer
itself.

aiohttp has no public hook at that depth (``web.Application`` may not be subclassed, and
its ``handler_args`` cannot name the handler class), so ``GatewayRunner`` builds the app's
low-level server as ``web.AppRunner`` does and hands its arguments to a ``web.Server``
whose connections are ``_Connection``.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from gateway.errors import BadRequest, ErrorShape, GatewayError, InternalError, render, status_for_path
from gateway.middlewares import request_id

__all__ = ["GatewayRunner"]

log = logging.getLogger("gateway.http")


def _error_for(status: int, exc: BaseException | None) -> GatewayError:
    """The answer to a request aiohttp refused; never built from the request's text."""
    if status >= 500:
        return InternalError()
    if isinstance(exc, LineTooLong):
        return BadRequest("The request line or a header is too long")
    return BadRequest("Malformed HTTP request")


#: The path at the start of a request line, and the character after it when the chunk
#: holds one. aiohttp's parser keeps nothing of a request it refuses, but the answer's
#: status depends on the route (``status_for_path``): a refused ``/auth`` request is a
#: 403, since nginx turns a 400 there into a 500 for its client.
_REQUEST_LINE = re.compile(rb"[A-Z]{1,16} (/[^ ?#\r\n]{0,64})[ ?#\r\n]?")
_PATH_ENDS = frozenset(b" ?#\r\n")
_VERIFY_PATHS = frozenset({"/api/token/verify/", "/api/token/verify"})


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse in JSON, and reading
    the body of a request in progress while the server drains."""

    _path = "/"  # of the latest request line seen on this connection
    #: That request line up to the character after its path: a chunk that starts with the
    #: very same bytes names the same path, and is not matched again (keep-alive clients
    #: repeat their requests).
    _line = b"\n"

    def data_received(self, data: bytes) -> None:
        if not data.startswith(self._line):
            request_line = _REQUEST_LINE.match(data)
            if request_line is not None:
                self._path = request_line.group(1).decode("latin-1")
                line = request_line.group(0)
                self._line = line if line[-1] in _PATH_ENDS else b"\n"
        # On SIGTERM aiohttp marks every connection closing and from then on drops what
        # arrives, even the rest of a body whose handler is waiting for it: a slowly
        # uploaded request would hang until the drain timeout and get no answer. The
        # request in progress keeps receiving its body; the closing flags still end the
        # connection after it, so no new request starts.
        if not ((self._close or self._force_close) and self._request_in_progress
                and self.transport is not None):
            super().data_received(data)
            return
        marks = self._close, self._force_close
        self._close = self._force_close = False
        try:
            super().data_received(data)
        finally:
            self._close, self._force_close = marks

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # ``message`` and ``str(exc)`` quote the request's bytes: neither is used.
        rid = request_id(request)
        if status >= 500:
            log.error("unhandled error on a connection from %s (request %s)", request.remote,
                      rid, exc_info=exc)
        else:
            log.info("refused a malformed request from %s: %s, %d (request %s)", request.remote,
                     type(exc).__name__ if exc is not None else "error", status, rid)
        if request.writer.output_size > 0:
            # Part of an answer went out already: the connection can only be dropped.
            raise ConnectionError("an answer was being sent when the request failed")
        response = web.json_response(render(ErrorShape.DEFAULT, _error_for(status, exc)),
                                     status=status_for_path(self._path, status),
                                     headers={"X-Request-ID": rid})
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` (same arguments) whose connections are ``_Connection``, and whose
    ``/auth`` and token-verify requests first try what the caches alone can answer."""

    async def _make_server(self) -> web.Server:
        from gateway.handlers.access_refresh import CachedVerify
        from gateway.handlers.forward_auth import CachedAnswers

        server = await super()._make_server()  # the app has started: its services exist
        handle = server.request_handler
        answer_from_cache = CachedAnswers(self.app)
        verify_from_cache = CachedVerify(self.app)

        async def cache_first(request: web.BaseRequest) -> web.StreamResponse:
            path = request.path
            answer: web.StreamResponse | None = None
            if path == "/auth":
                answer = answer_from_cache(request)
            elif path in _VERIFY_PATHS:
                answer = await verify_from_cache(request)
            return await handle(request) if answer is None else answer

        return _Server(cache_first, request_factory=server.request_factory,
                       handler_cancellation=server.handler_cancellation, loop=server._loop,
                       **server._kwargs)
