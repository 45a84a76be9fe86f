"""All SQL of the gateway, as functions over a connection. Nothing here commits.

The caller (``SQLStore``) owns transactions; every statement is parameterised. The SQL is
the dialect SQLite and PostgreSQL share, run through ``storage.connection.Connection``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.storage.base import (
    AlreadyExists,
    AuditEvent,
    AuditRecord,
    Change,
    KeyRecord,
    NewToken,
    NewUser,
    NoSuchParent,
    Revocation,
    Role,
    Scope,
    TokenRecord,
    User,
)
from gateway.storage.connection import Connection, ConstraintViolation

#: ``LIMIT`` for "no limit", in a form both dialects take.
NO_LIMIT = 2**62

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


async def select_one(conn: Connection) -> None:
    await conn.one("SELECT 1", ())


# Tenants

async def tenant_exists(conn: Connection, tenant: str) -> bool:
    return await conn.one("SELECT 1 FROM tenants WHERE id = ?", (tenant,)) is not None


async def insert_tenant(conn: Connection, tenant: str, now: float) -> bool:
    return await conn.run(
        "INSERT INTO tenants (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
        (tenant, now),
    ) == 1


async def list_tenants(conn: Connection) -> list[str]:
    return [row[0] for row in await conn.all("SELECT id FROM tenants ORDER BY id", ())]


# Users

async def has_root(conn: Connection) -> bool:
    return await conn.one("SELECT 1 FROM users WHERE role = ? LIMIT 1",
                          (int(Role.ROOT),)) is not None


async def insert_user(conn: Connection, user: NewUser, username_key: str, now: float) -> int:
    try:
        row = await conn.one(
            "INSERT INTO users (tenant_id, username, username_key, email, password_hash, role,"
            " roles, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
            " RETURNING id",
            (user.tenant, user.username, username_key, user.email, user.password_hash,
             int(user.role), json.dumps(list(user.roles)), now, now),
        )
    except ConstraintViolation as exc:
        if exc.kind == "foreign_key":
            raise NoSuchParent(f"tenant {user.tenant!r} does not exist") from None
        if "email" in exc.detail:
            raise AlreadyExists(f"email {user.email!r} is taken in tenant {user.tenant!r}") from None
        if "username" in exc.detail:
            raise AlreadyExists(
                f"user {user.username!r} already exists in tenant {user.tenant!r}"
            ) from None
        raise
    assert row is not None
    return int(row[0])


async def user_by_name(conn: Connection, tenant: str, username: str,
                       username_key: str) -> User | None:
    # The user whose key matches; the exact name first, for an older row whose key another
    # user holds (its key is NULL, see migrations/sqlite/0006).
    row = await conn.one(
        f"SELECT {_USER_COLUMNS} FROM users"  # noqa: S608 - constant column list
        " WHERE tenant_id = ? AND (username_key = ? OR username = ?)"
        " ORDER BY CASE WHEN username = ? THEN 0 ELSE 1 END LIMIT 1",
        (tenant, username_key, username, username),
    )
    return None if row is None else _user(row)


async def users_without_key(conn: Connection) -> list[tuple[int, str, str]]:
    rows = await conn.all(
        "SELECT id, tenant_id, username FROM users WHERE username_key IS NULL ORDER BY id", ()
    )
    return [(int(row[0]), row[1], row[2]) for row in rows]


async def set_username_key(conn: Connection, user_id: int, tenant: str,
                           username_key: str) -> bool:
    """Give a user its key unless another user of the tenant holds it already."""
    return await conn.run(
        "UPDATE users SET username_key = ? WHERE id = ? AND NOT EXISTS"
        " (SELECT 1 FROM users AS other WHERE other.tenant_id = ? AND other.username_key = ?)",
        (username_key, user_id, tenant, username_key),
    ) == 1


async def user_by_email(conn: Connection, tenant: str, email: str) -> User | None:
    row = await conn.one(
        f"SELECT {_USER_COLUMNS} FROM users"  # noqa: S608 - constant column list
        " WHERE tenant_id = ? AND lower(email) = lower(?)",
        (tenant, email),
    )
    return None if row is None else _user(row)


async def user_by_id(conn: Connection, user_id: int) -> User | None:
    row = await conn.one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))  # noqa: S608
    return None if row is None else _user(row)


async def users_of_tenant(conn: Connection, tenant: str) -> list[User]:
    rows = await conn.all(
        f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? ORDER BY username",  # noqa: S608
        (tenant,),
    )
    return [_user(row) for row in rows]


async def update_password(conn: Connection, user_id: int, password_hash: str,
                          now: float) -> None:
    await conn.run(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        (password_hash, now, user_id),
    )


async def update_disabled(conn: Connection, user_id: int, disabled: bool,
                          now: float) -> None:
    await conn.run(
        "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?",
        (int(disabled), now, user_id),
    )


async def update_roles(conn: Connection, user_id: int, roles: tuple[str, ...],
                       now: float) -> None:
    await conn.run(
        "UPDATE users SET roles = ?, updated_at = ? WHERE id = ?",
        (json.dumps(list(roles)), now, user_id),
    )


# Tokens

async def insert_token(conn: Connection, token: NewToken) -> None:
    try:
        await conn.run(
            "INSERT INTO tokens (jti, kind, tenant_id, user_id, issued_at, expires_at, key_hash,"
            " description, family_id, parent_jti, media_kid, signing_kid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token.jti, token.kind, token.tenant, token.user_id, token.issued_at,
             token.expires_at, token.key_hash, token.description, token.family_id,
             token.parent_jti, token.media_kid, token.signing_kid),
        )
    except ConstraintViolation as exc:
        if "description" in exc.detail:
            raise AlreadyExists(f"a token described {token.description!r} exists already") from None
        if "media_kid" in exc.detail:
            raise AlreadyExists(f"kid {token.media_kid!r} is already registered") from None
        raise


async def user_tokens(conn: Connection, user_id: int, kind: str, limit: int,
                      offset: int) -> list[TokenRecord]:
    rows = await conn.all(
        f"SELECT {_TOKEN_COLUMNS} FROM tokens"  # noqa: S608 - constant column list
        " WHERE user_id = ? AND kind = ? AND deleted_at IS NULL"
        " ORDER BY issued_at, jti LIMIT ? OFFSET ?",
        (user_id, kind, limit, offset),
    )
    return [_token(row) for row in rows]


async def mark_deleted(conn: Connection, jti: str, now: float) -> bool:
    """Hide a token (its revocation is the caller's, through ``revoke``)."""
    return await conn.run(
        "UPDATE tokens SET deleted_at = ? WHERE jti = ? AND deleted_at IS NULL", (now, jti),
    ) == 1


async def mark_used(conn: Connection, jti: str, now: float) -> bool:
    """Mark a live refresh token rotated out; False when it was used or revoked already."""
    return await conn.run(
        "UPDATE tokens SET used_at = ? WHERE jti = ? AND used_at IS NULL AND revoked_at IS NULL",
        (now, jti),
    ) == 1


_REVOKED_ROWS = {
    Scope.TOKEN: "jti = ?",
    Scope.FAMILY: "family_id = ?",
    # Expired rows too: tokens.leeway keeps a token usable a little past its exp.
    Scope.USER: "user_id = ?",
}


async def revoke(conn: Connection, revocation: Revocation, now: float) -> int:
    """The revocation seam: revoke the rows ``revocation`` covers, log the change and have
    it announced to every process once committed (``Connection.announce_change``).

    Returns the token rows revoked. A token or family revocation that finds nothing live
    logs nothing (no cache can hold it); user, user-state and key changes always log.
    """
    revoked = 0
    where = _REVOKED_ROWS.get(revocation.scope)
    if where is not None:
        subject: str | int = (int(revocation.subject) if revocation.scope is Scope.USER
                              else revocation.subject)
        revoked = await conn.run(
            f"UPDATE tokens SET revoked_at = ?, revoke_reason = ?"  # noqa: S608 - constant clauses
            f" WHERE {where} AND revoked_at IS NULL",
            (now, revocation.reason, subject),
        )
        if revoked == 0 and revocation.scope is not Scope.USER:
            return 0
    # Log rows are numbered in commit order: a process that read up to seq n must never
    # see a smaller seq commit later (PostgreSQL hands out sequence values at INSERT).
    await conn.serialize("revocations")
    await conn.run(
        "INSERT INTO revocations (at, scope, subject, user_id, reason) VALUES (?, ?, ?, ?, ?)",
        (now, revocation.scope.value, revocation.subject, revocation.user_id, revocation.reason),
    )
    await conn.announce_change()
    return revoked


async def changes_since(conn: Connection, seq: int) -> tuple[list[Change], int]:
    rows = await conn.all(
        "SELECT seq, scope, subject, user_id, at FROM revocations WHERE seq > ? ORDER BY seq",
        (seq,),
    )
    oldest = await conn.one("SELECT COALESCE(MIN(seq), 0) FROM revocations", ())
    assert oldest is not None
    changes = [Change(seq=row[0], scope=Scope(row[1]), subject=row[2], user_id=row[3],
                      at=row[4]) for row in rows]
    return changes, int(oldest[0])


async def last_change(conn: Connection) -> int:
    row = await conn.one("SELECT COALESCE(MAX(seq), 0) FROM revocations", ())
    assert row is not None
    return int(row[0])


async def delete_old_changes(conn: Connection, before: float) -> int:
    # The newest row always stays, so the log never starts again from an empty table, and
    # the oldest kept seq tells a process that slept through a pruning that it missed some.
    return await conn.run(
        "DELETE FROM revocations WHERE at < ? AND seq < (SELECT MAX(seq) FROM revocations)",
        (before,),
    )


async def token_by_jti(conn: Connection, jti: str) -> TokenRecord | None:
    row = await conn.one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE jti = ?", (jti,))  # noqa: S608
    return None if row is None else _token(row)


async def token_and_user(conn: Connection,
                         jti: str) -> tuple[TokenRecord, User | None] | None:
    columns = ", ".join(f"t.{c.strip()}" for c in _TOKEN_COLUMNS.split(","))
    user_columns = ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
    row = await conn.one(
        f"SELECT {columns}, {user_columns} FROM tokens t"  # noqa: S608 - constant column lists
        " LEFT JOIN users u ON u.id = t.user_id WHERE t.jti = ?",
        (jti,),
    )
    if row is None:
        return None
    width = len(_TOKEN_COLUMNS.split(","))
    user = None if row[width] is None else _user(row[width:])
    return _token(row[:width]), user


async def delete_expired_tokens(conn: Connection, now: float) -> int:
    return await conn.run("DELETE FROM tokens WHERE expires_at < ?", (now,))


async def consume_media(conn: Connection, tenant: str, media_kid: str,
                        now: float) -> bool:
    return await conn.run(
        "UPDATE tokens SET used_at = ? WHERE tenant_id = ? AND media_kid = ? AND kind = 'media'"
        " AND used_at IS NULL AND revoked_at IS NULL",
        (now, tenant, media_kid),
    ) == 1


async def delete_unneeded_keys(conn: Connection, now: float) -> int:
    return await conn.run(
        "DELETE FROM keys WHERE retired_at IS NOT NULL AND NOT EXISTS ("
        " SELECT 1 FROM tokens WHERE tokens.signing_kid = keys.kid AND tokens.expires_at >= ?)",
        (now,),
    )


# Keys

_KEY_COLUMNS = (
    "kid, tenant_id, algorithm, private_key, public_jwk, created_at, retired_at, legacy_algorithms"
)


def _key(row: Any) -> KeyRecord:
    return KeyRecord(kid=row[0], tenant=row[1], algorithm=row[2], private_key=row[3],
                     public_jwk=row[4], created_at=row[5], retired_at=row[6],
                     legacy_algorithms=tuple((row[7] or "").split()))


async def key_by_kid(conn: Connection, kid: str) -> KeyRecord | None:
    row = await conn.one(f"SELECT {_KEY_COLUMNS} FROM keys WHERE kid = ?", (kid,))  # noqa: S608
    return None if row is None else _key(row)


async def active_key(conn: Connection, tenant: str, algorithm: str) -> KeyRecord | None:
    row = await conn.one(
        f"SELECT {_KEY_COLUMNS} FROM keys"  # noqa: S608 - constant column list
        " WHERE tenant_id = ? AND algorithm = ? AND retired_at IS NULL",
        (tenant, algorithm),
    )
    return None if row is None else _key(row)


async def insert_key(conn: Connection, key: KeyRecord) -> bool:
    """Store ``key``; False when its tenant has an active key of its algorithm already (the
    schema allows one: ``keys_one_active``)."""
    return await conn.run(
        f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
        " ON CONFLICT DO NOTHING",
        (key.kid, key.tenant, key.algorithm, key.private_key, key.public_jwk, key.created_at,
         key.retired_at, " ".join(key.legacy_algorithms) or None),
    ) == 1


async def retire_active_keys(conn: Connection, tenant: str, algorithm: str,
                             now: float) -> list[str]:
    rows = await conn.all(
        "UPDATE keys SET retired_at = ? WHERE tenant_id = ? AND algorithm = ?"
        " AND retired_at IS NULL RETURNING kid",
        (now, tenant, algorithm),
    )
    return [row[0] for row in rows]


async def keys_of_tenant(conn: Connection, tenant: str) -> list[KeyRecord]:
    rows = await conn.all(
        f"SELECT {_KEY_COLUMNS} FROM keys WHERE tenant_id = ? ORDER BY created_at, kid",  # noqa: S608
        (tenant,),
    )
    return [_key(row) for row in rows]


async def delete_old_failures(conn: Connection, before: float) -> int:
    return await conn.run("DELETE FROM login_failures WHERE failed_at < ?", (before,))


# Login regulation

async def insert_login_failure(conn: Connection, tenant: str, username: str,
                               address: str, now: float) -> None:
    await conn.run(
        "INSERT INTO login_failures (tenant_id, username, address, failed_at) VALUES (?, ?, ?, ?)",
        (tenant, username, address, now),
    )


async def account_failures(conn: Connection, tenant: str, username: str,
                           limit: int) -> list[float]:
    rows = await conn.all(
        "SELECT failed_at FROM login_failures WHERE tenant_id = ? AND username = ?"
        " ORDER BY failed_at DESC LIMIT ?",
        (tenant, username, limit),
    )
    return [row[0] for row in rows]


async def address_failures(conn: Connection, address: str, limit: int) -> list[float]:
    rows = await conn.all(
        "SELECT failed_at FROM login_failures WHERE address = ? ORDER BY failed_at DESC LIMIT ?",
        (address, limit),
    )
    return [row[0] for row in rows]


async def delete_account_failures(conn: Connection, tenant: str, username: str) -> None:
    await conn.run(
        "DELETE FROM login_failures WHERE tenant_id = ? AND username = ?", (tenant, username)
    )


async def update_role(conn: Connection, user_id: int, role: Role, now: float) -> None:
    await conn.run(
        "UPDATE users SET role = ?, updated_at = ? WHERE id = ?", (int(role), now, user_id),
    )


async def live_user_tokens(conn: Connection, user_id: int, now: float) -> list[TokenRecord]:
    rows = await conn.all(
        f"SELECT {_TOKEN_COLUMNS} FROM tokens"  # noqa: S608 - constant column list
        " WHERE user_id = ? AND revoked_at IS NULL AND deleted_at IS NULL AND expires_at > ?"
        " ORDER BY issued_at, jti",
        (user_id, now),
    )
    return [_token(row) for row in rows]


# Audit trail

_AUDIT_COLUMNS = "at, tenant_id, action, actor, subject, address, request_id, detail"


async def insert_audit(conn: Connection, events: Sequence[AuditEvent]) -> None:
    """Append ``events`` to the trail (nothing when there are none)."""
    for event in events:
        await conn.run(
            f"INSERT INTO audit_events ({_AUDIT_COLUMNS})"  # noqa: S608 - constant column list
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event.at, event.tenant, event.action, event.actor, event.subject, event.address,
             event.request_id, json.dumps(dict(event.detail), separators=(",", ":"))),
        )


async def audit_events(conn: Connection, tenant: str, user: str | None, since: float | None,
                       limit: int) -> list[AuditRecord]:
    where: list[str] = ["tenant_id = ?"]
    params: list[object] = [tenant]
    if user is not None:
        where.append("(actor = ? OR subject = ?)")
        params += [user, user]
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    rows = await conn.all(
        f"SELECT seq, {_AUDIT_COLUMNS} FROM audit_events"  # noqa: S608 - constant clauses
        f" WHERE {' AND '.join(where)} ORDER BY at DESC, seq DESC LIMIT ?",
        (*params, limit),
    )
    return [AuditRecord(seq=int(row[0]), event=AuditEvent(
        at=row[1], tenant=row[2], action=row[3], actor=row[4], subject=row[5], address=row[6],
        request_id=row[7], detail=json.loads(row[8]))) for row in rows]


async def delete_old_audit(conn: Connection, before: float) -> int:
    return await conn.run("DELETE FROM audit_events WHERE at < ?", (before,))
