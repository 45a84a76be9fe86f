"""The three request body encodings every body-reading endpoint accepts, for parametrised tests."""

from __future__ import annotations

from typing import Any

import aiohttp

__all__ = ["ENCODINGS", "encoded"]

ENCODINGS = ("json", "urlencoded", "multipart")


def encoded(encoding: str, fields: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``client.post`` that send ``fields`` in ``encoding``."""
    if encoding == "json":
        return {"json": fields}
    if encoding == "urlencoded":
        return {"data": fields}
    if encoding == "multipart":
        return {"data": aiohttp.FormData(list(fields.items()), default_to_multipart=True)}
    raise ValueError(f"unknown encoding {encoding!r}")
