"""Identity: reading credentials, checking passwords, issuing and resolving user tokens.

Credentials are parsed for every request by the identity middleware (cheap, syntactic)
and resolved only when a handler asks (``handlers.common.authenticate``): a public route
never pays for an argon2 verify, and a stale header does not break ``/login``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.config import Config
from gateway.errors import (
    Forbidden,
    InvalidCredentials,
    InvalidToken,
    TooManyAttempts,
    Unauthenticated,
    UserNotFound,
)
from gateway.keyring import Keyring
from gateway.passwords import PasswordHasher
from gateway.regulation import ban_remaining
from gateway.storage import NewToken, Store, TokenRecord, User
from gateway.tokens import TokenKind, decode_user_token, issue_user_token, new_jti

__all__ = ["Authenticator", "Credentials", "Identity", "IssuedToken", "parse_credentials"]

#: Longest Basic credential or session key we read.
_MAX_CREDENTIAL_LENGTH = 4096
#: Kinds that authenticate a request as ``Authorization: Bearer`` (SPEC §4).
BEARER_KINDS = frozenset({TokenKind.ACCESS, TokenKind.API})
SESSION_KINDS = frozenset({TokenKind.SESSION})
REFRESH_KINDS = frozenset({TokenKind.REFRESH})
#: What ``POST /api/token/verify/`` accepts, as SimpleJWT does.
VERIFY_KINDS = frozenset({TokenKind.ACCESS, TokenKind.REFRESH})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request presents, before any check. ``scheme`` "invalid" means unreadable."""

    scheme: Literal["basic", "bearer", "session", "invalid"]
    username: str = ""
    password: str = ""
    token: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user, and the token that proved it (None for Basic)."""

    user: User
    token: TokenRecord | None
    method: Literal["basic", "bearer", "session"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int


def hash_key(key: str) -> str:
    """The stored form of a session's X-Key (the key itself is never stored)."""
    # Header values may carry undecodable bytes (kept as surrogates): hash them as sent.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> Credentials | None:
    """Read the request's credentials (SPEC §4); None when it carries none."""
    authorization = headers.get("Authorization")
    x_key = headers.get("X-Key") or query.get("x_key")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if not value or len(value) > _MAX_CREDENTIAL_LENGTH * 3:
            return Credentials("invalid")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):  # also non-ASCII input and bad UTF-8
                return Credentials("invalid")
            username, colon, password = decoded.partition(":")
            if not colon or not username:
                return Credentials("invalid")
            return Credentials("basic", username=username, password=password)
        if scheme.lower() == "bearer":
            if x_key is not None:
                return Credentials("session", token=value, key=x_key)
            return Credentials("bearer", token=value)
        return Credentials("invalid")
    access_token = headers.get("X-Access-Token") or query.get("access_token")
    if access_token is not None:
        return Credentials("session", token=access_token, key=x_key or "")
    return None


