"""Media tokens at run time: issuing with the tenant's keys (``gateway.keys``), and the one
check.

``MediaService.check`` is the single enforcement function for a media token, used by
``POST /token/check`` and by the reverse-proxy paths. It applies, in order (docs/media-tokens.md):
signature with an allowed algorithm and the key named by ``kid`` within the token's
tenant; ``nbf``/``exp`` with ``tokens.leeway``; client address in ``rangeip``; media id;
user or roles; the request's tenant; and one-time use, consumed atomically in SQLite so
exactly one use succeeds across every worker process.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.authz import user_matches
from gateway.config import Config
from gateway.errors import (
    AddressNotAllowed,
    BadRequest,
    GatewayError,
    InvalidToken,
    MediaNotAllowed,
    TokenExpired,
    TokenNotYetValid,
    TokenUsed,
    UserCredentialRequired,
    UserNotAllowed,
    WrongTenant,
)
from gateway.identity.cache import CachedMedia, IdentityCache
from gateway.identity.credentials import Identity
from gateway.keys.service import SigningKeys
from gateway.media.params import MediaTokenRequest, address_allowed, build_claims, parse_ranges
from gateway.metrics import Counts
from gateway.netaddr import IPAddress
from gateway.storage import AlreadyExists, NewToken, Store
from gateway.tokens.claims import TokenKind, checked_header, decode_with

__all__ = ["IssuedMediaToken", "MediaGrant", "MediaService"]

_MEDIA = frozenset({TokenKind.MEDIA})


@dataclass(frozen=True)
class IssuedMediaToken:
    token: str
    kid: str
    algorithm: str
    start_at: int
    expires_at: int


@dataclass(frozen=True)
class MediaGrant:
    """A media token that passed every check: its claims, for identity headers."""

    claims: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.claims["kid"])

    @property
    def tenant(self) -> str:
        return str(self.claims["tenant"])


class MediaService:
    """Issues and checks media tokens with the tenants' signing keys."""

    def __init__(self, config: Config, store: Store, keys: SigningKeys,
                 clock: Callable[[], float], cache: IdentityCache | None = None, *,
                 counts: Counts | None = None) -> None:
        self._config = config
        self._counts = Counts() if counts is None else counts
        self._store = store
        self._keys = keys
        self._clock = clock
        self._cache = cache

    # Issuing

    async def issue(self, request: MediaTokenRequest, tenant: str) -> IssuedMediaToken:
        """Record and sign a media token; a ``kid`` already registered in the tenant is 400."""
        record = await self._keys.signing_key(tenant, request.algorithm)
        issued_at = int(self._clock())
        jti = str(uuid.uuid4())
        claims = build_claims(request, jti=jti, tenant=tenant,
                              issuer=self._config.tokens.issuer, issued_at=issued_at)
        try:
            await self._store.add_tokens([NewToken(
                jti=jti, kind=TokenKind.MEDIA.value, tenant=tenant, user_id=None,
                issued_at=issued_at, expires_at=claims["exp"], media_kid=request.kid,
                signing_kid=record.kid,
            )])
        except AlreadyExists:
            raise BadRequest(f"kid {request.kid!r} is already registered in this tenant") from None
        self._counts.token_issued(TokenKind.MEDIA.value)
        token = await self._keys.sign(claims, record)
        return IssuedMediaToken(token=token, kid=request.kid, algorithm=request.algorithm,
                                start_at=claims["nbf"], expires_at=claims["exp"])

    # Checking

    async def _verified(self, token: object) -> CachedMedia:
        """The token's verified claims: from the cache, else checked and remembered."""
        cache = self._cache
        epoch = await cache.sync() if cache is not None else None
        if epoch is not None and isinstance(token, str):
            assert cache is not None
            found = cache.media(token)
            if found is not None:
                return found
        token, header = checked_header(token, self._config.media.algorithms)
        algorithm = str(header["alg"])
        key = await self._keys.verification_key(header.get("kid"), algorithm)
        if key is None:
            raise InvalidToken()
        record, key_object = key
        claims = decode_with(token, key_object, algorithm, self._config.tokens.issuer, _MEDIA)
        if claims["tenant"] != record.tenant:
            raise InvalidToken()
        entry = CachedMedia(claims=claims, ranges=parse_ranges(claims["context"]["rangeip"]),
                            tenant=record.tenant)
        if cache is not None:
            cache.put_media(token, entry, epoch)
        return entry

    async def check(
        self,
        token: object,
        *,
        tenant: str,
        address: IPAddress | None,
        media_id: str | None,
        identity: Callable[[], Awaitable[Identity | None]],
    ) -> MediaGrant:
        """Pass a media token for one use, or raise the first failing restriction."""
        verified = await self._verified(token)
        claims = verified.claims
        now = self._check_use(verified, address, media_id)
        context: dict[str, Any] = claims["context"]
        restriction = context["user"]
        if restriction.get("username") or restriction.get("roles"):
            user = await identity()
            if user is None:
                raise UserCredentialRequired()
            if not user_matches(restriction, user.user.username, user.user.roles):
                raise UserNotAllowed()
        if claims["tenant"] != tenant:
            raise WrongTenant()
        if context.get("unique") is True and not await self._store.consume_media(
            tenant, claims["kid"], now
        ):
            raise TokenUsed()
        return MediaGrant(claims=claims)

    def cached_grant(self, token: str, *, tenant: str, address: IPAddress | None,
                     media_id: str | None) -> MediaGrant | None:
        """``check`` without an await, for a token whose verified claims the cache holds
        and whose use needs nothing more: no user restriction, not one-time. None means
        "ask ``check``": a miss, a feed that moved, such a token, or one that fails any
        restriction (``check`` then says which)."""
        cache = self._cache
        if cache is None or not cache.current():
            return None
        verified = cache.media(token)
        if verified is None:
            return None
        claims = verified.claims
        context: dict[str, Any] = claims["context"]
        restriction = context["user"]
        if (context.get("unique") is True or restriction.get("username") or restriction.get("roles")
                or claims["tenant"] != tenant):
            return None
        try:
            self._check_use(verified, address, media_id)
        except GatewayError:
            return None
        return MediaGrant(claims=claims)

    def _check_use(self, verified: CachedMedia, address: IPAddress | None,
                   media_id: str | None) -> float:
        """The checks of one use that need no identity and no database, in ``check``'s
        order: time (with ``tokens.leeway``), client address, media id. Returns now."""
        claims = verified.claims
        now, leeway = self._clock(), self._config.tokens.leeway
        if now < claims["nbf"] - leeway:
            raise TokenNotYetValid()
        if now > claims["exp"] + leeway:
            raise TokenExpired()
        if not address_allowed(address, verified.ranges):
            raise AddressNotAllowed()
        # decode_with checked the types: ``media`` and ``user`` are objects.
        wanted_media = claims["context"]["media"].get("id")
        if wanted_media is not None and (media_id is None or str(wanted_media) != media_id):
            raise MediaNotAllowed()
        return now
