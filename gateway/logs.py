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
    """One JSON line per request (``access_line``)."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        access_line(request.get(REQUEST_ID), request.method, request.path, response.status,
                    response.body_length, time_taken, request.get(CLIENT_ADDRESS), request.remote,
                    request.get(TENANT))


_PID = os.getpid()


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)


def access_line(request_id: str | None, method: str, path: str, status: int, size: int,
                seconds: float, client: IPAddress | None, peer: str | None,
                tenant: str | None) -> None:
    """Add one request's access line: id, method, path, status, size, duration, client,
    tenant, pid (``AccessLogger``; ``runner._Connection`` for the answers it writes
    itself). ``client`` is the address the chain found, else ``peer`` is logged.

    Built without ``json.dumps`` of a dict: only the path and the peer may hold characters
    that need escaping (the request id, method and tenant were validated), and the line
    is written with the next batch (``_Lines``), not by a logging handler.
    """
    _access_lines.add(
        f'{{"ts": {time.time():.3f}, "request_id": {_plain(request_id)}, '
        f'"method": "{method}", "path": {_quoted(path)}, '
        f'"status": {status}, "bytes": {size}, "duration_ms": {seconds * 1000:.2f}, '
        f'"client": {_address(client) if client is not None else _text(peer)}, '
        f'"tenant": {_plain(tenant)}, "pid": {_PID}}}\n'
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
