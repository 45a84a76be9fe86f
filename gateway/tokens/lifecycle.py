"""The user-token lifecycle: issue, refresh, blacklist, log out, delete, revoke everything.

Every revocation here goes through ``Store.revoke`` (or the store methods built on the same
seam), so it reaches every process's identity cache (``identity.cache``). Each issue and
revocation hands its audit events (``gateway.audit``) to the store method that makes it, so
they commit with it: a login is one commit, its events included.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.audit import Action, event
from gateway.config import Config
from gateway.errors import Conflict, InvalidToken
from gateway.identity.credentials import REFRESH_KINDS, Identity, hash_key
from gateway.identity.resolver import live
from gateway.metrics import Counts
from gateway.storage import (
    AlreadyExists,
    AuditEvent,
    NewToken,
    Revocation,
    Scope,
    Store,
    TokenRecord,
    User,
)
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
                 clock: Callable[[], float], *, counts: Counts | None = None) -> None:
        self._config = config
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self._counts = Counts() if counts is None else counts

    async def _record(self, rows: list[NewToken], audit: Sequence[AuditEvent] = ()) -> None:
        """Store newly issued token rows (all or none) and count them."""
        await self._store.add_tokens(rows, audit)
        for row in rows:
            self._counts.token_issued(row.kind)

    async def _revoke(self, revocation: Revocation, audit: Sequence[AuditEvent] = ()) -> int:
        """The store's revocation seam, counted."""
        revoked = await self._store.revoke(revocation, self._clock(), audit)
        self._counts.tokens_revoked(revocation.reason, revoked)
        return revoked

    # Issuing

    async def _prepare(self, user: User, kind: TokenKind, lifetime: int, *,
                       key: str | None = None, description: str | None = None,
                       family_id: str | None = None,
                       parent_jti: str | None = None) -> tuple[NewToken, IssuedToken]:
        """Sign a token of ``kind`` and build its row; the caller records the row.

        The row names the tenant key that signed the token (``signing_kid``, none for the
        shared secret), so pruning keeps a retired key while the token may still be used.
        """
        issued_at = int(self._clock())
        expires_at = issued_at + lifetime
        jti = new_jti()
        extra = None
        if kind is TokenKind.API:
            extra = {"jwt_token_id": jti, "jwt_token_description": description}
        token, signing_kid = await issue_user_token(
            self._keyring, kind=kind, jti=jti, user_id=user.id, username=user.username,
            tenant=user.tenant, issuer=self._config.tokens.issuer,
            issued_at=issued_at, expires_at=expires_at, extra=extra,
        )
        row = NewToken(
            jti=jti, kind=kind.value, tenant=user.tenant, user_id=user.id,
            issued_at=issued_at, expires_at=expires_at,
            key_hash=None if key is None else hash_key(key),
            description=description, family_id=family_id, parent_jti=parent_jti,
            signing_kid=signing_kid,
        )
        return row, IssuedToken(token=token, jti=jti, issued_at=issued_at, expires_at=expires_at)

    async def issue(self, user: User, kind: TokenKind, lifetime: int, *,
                    key: str | None = None, description: str | None = None) -> IssuedToken:
        """Record and sign one new user token of ``kind`` for ``user``.

        Raises ``Conflict`` when the user has a named token of that description already.
        """
        row, issued = await self._prepare(user, kind, lifetime, key=key, description=description)
        try:
            await self._record([row], self._issued(user, [row], login=kind is TokenKind.SESSION))
        except AlreadyExists as exc:
            raise Conflict(str(exc)) from None
        return issued

    async def start_session(self, user: User, lifetime: int | None = None) -> tuple[IssuedToken, str]:
        """A seed-003 session (or the portal's, with its ``lifetime``): a session token and
        its X-Key (a UUID4)."""
        key = str(uuid.uuid4())
        issued = await self.issue(user, TokenKind.SESSION,
                                  lifetime or self._config.tokens.session_lifetime, key=key)
        return issued, key

    async def issue_pair(self, user: User) -> tuple[IssuedToken, IssuedToken]:
        """A seed-004 login: (refresh, access) of a new refresh family, recorded together."""
        lifetimes = self._config.tokens
        family = new_jti()
        refresh_row, refresh = await self._prepare(user, TokenKind.REFRESH, lifetimes.refresh_lifetime,
                                             family_id=family)
        access_row, access = await self._prepare(user, TokenKind.ACCESS, lifetimes.access_lifetime,
                                           family_id=family, parent_jti=refresh.jti)
        await self._record([refresh_row, access_row],
                           self._issued(user, [refresh_row, access_row], login=True))
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
            access_row, access = await self._prepare(user, TokenKind.ACCESS, settings.access_lifetime,
                                               family_id=record.family_id, parent_jti=record.jti)
            await self._record([access_row], self._issued(user, [access_row]))
            return access, None
        refresh_row, new_refresh = await self._prepare(user, TokenKind.REFRESH, settings.refresh_lifetime,
                                                 family_id=record.family_id, parent_jti=record.jti)
        access_row, access = await self._prepare(user, TokenKind.ACCESS, settings.access_lifetime,
                                           family_id=record.family_id, parent_jti=new_refresh.jti)
        if settings.blacklist_after_rotation:
            rotated = await self._store.rotate_refresh(
                record.jti, [refresh_row, access_row], now, revoke_old=True,
                audit=[*self._issued(user, [refresh_row, access_row]),
                       self._revoked(user, record, "rotated")])
            if not rotated:
                # Lost a race with another use of the same refresh token: that is reuse too.
                await self._revoke_family(record, "refresh_reuse", user)
                raise InvalidToken()
            self._counts.token_issued(TokenKind.REFRESH.value)
            self._counts.token_issued(TokenKind.ACCESS.value)
            self._counts.tokens_revoked("rotated", 1)
        else:
            await self._record([refresh_row, access_row],
                               self._issued(user, [refresh_row, access_row]))
        return access, new_refresh

    # Ending

    async def blacklist(self, token: object, tenant: str) -> None:
        """Revoke the family of a live refresh token: that login's refresh and access tokens."""
        record, user = await self._live_refresh(token, tenant)
        await self._revoke_family(record, "blacklisted", user)

    async def logout(self, identity: Identity) -> bool:
        """End the session that proved ``identity``; False when it had ended already."""
        assert identity.token is not None
        user, token = identity.user, identity.token
        return await self._revoke(
            Revocation(Scope.TOKEN, token.jti, "logout", user.id),
            [event(Action.LOGOUT, user.tenant, self._clock(), actor=user.username,
                   subject=user.username, kind=token.kind, jti=token.jti)]) == 1

    async def delete(self, record: TokenRecord, user: User | None = None) -> bool:
        """Revoke ``user``'s named token and hide it from then on; False when it was gone
        already."""
        assert record.user_id is not None
        deleted = await self._store.delete_token(record.jti, record.user_id, self._clock(),
                                                 [self._revoked(user, record, "deleted")])
        self._counts.tokens_revoked("deleted", int(deleted))
        return deleted

    async def revoke(self, record: TokenRecord) -> int:
        """End one user token (``POST /revoke``): a refresh token with its family, the
        access tokens issued from it as well (RFC 7009 §2.1); any other kind alone.
        Returns the rows revoked (0 when it had ended already)."""
        if record.kind == TokenKind.REFRESH and record.family_id is not None:
            revocation = Revocation(Scope.FAMILY, record.family_id, "revoked", record.user_id)
        else:
            revocation = Revocation(Scope.TOKEN, record.jti, "revoked", record.user_id)
        return await self._store.revoke(revocation, self._clock(),
                                        [self._revoked(None, record, "revoked")])

    async def revoke_user(self, user: User, reason: str, *, actor: str | None = None) -> int:
        """Log a user out everywhere: every token, every remembered credential. ``actor``:
        who asked, when not the user."""
        return await self._revoke(
            Revocation(Scope.USER, str(user.id), reason, user.id),
            [event(Action.TOKEN_REVOKED, user.tenant, self._clock(),
                   actor=actor or user.username, subject=user.username, kind="all",
                   reason=reason)])

    def _issued(self, user: User, rows: list[NewToken], *, login: bool = False) -> list[AuditEvent]:
        """The audit events of issuing ``rows`` (on a login, when ``login``)."""
        now, name = self._clock(), user.username
        events = [event(Action.LOGIN_SUCCEEDED, user.tenant, now, actor=name, subject=name,
                        kind=rows[0].kind)] if login else []
        events += [event(Action.TOKEN_ISSUED, user.tenant, now, actor=name, subject=name,
                         kind=row.kind, jti=row.jti, expires=int(row.expires_at),
                         **({"description": row.description} if row.description else {}))
                   for row in rows]
        return events

    def _revoked(self, user: User | None, record: TokenRecord, reason: str) -> AuditEvent:
        """The audit event of revoking ``record`` (with its family, when it has one)."""
        name = None if user is None else user.username
        return event(Action.TOKEN_REVOKED, record.tenant, self._clock(), actor=name,
                     subject=name, kind=record.kind, jti=record.jti, reason=reason,
                     **({"family": record.family_id} if record.family_id else {}))

    async def _revoke_family(self, record: TokenRecord, reason: str,
                             user: User | None = None) -> None:
        assert record.family_id is not None
        await self._revoke(Revocation(Scope.FAMILY, record.family_id, reason, record.user_id),
                           [self._revoked(user, record, reason)])

    async def _live_refresh(self, token: object, tenant: str) -> tuple[TokenRecord, User]:
        """A live refresh token's row, read from the store (never cached: rotation and
        reuse detection need its ``used_at`` as committed)."""
        claims = await decode_user_token(
            self._keyring, token, kinds=REFRESH_KINDS, issuer=self._config.tokens.issuer,
            now=self._clock(), leeway=self._config.tokens.leeway,
        )
        found = await self._store.get_token_and_user(claims["jti"])
        if found is not None and found[0].used_at is not None and found[0].family_id:
            if self._config.tokens.blacklist_after_rotation:
                await self._revoke_family(found[0], "refresh_reuse", found[1])
                raise InvalidToken()
        record, user = live(claims, found)
        if record.tenant != tenant:
            raise InvalidToken()
        return record, user