class Authenticator:
    """Checks passwords and user tokens against the store; issues user tokens."""

    def __init__(self, config: Config, store: Store, keyring: Keyring, hasher: PasswordHasher,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._keyring = keyring
        self._hasher = hasher
        self._clock = clock

    # Passwords

    async def check_password(self, tenant: str, login: str, password: str, address: str, *,
                             by_email: bool = False, reveal_unknown: bool = False) -> User:
        """The user whose ``login`` (username, or email) and password match, or raise.

        Raises TooManyAttempts while the account or the address is banned,
        UserNotFound for an unknown login when ``reveal_unknown``, else InvalidCredentials
        (an unknown login costs the same argon2 verify as a wrong password).
        """
        regulation = self._config.login.regulation
        now = self._clock()
        if by_email:
            user = await self._store.get_user_by_email(tenant, login)
        else:
            user = await self._store.get_user(tenant, login)
        # One counter per account whichever way it is named (username, email in any case),
        # and one per unknown login. The attempt is recorded as a failure before the
        # verify and forgotten on success, so concurrent guesses count against each other.
        account = f"user:{user.id}" if user is not None else f"login:{login.casefold()}"
        if regulation.max_retries > 0:
            by_account, by_address = await self._store.record_login_attempt(
                tenant, account, address, now, regulation.max_retries
            )
            remaining = max(
                ban_remaining(failures, now, max_retries=regulation.max_retries,
                              find_time=regulation.find_time, ban_time=regulation.ban_time)
                for failures in (by_account, by_address)
            )
            if remaining > 0:
                raise TooManyAttempts(headers={"Retry-After": str(math.ceil(remaining))})
        matches = await self._hasher.verify(user.password_hash if user else None, password)
        if not matches or user is None:
            if user is None and reveal_unknown:
                raise UserNotFound()
            raise InvalidCredentials()
        if user.disabled:
            raise InvalidCredentials()
        if regulation.max_retries > 0:
            await self._store.clear_login_failures(tenant, account)
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            await self._store.set_password(user.id, new_hash, now, revoke_tokens=False)
        return user

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
        """Record and sign one new user token of ``kind`` for ``user``."""
        row, issued = self._prepare(user, kind, lifetime, key=key, description=description)
        await self._store.add_tokens([row])
        return issued

    async def start_session(self, user: User) -> tuple[IssuedToken, str]:
        """A seed-003 session: a session token and its X-Key (a UUID4)."""
        key = str(uuid.uuid4())
        issued = await self.issue(user, TokenKind.SESSION, self._config.tokens.session_lifetime,
                                  key=key)
        return issued, key

    async def issue_pair(self, user: User) -> tuple[IssuedToken, IssuedToken]:
        """A seed-004 login: (refresh, access) of a new family, recorded together."""
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
                await self._store.revoke_family(record.family_id, "refresh_reuse", now)
                raise InvalidToken()
        else:
            await self._store.add_tokens([refresh_row, access_row])
        return access, new_refresh

    async def verify(self, token: object, tenant: str) -> None:
        """Raise InvalidToken unless ``token`` is a live access or refresh token of ``tenant``."""
        claims = decode_user_token(
            self._keyring, token, kinds=VERIFY_KINDS, issuer=self._config.tokens.issuer,
            now=self._clock(), leeway=self._config.tokens.leeway,
        )
        record, _ = self._live(claims, await self._store.get_token_and_user(claims["jti"]))
        if record.tenant != tenant:
            raise InvalidToken()

    async def blacklist(self, token: object, tenant: str) -> None:
        """Revoke the family of a live refresh token: that login's refresh and access tokens."""
        record, _ = await self._live_refresh(token, tenant)
        assert record.family_id is not None
        await self._store.revoke_family(record.family_id, "blacklisted", self._clock())

    async def _live_refresh(self, token: object, tenant: str) -> tuple[TokenRecord, User]:
        claims = decode_user_token(
            self._keyring, token, kinds=REFRESH_KINDS, issuer=self._config.tokens.issuer,
            now=self._clock(), leeway=self._config.tokens.leeway,
        )
        found = await self._store.get_token_and_user(claims["jti"])
        if found is not None and found[0].used_at is not None and found[0].family_id:
            if self._config.tokens.blacklist_after_rotation:
                await self._store.revoke_family(found[0].family_id, "refresh_reuse", self._clock())
                raise InvalidToken()
        record, user = self._live(claims, found)
        if record.tenant != tenant:
            raise InvalidToken()
        return record, user

    @staticmethod
    def _live(claims: dict[str, object],
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

    # Resolving

    async def resolve(self, credentials: Credentials, tenant: str, address: str) -> Identity:
        """The identity behind ``credentials`` on a request made for ``tenant``, or raise."""
        if credentials.scheme == "basic":
            try:
                user = await self.check_password(
                    tenant, credentials.username, credentials.password, address
                )
            except InvalidCredentials:
                raise Unauthenticated("Invalid username or password") from None
            return Identity(user=user, token=None, method="basic")
        if credentials.scheme == "bearer":
            return await self.token_identity(credentials.token, tenant, BEARER_KINDS)
        if credentials.scheme == "session":
            return await self.token_identity(credentials.token, tenant, SESSION_KINDS,
                                             key=credentials.key)
        raise Unauthenticated("Unreadable credentials")

    async def token_identity(self, token: str, tenant: str, kinds: frozenset[TokenKind], *,
                             key: str | None = None) -> Identity:
        """The identity of a live user token of one of ``kinds``, or raise InvalidToken.

        Reads the token's row and its user on every call: revocation and disabling are
        seen at once, by every process (see ``storage.sqlite``).
        """
        now = self._clock()
        claims = decode_user_token(
            self._keyring, token, kinds=kinds, issuer=self._config.tokens.issuer,
            now=now, leeway=self._config.tokens.leeway,
        )
        record, user = self._live(claims, await self._store.get_token_and_user(claims["jti"]))
        if kinds is SESSION_KINDS or record.kind == TokenKind.SESSION:
            if not key or record.key_hash is None or not secrets.compare_digest(
                hash_key(key), record.key_hash
            ):
                raise InvalidToken()
        if record.tenant != tenant:
            raise Forbidden("This token belongs to another tenant")
        return Identity(user=user, token=record,
                        method="session" if record.kind == TokenKind.SESSION else "bearer")
