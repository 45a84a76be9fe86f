"""The signing key of user tokens, built once and reused.

User tokens (session, access, refresh, api) are HS256 with the UTF-8 bytes of
``$GATEWAY_SECRET_KEY`` so a downstream service holding that secret can verify them. When
it is unset, a random secret is generated once into the data directory (mode 0600) and
every later start, and every worker process, reads the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from jose import jwk

__all__ = ["SECRET_FILE_NAME", "Keyring", "load_user_secret"]

SECRET_FILE_NAME = "secret.key"


def load_user_secret(env_secret: str | None, data_dir: Path) -> bytes:
    """Return the HS256 secret: the env value, else the data directory's file, made if absent.

    The file is written to a temporary name and linked into place, so two processes
    starting together agree on one secret and nobody reads a half-written file.
    """
    if env_secret:
        return env_secret.encode("utf-8")
    path = data_dir / SECRET_FILE_NAME
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(48))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret.encode("utf-8")) < 32:
        raise ValueError(f"{path}: the secret must be at least 32 bytes")
    return secret.encode("utf-8")


class Keyring:
    """Key objects by ``kid``; tokens name their key in the header and are checked by it."""

    def __init__(self, user_secret: bytes) -> None:
        if len(user_secret) < 32:
            raise ValueError("the HS256 secret must be at least 32 bytes")
        # A kid derived from the secret changes when the secret does, so tokens signed
        # with a previous secret are refused by kid before any signature work.
        self.user_kid = "hs256-" + hashlib.sha256(b"gateway-kid:" + user_secret).hexdigest()[:16]
        self._user_key: object = jwk.construct(user_secret, "HS256")
        self._secret = user_secret

    def user_key(self, kid: object) -> object | None:
        """The HS256 key object for ``kid``, or None when the kid is not ours."""
        if isinstance(kid, str) and secrets.compare_digest(kid, self.user_kid):
            return self._user_key
        return None

    @property
    def signing_key(self) -> object:
        """The key object new user tokens are signed with."""
        return self._user_key

    def derived_key(self, purpose: bytes) -> bytes:
        """A key for one other use of the secret (e.g. the portal's CSRF tokens), so the
        secret itself signs nothing but user tokens."""
        return hmac.new(self._secret, b"gateway-derived:" + purpose, hashlib.sha256).digest()
