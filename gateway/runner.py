"""The runner the app is served with: aiohttp's, with malformed HTTP answered in JSON and
the answers the caches alone decide written early.

A request aiohttp cannot parse (a control character in a header, a request line or a
header over 8,190 bytes, too many headers) never reaches the app or its middleware:
aiohttp's connection handler answers it itself, with a text/plain 400 quoting the
offending line, and logs that line with a traceback. The line may hold a Basic
credential or an ``X-Key``. Here the connection handler's ``handle_error`` answers
``{"error", "message"}`` like every other error and logs only the kind of error and the
peer; no header value is read.

The same handler keeps reading the body of the request in progress during a drain
(``_Connection.data_received``), which aiohttp stops doing once shutdown has begun.

``/auth`` answers and token verifications that the identity cache alone decides
(``gateway.early``) skip the app. On an idle keep-alive HTTP/1.1 connection a request
that aiohttp's parser has just read whole is answered by the connection itself
(``_Connection._answer_early``): no request object, handler task or response object is
made, which is most of what a request costs aiohttp. It does what aiohttp's handler
loop would do for that request: the answer is written in order (only when no other
request is queued or in progress on the connection, and not while the transport's
buffer is full), the keep-alive deadline moves, the access line and the metrics are
recorded. Any other request that may have an early answer gets it before the router
(``GatewayRunner``), as a ``web.Response``.

This reads and sets ``web.RequestHandler`` internals (``_waiter``, ``_messages``,
``_parser``, the keep-alive fields), which is why ``pyproject.toml`` holds aiohttp to
the minor version this was written against; ``tests/test_early_answers.py`` covers the
cases a change there would break.

aiohttp has no public hook at that depth (``web.Application`` may not be subclassed, and
its ``handler_args`` cannot name the handler class), so ``GatewayRunner`` builds the app's
low-level server as ``web.AppRunner`` does and hands its arguments to a ``web.Server``
whose connections are ``_Connection``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_exceptions import LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDictProxy, istr

from gateway.appkeys import COUNTS
from gateway.early import MAX_BODY, Early, Incoming
from gateway.errors import BadRequest, ErrorShape, GatewayError, InternalError, render, status_for_path
from gateway.logs import AccessLogger, access_line
from gateway.middlewares import record_early_answer, request_id

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
_EARLY_PATHS = _VERIFY_PATHS | {"/auth"}  # the paths that may have an early answer
_EXPECT = istr("Expect")


def _remote(peername: Any) -> str | None:
    """The peer as ``web.BaseRequest.remote`` gives it."""
    if peername is None:
        return None
    if isinstance(peername, (list, tuple)):
        return str(peername[0])
    return str(peername)


def _filled(protocol: web.RequestHandler, body: bytes) -> StreamReader:
    """A finished payload holding ``body``: what aiohttp's parser made, for a request whose
    body was read to look for an early answer and is not answered early."""
    payload = StreamReader(protocol, 2**16, loop=protocol._loop)
    payload.feed_data(body)
    payload.feed_eof()
    return payload


class _EarlyAnswers:
    """The answerers of ``gateway.early``, by path, and the metrics of what they answer."""

    def __init__(self, app: web.Application) -> None:
        from gateway.handlers.access_refresh import CachedVerify
        from gateway.handlers.forward_auth import CachedAnswers

        self._auth = CachedAnswers(app)
        self._verify = CachedVerify(app)
        self._counts = app[COUNTS]

    @staticmethod
    def may_answer(path: str, headers: CIMultiDictProxy[str]) -> bool:
        """Whether a request may have an early answer at all. One with ``Expect`` goes to the
        app, which answers ``100 Continue`` (or 417)."""
        return path in _EARLY_PATHS and _EXPECT not in headers

    def __call__(self, incoming: Incoming) -> Early | None:
        path = incoming.url.path
        try:
            if path == "/auth":
                return self._auth(incoming)
            if path in _VERIFY_PATHS:
                return self._verify(incoming)
        except Exception:  # a bug: the full path answers the request, as it would have
            log.exception("no early answer for a request on %s", path)
        return None

    def reads_body(self, path: str, method: str, headers: CIMultiDictProxy[str]) -> bool:
        """Whether an answerer reads this request's body (only then is it read early)."""
        return path in _VERIFY_PATHS and self._verify.reads(method, headers)

    def count(self, early: Early, method: str, seconds: float) -> None:
        self._counts.request(early.route, method, 200, seconds)


_SERVER = f"Server: {SERVER_SOFTWARE}\r\n\r\n".encode()
_dates: dict[str, bytes] = {}


