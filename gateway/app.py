"""The application factory: ``create_app(config)``, and nothing global."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.appkeys import (
    ADMIN,
    CLIENT_ADDRESSES,
    CLOCK,
    COUNTS,
    EXPORTER,
    HASHER,
    IDENTITY_CACHE,
    KEYRING,
    LOGINS,
    MEDIA,
    OPENAPI_DOCUMENT,
    RESOLVER,
    SETTINGS,
    SIGNING_KEYS,
    STORE,
    TENANTS_SEEN,
    TOKENS,
    UPSTREAM_CLIENT,
)
from gateway.bootstrap import bootstrap, ensure_tenants
from gateway.config import Config
from gateway.handlers.portal import setup_portal
from gateway.logs import flush_access_log
from gateway.metrics import FLUSH_INTERVAL, Counts, Exporter
from gateway.middlewares import MIDDLEWARES
from gateway.netaddr import ClientAddresses
from gateway.resources import openapi_path
from gateway.routes import setup_routes
from gateway.services import build_services, make_hasher, open_store
from gateway.settings import Settings

__all__ = ["create_app"]


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    hasher = make_hasher(app[SETTINGS].config)
    await hasher.warm_up()
    app[HASHER] = hasher
    yield
    hasher.close()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[SETTINGS].config
    store = await open_store(config)
    try:
        await ensure_tenants(store, config, app[CLOCK]())
        await bootstrap(store, config, app[HASHER], app[CLOCK]())
        app[STORE] = store
        app[TENANTS_SEEN] = set(await store.list_tenants())
        yield
    finally:
        await store.close()


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    exporter = Exporter(app[COUNTS])
    app[EXPORTER] = exporter

    async def flush_now_and_then() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            exporter.flush()

    task = asyncio.get_running_loop().create_task(flush_now_and_then())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    exporter.flush()


async def _services(app: web.Application) -> AsyncIterator[None]:
    services = await build_services(app[SETTINGS].config, app[STORE], app[HASHER], app[CLOCK],
                                    app[COUNTS])
    app[KEYRING] = services.keyring
    app[SIGNING_KEYS] = services.keys
    app[IDENTITY_CACHE] = services.cache
    app[LOGINS] = services.logins
    app[RESOLVER] = services.resolver
    app[TOKENS] = services.tokens
    app[ADMIN] = services.admin
    app[MEDIA] = services.media
    yield
    services.close()


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    # One pooled session for every upstream, made even with none configured (it opens no
    # connection until used) so that a reload may add some; bodies pass through undecoded.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None, connect=app[SETTINGS].config.gateway.upstream_timeout,
                                      sock_read=app[SETTINGS].config.gateway.upstream_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    app[UPSTREAM_CLIENT] = session
    yield
    await session.close()


async def _flush_access_log(app: web.Application) -> None:
    flush_access_log()


def create_app(config: Config, *, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the gateway for ``config``; resources open on startup and close on cleanup."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=config.server.max_body_size)
    app[SETTINGS] = Settings(config)
    app[CLOCK] = clock
    app[OPENAPI_DOCUMENT] = openapi_path().read_bytes()
    app[CLIENT_ADDRESSES] = ClientAddresses(config.server.trusted_proxies)
    app[COUNTS] = Counts()
    app.on_cleanup.append(_flush_access_log)
    app.cleanup_ctx.extend([_metrics, _passwords, _storage, _services, _upstream_client])
    setup_portal(app)
    setup_routes(app)
    return app
