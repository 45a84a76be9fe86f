"""Persistence: the ``Store`` interface, its records and errors, and its two backends."""

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
    StorageError,
    StorageUnavailable,
    Store,
    TokenRecord,
    User,
)
from gateway.storage.changes import ChangeFeed
from gateway.storage.migrations import MigrationError
from gateway.storage.sqlite import SQLiteStore, open_sqlite_store

__all__ = [
    "AlreadyExists",
    "AuditEvent",
    "AuditRecord",
    "Change",
    "ChangeFeed",
    "KeyRecord",
    "MigrationError",
    "NewToken",
    "NewUser",
    "NoSuchParent",
    "Revocation",
    "Role",
    "SQLiteStore",
    "Scope",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "TokenRecord",
    "User",
    "open_sqlite_store",
]
