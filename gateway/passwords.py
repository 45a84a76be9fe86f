"""argon2id password hashing, always off the event loop.

Hashing costs tens of milliseconds and ~19 MiB by design, so it runs in a small dedicated
thread pool (argon2's C code releases the GIL). Its size bounds the memory a burst of
logins can take. Verifying for an unknown user runs against a dummy hash made at start,
so it costs the same time as a wrong password.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHasher", "validate_new_password"]


class PasswordHasher:
    """Hash and verify passwords in a thread pool with fixed argon2id parameters."""

    def __init__(self, *, memory_cost_kib: int, time_cost: int, parallelism: int,
                 threads: int = 2) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._dummy_hash: str | None = None

    @property
    def parameters(self) -> str:
        """The cost parameters, as argon2 writes them (m=…,t=…,p=…)."""
        h = self._hasher
        return f"argon2id m={h.memory_cost}KiB t={h.time_cost} p={h.parallelism}"

    async def hash(self, password: str) -> str:
        """Return the encoded argon2id hash of ``password``."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    def hash_sync(self, password: str) -> str:
        """Blocking ``hash``, for the CLI (which has no event loop to protect)."""
        return self._hasher.hash(password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """True when ``password`` matches ``encoded``; ``None`` verifies against a dummy hash."""
        known = encoded is not None
        if encoded is None:
            await self.warm_up()
            assert self._dummy_hash is not None
            encoded = self._dummy_hash
        matches = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._check, encoded, password
        )
        return matches and known

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    async def warm_up(self) -> None:
        """Make the dummy hash now, so the first unknown-user login is not slower."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=True)

    def _check(self, encoded: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def validate_new_password(password: str) -> None:
    """Raise ValueError unless ``password`` is acceptable for a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
