"""Where a sign-in may send the browser on: ``rd`` without an open redirect.

A target is followed only when it is an absolute ``http``/``https`` URL, written plainly
(printable ASCII, no backslash, no userinfo, no percent sign in the authority, a valid
port), and one of ``portal.allowed_redirects`` matches its normalised form from the
start, over at least its whole ``scheme://host[:port]``. Everything a browser would read
differently from a URL parser (``//evil``, ``/\\evil``, ``https:evil``,
``http://good@evil``, ``https://good%2eevil``, tabs, newlines, leading spaces) is refused
before any pattern sees it, and a pattern such as ``^https://app\\.example\\.com`` cannot
accept ``https://app.example.com.evil.net`` since it does not cover that host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote, urlsplit

__all__ = ["RedirectPolicy", "normalise_target", "sign_in_url"]

_MAX_LENGTH = 4096
_PLAIN = re.compile(r"[!-~]+")  # printable ASCII without space
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")


def normalise_target(text: str) -> tuple[str, int] | None:
    """``text`` as ``scheme://host[:port]/path?query#fragment`` (scheme and host lower-cased,
    the default port dropped) and the length of its ``scheme://host[:port]``; None when it
    is not a plainly written absolute http(s) URL."""
    if not text or len(text) > _MAX_LENGTH or not _PLAIN.fullmatch(text) or "\\" in text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not text[len(scheme) + 1:].startswith("//"):
        return None
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc:
        return None
    host = (parts.hostname or "").lower()
    if not host or not _HOST.fullmatch(host if ":" not in host else f"[{host}]"):
        return None
    if ":" in host:
        host = f"[{host}]"
    origin = f"{scheme}://{host}"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    path = parts.path or "/"
    url = origin + path
    if parts.query:
        url += "?" + parts.query
    if parts.fragment:
        url += "#" + parts.fragment
    return url, len(origin)


class RedirectPolicy:
    """``portal.allowed_redirects``, compiled once: which targets a sign-in may go on to."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns: Sequence[re.Pattern[str]] = tuple(re.compile(p) for p in patterns)

    def target(self, rd: object) -> str | None:
        """The normalised ``rd`` when a pattern allows it, else None."""
        if not isinstance(rd, str):
            return None
        normalised = normalise_target(rd)
        if normalised is None:
            return None
        url, origin_length = normalised
        for pattern in self._patterns:
            match = pattern.match(url)
            if match is not None and match.end() >= origin_length:
                return url
        return None


def sign_in_url(portal_url: str, target: str) -> str:
    """The portal's sign-in page that comes back to ``target`` afterwards."""
    return f"{portal_url}/login?rd={quote(target, safe='')}"
