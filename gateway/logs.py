"""Logging: text or JSON lines, and one JSON access-log line per request (no secrets).

The access line names the path without its query string: ``?access_token=``,
``?signingKey=`` and friends carry credentials.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.appkeys import CLIENT_ADDRESS, REQUEST_ID, TENANT

__all__ = ["AccessLogger", "configure_logging"]


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
    access = logging.getLogger("gateway.access")
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.handlers[:] = [access_handler]
    access.propagate = False
    access.setLevel(logging.INFO)


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: id, method, path, status, size, duration, client, tenant, pid."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        self.logger.info(json.dumps({
            "ts": round(time.time(), 3),
            "request_id": request.get(REQUEST_ID),
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time_taken * 1000, 2),
            "client": str(request.get(CLIENT_ADDRESS) or request.remote),
            "tenant": request.get(TENANT),
            "pid": os.getpid(),
        }))
