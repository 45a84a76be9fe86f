"""Persistence: the ``Store`` interface, its records, and the SQLite implementation."""

from gateway.storage.base import (
    Change,
    KeyRecord,
    NewToken,
    NewUser,
    Revocation,
    Role,
    Scope,
    Store,
    TokenRecord,
    User,
)
from gateway.storage.changes import ChangeFeed
from gateway.storage.migrations import MigrationError
from gateway.storage.sqlite import SQLiteStore, open_sqlite_store

__all__ = [
    "Change",
    "ChangeFeed",
    "KeyRecord",
    "MigrationError",
    "NewToken",
    "NewUser",
    "Revocation",
    "Role",
    "SQLiteStore",
    "Scope",
    "Store",
    "TokenRecord",
    "User",
    "open_sqlite_store",
]
