"""The real ``gateway`` command in subprocesses (``python -m gateway``), docs/operations.md.

Each test gets its own config.yaml and database in tmp_path. State the test is not about
is prepared in-process through the store, token rows with plain SQL (cheaper than a
subprocess); effects of the commands are checked the same way or through ``users list``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import VerifyMismatchError

from gateway.storage import NewUser, SQLiteStore, User, open_sqlite_store

SECRET = "cli-test-secret-key-0123456789-0123456789"
ADMIN_PASSWORD = "bootstrap-admin-password"
ALICE_PASSWORD = "alice-password-1"
T = TypeVar("T")


@dataclass
class Gateway:
    root: Path
    config: Path
    db: Path
    env: dict[str, str]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``gateway ARGS --config config.yaml``; fails the test on a traceback."""
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--config", str(self.config)],
            input=stdin, capture_output=True, text=True, env=self.env, cwd=self.root,
            timeout=60, check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def with_store(self, action: Callable[[SQLiteStore], Awaitable[T]]) -> T:
        async def go() -> T:
            store = await open_sqlite_store(self.db)
            try:
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def user(self, username: str, tenant: str = "default") -> User | None:
        return self.with_store(lambda store: store.get_user(tenant, username))

    def seed(self, *tenants: str, users: tuple[NewUser, ...] = ()) -> list[User]:
        async def go(store: SQLiteStore) -> list[User]:
            for tenant in tenants:
                await store.add_tenant(tenant, time.time())
            return [await store.add_user(user, time.time()) for user in users]

        return self.with_store(go)

    def add_token(self, user: User) -> str:
        """A live access-token row for ``user`` (plain SQL: only the 0001 columns)."""
        jti = str(uuid.uuid4())
        now = time.time()
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            db.execute("INSERT INTO tokens (jti, kind, tenant_id, user_id, issued_at, expires_at)"
                       " VALUES (?, 'access', ?, ?, ?, ?)", (jti, user.tenant, user.id, now, now + 3600))
            db.commit()
        return jti

    def revoked_at(self, jti: str) -> float | None:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            row = db.execute("SELECT revoked_at FROM tokens WHERE jti = ?", (jti,)).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    config = tmp_path / "config.yaml"
    # A relative storage path: the CLI must resolve it against the config file's directory.
    config.write_text("storage:\n  path: ./data/gateway.db\ntenants:\n  default: {}\n",
                      encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    env.update(GATEWAY_SECRET_KEY=SECRET, GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD)
    return Gateway(root=tmp_path, config=config, db=tmp_path / "data" / "gateway.db", env=env)


def password_matches(user: User, password: str) -> bool:
    try:
        return Argon2Hasher().verify(user.password_hash, password)
    except VerifyMismatchError:
        return False


def hashed(password: str) -> str:
    return Argon2Hasher(memory_cost=19456, time_cost=2, parallelism=1).hash(password)


def list_rows(output: str) -> dict[str, list[str]]:
    """``users list`` output as {username: [email, role, status, roles]} (roles may be absent)."""
    lines = output.splitlines()
    assert lines and lines[0].split()[:4] == ["USERNAME", "EMAIL", "ROLE", "STATUS"]
    return {fields[0]: fields[1:] for fields in (line.split() for line in lines[1:]) if fields}


# migrate


def test_migrate_creates_the_database_and_bootstraps_nothing(gw: Gateway) -> None:
    result = gw.run("migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert gw.db.exists()
    assert stat.S_IMODE(gw.db.stat().st_mode) == 0o600
    # The root user is created on the first `serve`, not by `migrate`; nothing is printed.
    assert gw.with_store(lambda store: store.has_root()) is False
    assert gw.with_store(lambda store: store.list_users("default")) == []
    assert ADMIN_PASSWORD not in result.stdout + result.stderr


def test_users_add_works_right_after_migrate(gw: Gateway) -> None:
    assert gw.run("migrate").returncode == 0
    result = gw.run("users", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert gw.user("alice") is not None


# tenants


def test_tenants_add(gw: Gateway) -> None:
    first = gw.run("tenants", "add", "acme")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    assert "acme" in gw.with_store(lambda store: store.list_tenants())

    again = gw.run("tenants", "add", "acme")
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout
    assert gw.with_store(lambda store: store.list_tenants()).count("acme") == 1

    for bad_id in ("bad id!", "acme\n", "acme\r\nx", "ac\u200bme", "\uff41cme"):
        bad = gw.run("tenants", "add", bad_id)
        assert bad.returncode == 1, bad_id
        assert bad.stderr.startswith("gateway: ") and "invalid tenant id" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert gw.with_store(lambda store: store.list_tenants()) == ["acme", "default"]


# users add / list


def test_users_add_list_duplicate_and_short_password(gw: Gateway) -> None:
    gw.seed("default")
    added = gw.run("users", "add", "alice", "--password-stdin", "--email", "a@x.io",
                   "--role", "admin", "--roles", "ROLE_USER,ROLE_ADMIN", stdin=ALICE_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "alice" in added.stdout
    assert ALICE_PASSWORD not in added.stdout + added.stderr

    alice = gw.user("alice")
    assert alice is not None
    assert alice.email == "a@x.io"
    assert alice.role == 1
    assert alice.roles == ("ROLE_USER", "ROLE_ADMIN")
    assert not alice.disabled
    assert alice.password_hash.startswith("$argon2id$")
    assert password_matches(alice, ALICE_PASSWORD)

    listed = gw.run("users", "list")
    assert listed.returncode == 0, listed.stderr
    assert list_rows(listed.stdout)["alice"] == ["a@x.io", "admin", "active", "ROLE_USER,ROLE_ADMIN"]
    assert "$argon2" not in listed.stdout

    duplicate = gw.run("users", "add", "alice", "--password-stdin", stdin="another-password\n")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "gateway: user 'alice' already exists in tenant 'default'"
    alice_after = gw.user("alice")
    assert alice_after is not None
    assert password_matches(alice_after, ALICE_PASSWORD)

    short = gw.run("users", "add", "dave", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr
    assert gw.user("dave") is None


@pytest.mark.parametrize("username", [
    "eve\r\nX-Auth-User: root", "eve\n", "ad\u200bmin", "\u200badmin", "ad\u2028min",
    "ad min", "ad\x7fmin", "",
])
def test_users_add_refuses_control_format_and_space_characters(gw: Gateway,
                                                               username: str) -> None:
    gw.seed("default")
    result = gw.run("users", "add", username, "--password-stdin", stdin=ALICE_PASSWORD + "\n")
    assert result.returncode == 1
    assert result.stderr.startswith("gateway: ") and "username" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert gw.with_store(lambda store: store.list_users("default")) == []


def test_users_add_refuses_another_spelling_of_an_existing_username(gw: Gateway) -> None:
    gw.seed("default")
    assert gw.run("users", "add", "admin", "--password-stdin",
                  stdin=ALICE_PASSWORD + "\n").returncode == 0
    for spelling in ("Admin", "ADMIN", "\uff41dmin"):  # the last with a fullwidth a
        result = gw.run("users", "add", spelling, "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        assert result.returncode == 1, spelling
        assert "already exists in tenant 'default'" in result.stderr
    assert [user.username for user in gw.with_store(lambda store: store.list_users("default"))] == [
        "admin"]
    # Stored NFKC-normalised: a fullwidth name is kept in its plain form.
    assert gw.run("users", "add", "\uff42ob", "--password-stdin",
                  stdin=ALICE_PASSWORD + "\n").returncode == 0
    bob = gw.user("BOB")
    assert bob is not None and bob.username == "bob"
    # The other commands find a user by any spelling too.
    disabled = gw.run("users", "disable", "ADMIN")
    assert disabled.returncode == 0, disabled.stderr
    admin = gw.user("admin")
    assert admin is not None and admin.disabled


def test_users_add_in_tenants(gw: Gateway) -> None:
    gw.seed("default", "acme")
    bob = gw.run("users", "add", "bob", "--tenant", "acme", "--password-stdin", stdin="bob-password\n")
    assert bob.returncode == 0, bob.stderr
    assert gw.user("bob", tenant="acme") is not None
    assert gw.user("bob", tenant="default") is None

    listed = gw.run("users", "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert list_rows(listed.stdout) == {"bob": ["-", "user", "active"]}

    carl = gw.run("users", "add", "carl", "--tenant", "nope", "--password-stdin",
                  stdin="carl-password\n")
    assert carl.returncode == 1
    assert "'nope'" in carl.stderr
    assert "tenant" in carl.stderr
    assert gw.with_store(lambda store: store.list_tenants()) == ["acme", "default"]


# users roles / disable / enable / passwd


def seed_alice(gw: Gateway) -> User:
    [alice] = gw.seed("default", users=(NewUser(
        tenant="default", username="alice", password_hash=hashed(ALICE_PASSWORD),
        email="a@x.io", role=1, roles=("ROLE_USER",)),))
    return alice


def test_users_roles(gw: Gateway) -> None:
    seed_alice(gw)
    result = gw.run("users", "roles", "alice", "ROLE_X,ROLE_Y")
    assert result.returncode == 0, result.stderr
    alice = gw.user("alice")
    assert alice is not None
    assert alice.roles == ("ROLE_X", "ROLE_Y")

    bad = gw.run("users", "roles", "alice", "ROLE X")
    assert bad.returncode == 1
    assert "invalid role" in bad.stderr
    alice = gw.user("alice")
    assert alice is not None
    assert alice.roles == ("ROLE_X", "ROLE_Y")


def test_users_disable_revokes_tokens_and_enable(gw: Gateway) -> None:
    alice = seed_alice(gw)
    jti = gw.add_token(alice)

    disabled = gw.run("users", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    after = gw.user("alice")
    assert after is not None
    assert after.disabled
    assert gw.revoked_at(jti) is not None

    enabled = gw.run("users", "enable", "alice")
    assert enabled.returncode == 0, enabled.stderr
    after = gw.user("alice")
    assert after is not None
    assert not after.disabled
    # Enabling does not bring revoked tokens back.
    assert gw.revoked_at(jti) is not None


def test_users_passwd(gw: Gateway) -> None:
    alice = seed_alice(gw)
    jti = gw.add_token(alice)

    result = gw.run("users", "passwd", "alice", "--password-stdin", stdin="brand-new-password\n")
    assert result.returncode == 0, result.stderr
    assert "brand-new-password" not in result.stdout + result.stderr
    after = gw.user("alice")
    assert after is not None
    assert password_matches(after, "brand-new-password")
    assert not password_matches(after, ALICE_PASSWORD)
    assert gw.revoked_at(jti) is not None

    nobody = gw.run("users", "passwd", "nobody", "--password-stdin", stdin="brand-new-password\n")
    assert nobody.returncode == 1
    assert "nobody" in nobody.stderr


# Where --config goes, and what a user sees when the server cannot start


def test_config_is_accepted_before_the_command_too(gw: Gateway) -> None:
    before = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(gw.config), "tenants", "add", "acme"],
        capture_output=True, text=True, env=gw.env, cwd=gw.root, timeout=60, check=False)
    assert before.returncode == 0, before.stderr
    # The database the config names, not ./config.yaml's default, holds the tenant.
    assert "acme" in gw.run("tenants", "list").stdout.split()


def test_a_yaml_syntax_error_names_its_line_and_column(gw: Gateway) -> None:
    gw.config.write_text("server:\n  port: 25441\n  host: [127.0.0.1\n", encoding="utf-8")
    result = gw.run("migrate")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"gateway: config error: {gw.config}:4:1: not valid YAML: "
        "expected ',' or ']', but got '<stream end>'")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_a_failure(gw: Gateway, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gw.run("serve", "--port", str(port), "--workers", workers)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"gateway: cannot listen on 127.0.0.1:{port}: Address already in use")
