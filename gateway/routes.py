"""Every route of the gateway, in one table."""

from __future__ import annotations

from aiohttp import web

from gateway.handlers import login, ops

__all__ = ["setup_routes"]


def setup_routes(app: web.Application) -> None:
    """Register the handlers of every API family."""
    app.router.add_routes([
        web.post("/login", login.login),
        web.post("/logout", login.logout),
        web.get("/healthz", ops.healthz, allow_head=False),
        web.get("/readyz", ops.readyz, allow_head=False),
        web.get("/openapi.yaml", ops.openapi, allow_head=False),
    ])
