"""Every typed key of the application and of a request, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    # Types only: services import ``authz``, which reads these keys.
    from gateway.admin import Administration
    from gateway.identity.cache import IdentityCache
    from gateway.identity.credentials import Credentials, Identity
    from gateway.identity.logins import PasswordCheck
    from gateway.identity.resolver import Resolver
    from gateway.keys.service import SigningKeys
    from gateway.media.service import MediaService
    from gateway.metrics import Counts, Exporter
    from gateway.netaddr import ClientAddresses, IPAddress
    from gateway.passwords import PasswordHasher
    from gateway.settings import Settings
    from gateway.storage import Store
    from gateway.tokens.keyring import Keyring
    from gateway.tokens.lifecycle import TokenService

__all__ = [
    "ADMIN",
    "CLIENT_ADDRESS",
    "CLIENT_ADDRESSES",
    "CLOCK",
    "COUNTS",
    "CREDENTIALS",
    "EXPORTER",
    "HASHER",
    "IDENTITY",
    "IDENTITY_CACHE",
    "KEYRING",
    "LOGINS",
    "MEDIA",
    "OPENAPI_DOCUMENT",
    "REQUEST_ID",
    "RESOLVER",
    "SETTINGS",
    "SIGNING_KEYS",
    "STORE",
    "TENANT",
    "TENANTS_SEEN",
    "TOKENS",
    "UPSTREAM_CLIENT",
]

#: The running config and what is compiled from it; a SIGHUP reload replaces them.
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
#: Seconds since the epoch; tests inject their own clock.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
STORE: web.AppKey[Store] = web.AppKey("store")
#: The admin API's operations (shared with the CLI).
ADMIN: web.AppKey[Administration] = web.AppKey("admin")
KEYRING: web.AppKey[Keyring] = web.AppKey("keyring")
#: The tenants' signing keys (media tokens, and user tokens under RS256/ES256).
SIGNING_KEYS: web.AppKey[SigningKeys] = web.AppKey("signing_keys")
HASHER: web.AppKey[PasswordHasher] = web.AppKey("hasher")
#: Password checks under regulation (/login, /api/token/, Basic).
LOGINS: web.AppKey[PasswordCheck] = web.AppKey("logins")
#: Credentials to identities, through the identity cache.
RESOLVER: web.AppKey[Resolver] = web.AppKey("resolver")
IDENTITY_CACHE: web.AppKey[IdentityCache] = web.AppKey("identity_cache")
#: Issuing and ending user tokens.
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
MEDIA: web.AppKey[MediaService] = web.AppKey("media")
OPENAPI_DOCUMENT: web.AppKey[bytes] = web.AppKey("openapi_document")
#: What this process counted since the last flush to prometheus-client (``gateway.metrics``).
COUNTS: web.AppKey[Counts] = web.AppKey("counts")
EXPORTER: web.AppKey[Exporter] = web.AppKey("exporter")
#: The client address behind ``server.trusted_proxies`` (memoised per process).
CLIENT_ADDRESSES: web.AppKey[ClientAddresses] = web.AppKey("client_addresses")
#: The pooled HTTP client of the built-in proxy (only when upstreams are configured).
UPSTREAM_CLIENT: web.AppKey[ClientSession] = web.AppKey("upstream_client")
#: Tenants known to exist; tenants are never deleted, so a hit needs no database read.
TENANTS_SEEN: web.AppKey[set[str]] = web.AppKey("tenants_seen")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
CLIENT_ADDRESS: web.RequestKey[IPAddress | None] = web.RequestKey("client_address")
TENANT: web.RequestKey[str] = web.RequestKey("tenant")
CREDENTIALS: web.RequestKey[Credentials | None] = web.RequestKey("credentials")
#: The resolved identity, kept per request by ``authz.authenticate``.
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity")