def _date_line() -> bytes:
    """The ``Date`` header line, as aiohttp writes it (its formatted time changes once a
    second; its bytes are kept for the second)."""
    now = rfc822_formatted_time()
    line = _dates.get(now)
    if line is None:
        _dates.clear()
        line = _dates[now] = f"Date: {now}\r\n".encode()
    return line


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse in JSON, reading the
    body of a request in progress while the server drains, and writing the early answers
    of requests on an idle keep-alive connection itself."""

    _path = "/"  # of the latest request line seen on this connection
    #: That request line up to the character after its path: a chunk that starts with the
    #: very same bytes names the same path, and is not matched again (keep-alive clients
    #: repeat their requests).
    _line = b"\n"

    def __init__(self, manager: web.Server, *, early: _EarlyAnswers | None, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        # Early answers write their access line themselves, so only where the line is the
        # gateway's own (or none is written); and they keep the connection open, so only
        # where aiohttp would too (a keep-alive timeout of 0 closes after each answer).
        log_lines = self.access_logger is None or not self._logging_enabled \
            or isinstance(self.access_logger, AccessLogger)
        self._early = early if log_lines and self._keepalive_timeout > 0 else None
        self._peer: str | None = None

    def data_received(self, data: bytes) -> None:
        if not data.startswith(self._line):
            request_line = _REQUEST_LINE.match(data)
            if request_line is not None:
                self._path = request_line.group(1).decode("latin-1")
                line = request_line.group(0)
                self._line = line if line[-1] in _PATH_ENDS else b"\n"
        waiter = self._waiter
        if (self._early is not None and waiter is not None and not waiter.done()
                and not self._messages and self._payload_parser is None and not self._upgraded
                and not self._close and not self._force_close and self.transport is not None
                and not self.writing_paused):
            # Idle: the handler loop waits for a request. Parse without waking it, and wake
            # it only for what is not answered here.
            self._waiter = None
            try:
                super().data_received(data)
            finally:
                self._waiter = waiter
            messages = self._messages
            if len(messages) == 1 and self._answer_early(*messages[0]):
                messages.popleft()
                if self._parser is not None:
                    self._parser.message_consumed()
            elif messages and not waiter.done():
                waiter.set_result(None)
            return
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

    def _answer_early(self, message: Any, payload: StreamReader) -> bool:
        """Write the early answer to this request, if it has one, as aiohttp's handler loop
        would have written it (for HTTP/1.1 keep-alive requests only); False: it goes to
        the handler loop as it is."""
        started = time.perf_counter()
        answers = self._early
        if (answers is None or type(message) is not RawRequestMessage or message.version != HttpVersion11
                or message.should_close or message.upgrade or message.url.absolute
                or not answers.may_answer(message.url.path, message.headers)):
            return False
        body = None
        if payload is not EMPTY_PAYLOAD:
            if not payload.is_eof() or payload.total_bytes > MAX_BODY \
                    or not answers.reads_body(message.url.path, message.method, message.headers):
                return False
            body = payload.read_nowait()
        if self._peer is None:
            self._peer = _remote(self.transport.get_extra_info("peername")) if self.transport else None
        early = answers(Incoming(message.method, message.url, message.path, message.headers,
                                 self._peer, body))
        if early is None:
            if body:  # the handler reads it again
                self._messages[0] = message, _filled(self, body)
            return False
        ready = early.ready
        assert self.transport is not None
        # HEAD: no body, and, as aiohttp answers it, no Content-Length.
        head = message.method == "HEAD"
        answer = b"".join((
            b"HTTP/1.1 200 OK\r\n", ready.lines, b"X-Request-ID: ", early.request_id.encode(),
            b"\r\n", b"" if head else b"Content-Length: %d\r\n" % len(ready.body), _date_line(),
            _SERVER, b"" if head else ready.body))
        self.transport.write(answer)
        # What the handler loop does after a keep-alive answer.
        loop = self._loop
        self._manager.requests_count += 1  # type: ignore[union-attr]
        self._keepalive = True
        close_time = loop.time() + self._keepalive_timeout
        self._next_keepalive_close_time = close_time
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)
        seconds = time.perf_counter() - started
        if self._logging_enabled:
            access_line(early.request_id, message.method, message.url.path, 200, len(answer),
                        seconds, early.client, self._peer, early.tenant)
        answers.count(early, message.method, seconds)
        return True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # ``message`` and ``str(exc)`` quote the request's bytes: neither is used.
        rid = request_id(request.headers)
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
    def __init__(self, *args: Any, early: _EarlyAnswers | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._early = early

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, early=self._early, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` (same arguments) whose connections are ``_Connection``, and whose
    ``/auth`` and token-verify requests first try what the caches alone can answer."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app has started: its services exist
        handle = server.request_handler
        early = _EarlyAnswers(self.app)

        async def early_first(request: web.BaseRequest) -> web.StreamResponse:
            if not early.may_answer(request.path, request.headers):
                return await handle(request)
            started = time.perf_counter()
            body = None
            if request.body_exists:
                if not (0 < (request.content_length or 0) <= MAX_BODY
                        and early.reads_body(request.path, request.method, request.headers)):
                    return await handle(request)
                try:
                    body = await request.read()
                except Exception:  # a body cut short: the full path reads it again and answers that
                    return await handle(request)
            answer = early(Incoming(request.method, request.rel_url, request.raw_path,
                                    request.headers, request.remote, body))
            if answer is None:
                return await handle(request)
            record_early_answer(request, answer.request_id, answer.client, answer.tenant)
            early.count(answer, request.method, time.perf_counter() - started)
            ready = answer.ready
            return web.Response(status=200, body=ready.body or None,
                                headers={**ready.headers, "X-Request-ID": answer.request_id})

        return _Server(early_first, request_factory=server.request_factory,
                       handler_cancellation=server.handler_cancellation, loop=server._loop,
                       early=early, **server._kwargs)
