"""Logging: text or JSON lines, and one JSON access-log line per request (no secrets).

The access line names the path without its query string: ``?access_token=``,
``?signingKey=`` and friends carry credentials.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import logging
import os
import re
import sys
import time
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.appkeys import CLIENT_ADDRESS, REQUEST_ID, TENANT
from gateway.netaddr import IPAddress

__all__ = ["AccessLogger", "configure_logging", "flush_access_log"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    """Set up the root logger once: ``fmt`` is "text" or "json". Access lines are JSON always."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access lines bypass the handlers (``AccessLogger`` batches them to stderr); the
    # logger only says whether they are on.
    access = logging.getLogger("gateway.access")
    access.handlers[:] = [logging.NullHandler()]
    access.propagate = False
    access.setLevel(logging.INFO)
    _access_lines.stream = sys.stderr


class _Lines:
    """Access lines written in batches: at most ``FLUSH_DELAY`` seconds or ``FLUSH_BYTES``
    late, and at exit or app cleanup. One write per batch instead of one per request is
    most of what an access log costs on a fast path."""

    FLUSH_DELAY = 0.1
    FLUSH_BYTES = 64 * 1024

    def __init__(self) -> None:
        self.stream: TextIO = sys.stderr
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, line: str) -> None:
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self.FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._size = 0
            self.stream.write(text)
            self.stream.flush()


_access_lines = _Lines()
atexit.register(_access_lines.flush)


def flush_access_log() -> None:
    """Write out the access lines not yet written (the app calls it on cleanup)."""
    _access_lines.flush()


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: id, method, path, status, size, duration, client, tenant, pid.

    Built without ``json.dumps`` of a dict: only the path and the client may hold
    characters that need escaping (the request id, method and tenant were validated), and
    the line is written with the next batch (``_Lines``), not by a logging handler.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        # Made in the worker process that serves with it: the pid is this process's.
        self._end = f'"pid": {os.getpid()}}}\n'

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        # The request id (validated or ours), the method (an HTTP token) and the tenant
        # (validated) need no escaping; the path and a unix-socket peer may.
        client = request.get(CLIENT_ADDRESS)
        tenant = request.get(TENANT)
        _access_lines.add(
            f'{{"ts": {time.time():.3f}, '
            f'"request_id": {_plain(request.get(REQUEST_ID))}, '
            f'"method": "{request.method}", "path": {_quoted(request.path)}, '
            f'"status": {response.status}, "bytes": {response.body_length}, '
            f'"duration_ms": {time_taken * 1000:.2f}, '
            f'"client": {_address(client) if client is not None else _text(request.remote)}, '
            f'"tenant": {_plain(tenant)}, {self._end}'
        )


def _plain(text: str | None) -> str:
    """A value that was validated to need no escaping, as a JSON string (or null)."""
    return "null" if text is None else f'"{text}"'


_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def _quoted(text: str) -> str:
    """``text`` as a JSON string: printable ASCII without quote or backslash goes as it is."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else json.dumps(text)


@functools.lru_cache(maxsize=1024)
def _address(address: IPAddress) -> str:
    return f'"{address}"'


def _text(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)
