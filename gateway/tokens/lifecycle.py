"""The user-token lifecycle: issue, refresh, blacklist, log out, delete, revoke everything.

Every revocation here goes through ``Store.revoke`` (or the store methods built on the same
seam), so it reaches every process's identity cache (``identity.cache``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import Config
from gateway.errors import Conflict, InvalidToken
from gateway.identity.credentials import REFRESH_KINDS, Identity, hash_key
from gateway.identity.resolver import live
from gateway.storage import AlreadyExists, NewToken, Revocation, Scope, Store, TokenRecord, User
from gateway.tokens.claims import TokenKind, decode_user_token, issue_user_token, new_jti
from gateway.tokens.keyring import Keyring

__all__ = ["IssuedToken", "TokenService"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int


class TokenService:
    """Issues user tokens and ends them."""

    def __init__(self, config: Config, store: Store, keyring: Keyring,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._keyring = keyring
        self._clock = clock

    # Issuing

    def _prepare(self, user: User, kind: TokenKind, lifetime: int, *, key: str | None = None,
                 description: str | None = None, family_id: str | None = None,
                 parent_jti: str | None = None) -> tuple[NewToken, IssuedToken]:
        """Sign a token of ``kind`` and build its row; the caller records the row."""
        issued_at = int(self._clock())
        expires_at = issued_at + lifetime
        jti = new_jti()
        extra = None
        if kind is TokenKind.API:
            extra = {"jwt_token_id": jti, "jwt_token_description": description}
        row = NewToken(
            jti=jti, kind=kind.value, tenant=user.tenant, user_id=user.id,
            issued_at=issued_at, expires_at=expires_at,
            key_hash=None if key is None else hash_key(key),
            description=description, family_id=family_id, parent_jti=parent_jti,
        )
        token = issue_user_token(
            self._keyring, kind=kind, jti=jti, user_id=user.id, username=user.username,
            tenant=user.tenant, issuer=self._config.tokens.issuer,
            issued_at=issued_at, expires_at=expires_at, extra=extra,
        )
        return row, IssuedToken(token=token, jti=jti, issued_at=issued_at, expires_at=expires_at)

    async def issue(self, user: User, kind: TokenKind, lifetime: int, *,
                    key: str | None = None, description: str | None = None) -> IssuedToken:
        """Record and sign one new user token of ``kind`` for ``user``.

        Raises ``Conflict`` when the user has a named token of that description already.
        """
        row, issued = self._prepare(user, kind, lifetime, key=key, description=description)
        try:
            await self._store.add_tokens([row])
        except AlreadyExists as exc:
            raise Conflict(str(exc)) from None
        return issued

    async def start_session(self, user: User) -> tuple[IssuedToken, str]:
        """A seed-003 session: a session token and its X-Key (a UUID4)."""
        key = str(uuid.uuid4())
        issued = await self.issue(user, TokenKind.SESSION, self._config.tokens.session_lifetime,
                                  key=key)
        return issued, key

    async def issue_pair(self, user: User) -> tuple[IssuedToken, IssuedToken]:
        """A seed-004 login: (refresh, access) of a new refresh family, recorded together."""
        lifetimes = self._config.tokens
        family = new_jti()
        refresh_row, refresh = self._prepare(user, TokenKind.REFRESH, lifetimes.refresh_lifetime,
                                             family_id=family)
        access_row, access = self._prepare(user, TokenKind.ACCESS, lifetimes.access_lifetime,
                                           family_id=family, parent_jti=refresh.jti)
        await self._store.add_tokens([refresh_row, access_row])
        return refresh, access

    async def refresh(self, token: object, tenant: str) -> tuple[IssuedToken, IssuedToken | None]:
        """A new access token from a live refresh token, and a new refresh when rotating.

        With ``blacklist_after_rotation``, a rotated-out refresh token is revoked, and
        presenting it again is taken as theft: its whole family is revoked (refresh and
        access tokens of that login). Without it, an old refresh token stays valid until
        it expires, as in SimpleJWT.
        """
        settings = self._config.tokens
        record, user = await self._live_refresh(token, tenant)
        assert record.family_id is not None
        now = self._clock()
        if not settings.rotate_refresh_tokens:
            access_row, access = self._prepare(user, TokenKind.ACCESS, settings.access_lifetime,
                                               family_id=record.family_id, parent_jti=record.jti)
            await self._store.add_tokens([access_row])
            return access, None
        refresh_row, new_refresh = self._prepare(user, TokenKind.REFRESH, settings.refresh_lifetime,
                                                 family_id=record.family_id, parent_jti=record.jti)
        access_row, access = self._prepare(user, TokenKind.ACCESS, settings.access_lifetime,
                                           family_id=record.family_id, parent_jti=new_refresh.jti)
        if settings.blacklist_after_rotation:
            rotated = await self._store.rotate_refresh(record.jti, [refresh_row, access_row], now,
                                                       revoke_old=True)
            if not rotated:
                # Lost a race with another use of the same refresh token: that is reuse too.
                await self._revoke_family(record, "refresh_reuse")
                raise InvalidToken()
        else:
            await self._store.add_tokens([refresh_row, access_row])
        return access, new_refresh

    # Ending

    async def blacklist(self, token: object, tenant: str) -> None:
        """Revoke the family of a live refresh token: that login's refresh and access tokens."""
        record, _ = await self._live_refresh(token, tenant)
        await self._revoke_family(record, "blacklisted")

    async def logout(self, identity: Identity) -> bool:
        """End the session that proved ``identity``; False when it had ended already."""
        assert identity.token is not None
        return await self._store.revoke(
            Revocation(Scope.TOKEN, identity.token.jti, "logout", identity.user.id),
            self._clock()) == 1

    async def delete(self, record: TokenRecord) -> bool:
        """Revoke a named token and hide it from then on; False when it was gone already."""
        assert record.user_id is not None
        return await self._store.delete_token(record.jti, record.user_id, self._clock())

    async def revoke_user(self, user: User, reason: str) -> int:
        """Log a user out everywhere: every token, every remembered credential."""
        return await self._store.revoke(Revocation(Scope.USER, str(user.id), reason, user.id),
                                        self._clock())

    async def _revoke_family(self, record: TokenRecord, reason: str) -> None:
        assert record.family_id is not None
        await self._store.revoke(
            Revocation(Scope.FAMILY, record.family_id, reason, record.user_id), self._clock())

    async def _live_refresh(self, token: object, tenant: str) -> tuple[TokenRecord, User]:
        """A live refresh token's row, read from the store (never cached: rotation and
        reuse detection need its ``used_at`` as committed)."""
        claims = decode_user_token(
            self._keyring, token, kinds=REFRESH_KINDS, issuer=self._config.tokens.issuer,
            now=self._clock(), leeway=self._config.tokens.leeway,
        )
        found = await self._store.get_token_and_user(claims["jti"])
        if found is not None and found[0].used_at is not None and found[0].family_id:
            if self._config.tokens.blacklist_after_rotation:
                await self._revoke_family(found[0], "refresh_reuse")
                raise InvalidToken()
        record, user = live(claims, found)
        if record.tenant != tenant:
            raise InvalidToken()
        return record, user
