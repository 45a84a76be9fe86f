"""The wiring, once: the store chosen from the config, and every service built on it.

``create_app`` and the CLI both call ``open_store`` and ``build_services``, so a server and
a CLI command on the same database run the same code: a revocation made by
``gateway users passwd`` goes through the same seam as one made over HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from gateway.admin import Administration
from gateway.audit import AuditTrail
from gateway.config import Config
from gateway.identity.cache import IdentityCache
from gateway.identity.logins import PasswordCheck
from gateway.identity.resolver import Resolver
from gateway.keys.service import SigningKeys
from gateway.media.service import MediaService
from gateway.metrics import Counts
from gateway.passwords import PasswordHasher
from gateway.storage import Store, open_sqlite_store
from gateway.storage.postgresql import open_postgresql_store
from gateway.tokens.keyring import Keyring, load_user_secret
from gateway.tokens.lifecycle import TokenService

__all__ = ["Services", "build_services", "make_hasher", "open_store"]


async def open_store(config: Config) -> Store:
    """Open (and migrate) the database the config names: the one place a backend is chosen."""
    storage = config.storage
    if storage.url is not None:
        return await open_postgresql_store(storage.url, pool_size=storage.pool_size,
                                           acquire_timeout=storage.busy_timeout)
    return await open_sqlite_store(storage.path, synchronous=storage.synchronous,
                                   busy_timeout=storage.busy_timeout)


def make_hasher(config: Config) -> PasswordHasher:
    """argon2id with the configured cost, in a pool of one thread per core."""
    settings = config.passwords
    return PasswordHasher(memory_cost_kib=settings.memory_cost_kib, time_cost=settings.time_cost,
                          parallelism=settings.parallelism, threads=os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request or a command needs beyond the config."""

    store: Store
    keys: SigningKeys
    keyring: Keyring
    cache: IdentityCache
    logins: PasswordCheck
    resolver: Resolver
    tokens: TokenService
    media: MediaService
    audit: AuditTrail
    admin: Administration

    def close(self) -> None:
        """Stop the signing pool (the store and hasher are closed by their owners)."""
        self.keys.close()


async def build_services(config: Config, store: Store, hasher: PasswordHasher,
                         clock: Callable[[], float], counts: Counts | None = None) -> Services:
    """Build the services over an open store; the identity cache starts at the log's end.

    ``counts`` gathers what the metrics report (the CLI passes none: nothing scrapes it).
    """
    counts = Counts() if counts is None else counts
    secret = config.secret_key.get_secret_value() if config.secret_key else None
    keys = SigningKeys(store, clock)
    keyring = Keyring(load_user_secret(secret, config.data_dir),
                      algorithm=config.tokens.algorithm, tenant_keys=keys)
    cache = IdentityCache(store, size=config.cache.size, basic_ttl=config.cache.basic_ttl,
                          counts=counts)
    await cache.start()
    audit = AuditTrail(store, clock)
    logins = PasswordCheck(config, store, hasher, clock, on_refused=audit.login_refused,
                           counts=counts)
    tokens = TokenService(config, store, keyring, clock, counts=counts)
    media = MediaService(config, store, keys, clock, cache, counts=counts)
    return Services(
        store=store,
        keys=keys,
        keyring=keyring,
        cache=cache,
        logins=logins,
        resolver=Resolver(config, store, keyring, logins, cache, clock),
        tokens=tokens,
        media=media,
        audit=audit,
        admin=Administration(store, hasher, tokens, keys, audit, clock),
    )
