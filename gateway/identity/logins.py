"""Password checks and brute-force regulation, shared by /login, /api/token/ and Basic auth."""

from __future__ import annotations

import math
from collections.abc import Callable

from gateway.config import Config
from gateway.errors import InvalidCredentials, TooManyAttempts, UserNotFound
from gateway.passwords import PasswordHasher
from gateway.regulation import ban_remaining
from gateway.storage import Store, User

__all__ = ["PasswordCheck"]


class PasswordCheck:
    """Checks a login and password against the store, under ``login.regulation``."""

    def __init__(self, config: Config, store: Store, hasher: PasswordHasher,
                 clock: Callable[[], float]) -> None:
        self._regulation = config.login.regulation
        self._store = store
        self._hasher = hasher
        self._clock = clock

    async def check(self, tenant: str, login: str, password: str, address: str, *,
                    by_email: bool = False, reveal_unknown: bool = False) -> User:
        """The user whose ``login`` (username, or email) and password match, or raise.

        Raises TooManyAttempts while the account or the address is banned,
        UserNotFound for an unknown login when ``reveal_unknown``, else InvalidCredentials
        (an unknown login costs the same argon2 verify as a wrong password).
        """
        regulation = self._regulation
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
