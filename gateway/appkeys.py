"""Every typed key of the application and of a request, in one place."""

from __future__ import annotations

import re
from collections.abc import Callable

from aiohttp import ClientSession, web

from gateway.auth import Authenticator, Credentials, Identity
from gateway.config import Config
from gateway.keyring import Keyring
from gateway.media import MediaService
from gateway.netaddr import IPAddress
from gateway.passwords import PasswordHasher
from gateway.rules import CompiledRule
from gateway.storage import Store

__all__ = [
    "AUTHENTICATOR",
    "CLIENT_ADDRESS",
    "CLOCK",
    "CONFIG",
    "CREDENTIALS",
    "HASHER",
    "IDENTITY",
    "KEYRING",
    "MEDIA",
    "MEDIA_URL",
    "OPENAPI_DOCUMENT",
    "REQUEST_ID",
    "RULES",
    "STORE",
    "TENANT",
    "TENANTS_SEEN",
    "UPSTREAM_CLIENT",
]

CONFIG: web.AppKey[Config] = web.AppKey("config")
#: Seconds since the epoch; tests inject their own clock.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
STORE: web.AppKey[Store] = web.AppKey("store")
KEYRING: web.AppKey[Keyring] = web.AppKey("keyring")
HASHER: web.AppKey[PasswordHasher] = web.AppKey("hasher")
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
MEDIA: web.AppKey[MediaService] = web.AppKey("media")
OPENAPI_DOCUMENT: web.AppKey[bytes] = web.AppKey("openapi_document")
#: gateway.rules and media.url_pattern, compiled once at start.
RULES: web.AppKey[tuple[CompiledRule, ...]] = web.AppKey("rules")
MEDIA_URL: web.AppKey[re.Pattern[str]] = web.AppKey("media_url")
#: The pooled HTTP client of the built-in proxy (only when upstreams are configured).
UPSTREAM_CLIENT: web.AppKey[ClientSession] = web.AppKey("upstream_client")
#: Tenants known to exist; tenants are never deleted, so a hit needs no database read.
TENANTS_SEEN: web.AppKey[set[str]] = web.AppKey("tenants_seen")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
CLIENT_ADDRESS: web.RequestKey[IPAddress | None] = web.RequestKey("client_address")
TENANT: web.RequestKey[str] = web.RequestKey("tenant")
CREDENTIALS: web.RequestKey[Credentials | None] = web.RequestKey("credentials")
#: The resolved identity, cached per request by ``handlers.common.authenticate``.
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity")
