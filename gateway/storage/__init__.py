"""Persistence: the ``Store`` interface, its records, and the SQLite implementation."""

from gateway.storage.base import KeyRecord, NewToken, NewUser, Store, TokenRecord, User
from gateway.storage.migrations import MigrationError
from gateway.storage.sqlite import SQLiteStore, open_sqlite_store

__all__ = [
    "KeyRecord",
    "MigrationError",
    "NewToken",
    "NewUser",
    "SQLiteStore",
    "Store",
    "TokenRecord",
    "User",
    "open_sqlite_store",
]
