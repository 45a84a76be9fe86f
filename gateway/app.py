"""The application factory: ``create_app(config)``, and nothing global."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.appkeys import (
    AUTHENTICATOR,
    CLOCK,
    CONFIG,
    HASHER,
    KEYRING,
    MEDIA,
    MEDIA_URL,
    OPENAPI_DOCUMENT,
    RULES,
    STORE,
    TENANTS_SEEN,
    UPSTREAM_CLIENT,
)
from gateway.auth import Authenticator
from gateway.bootstrap import bootstrap, ensure_tenants
from gateway.config import Config
from gateway.keyring import Keyring, load_user_secret
from gateway.media import MediaService
from gateway.middlewares import MIDDLEWARES
from gateway.passwords import PasswordHasher
from gateway.resources import openapi_path
from gateway.routes import setup_routes
from gateway.rules import compile_rules
from gateway.storage import open_sqlite_store

__all__ = ["create_app"]


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    settings = app[CONFIG].passwords
    hasher = PasswordHasher(memory_cost_kib=settings.memory_cost_kib,
                            time_cost=settings.time_cost, parallelism=settings.parallelism)
    await hasher.warm_up()
    app[HASHER] = hasher
    yield
    hasher.close()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await open_sqlite_store(
        config.storage.path, synchronous=config.storage.synchronous,
        busy_timeout=config.storage.busy_timeout,
    )
    try:
        await ensure_tenants(store, config, app[CLOCK]())
        await bootstrap(store, config, app[HASHER], app[CLOCK]())
        app[STORE] = store
        app[TENANTS_SEEN] = set(await store.list_tenants())
        yield
    finally:
        await store.close()


async def _identity(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    secret = config.secret_key.get_secret_value() if config.secret_key else None
    app[KEYRING] = Keyring(load_user_secret(secret, config.data_dir))
    app[AUTHENTICATOR] = Authenticator(config, app[STORE], app[KEYRING], app[HASHER], app[CLOCK])
    app[MEDIA] = MediaService(config, app[STORE], app[CLOCK])
    yield
    app[MEDIA].close()


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    if not app[CONFIG].gateway.upstreams:
        yield
        return
    # One pooled session for every upstream; bodies pass through undecoded.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None, connect=app[CONFIG].gateway.upstream_timeout,
                                      sock_read=app[CONFIG].gateway.upstream_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    app[UPSTREAM_CLIENT] = session
    yield
    await session.close()


def create_app(config: Config, *, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the gateway for ``config``; resources open on startup and close on cleanup."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=config.server.max_body_size)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[OPENAPI_DOCUMENT] = openapi_path().read_bytes()
    app[RULES] = compile_rules(config.gateway.rules)
    app[MEDIA_URL] = re.compile(config.media.url_pattern)
    app.cleanup_ctx.extend([_passwords, _storage, _identity, _upstream_client])
    setup_routes(app)
    return app
