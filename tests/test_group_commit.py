"""Group commit in the SQLite store: concurrent writers share a COMMIT, each is answered
after the COMMIT that holds its writes, and a failing writer fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.storage import AlreadyExists, NewToken, Revocation, Scope, SQLiteStore, open_sqlite_store


@pytest.fixture
async def store(tmp_path: Path):
    store = await open_sqlite_store(tmp_path / "gateway.db")
    await store.add_tenant("default", time.time())
    yield store
    await store.close()


def media_row(kid: str) -> NewToken:
    now = time.time()
    return NewToken(jti=f"jti-{kid}", kind="media", tenant="default", user_id=None,
                    issued_at=now, expires_at=now + 60, media_kid=kid)


def committed_kids(path: Path) -> set[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT media_kid FROM tokens")}


def count_commits(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    commits: list[int] = []
    original = store._commit

    async def counted(batch):  # type: ignore[no-untyped-def]
        commits.append(batch.size)
        await original(batch)

    monkeypatch.setattr(store, "_commit", counted)
    return commits


async def test_concurrent_writes_share_commits_and_are_committed_when_answered(
        store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commits = count_commits(store, monkeypatch)
    kids = [f"k{index}" for index in range(40)]

    async def write(kid: str) -> set[str]:
        await store.add_tokens([media_row(kid)])
        return committed_kids(tmp_path / "gateway.db")

    seen_when_answered = await asyncio.gather(*(write(kid) for kid in kids))
    for kid, seen in zip(kids, seen_when_answered, strict=True):
        assert kid in seen  # durable before its caller went on
    assert sum(commits) == 40
    assert len(commits) < 40  # shared


async def test_a_failing_writer_fails_alone(store: SQLiteStore, tmp_path: Path) -> None:
    await store.add_tokens([media_row("taken")])
    results = await asyncio.gather(
        *(store.add_tokens([media_row(f"ok{index}")]) for index in range(10)),
        store.add_tokens([NewToken(jti="other", kind="media", tenant="default", user_id=None,
                                   issued_at=0, expires_at=1, media_kid="taken")]),
        *(store.add_tokens([media_row(f"late{index}")]) for index in range(10)),
        return_exceptions=True,
    )
    assert [type(result) for result in results].count(AlreadyExists) == 1
    assert isinstance(results[10], AlreadyExists)
    kids = committed_kids(tmp_path / "gateway.db")
    assert {f"ok{index}" for index in range(10)} <= kids
    assert {f"late{index}" for index in range(10)} <= kids


async def test_a_multi_statement_writer_that_fails_leaves_nothing_behind(
        store: SQLiteStore, tmp_path: Path) -> None:
    await store.add_tokens([media_row("taken")])
    failed, bystander = await asyncio.gather(
        store.add_tokens([media_row("first-of-two"), media_row("taken")]),
        store.add_tokens([media_row("bystander")]),
        return_exceptions=True,
    )
    assert isinstance(failed, AlreadyExists) and bystander is None
    kids = committed_kids(tmp_path / "gateway.db")
    assert "first-of-two" not in kids
    assert "bystander" in kids


async def test_a_cancelled_waiter_does_not_leave_the_batch_open(
        store: SQLiteStore, tmp_path: Path) -> None:
    first = asyncio.ensure_future(store.add_tokens([media_row("a")]))
    second = asyncio.ensure_future(store.add_tokens([media_row("b")]))
    await asyncio.sleep(0)
    second.cancel()
    await first
    assert "a" in committed_kids(tmp_path / "gateway.db")
    # The store keeps working afterwards.
    await store.add_tokens([media_row("c")])
    assert "c" in committed_kids(tmp_path / "gateway.db")


async def test_a_revocation_bumps_the_feed_after_its_commit(store: SQLiteStore,
                                                            tmp_path: Path) -> None:
    await store.add_tokens([media_row("r")])
    before = store.feed.current()
    assert await store.revoke(Revocation(Scope.TOKEN, "jti-r", "test"), time.time()) == 1
    assert store.feed.current() != before
    changes, _ = await store.changes_since(0)
    assert [(change.scope, change.subject) for change in changes] == [(Scope.TOKEN, "jti-r")]
    # Nothing live to revoke: no change logged, no bump.
    bumped = store.feed.current()
    assert await store.revoke(Revocation(Scope.TOKEN, "jti-r", "again"), time.time()) == 0
    assert (await store.changes_since(0))[0] == changes
    assert store.feed.current() == bumped
