"""Where the files that ship with the package are: in the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["migrations_dir", "openapi_path"]

_PACKAGE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """The numbered .sql files: ``gateway/migrations`` in a wheel, ``migrations/`` in a checkout."""
    packaged = _PACKAGE / "migrations"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "migrations"


def openapi_path() -> Path:
    """The OpenAPI 3.1 description served at ``GET /openapi.yaml``."""
    return _PACKAGE / "openapi.yaml"
