"""Operations: liveness, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.appkeys import EXPORTER, OPENAPI_DOCUMENT, STORE

__all__ = ["healthz", "metrics", "openapi", "readyz"]

log = logging.getLogger("gateway")


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database answers a read."""
    try:
        await request.app[STORE].ping()
    except Exception as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return web.json_response(
            {"error": "not_ready", "message": "Database unreachable"}, status=503
        )
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of every endpoint."""
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/yaml")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this process's metrics, or every worker's with ``--workers``."""
    body, content_type = request.app[EXPORTER].render()
    return web.Response(body=body, headers={"Content-Type": content_type})
