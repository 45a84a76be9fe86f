"""All SQL of the gateway, as functions over a connection. Nothing here commits.

The caller (``SQLiteStore``) owns transactions; every statement is parameterised.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import aiosqlite

from gateway.errors import Conflict
from gateway.storage.base import (
    Change,
    KeyRecord,
    NewToken,
    NewUser,
    Revocation,
    Role,
    Scope,
    TokenRecord,
    User,
)

_USER_COLUMNS = (
    "id, tenant_id, username, email, password_hash, role, roles, disabled, created_at, updated_at"
)
_TOKEN_COLUMNS = (
    "jti, kind, tenant_id, user_id, issued_at, expires_at, revoked_at, revoke_reason, "
    "key_hash, description, family_id, parent_jti, media_kid, used_at, deleted_at, signing_kid"
)


def _user(row: Any) -> User:
    return User(
        id=row[0], tenant=row[1], username=row[2], email=row[3], password_hash=row[4],
        role=Role(row[5]), roles=tuple(json.loads(row[6])), disabled=bool(row[7]),
        created_at=row[8], updated_at=row[9],
    )


def _token(row: Any) -> TokenRecord:
    return TokenRecord(*row)


async def _one(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _all(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def select_one(conn: aiosqlite.Connection) -> None:
    await _one(conn, "SELECT 1", ())


# Tenants

async def tenant_exists(conn: aiosqlite.Connection, tenant: str) -> bool:
    return await _one(conn, "SELECT 1 FROM tenants WHERE id = ?", (tenant,)) is not None


async def insert_tenant(conn: aiosqlite.Connection, tenant: str, now: float) -> bool:
    cursor = await conn.execute(
        "INSERT INTO tenants (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
        (tenant, now),
    )
    return cursor.rowcount == 1


async def list_tenants(conn: aiosqlite.Connection) -> list[str]:
    return [row[0] for row in await _all(conn, "SELECT id FROM tenants ORDER BY id", ())]


# Users

async def has_root(conn: aiosqlite.Connection) -> bool:
    return await _one(conn, "SELECT 1 FROM users WHERE role = ? LIMIT 1",
                      (int(Role.ROOT),)) is not None


async def insert_user(conn: aiosqlite.Connection, user: NewUser, now: float) -> int:
    try:
        cursor = await conn.execute(
            "INSERT INTO users (tenant_id, username, email, password_hash, role, roles,"
            " disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (user.tenant, user.username, user.email, user.password_hash, user.role,
             json.dumps(list(user.roles)), now, now),
        )
    except sqlite3.IntegrityError as exc:
        text = str(exc)
        if "users.email" in text:
            raise Conflict(f"email {user.email!r} is taken in tenant {user.tenant!r}") from None
        if "users.username" in text:
            raise Conflict(
                f"user {user.username!r} already exists in tenant {user.tenant!r}"
            ) from None
        if "FOREIGN KEY" in text:
            raise Conflict(f"tenant {user.tenant!r} does not exist") from None
        raise
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def user_by_name(conn: aiosqlite.Connection, tenant: str, username: str) -> User | None:
    row = await _one(
        conn, f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? AND username = ?",  # noqa: S608
        (tenant, username),
    )
    return None if row is None else _user(row)


async def user_by_email(conn: aiosqlite.Connection, tenant: str, email: str) -> User | None:
    row = await _one(
        conn, f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? AND email = ?",  # noqa: S608
        (tenant, email),
    )
    return None if row is None else _user(row)


async def user_by_id(conn: aiosqlite.Connection, user_id: int) -> User | None:
    row = await _one(conn, f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))  # noqa: S608
    return None if row is None else _user(row)


async def users_of_tenant(conn: aiosqlite.Connection, tenant: str) -> list[User]:
    rows = await _all(
        conn, f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? ORDER BY username",  # noqa: S608
        (tenant,),
    )
    return [_user(row) for row in rows]


async def update_password(conn: aiosqlite.Connection, user_id: int, password_hash: str,
                          now: float) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        (password_hash, now, user_id),
    )


async def update_disabled(conn: aiosqlite.Connection, user_id: int, disabled: bool,
                          now: float) -> None:
    await conn.execute(
        "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?",
        (int(disabled), now, user_id),
    )


async def update_roles(conn: aiosqlite.Connection, user_id: int, roles: tuple[str, ...],
                       now: float) -> None:
    await conn.execute(
        "UPDATE users SET roles = ?, updated_at = ? WHERE id = ?",
        (json.dumps(list(roles)), now, user_id),
    )


# Tokens

async def insert_token(conn: aiosqlite.Connection, token: NewToken) -> None:
    try:
        await conn.execute(
            "INSERT INTO tokens (jti, kind, tenant_id, user_id, issued_at, expires_at, key_hash,"
            " description, family_id, parent_jti, media_kid, signing_kid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token.jti, token.kind, token.tenant, token.user_id, token.issued_at,
             token.expires_at, token.key_hash, token.description, token.family_id,
             token.parent_jti, token.media_kid, token.signing_kid),
        )
    except sqlite3.IntegrityError as exc:
        if "tokens.description" in str(exc):
            raise Conflict(f"a token described {token.description!r} exists already") from None
        if "tokens.media_kid" in str(exc):
            raise Conflict(f"kid {token.media_kid!r} is already registered") from None
        raise


async def user_tokens(conn: aiosqlite.Connection, user_id: int, kind: str, limit: int,
                      offset: int) -> list[TokenRecord]:
    rows = await _all(
        conn,
        f"SELECT {_TOKEN_COLUMNS} FROM tokens"  # noqa: S608 - constant column list
        " WHERE user_id = ? AND kind = ? AND deleted_at IS NULL"
        " ORDER BY issued_at, jti LIMIT ? OFFSET ?",
        (user_id, kind, limit, offset),
    )
    return [_token(row) for row in rows]


async def mark_deleted(conn: aiosqlite.Connection, jti: str, now: float) -> bool:
    """Hide a token (its revocation is the caller's, through ``revoke``)."""
    cursor = await conn.execute(
        "UPDATE tokens SET deleted_at = ? WHERE jti = ? AND deleted_at IS NULL", (now, jti),
    )
    return cursor.rowcount == 1


async def mark_used(conn: aiosqlite.Connection, jti: str, now: float) -> bool:
    """Mark a live refresh token rotated out; False when it was used or revoked already."""
    cursor = await conn.execute(
        "UPDATE tokens SET used_at = ? WHERE jti = ? AND used_at IS NULL AND revoked_at IS NULL",
        (now, jti),
    )
    return cursor.rowcount == 1


_REVOKED_ROWS = {
    Scope.TOKEN: "jti = ?",
    Scope.FAMILY: "family_id = ?",
    # Expired rows too: tokens.leeway keeps a token usable a little past its exp.
    Scope.USER: "user_id = ?",
}


async def revoke(conn: aiosqlite.Connection, revocation: Revocation,
                 now: float) -> tuple[int, bool]:
    """The revocation seam: revoke the rows ``revocation`` covers and log the change.

    Returns the token rows revoked and whether a change was logged: a token or family
    revocation that finds nothing live logs nothing (no cache can hold it); user,
    user-state and key changes always log.
    """
    revoked = 0
    where = _REVOKED_ROWS.get(revocation.scope)
    if where is not None:
        subject: str | int = (int(revocation.subject) if revocation.scope is Scope.USER
                              else revocation.subject)
        cursor = await conn.execute(
            f"UPDATE tokens SET revoked_at = ?, revoke_reason = ?"  # noqa: S608 - constant clauses
            f" WHERE {where} AND revoked_at IS NULL",
            (now, revocation.reason, subject),
        )
        revoked = cursor.rowcount
        if revoked == 0 and revocation.scope is not Scope.USER:
            return 0, False
    await conn.execute(
        "INSERT INTO revocations (at, scope, subject, user_id, reason) VALUES (?, ?, ?, ?, ?)",
        (now, revocation.scope.value, revocation.subject, revocation.user_id, revocation.reason),
    )
    return revoked, True


async def changes_since(conn: aiosqlite.Connection, seq: int) -> tuple[list[Change], int]:
    rows = await _all(
        conn, "SELECT seq, scope, subject, user_id FROM revocations WHERE seq > ? ORDER BY seq",
        (seq,),
    )
    oldest = await _one(conn, "SELECT MIN(seq) FROM revocations", ())
    changes = [Change(seq=row[0], scope=Scope(row[1]), subject=row[2], user_id=row[3])
               for row in rows]
    return changes, oldest[0] or 0


async def last_change(conn: aiosqlite.Connection) -> int:
    row = await _one(conn, "SELECT MAX(seq) FROM revocations", ())
    return int(row[0] or 0)


async def delete_old_changes(conn: aiosqlite.Connection, before: float) -> int:
    # The newest row always stays, so AUTOINCREMENT never hands out a seq twice and the
    # oldest kept seq tells a process that slept through a pruning that it missed some.
    cursor = await conn.execute(
        "DELETE FROM revocations WHERE at < ? AND seq < (SELECT MAX(seq) FROM revocations)",
        (before,),
    )
    return cursor.rowcount


async def token_by_jti(conn: aiosqlite.Connection, jti: str) -> TokenRecord | None:
    row = await _one(conn, f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE jti = ?", (jti,))  # noqa: S608
    return None if row is None else _token(row)


async def token_and_user(conn: aiosqlite.Connection,
                         jti: str) -> tuple[TokenRecord, User | None] | None:
    columns = ", ".join(f"t.{c.strip()}" for c in _TOKEN_COLUMNS.split(","))
    user_columns = ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
    row = await _one(
        conn,
        f"SELECT {columns}, {user_columns} FROM tokens t"  # noqa: S608 - constant column lists
        " LEFT JOIN users u ON u.id = t.user_id WHERE t.jti = ?",
        (jti,),
    )
    if row is None:
        return None
    width = len(_TOKEN_COLUMNS.split(","))
    user = None if row[width] is None else _user(row[width:])
    return _token(row[:width]), user


async def delete_expired_tokens(conn: aiosqlite.Connection, now: float) -> int:
    cursor = await conn.execute("DELETE FROM tokens WHERE expires_at < ?", (now,))
    return cursor.rowcount


async def consume_media(conn: aiosqlite.Connection, tenant: str, media_kid: str,
                        now: float) -> bool:
    cursor = await conn.execute(
        "UPDATE tokens SET used_at = ? WHERE tenant_id = ? AND media_kid = ? AND kind = 'media'"
        " AND used_at IS NULL AND revoked_at IS NULL",
        (now, tenant, media_kid),
    )
    return cursor.rowcount == 1


async def delete_unneeded_keys(conn: aiosqlite.Connection, now: float) -> int:
    cursor = await conn.execute(
        "DELETE FROM keys WHERE retired_at IS NOT NULL AND NOT EXISTS ("
        " SELECT 1 FROM tokens WHERE tokens.signing_kid = keys.kid AND tokens.expires_at >= ?)",
        (now,),
    )
    return cursor.rowcount


# Keys

_KEY_COLUMNS = "kid, tenant_id, algorithm, private_key, public_jwk, created_at, retired_at"


def _key(row: Any) -> KeyRecord:
    return KeyRecord(*row)


async def key_by_kid(conn: aiosqlite.Connection, kid: str) -> KeyRecord | None:
    row = await _one(conn, f"SELECT {_KEY_COLUMNS} FROM keys WHERE kid = ?", (kid,))  # noqa: S608
    return None if row is None else _key(row)


async def active_key(conn: aiosqlite.Connection, tenant: str, family: str) -> KeyRecord | None:
    row = await _one(
        conn,
        f"SELECT {_KEY_COLUMNS} FROM keys"  # noqa: S608 - constant column list
        " WHERE tenant_id = ? AND algorithm = ? AND retired_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1",
        (tenant, family),
    )
    return None if row is None else _key(row)


async def insert_key(conn: aiosqlite.Connection, key: KeyRecord) -> None:
    await conn.execute(
        f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (key.kid, key.tenant, key.family, key.private_key, key.public_jwk, key.created_at,
         key.retired_at),
    )


async def retire_active_keys(conn: aiosqlite.Connection, tenant: str, family: str,
                             now: float) -> list[str]:
    rows = await _all(
        conn,
        "SELECT kid FROM keys WHERE tenant_id = ? AND algorithm = ? AND retired_at IS NULL",
        (tenant, family),
    )
    await conn.execute(
        "UPDATE keys SET retired_at = ? WHERE tenant_id = ? AND algorithm = ? AND retired_at IS NULL",
        (now, tenant, family),
    )
    return [row[0] for row in rows]


async def keys_of_tenant(conn: aiosqlite.Connection, tenant: str) -> list[KeyRecord]:
    rows = await _all(
        conn, f"SELECT {_KEY_COLUMNS} FROM keys WHERE tenant_id = ? ORDER BY created_at, kid",  # noqa: S608
        (tenant,),
    )
    return [_key(row) for row in rows]


async def delete_old_failures(conn: aiosqlite.Connection, before: float) -> int:
    cursor = await conn.execute("DELETE FROM login_failures WHERE failed_at < ?", (before,))
    return cursor.rowcount


# Login regulation

async def insert_login_failure(conn: aiosqlite.Connection, tenant: str, username: str,
                               address: str, now: float) -> None:
    await conn.execute(
        "INSERT INTO login_failures (tenant_id, username, address, failed_at) VALUES (?, ?, ?, ?)",
        (tenant, username, address, now),
    )


async def account_failures(conn: aiosqlite.Connection, tenant: str, username: str,
                           limit: int) -> list[float]:
    rows = await _all(
        conn,
        "SELECT failed_at FROM login_failures WHERE tenant_id = ? AND username = ?"
        " ORDER BY failed_at DESC LIMIT ?",
        (tenant, username, limit),
    )
    return [row[0] for row in rows]


async def address_failures(conn: aiosqlite.Connection, address: str, limit: int) -> list[float]:
    rows = await _all(
        conn,
        "SELECT failed_at FROM login_failures WHERE address = ? ORDER BY failed_at DESC LIMIT ?",
        (address, limit),
    )
    return [row[0] for row in rows]


async def delete_account_failures(conn: aiosqlite.Connection, tenant: str, username: str) -> None:
    await conn.execute(
        "DELETE FROM login_failures WHERE tenant_id = ? AND username = ?", (tenant, username)
    )
