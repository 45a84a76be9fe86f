"""Where the files that ship with the package are: in the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["migrations_dir", "openapi_path", "portal_stylesheet_path"]

_PACKAGE = Path(__file__).resolve().parent


def migrations_dir(dialect: Literal["sqlite", "postgresql"]) -> Path:
    """The numbered .sql files of ``dialect``: under ``gateway/migrations`` in a wheel,
    ``migrations/`` in a checkout."""
    packaged = _PACKAGE / "migrations" / dialect
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "migrations" / dialect


def openapi_path() -> Path:
    """The OpenAPI 3.1 description served at ``GET /openapi.yaml``."""
    return _PACKAGE / "openapi.yaml"


def portal_stylesheet_path() -> Path:
    """The sign-in portal's stylesheet (its templates load through ``jinja2.PackageLoader``)."""
    return _PACKAGE / "static" / "portal.css"
