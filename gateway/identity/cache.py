"""The identity cache of one process: tokens and Basic credentials already verified.

A user token (access, api, session) whose signature, claims, row and user were checked
once is answered from memory afterwards: no JWT decode, no SQL. So is a media token's
verified signature (its per-use checks still run), and a Basic credential, remembered
under a keyed hash (BLAKE2s in its keyed mode, a MAC) of tenant, username and password
with a random per-process key (never the password itself) for ``cache.basic_ttl``.

What invalidates an entry, and why no request sees a stale one:

- Time: a token entry ends at the token's ``exp`` (plus ``tokens.leeway``), a Basic entry
  after its TTL. Checked on every hit.
- Revocations: every change that can invalidate a token or an identity is committed with
  a row in the revocation log (``Store.revoke``, the one seam), and then the store bumps
  the change feed (``storage.changes``). ``sync`` compares the feed with the value this
  process last caught up at and, when it moved, reads the log and drops what each change
  covers: a token (every spelling of it: entries are indexed by ``jti``), a refresh
  family, everything of a user (tokens and Basic credentials: password change, disabled,
  roles or enabled changed, logged out everywhere), a tenant's media tokens (key
  rotation). Callers run ``sync`` before every lookup, so a request that arrives after a
  revoking response (sent after the bump) never finds the revoked entry.
- A lookup that missed reads the database and then offers its result with the feed value
  it synced at; ``put`` refuses it when the feed has moved since, because a revocation
  committed during that read might not be in the result.
- A feed that cannot be trusted (``current()`` None) turns every lookup into a miss, and
  a process that finds log rows it needed already pruned drops everything.

Keys are the exact token text (or the keyed hash): a different spelling of a token misses
and goes the slow way; it can never hit another token's entry. Size is bounded (LRU).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.identity.credentials import Identity
from gateway.metrics import Counts
from gateway.netaddr import IPNetwork
from gateway.storage import Change, Scope, Store

__all__ = ["CachedMedia", "CachedToken", "IdentityCache"]

Tag = tuple[str, Hashable]


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A user token that was live when read: its identity and when it stops being valid."""

    identity: Identity
    kind: str
    tenant: str
    not_before: float
    expires: float


@dataclass(frozen=True, slots=True)
class CachedMedia:
    """A media token whose signature and claims were verified; use checks still apply."""

    claims: dict[str, Any]
    #: ``context.rangeip`` parsed once (None: any address).
    ranges: tuple[IPNetwork, ...] | None
    tenant: str


@dataclass(frozen=True, slots=True)
class _CachedBasic:
    identity: Identity
    expires: float


