"""The ``Store`` contract: every method, and the races, on both backends.

Each test runs on SQLite (a file in ``tmp_path``) and on PostgreSQL (a fresh schema), the
store opened the way the gateway opens it (``services.open_store``). The races use many
concurrent callers: on PostgreSQL they run on separate pooled connections, so only the
schema, a conditional UPDATE or a named lock can make them come out right.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.services import open_store
from gateway.storage import (
    AlreadyExists,
    AuditEvent,
    KeyRecord,
    NewToken,
    NewUser,
    NoSuchParent,
    Revocation,
    Role,
    Scope,
    Store,
)
from tests.conftest import make_config

NOW = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path, store_url: str | None) -> AsyncIterator[Store]:
    opened = await open_store(make_config(tmp_path, storage_url=store_url))
    try:
        await opened.add_tenant("default", NOW)
        yield opened
    finally:
        await opened.close()


async def a_user(store: Store, name: str = "alice", **fields: object) -> int:
    user = await store.add_user(NewUser(tenant="default", username=name, password_hash="h",
                                        **fields), NOW)  # type: ignore[arg-type]
    return user.id


def a_token(user_id: int | None, kind: str = "access", **fields: object) -> NewToken:
    values: dict[str, object] = {"jti": str(uuid.uuid4()), "kind": kind, "tenant": "default",
                                 "user_id": user_id, "issued_at": NOW, "expires_at": NOW + 300}
    values.update(fields)
    return NewToken(**values)  # type: ignore[arg-type]


def a_key(kid: str, algorithm: str = "RS256", tenant: str = "default") -> KeyRecord:
    return KeyRecord(kid=kid, tenant=tenant, algorithm=algorithm, private_key="pem",
                     public_jwk='{"kty": "RSA"}', created_at=NOW)


# Tenants


async def test_tenants(store: Store) -> None:
    assert await store.add_tenant("acme", NOW) is True
    assert await store.add_tenant("acme", NOW) is False
    assert await store.tenant_exists("acme") and not await store.tenant_exists("nope")
    assert await store.list_tenants() == ["acme", "default"]


# Users


async def test_users_are_unique_by_name_and_by_email_in_any_case(store: Store) -> None:
    await a_user(store, "alice", email="Alice@Example.com")
    with pytest.raises(AlreadyExists, match="alice"):
        await a_user(store, "alice")
    with pytest.raises(AlreadyExists, match="email"):
        await a_user(store, "bob", email="alice@EXAMPLE.com")
    with pytest.raises(NoSuchParent, match="nope"):
        await store.add_user(NewUser(tenant="nope", username="carol", password_hash="h"), NOW)
    found = await store.get_user_by_email("default", "ALICE@example.COM")
    assert found is not None and found.username == "alice"
    assert await store.get_user("default", "alice") == found
    assert await store.get_user("default", "nobody") is None
    assert await store.get_user_by_email("default", "nobody@example.com") is None


async def test_usernames_are_unique_on_their_folded_form(store: Store) -> None:
    await a_user(store, "admin")
    for spelling in ("Admin", "ADMIN", "\uff41\uff44\uff4d\uff49\uff4e"):  # fullwidth admin
        with pytest.raises(AlreadyExists, match="already exists"):
            await a_user(store, spelling)
    await a_user(store, "Jörg")
    with pytest.raises(AlreadyExists):
        await a_user(store, "JÖRG")
    await store.add_tenant("acme", NOW)
    other = await store.add_user(NewUser(tenant="acme", username="ADMIN", password_hash="h"), NOW)
    assert other.username == "ADMIN"
    assert {u.username for u in await store.list_users("default")} == {"Jörg", "admin"}


async def test_a_user_is_found_by_any_spelling_of_its_name(store: Store) -> None:
    alice = await a_user(store, "Alice")
    for spelling in ("Alice", "alice", "ALICE", "\uff21lice"):
        found = await store.get_user("default", spelling)
        assert found is not None and found.id == alice and found.username == "Alice"
    assert await store.get_user("default", "alice\u200b") is None
    assert await store.get_user("default", "acme") is None


async def test_add_user_returns_every_field(store: Store) -> None:
    user = await store.add_user(NewUser(tenant="default", username="100@mydomain.com",
                                        password_hash="hash", email="x@y.z", role=Role.ADMIN,
                                        roles=("ROLE_ADMIN", "ROLE_USER")), NOW)
    assert (user.tenant, user.username, user.email, user.password_hash) == (
        "default", "100@mydomain.com", "x@y.z", "hash")
    assert user.role is Role.ADMIN and user.roles == ("ROLE_ADMIN", "ROLE_USER")
    assert user.disabled is False and user.created_at == user.updated_at == NOW
    assert [u.username for u in await store.list_users("default")] == ["100@mydomain.com"]


async def test_list_users_by_username(store: Store) -> None:
    for name in ("carol", "alice", "bob"):
        await a_user(store, name)
    assert [u.username for u in await store.list_users("default")] == ["alice", "bob", "carol"]
    assert await store.list_users("acme") == []


async def test_bootstrap_makes_one_root_whoever_races(store: Store) -> None:
    results = await asyncio.gather(*(
        store.bootstrap_root(NewUser(tenant="default", username=f"root{i}", password_hash="h",
                                     role=Role.ROOT), NOW)
        for i in range(8)
    ))
    assert results.count(True) == 1 and await store.has_root()
    assert len(await store.list_users("default")) == 1


async def test_password_change_revokes_and_logs(store: Store) -> None:
    user_id = await a_user(store)
    token = a_token(user_id)
    await store.add_tokens([token])
    before = await store.last_change()
    assert await store.set_password(user_id, "new", NOW + 1, revoke_tokens=False) == 0
    assert await store.last_change() == before  # a rehash on login changes nothing
    assert await store.set_password(user_id, "newer", NOW + 2) == 1
    record = await store.get_token(token.jti)
    assert record is not None and record.revoke_reason == "password_changed"
    user = await store.get_user("default", "alice")
    assert user is not None and user.password_hash == "newer" and user.updated_at == NOW + 2
    changes, _ = await store.changes_since(before)
    assert [(c.scope, c.user_id) for c in changes] == [(Scope.USER, user_id)]


async def test_disable_revokes_and_enable_logs_state(store: Store) -> None:
    user_id = await a_user(store)
    await store.add_tokens([a_token(user_id), a_token(user_id, "refresh")])
    start = await store.last_change()
    assert await store.set_disabled(user_id, True, NOW) == 2
    assert await store.set_disabled(user_id, False, NOW) == 0
    user = await store.get_user("default", "alice")
    assert user is not None and user.disabled is False
    changes, _ = await store.changes_since(start)
    assert [c.scope for c in changes] == [Scope.USER, Scope.USER_STATE]


async def test_roles_change_is_logged(store: Store) -> None:
    user_id = await a_user(store)
    start = await store.last_change()
    await store.set_roles(user_id, ("ROLE_X",), NOW)
    user = await store.get_user("default", "alice")
    assert user is not None and user.roles == ("ROLE_X",)
    changes, _ = await store.changes_since(start)
    assert [(c.scope, c.subject) for c in changes] == [(Scope.USER_STATE, str(user_id))]


# Tokens


async def test_add_tokens_is_all_or_nothing(store: Store) -> None:
    user_id = await a_user(store)
    first = a_token(user_id, "api", description="ci")
    await store.add_tokens([first])
    fresh = a_token(user_id)
    with pytest.raises(AlreadyExists, match="ci"):
        await store.add_tokens([fresh, a_token(user_id, "api", description="ci")])
    assert await store.get_token(fresh.jti) is None


async def test_token_row_round_trip(store: Store) -> None:
    user_id = await a_user(store)
    token = a_token(user_id, "session", key_hash="k", family_id="f", parent_jti="p")
    await store.add_tokens([token])
    record = await store.get_token(token.jti)
    assert record is not None
    assert (record.kind, record.user_id, record.key_hash, record.family_id, record.parent_jti) == (
        "session", user_id, "k", "f", "p")
    assert (record.issued_at, record.expires_at, record.revoked_at) == (NOW, NOW + 300, None)
    pair = await store.get_token_and_user(token.jti)
    assert pair is not None and pair[0] == record and pair[1] is not None
    assert pair[1].username == "alice"
    media = a_token(None, "media", media_kid="k1")
    await store.add_tokens([media])
    assert await store.get_token_and_user(media.jti) == (await store.get_token(media.jti), None)
    assert await store.get_token_and_user("missing") is None


async def test_named_tokens_list_page_and_delete(store: Store) -> None:
    user_id = await a_user(store)
    tokens = [a_token(user_id, "api", description=f"t{i}", issued_at=NOW + i) for i in range(5)]
    await store.add_tokens(tokens)
    listed = await store.list_user_tokens(user_id, "api")
    assert [t.description for t in listed] == ["t0", "t1", "t2", "t3", "t4"]
    page = await store.list_user_tokens(user_id, "api", limit=2, offset=1)
    assert [t.description for t in page] == ["t1", "t2"]
    assert await store.delete_token(tokens[0].jti, user_id, NOW) is True
    assert await store.delete_token(tokens[0].jti, user_id, NOW) is False
    record = await store.get_token(tokens[0].jti)
    assert record is not None and record.deleted_at == NOW and record.revoked_at == NOW
    assert len(await store.list_user_tokens(user_id, "api")) == 4
    # The description is free again once its token is deleted.
    await store.add_tokens([a_token(user_id, "api", description="t0")])


async def test_revoke_token_family_and_user(store: Store) -> None:
    user_id = await a_user(store)
    single = a_token(user_id)
    family = [a_token(user_id, "refresh", family_id="fam"), a_token(user_id, family_id="fam")]
    other = a_token(user_id, "session")
    await store.add_tokens([single, *family, other])
    start = await store.last_change()
    assert await store.revoke(Revocation(Scope.TOKEN, single.jti, "logout", user_id), NOW) == 1
    assert await store.revoke(Revocation(Scope.TOKEN, single.jti, "logout", user_id), NOW) == 0
    assert await store.revoke(Revocation(Scope.FAMILY, "fam", "blacklisted", user_id), NOW) == 2
    assert await store.revoke(Revocation(Scope.USER, str(user_id), "everywhere", user_id),
                              NOW) == 1
    changes, oldest = await store.changes_since(start)
    # Nothing live to revoke logs nothing; a user revocation always logs.
    assert [(c.scope, c.subject) for c in changes] == [
        (Scope.TOKEN, single.jti), (Scope.FAMILY, "fam"), (Scope.USER, str(user_id))]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert await store.last_change() == changes[-1].seq and oldest >= 1
    record = await store.get_token(other.jti)
    assert record is not None and record.revoke_reason == "everywhere"


async def test_a_logged_revocation_moves_the_feed(store: Store) -> None:
    user_id = await a_user(store)
    token = a_token(user_id)
    await store.add_tokens([token])
    before = store.feed.current()
    assert before is not None
    await store.revoke(Revocation(Scope.TOKEN, token.jti, "logout", user_id), NOW)
    assert store.feed.current() != before


async def test_concurrent_revocations_are_logged_in_commit_order(store: Store) -> None:
    user_id = await a_user(store)
    tokens = [a_token(user_id) for _ in range(20)]
    await store.add_tokens(tokens)
    start = await store.last_change()
    seen: list[int] = []

    async def revoke_and_read(jti: str) -> None:
        await store.revoke(Revocation(Scope.TOKEN, jti, "logout", user_id), NOW)
        # Whoever reads after its own commit sees a log without holes below its row.
        changes, _ = await store.changes_since(start)
        seen.append(len(changes))
        assert [c.seq for c in changes] == sorted(c.seq for c in changes)

    await asyncio.gather(*(revoke_and_read(t.jti) for t in tokens))
    changes, _ = await store.changes_since(start)
    assert sorted(c.subject for c in changes) == sorted(t.jti for t in tokens)


async def test_rotate_refresh_succeeds_once_under_concurrency(store: Store) -> None:
    user_id = await a_user(store)
    old = a_token(user_id, "refresh", family_id="fam")
    await store.add_tokens([old])
    successors = [[a_token(user_id, "refresh", family_id="fam", parent_jti=old.jti)]
                  for _ in range(10)]
    results = await asyncio.gather(*(
        store.rotate_refresh(old.jti, new, NOW, revoke_old=True) for new in successors))
    assert results.count(True) == 1
    winner = successors[results.index(True)][0]
    assert await store.get_token(winner.jti) is not None
    losers = [new[0] for new, ok in zip(successors, results, strict=True) if not ok]
    assert [await store.get_token(t.jti) for t in losers] == [None] * 9
    record = await store.get_token(old.jti)
    assert record is not None and record.used_at == NOW and record.revoke_reason == "rotated"


async def test_rotate_refresh_refuses_a_revoked_token(store: Store) -> None:
    user_id = await a_user(store)
    old = a_token(user_id, "refresh")
    await store.add_tokens([old])
    await store.revoke(Revocation(Scope.TOKEN, old.jti, "blacklisted", user_id), NOW)
    assert await store.rotate_refresh(old.jti, [a_token(user_id)], NOW, revoke_old=False) is False


async def test_a_unique_media_token_is_consumed_once(store: Store) -> None:
    await store.add_tokens([a_token(None, "media", media_kid="once")])
    results = await asyncio.gather(*(store.consume_media("default", "once", NOW)
                                     for _ in range(32)))
    assert results.count(True) == 1
    assert await store.consume_media("default", "unknown", NOW) is False


async def test_a_media_kid_is_registered_once_per_tenant(store: Store) -> None:
    await store.add_tokens([a_token(None, "media", media_kid="k")])
    with pytest.raises(AlreadyExists, match="'k'"):
        await store.add_tokens([a_token(None, "media", media_kid="k")])
    await store.add_tenant("acme", NOW)
    await store.add_tokens([a_token(None, "media", media_kid="k", tenant="acme")])


async def test_prune(store: Store) -> None:
    user_id = await a_user(store)
    expired, live = a_token(user_id, expires_at=NOW - 10), a_token(user_id)
    await store.add_tokens([expired, live])
    await store.record_login_attempt("default", "alice", "10.0.0.1", NOW - 1000, (5, 5),
                                     allow([]))
    await store.record_login_attempt("default", "alice", "10.0.0.1", NOW, (5, 5), allow([]))
    await store.add_first_key(a_key("old"))
    await store.rotate_keys("default", [a_key("new")], NOW)
    await store.revoke(Revocation(Scope.TOKEN, live.jti, "logout", user_id), NOW - 500)
    await store.revoke(Revocation(Scope.USER, str(user_id), "everywhere", user_id), NOW)
    assert await store.prune(NOW, NOW - 100, NOW - 100) == (1, 1, 1)
    assert await store.get_token(expired.jti) is None and await store.get_token(live.jti)
    changes, oldest = await store.changes_since(0)
    # The token revocation logged at NOW - 500 is gone; the newer ones stay.
    assert [c.scope for c in changes] == [Scope.KEYS, Scope.USER]
    assert oldest == changes[0].seq
    assert [k.kid for k in await store.list_keys("default")] == ["new"]


# Keys


async def test_the_first_key_is_made_once_whoever_races(store: Store) -> None:
    kept = await asyncio.gather(*(store.add_first_key(a_key(f"k{i}")) for i in range(8)))
    assert len({key.kid for key in kept}) == 1
    active = await store.active_key("default", "RS256")
    assert active is not None and active.kid == kept[0].kid
    assert len(await store.list_keys("default")) == 1
    assert await store.active_key("default", "RS384") is None
    assert await store.active_key("default", "ES256") is None


async def test_each_algorithm_has_its_own_active_key(store: Store) -> None:
    for algorithm in ("RS256", "RS384", "RS512", "ES256", "ES384", "HS256"):
        kept = await store.add_first_key(a_key(algorithm.lower(), algorithm))
        assert kept.kid == algorithm.lower()
    for algorithm in ("RS256", "RS384", "RS512", "ES256", "ES384", "HS256"):
        active = await store.active_key("default", algorithm)
        assert active is not None and active.algorithm == algorithm
        assert active.verifies(algorithm) and active.legacy_algorithms == ()
    rs384 = await store.get_key("rs384")
    assert rs384 is not None and not rs384.verifies("RS256")


async def test_legacy_algorithms_round_trip(store: Store) -> None:
    stored = await store.add_first_key(KeyRecord(
        kid="old", tenant="default", algorithm="RS256", private_key="pem", public_jwk=None,
        created_at=NOW, legacy_algorithms=("RS384", "RS512")))
    assert stored.kid == "old"
    key = await store.get_key("old")
    assert key is not None and key.legacy_algorithms == ("RS384", "RS512")
    assert key.verifies("RS512") and not key.verifies("ES256")


async def test_rotate_keys_retires_and_logs(store: Store) -> None:
    await store.add_first_key(a_key("a"))
    await store.add_first_key(a_key("h", "HS256"))
    start = await store.last_change()
    retired = await store.rotate_keys("default", [a_key("b"), a_key("i", "HS256")], NOW + 5)
    assert sorted(retired) == ["a", "h"]
    old = await store.get_key("a")
    assert old is not None and old.retired_at == NOW + 5
    active = await store.active_key("default", "RS256")
    assert active is not None and active.kid == "b"
    assert [k.kid for k in await store.list_keys("default")] == ["a", "b", "h", "i"]
    changes, _ = await store.changes_since(start)
    assert [(c.scope, c.subject) for c in changes] == [(Scope.KEYS, "default")]
    assert await store.get_key("missing") is None


async def test_concurrent_rotations_leave_one_active_key(store: Store) -> None:
    await store.add_first_key(a_key("first"))
    await asyncio.gather(*(store.rotate_keys("default", [a_key(f"r{i}")], NOW)
                           for i in range(6)))
    keys = await store.list_keys("default")
    assert len(keys) == 7 and [k.retired_at for k in keys].count(None) == 1


# Login regulation


def allow(seen: list[tuple[int, int]]) -> Callable[[list[float], list[float]], float]:
    """A ``ban`` that bans nothing and notes how many failures each attempt saw."""

    def ban(by_account: list[float], by_address: list[float]) -> float:
        assert by_account == sorted(by_account, reverse=True)
        seen.append((len(by_account), len(by_address)))
        return 0.0

    return ban


async def test_concurrent_login_attempts_see_each_other(store: Store) -> None:
    seen: list[tuple[int, int]] = []
    results = await asyncio.gather(*(
        store.record_login_attempt("default", "alice", f"10.0.0.{i}", NOW + i, (50, 50),
                                   allow(seen))
        for i in range(12)))
    assert results == [0.0] * 12
    # Each attempt saw every attempt recorded before it: 0, 1, …, 11 earlier failures.
    assert sorted(account for account, _ in seen) == list(range(12))
    seen.clear()
    await store.record_login_attempt("default", "alice", "10.0.0.1", NOW + 100, (5, 5),
                                     allow(seen))
    assert seen == [(5, 1)]
    await store.clear_login_failures("default", "alice")
    seen.clear()
    await store.record_login_attempt("default", "alice", "10.0.0.1", NOW + 200, (5, 5),
                                     allow(seen))
    assert seen == [(0, 0)]


async def test_a_banned_login_attempt_is_not_recorded(store: Store) -> None:
    def banned(by_account: list[float], by_address: list[float]) -> float:
        return 42.0

    for i in range(3):
        assert await store.record_login_attempt("default", "bob", "10.0.0.9", NOW + i, (5, 5),
                                                banned) == 42.0
    seen: list[tuple[int, int]] = []
    await store.record_login_attempt("default", "bob", "10.0.0.9", NOW + 10, (5, 5), allow(seen))
    assert seen == [(0, 0)]


async def test_ping(store: Store) -> None:
    await store.ping()


# Roles, live tokens and the audit trail


async def test_role_change_is_logged(store: Store) -> None:
    user_id = await a_user(store)
    start = await store.last_change()
    await store.set_role(user_id, Role.ADMIN, NOW + 1)
    user = await store.get_user("default", "alice")
    assert user is not None and user.role == Role.ADMIN and user.updated_at == NOW + 1
    changes, _ = await store.changes_since(start)
    assert [(c.scope, c.subject) for c in changes] == [(Scope.USER_STATE, str(user_id))]


async def test_live_user_tokens_are_every_kind_not_ended(store: Store) -> None:
    user_id = await a_user(store)
    other_id = await a_user(store, "bob")
    live = [a_token(user_id, kind, issued_at=NOW + i)
            for i, kind in enumerate(("session", "access", "refresh", "api"))]
    revoked, deleted = a_token(user_id), a_token(user_id, "api", description="gone")
    expired = a_token(user_id, expires_at=NOW - 1)
    await store.add_tokens([*live, revoked, deleted, expired, a_token(other_id)])
    await store.revoke(Revocation(Scope.TOKEN, revoked.jti, "logout", user_id), NOW)
    await store.delete_token(deleted.jti, user_id, NOW)
    listed = await store.live_user_tokens(user_id, NOW)
    assert [t.jti for t in listed] == [t.jti for t in live]


def an_event(action: str, at: float = NOW, tenant: str = "default", **fields: object) -> AuditEvent:
    return AuditEvent(at=at, tenant=tenant, action=action, **fields)  # type: ignore[arg-type]


async def test_audit_events_round_trip_newest_first(store: Store) -> None:
    await store.add_tenant("acme", NOW)
    await store.add_audit([
        an_event("login_failed", NOW, actor="alice", subject="alice", address="192.0.2.1",
                 request_id="r1"),
        an_event("user_created", NOW + 1, actor="root", subject="bob",
                 detail={"role": 2, "roles": ["ROLE_X"]}),
        an_event("login_succeeded", NOW + 2, actor="bob", subject="bob"),
        an_event("tenant_added", NOW + 3, tenant="acme", actor="root", subject="acme"),
    ])
    listed = await store.list_audit("default")
    assert [r.event.action for r in listed] == ["login_succeeded", "user_created", "login_failed"]
    assert listed[0].seq > listed[1].seq > listed[2].seq
    assert listed[2].event == an_event("login_failed", NOW, actor="alice", subject="alice",
                                       address="192.0.2.1", request_id="r1")
    assert listed[1].event.detail == {"role": 2, "roles": ["ROLE_X"]}
    # By actor or subject, since a time, at most n.
    assert [r.event.action for r in await store.list_audit("default", user="bob")] == [
        "login_succeeded", "user_created"]
    assert [r.event.action for r in await store.list_audit("default", since=NOW + 1)] == [
        "login_succeeded", "user_created"]
    assert [r.event.action for r in await store.list_audit("default", limit=1)] == [
        "login_succeeded"]
    assert [r.event.action for r in await store.list_audit("acme")] == ["tenant_added"]


async def test_audit_events_commit_with_their_change_or_not_at_all(store: Store) -> None:
    user_id = await a_user(store)
    token = a_token(user_id)
    await store.add_tokens([token], [an_event("token_issued", detail={"jti": token.jti})])
    await store.revoke(Revocation(Scope.TOKEN, token.jti, "logout", user_id), NOW,
                       [an_event("logout")])
    # Nothing left to revoke, a tenant that exists, a token deleted already: no event.
    await store.revoke(Revocation(Scope.TOKEN, token.jti, "logout", user_id), NOW,
                       [an_event("second_logout")])
    assert await store.add_tenant("default", NOW, [an_event("tenant_added")]) is False
    assert await store.delete_token(token.jti, user_id, NOW, [an_event("deleted")]) is True
    assert await store.delete_token(token.jti, user_id, NOW, [an_event("deleted_again")]) is False
    # A failed write takes its events with it.
    with pytest.raises(AlreadyExists):
        await store.add_user(NewUser(tenant="default", username="alice", password_hash="h"), NOW,
                             [an_event("user_created")])
    await store.set_password(user_id, "h2", NOW, audit=[an_event("password_changed")])
    await store.set_disabled(user_id, True, NOW, [an_event("user_disabled")])
    await store.set_roles(user_id, ("ROLE_X",), NOW, [an_event("user_changed")])
    await store.set_role(user_id, Role.ADMIN, NOW, [an_event("role_changed")])
    actions = [r.event.action for r in await store.list_audit("default")]
    assert actions == ["role_changed", "user_changed", "user_disabled", "password_changed",
                       "deleted", "logout", "token_issued"]


async def test_prune_audit_drops_only_old_events(store: Store) -> None:
    await store.add_audit([an_event("old", NOW - 100), an_event("kept", NOW)])
    assert await store.prune_audit(NOW - 50) == 1
    assert [r.event.action for r in await store.list_audit("default")] == ["kept"]
