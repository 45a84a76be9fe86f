"""Password checks and brute-force regulation, shared by /login, /api/token/ and Basic auth."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Literal

from gateway.config import Config, RegulationConfig
from gateway.errors import InvalidCredentials, TooManyAttempts, UserNotFound
from gateway.metrics import Counts
from gateway.passwords import PasswordHasher
from gateway.regulation import login_ban
from gateway.storage import Store, User
from gateway.usernames import username_key

__all__ = ["PasswordCheck", "RefusalHook"]

#: Told of each refused check (to audit it): tenant, login as typed, client address,
#: "failed" (wrong password, unknown login, disabled user) or "banned", seconds of ban left.
RefusalHook = Callable[[str, str, str, Literal["failed", "banned"], float], Awaitable[None]]


class PasswordCheck:
    """Checks a login and password against the store, under ``login.regulation``."""

    def __init__(self, config: Config, store: Store, hasher: PasswordHasher,
                 clock: Callable[[], float], *, on_refused: RefusalHook | None = None,
                 counts: Counts | None = None) -> None:
        self._on_refused = on_refused
        self._counts = Counts() if counts is None else counts
        self._regulation = config.login.regulation
        self._store = store
        self._hasher = hasher
        self._clock = clock

    def set_regulation(self, regulation: RegulationConfig) -> None:
        """Regulate the next checks with ``regulation`` (a config reload)."""
        self._regulation = regulation

    async def check(self, tenant: str, login: str, password: str, address: str, *,
                    by_email: bool = False, reveal_unknown: bool = False) -> User:
        """The user whose ``login`` (username, or email) and password match, or raise.

        Raises TooManyAttempts while the login or the address is banned (before any lookup
        or hash, and without counting the attempt), UserNotFound for an unknown login when
        ``reveal_unknown``, else InvalidCredentials (an unknown login costs the same argon2
        verify as a wrong password).
        """
        regulation = self._regulation
        now = self._clock()
        # Counted by the login as typed (its username key), never by the account it names:
        # whether a 429 comes cannot depend on whether the user exists, or on which
        # username and email belong together. The attempt is recorded as a failure before
        # the verify and forgotten on success, so concurrent guesses count against each other.
        account = f"{'email' if by_email else 'username'}:{username_key(login)}"
        regulated = regulation.max_retries > 0  # 0: regulation off, both counters
        if regulated:
            remaining = await self._store.record_login_attempt(
                tenant, account, address, now,
                (regulation.max_retries, regulation.max_retries_per_address),
                functools.partial(login_ban, now=now, per_login=regulation.max_retries,
                                  per_address=regulation.max_retries_per_address,
                                  find_time=regulation.find_time, ban_time=regulation.ban_time),
            )
            if remaining > 0:
                await self._refused(tenant, login, address, "banned", remaining)
                raise TooManyAttempts(headers={"Retry-After": str(math.ceil(remaining))})
        if by_email:
            user = await self._store.get_user_by_email(tenant, login)
        else:
            user = await self._store.get_user(tenant, login)
        matches = await self._hasher.verify(user.password_hash if user else None, password)
        if not matches or user is None or user.disabled:
            await self._refused(tenant, login, address, "failed")
        if not matches or user is None:
            if user is None and reveal_unknown:
                raise UserNotFound()
            raise InvalidCredentials()
        if user.disabled:
            raise InvalidCredentials()
        self._counts.login("succeeded")
        if regulated:
            await self._store.clear_login_failures(tenant, account)
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            await self._store.set_password(user.id, new_hash, now, revoke_tokens=False)
        return user

    async def _refused(self, tenant: str, login: str, address: str,
                       outcome: Literal["failed", "banned"], remaining: float = 0.0) -> None:
        self._counts.login(outcome)
        if self._on_refused is not None:
            await self._on_refused(tenant, login, address, outcome, remaining)
