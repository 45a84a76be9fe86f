"""A tenant's signing keys at run time: made on first need, found by ``kid``, rotated,
published.

Media tokens and, under ``tokens.algorithm`` RS256 or ES256, user tokens sign with the
same keys: one per (tenant, algorithm), the first made once (the store keeps one active key
per tenant and algorithm, so processes racing to make it agree on the winner). Key
generation and signing run in one small thread pool: an RSA or EC burst never blocks the
event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jose import jwt

from gateway.keys.material import KeyObjects, generate_key, public_jwk
from gateway.storage import KeyRecord, Store

__all__ = ["MAX_KID_LENGTH", "SigningKeys"]

#: Longest ``kid`` worth a lookup; ours are far shorter.
MAX_KID_LENGTH = 200


class SigningKeys:
    """The tenants' keys in the store, with their key objects built once per process."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._objects = KeyObjects()
        # Keys never change under their kid: a record read once is good for the process.
        self._records: dict[str, KeyRecord] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sign")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def _new_key(self, tenant: str, algorithm: str) -> KeyRecord:
        """A fresh key of ``algorithm`` for ``tenant`` (generated off the event loop), not
        yet stored."""
        kid = f"{tenant}-{algorithm.lower()}-{secrets.token_hex(6)}"
        private, public = await asyncio.get_running_loop().run_in_executor(
            self._pool, generate_key, algorithm, kid
        )
        return KeyRecord(kid=kid, tenant=tenant, algorithm=algorithm, private_key=private,
                         public_jwk=public, created_at=self._clock())

    async def signing_key(self, tenant: str, algorithm: str) -> KeyRecord:
        """The tenant's active key for ``algorithm``, made on first need.

        The active kid is read from the store on every call, so a rotation by another
        process (or the CLI) takes effect for the very next token.
        """
        record = await self._store.active_key(tenant, algorithm)
        if record is None:
            record = await self._store.add_first_key(await self._new_key(tenant, algorithm))
        self._records[record.kid] = record
        return record

    async def sign(self, claims: dict[str, Any], record: KeyRecord) -> str:
        """``claims`` signed with ``record`` (with its one algorithm, its kid in the header),
        in the signing pool."""
        key = self._objects.signing(record)
        token: str = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: jwt.encode(claims, key, algorithm=record.algorithm,
                                           headers={"kid": record.kid}),
        )
        return token

    async def verification_key(self, kid: object, algorithm: str) -> tuple[KeyRecord, object] | None:
        """The key named ``kid`` and its key object for verifying ``algorithm``, or None: no
        such key, or a key that does not verify that algorithm."""
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            return None
        record = self._records.get(kid)
        if record is None:
            record = await self._store.get_key(kid)
            if record is None:
                return None
            self._records[kid] = record
        key_object = self._objects.verifying(record, algorithm)
        return None if key_object is None else (record, key_object)

    async def jwks(self, tenant: str) -> dict[str, Any]:
        """The tenant's public keys, active and retired, each with ``kid``, ``alg`` and
        ``use`` (HMAC secrets are never published)."""
        published = (public_jwk(record) for record in await self._store.list_keys(tenant))
        return {"keys": [key for key in published if key is not None]}

    async def rotate(self, tenant: str) -> tuple[list[str], list[str]]:
        """A new key for every algorithm the tenant has a key of; the old ones verify until
        no unexpired token needs them (``tokens prune``). Returns (retired kids, new kids).
        """
        algorithms = sorted({record.algorithm for record in await self._store.list_keys(tenant)
                             if record.retired_at is None})
        new_keys = [await self._new_key(tenant, algorithm) for algorithm in algorithms]
        retired = await self._store.rotate_keys(tenant, new_keys, self._clock())
        return retired, [key.kid for key in new_keys]