class IdentityCache:
    """Bounded LRU of verified credentials, kept fresh by the revocation log."""

    def __init__(self, store: Store, *, size: int, basic_ttl: float,
                 counts: Counts | None = None) -> None:
        self._store = store
        #: Hits and misses (counted by the resolver) and revocation lag go to the metrics.
        self.counts = Counts() if counts is None else counts
        self._feed = store.feed
        self._size = size
        self.basic_ttl = basic_ttl
        self._entries: OrderedDict[Hashable, tuple[object, tuple[Tag, ...]]] = OrderedDict()
        self._tagged: dict[Tag, set[Hashable]] = {}
        self._key = secrets.token_bytes(32)
        self._applied = 0
        self._seen: int | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Begin at the log's present end: a new process has nothing cached to invalidate."""
        epoch = self._feed.current()
        self._applied = await self._store.last_change()
        self._seen = epoch

    # Freshness

    def current(self) -> bool:
        """True when this process has applied every change announced so far (no await)."""
        return self._seen is not None and self._feed.current() == self._seen

    async def sync(self) -> int | None:
        """Catch up with the revocation log if the feed moved; the feed value to ``put`` with.

        None means the cache must not be used now (the feed cannot be trusted).
        """
        epoch = self._feed.current()
        if epoch is not None and epoch == self._seen:
            return epoch
        async with self._lock:
            epoch = self._feed.current()
            if epoch is None:
                self._clear()
                self._seen = None
                return None
            if epoch != self._seen:
                changes, oldest = await self._store.changes_since(self._applied)
                if oldest > self._applied + 1:
                    self._clear()  # rows this process never saw were pruned
                self.apply(changes)
                self._seen = epoch
        return epoch

    def apply(self, changes: Sequence[Change]) -> None:
        """Drop every entry that ``changes`` cover."""
        now = time.time()  # the wall clock, as the log's ``at`` (revocation lag metric)
        for change in changes:
            if change.seq > self._applied:
                self.counts.revocation_applied(now - change.at)
            if change.scope is Scope.TOKEN:
                self._drop(("jti", change.subject))
            elif change.scope is Scope.FAMILY:
                self._drop(("family", change.subject))
            elif change.scope in (Scope.USER, Scope.USER_STATE):
                self._drop(("user", int(change.subject)))
            elif change.scope is Scope.KEYS:
                self._drop(("media-tenant", change.subject))
            self._applied = max(self._applied, change.seq)

    # User tokens

    def token(self, token: str) -> CachedToken | None:
        found = self._get(token)
        if isinstance(found, CachedToken):
            return found
        return None

    def put_token(self, token: str, entry: CachedToken, epoch: int | None) -> None:
        record = entry.identity.token
        assert record is not None
        tags: list[Tag] = [("jti", record.jti), ("user", entry.identity.user.id)]
        if record.family_id is not None:
            tags.append(("family", record.family_id))
        self._put(token, entry, tuple(tags), epoch)

    def holds(self, token: str, entry: CachedToken) -> bool:
        """Whether ``entry`` is still the one held for ``token`` (marked recently used)."""
        found = self._entries.get(token)
        if found is None or found[0] is not entry:
            return False
        self._entries.move_to_end(token)
        return True

    def forget(self, token: str) -> None:
        """Drop one entry (an expired one found on a hit)."""
        self._remove(token)

    # Basic credentials

    def basic_key(self, tenant: str, username: str, password: str) -> bytes:
        """The key a Basic credential is remembered under: a MAC, never the password.

        Keyed BLAKE2s rather than HMAC-SHA256: as strong a MAC, and a third of the cost
        (this runs on every Basic request)."""
        return self._mac(tenant, username, password)

    def header_key(self, tenant: str, header: str) -> bytes:
        """The key an ``Authorization`` header is remembered under (``basic_key``'s MAC,
        over the header as sent): for what was decided for a Basic header, never the
        header itself."""
        return self._mac(tenant, header)

    def _mac(self, *parts: str) -> bytes:
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hashlib.blake2s(message, key=self._key).digest()

    def basic(self, key: bytes, now: float) -> Identity | None:
        found = self._get(key)
        if isinstance(found, _CachedBasic):
            if now <= found.expires:
                return found.identity
            self._remove(key)
        return None

    def put_basic(self, key: bytes, identity: Identity, now: float, epoch: int | None) -> None:
        self._put(key, _CachedBasic(identity, now + self.basic_ttl), (("user", identity.user.id),),
                  epoch)

    # Media tokens

    def media(self, token: str) -> CachedMedia | None:
        found = self._get(("media", token))
        if isinstance(found, CachedMedia):
            return found
        return None

    def put_media(self, token: str, entry: CachedMedia, epoch: int | None) -> None:
        tags = (("jti", str(entry.claims["jti"])), ("media-tenant", entry.tenant))
        self._put(("media", token), entry, tags, epoch)

    # The LRU and its tag index

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: Hashable) -> object | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def _put(self, key: Hashable, value: object, tags: tuple[Tag, ...], epoch: int | None) -> None:
        # A revocation may have committed while the caller read the database: only a
        # result read with no change announced since is kept.
        if epoch is None or epoch != self._seen or self._feed.current() != epoch:
            return
        self._remove(key)
        self._entries[key] = (value, tags)
        for tag in tags:
            self._tagged.setdefault(tag, set()).add(key)
        while len(self._entries) > self._size:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def _remove(self, key: Hashable) -> None:
        found = self._entries.pop(key, None)
        if found is None:
            return
        for tag in found[1]:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]

    def _drop(self, tag: Tag) -> None:
        for key in list(self._tagged.get(tag, ())):
            self._remove(key)

    def _clear(self) -> None:
        self._entries.clear()
        self._tagged.clear()
