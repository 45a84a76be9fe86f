"""From credentials to an ``Identity``, in named steps: the cache, else decode and the store.

``Resolver.resolve`` turns a request's credentials into who it comes from. A user token goes
``cache.sync → cache.token → (miss) decode_user_token → store row and user → live → put``;
a Basic credential goes ``cache.basic → (miss) PasswordCheck.check → put_basic``. The
cache and what keeps it correct are described in ``identity.cache``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from gateway.config import Config
from gateway.errors import Forbidden, InvalidCredentials, InvalidToken, Unauthenticated
from gateway.identity.cache import CachedToken, IdentityCache
from gateway.identity.credentials import (
    BEARER_KINDS,
    SESSION_KINDS,
    USER_TOKEN_KINDS,
    VERIFY_KINDS,
    Credentials,
    Identity,
    hash_key,
)
from gateway.identity.logins import PasswordCheck
from gateway.storage import Store, TokenRecord, User
from gateway.tokens.claims import TokenKind, decode_user_token
from gateway.tokens.keyring import Keyring

__all__ = ["Resolver", "live"]


def live(claims: dict[str, Any],
         found: tuple[TokenRecord, User | None] | None) -> tuple[TokenRecord, User]:
    """The row and user of decoded ``claims`` when the token is live, else InvalidToken."""
    if found is None:
        raise InvalidToken()
    record, user = found
    if (record.revoked_at is not None or record.kind != claims["token_type"]
            or record.tenant != claims["tenant"] or user is None
            or str(record.user_id) != claims["sub"] or user.disabled):
        raise InvalidToken()
    return record, user


class Resolver:
    """Resolves credentials to identities, remembering what it verified."""

    def __init__(self, config: Config, store: Store, keyring: Keyring, logins: PasswordCheck,
                 cache: IdentityCache, clock: Callable[[], float]) -> None:
        self._issuer = config.tokens.issuer
        self._leeway = config.tokens.leeway
        self._store = store
        self._keyring = keyring
        self._logins = logins
        self.cache = cache
        self._clock = clock
        #: Password checks under way, by Basic cache key (see ``_basic``).
        self._checks: dict[bytes, asyncio.Future[Identity]] = {}

    def cached(self, credentials: Credentials, tenant: str) -> Identity | None:
        """The identity from the cache alone, with no await, when it is there and current.

        None means "ask ``resolve``": a miss, a feed that moved (``resolve`` catches up
        first), or credentials the cache does not answer. A cached entry that refuses
        (another tenant, a wrong X-Key) raises as ``resolve`` would.
        """
        if credentials.scheme == "basic":
            found = self.cached_basic(credentials, tenant)
            return None if found is None else found[1]
        entry = self.cached_token(credentials, tenant)
        return None if entry is None else entry.identity

    def cached_basic(self, credentials: Credentials, tenant: str) -> tuple[bytes, Identity] | None:
        """``cached`` for a Basic credential, with the keyed hash it is remembered under
        (the same identity object comes back while the cache entry stands)."""
        cache = self.cache
        if not cache.current():
            return None
        key = cache.basic_key(tenant, credentials.username, credentials.password)
        identity = cache.basic(key, self._clock())
        if identity is None:
            return None
        cache.counts.cache_hits += 1
        return key, identity

    def still_basic(self, key: bytes, identity: Identity) -> bool:
        """Whether the cache still gives ``identity`` for the Basic credential remembered
        under ``key`` (``cached_basic``), with no change announced since it caught up: a
        password change, a disabled user and the TTL all drop or replace the entry."""
        cache = self.cache
        if cache.current() and cache.basic(key, self._clock()) is identity:
            cache.counts.cache_hits += 1
            return True
        return False

    def cached_token(self, credentials: Credentials, tenant: str) -> CachedToken | None:
        """``cached`` for a token credential: the cache entry that answered, so that a
        caller may remember what it decided and ask ``still_cached`` later."""
        scheme = credentials.scheme
        if scheme == "bearer":
            kinds, key_text = BEARER_KINDS, None
        elif scheme == "session":
            kinds, key_text = SESSION_KINDS, credentials.key
        else:
            return None
        entry = self._live_entry(credentials.token, kinds)
        if entry is None:
            return None
        self.cache.counts.cache_hits += 1
        self._accept(entry, kinds, key_text, tenant)
        return entry

    def _live_entry(self, token: str, kinds: frozenset[TokenKind]) -> CachedToken | None:
        """The cache's entry for ``token`` when the cache is current, the entry of one of
        ``kinds`` and within its lifetime (no await, nothing counted)."""
        cache = self.cache
        if not cache.current():
            return None
        entry = cache.token(token)
        if entry is None or entry.kind not in kinds \
                or not entry.not_before <= self._clock() <= entry.expires:
            return None
        return entry

    def still_cached(self, token: str, entry: CachedToken) -> bool:
        """Whether ``entry``, which ``cached_token`` gave for ``token``, would be given again
        now: no change announced since the cache last caught up, the same entry still
        held (a revocation drops it; a re-read makes another), and within its lifetime."""
        cache = self.cache
        if not (cache.current() and cache.holds(token, entry)
                and entry.not_before <= self._clock() <= entry.expires):
            return False
        cache.counts.cache_hits += 1
        return True

    def verified_in_cache(self, token: str, tenant: str) -> bool:
        """True when the cache alone shows ``token`` to be a live access or refresh token of
        ``tenant`` (``verify`` would pass it), with no await; False means ask ``verify``."""
        entry = self._live_entry(token, VERIFY_KINDS)
        if entry is None or entry.tenant != tenant:
            return False
        self.cache.counts.cache_hits += 1
        return True

    async def resolve(self, credentials: Credentials, tenant: str, address: str) -> Identity:
        """The identity behind ``credentials`` on a request made for ``tenant``, or raise."""
        if credentials.scheme == "basic":
            return await self._basic(credentials, tenant, address)
        if credentials.scheme == "bearer":
            return await self.token_identity(credentials.token, tenant, BEARER_KINDS)
        if credentials.scheme == "session":
            return await self.token_identity(credentials.token, tenant, SESSION_KINDS,
                                             key=credentials.key)
        raise Unauthenticated("Unreadable credentials")

    async def token_identity(self, token: str, tenant: str, kinds: frozenset[TokenKind], *,
                             key: str | None = None) -> Identity:
        """The identity of a live user token of one of ``kinds``, or raise InvalidToken."""
        return self._accept(await self._entry(token, kinds), kinds, key, tenant)

    @staticmethod
    def _accept(entry: CachedToken, kinds: frozenset[TokenKind], key: str | None,
                tenant: str) -> Identity:
        """The entry's identity for a request of ``tenant``, or raise.

        A session token (asked for with ``SESSION_KINDS``, or presented as a Bearer token)
        also needs its ``key``, compared in constant time with the stored hash.
        """
        record = entry.identity.token
        assert record is not None
        if kinds is SESSION_KINDS or entry.kind == TokenKind.SESSION:
            if not key or record.key_hash is None or not secrets.compare_digest(
                hash_key(key), record.key_hash
            ):
                raise InvalidToken()
        if entry.tenant != tenant:
            raise Forbidden("This token belongs to another tenant")
        return entry.identity

    async def verify(self, token: object, tenant: str) -> None:
        """Raise InvalidToken unless ``token`` is a live access or refresh token of ``tenant``."""
        if not isinstance(token, str):
            raise InvalidToken()
        if (await self._entry(token, VERIFY_KINDS)).tenant != tenant:
            raise InvalidToken()

    async def introspect(self, token: object, tenant: str) -> Identity | None:
        """The owner and row of ``token`` when it is a live user token of ``tenant`` (access,
        refresh, session or named), else None: expired, revoked, malformed, a media token,
        another tenant's. A bad token is an answer here, never an error (RFC 7662)."""
        if not isinstance(token, str):
            return None
        try:
            entry = await self._entry(token, USER_TOKEN_KINDS)
        except InvalidToken:
            return None
        return entry.identity if entry.tenant == tenant else None

    async def _entry(self, token: str, kinds: frozenset[TokenKind]) -> CachedToken:
        cache = self.cache
        epoch = await cache.sync()
        now = self._clock()
        entry = cache.token(token) if epoch is not None else None
        if entry is not None:
            if entry.kind in kinds and entry.not_before <= now <= entry.expires:
                cache.counts.cache_hits += 1
                return entry
            if now > entry.expires:
                cache.forget(token)
        cache.counts.cache_misses += 1
        claims = await decode_user_token(self._keyring, token, kinds=kinds, issuer=self._issuer,
                                   now=now, leeway=self._leeway)
        record, user = live(claims, await self._store.get_token_and_user(claims["jti"]))
        iat = claims["iat"]
        entry = CachedToken(
            identity=Identity(user=user, token=record,
                              method="session" if record.kind == TokenKind.SESSION else "bearer"),
            kind=record.kind, tenant=record.tenant,
            not_before=max(iat, claims.get("nbf", iat)) - self._leeway,
            expires=claims["exp"] + self._leeway,
        )
        cache.put_token(token, entry, epoch)
        return entry

    async def _basic(self, credentials: Credentials, tenant: str, address: str) -> Identity:
        """A Basic credential: from the cache, else one password check per credential at a
        time; concurrent requests with the same credential wait for that check's answer.

        Without that, a client opening many connections at once (or a cache entry ending
        under load) would run as many checks together, each counted as a failure until it
        succeeds (regulation counts attempts before the verify), and ban its own account.
        """
        cache = self.cache
        epoch = await cache.sync()
        now = self._clock()
        key = cache.basic_key(tenant, credentials.username, credentials.password)
        identity = cache.basic(key, now) if epoch is not None else None
        if identity is not None:
            cache.counts.cache_hits += 1
            return identity
        while (running := self._checks.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled, not the check it waited for
        check: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._checks[key] = check
        cache.counts.cache_misses += 1
        try:
            try:
                user = await self._logins.check(tenant, credentials.username,
                                                credentials.password, address)
            except InvalidCredentials:
                raise Unauthenticated("Invalid username or password") from None
            identity = Identity(user=user, token=None, method="basic")
            cache.put_basic(key, identity, now, epoch)
        except asyncio.CancelledError:
            check.cancel()  # the next waiter runs the check itself
            raise
        except BaseException as exc:
            check.set_exception(exc)
            raise
        else:
            check.set_result(identity)
        finally:
            del self._checks[key]
            if check.done() and not check.cancelled():
                check.exception()  # retrieved here, so a check nobody waited for logs nothing
        return identity
