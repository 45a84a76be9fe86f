"""Answers given before the app: a request as the caches see it, and an answer ready to send.

``/auth`` and token verification in their common cases are decided by the identity cache
alone (``forward_auth.CachedAnswers``, ``access_refresh.CachedVerify``). For those, the
request object, handler task and response object that aiohttp makes per request cost
more than the decision itself, so ``runner._Connection`` asks for an early answer as soon
as a request is parsed on an idle keep-alive connection and writes it itself; for any
other request (``runner.GatewayRunner``) the same question is asked before the router,
and the answer goes out as a ``web.Response``. Either way the answerers see an
``Incoming`` and give an ``Early`` answer or None (ask the full path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from multidict import CIMultiDictProxy
from yarl import URL

from gateway.netaddr import IPAddress

__all__ = ["MAX_BODY", "Early", "Incoming", "Ready", "UnsafeHeader"]

#: Largest body read for an early answer (a verify body is a token and a few bytes of JSON).
MAX_BODY = 8192


class Incoming(NamedTuple):
    """What an early answer may read of a request (a tuple: made for every request that
    may have one, and cheaper to make than a dataclass)."""

    method: str
    url: URL  # relative, as parsed: ``url.path`` is decoded, ``url.query`` parsed
    raw_path: str  # the request target as sent, query included
    headers: CIMultiDictProxy[str]
    peer: str | None  # the connection's remote address, as ``web.BaseRequest.remote``
    body: bytes | None = None  # a complete body, when an answerer reads it (``reads``)


class UnsafeHeader(ValueError):
    """A header name or value with a control character (it could break the header block)."""


#: Headers an early answer writes itself (``runner._Connection``).
_FRAMING = frozenset({"x-request-id", "content-length", "date", "server", "connection",
                      "transfer-encoding"})
#: What aiohttp's writer refuses in a header name or value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Ready:
    """An answer's headers (besides ``X-Request-ID`` and the framing ones) and body, as a
    mapping for a ``web.Response`` and as the header lines to write. Build it once per
    answer that repeats (``of``), not per request."""

    headers: dict[str, str]
    lines: bytes
    body: bytes = b""

    @classmethod
    def of(cls, headers: dict[str, str], body: bytes = b"") -> Ready:
        """Raises ``UnsafeHeader`` for a name or value with a control character (which
        aiohttp refuses to write too), or a name the answer sets itself."""
        for name, value in headers.items():
            if _CONTROL.search(name) or _CONTROL.search(value) or ":" in name \
                    or name.lower() in _FRAMING:
                raise UnsafeHeader("a header that cannot be sent as it is")
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        try:
            return cls(headers, lines.encode("utf-8"), body)
        except UnicodeEncodeError:  # a lone surrogate
            raise UnsafeHeader("a header that cannot be sent as it is") from None


class Early(NamedTuple):
    """A 200 decided before the app, with what the access line and the metrics record."""

    ready: Ready
    request_id: str
    client: IPAddress | None
    tenant: str
    route: str  # for the metrics: the route's pattern
