"""The keys of user tokens: the shared HS256 secret, or the tenant's RS256/ES256 key.

With ``tokens.algorithm: HS256`` (the default) user tokens (session, access, refresh, api)
are signed with the UTF-8 bytes of ``$GATEWAY_SECRET_KEY``, so a downstream service holding
that secret can verify them. When it is unset, a random secret is generated once into the
data directory (mode 0600) and every later start, and every worker process, reads the
same file. With RS256 or ES256 they are signed with the tenant's key of that algorithm,
the one media tokens use (``gateway.keys``), published in the JWKS: a downstream verifier
needs no secret.

Verification finds the key by the header's ``kid`` here only, and only for the configured
algorithm: a token signed with any other algorithm is refused before a key is looked up
(so an HS256 token "signed" with a published public key never reaches a verifier), and a
tenant key verifies only tokens of its own tenant.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from jose import jwk, jwt

from gateway.keys.service import SigningKeys

__all__ = [
    "SECRET_FILE_NAME",
    "SHARED_SECRET_ALGORITHM",
    "TENANT_KEY_ALGORITHMS",
    "Keyring",
    "load_user_secret",
]

SECRET_FILE_NAME = "secret.key"
#: ``tokens.algorithm`` values: the shared secret's, and those signed with tenant keys.
SHARED_SECRET_ALGORITHM = "HS256"
TENANT_KEY_ALGORITHMS = ("RS256", "ES256")


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
    """The keys of user tokens; tokens name theirs in the ``kid`` header and are checked by it.

    ``algorithm`` is ``tokens.algorithm``. HS256 signs with the shared secret; RS256 and
    ES256 with the tenant's key of that algorithm from ``tenant_keys``.
    """

    def __init__(self, user_secret: bytes, *, algorithm: str = SHARED_SECRET_ALGORITHM,
                 tenant_keys: SigningKeys | None = None) -> None:
        if len(user_secret) < 32:
            raise ValueError("the HS256 secret must be at least 32 bytes")
        if algorithm not in (SHARED_SECRET_ALGORITHM, *TENANT_KEY_ALGORITHMS):
            raise ValueError(f"user tokens cannot be signed with {algorithm!r}")
        if algorithm != SHARED_SECRET_ALGORITHM and tenant_keys is None:
            raise ValueError(f"{algorithm} user tokens need the tenants' keys")
        self.algorithm = algorithm
        self._tenant_keys = None if algorithm == SHARED_SECRET_ALGORITHM else tenant_keys
        # A kid derived from the secret changes when the secret does, so tokens signed
        # with a previous secret are refused by kid before any signature work.
        self.user_kid = "hs256-" + hashlib.sha256(b"gateway-kid:" + user_secret).hexdigest()[:16]
        self._user_key: object = jwk.construct(user_secret, SHARED_SECRET_ALGORITHM)
        self._secret = user_secret

    async def sign(self, claims: dict[str, Any], tenant: str) -> tuple[str, str | None]:
        """``claims`` signed for a user of ``tenant``: (token, the kid of the tenant key
        that signed it, or None for the shared secret).

        HMAC signing is cheap and runs inline; RSA and EC signing run in the keys' pool.
        """
        if self._tenant_keys is None:
            token: str = jwt.encode(claims, self._user_key, algorithm=SHARED_SECRET_ALGORITHM,
                                    headers={"kid": self.user_kid})
            return token, None
        record = await self._tenant_keys.signing_key(tenant, self.algorithm)
        return await self._tenant_keys.sign(claims, record), record.kid

    async def verification_key(self, kid: object) -> tuple[object, str | None] | None:
        """The key object that verifies a user token naming ``kid`` with ``algorithm``, and
        the tenant it belongs to (None for the shared secret, which every tenant uses); None
        when ``kid`` names no key of ours for that algorithm."""
        if self._tenant_keys is None:
            if isinstance(kid, str) and secrets.compare_digest(kid, self.user_kid):
                return self._user_key, None
            return None
        found = await self._tenant_keys.verification_key(kid, self.algorithm)
        if found is None:
            return None
        record, key_object = found
        return key_object, record.tenant

    def derived_key(self, purpose: bytes) -> bytes:
        """A key for one other use of the secret (e.g. the portal's CSRF tokens), so the
        secret itself signs nothing but user tokens."""
        return hmac.new(self._secret, b"gateway-derived:" + purpose, hashlib.sha256).digest()
