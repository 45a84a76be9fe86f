"""Which ``gateway.upstreams`` entry a path belongs to, and the router resource that sends
those paths to the built-in proxy.

The resource reads the prefixes of the running config (the app's ``Settings``) on every match
instead of one route per prefix fixed at start, so a SIGHUP reload can add, change or
remove upstreams. It is registered after every other route: a prefix never hides the
gateway's own endpoints, and a path that matches no prefix falls through to the router's
usual 404 or 405.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import ResourceRoute, UrlMappingMatchInfo, _InfoDict
from yarl import URL

from gateway.config import Upstream
from gateway.settings import Settings

__all__ = ["UpstreamResource", "find_upstream"]


def find_upstream(upstreams: Sequence[Upstream], path: str) -> Upstream | None:
    """The first upstream whose prefix starts ``path`` (config order), or None."""
    for upstream in upstreams:
        if path.startswith(upstream.prefix):
            return upstream
    return None


class UpstreamResource(web.AbstractResource):
    """Matches any method on a path under a configured upstream prefix; ``handler`` proxies."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        super().__init__(name="upstreams")
        self._settings = settings  # the app's, which a reload changes in place
        self._route = ResourceRoute("*", handler, self)

    @property
    def canonical(self) -> str:
        return "{gateway.upstreams}"  # the route label of proxied requests in the metrics

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("the upstreams resource builds no URL: its paths are the client's")

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        if find_upstream(self._settings.config.gateway.upstreams, request.path) is None:
            return None, set()
        return UrlMappingMatchInfo({}, self._route), {"*"}

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("the upstreams resource cannot be mounted under a prefix")

    def get_info(self) -> _InfoDict:
        return {"prefix": "gateway.upstreams of the running config"}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        return iter([self._route])
