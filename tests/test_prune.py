"""``gateway tokens prune`` drops expired token rows and stale login failures, nothing else."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from gateway.storage import NewToken, NewUser, open_sqlite_store


def never_banned(account: list[float], address: list[float]) -> float:
    return 0.0


async def test_prune_keeps_live_tokens_and_recent_failures(tmp_path):
    database = tmp_path / "gateway.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{path: '{database}'}}\n")
    now = time.time()
    store = await open_sqlite_store(database)
    try:
        await store.add_tenant("default", now)
        user = await store.add_user(NewUser("default", "alice", "hash"), now)
        for jti, expires in (("expired", now - 10), ("live", now + 3600)):
            await store.add_tokens([NewToken(jti=jti, kind="session", tenant="default",
                                           user_id=user.id, issued_at=now - 100, expires_at=expires)])
        await store.record_login_attempt("default", "alice", "127.0.0.1", now - 86400, (5, 5),
                                         never_banned)
        await store.record_login_attempt("default", "alice", "127.0.0.1", now, (5, 5),
                                         never_banned)
    finally:
        await store.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gateway", "tokens", "prune", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pruned 1 expired token(s), 1 old login failure(s) and 0 retired key(s)" in result.stdout

    store = await open_sqlite_store(database)
    try:
        assert await store.get_token("expired") is None
        assert await store.get_token("live") is not None
        seen: list[list[float]] = []

        def record(account: list[float], address: list[float]) -> float:
            seen.append(account)
            return 0.0

        await store.record_login_attempt("default", "alice", "127.0.0.1", now + 1, (10, 10), record)
        assert seen == [[now]]  # the failure a day old was pruned, the recent one kept
    finally:
        await store.close()
