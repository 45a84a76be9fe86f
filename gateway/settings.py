"""The running config of an app, and what is compiled from it, in one object that a reload
replaces whole.

aiohttp wants an app's state left alone once it serves, so the app holds one ``Settings``
(``app[SETTINGS]``) for its life and a SIGHUP reload (``gateway.reload``) changes what the
object points to. ``replace`` compiles everything first and then rebinds the attributes
with no ``await`` in between: a request, which runs on the same event loop, sees the old
settings or the new ones, never a mix.
"""

from __future__ import annotations

import asyncio

from gateway.config import Config
from gateway.portal.redirects import RedirectPolicy
from gateway.proxy.rules import RuleBook

__all__ = ["Settings"]


class Settings:
    """``config`` as requests see it, with the gateway rules and portal redirects compiled."""

    __slots__ = ("config", "redirects", "reloading", "rulebook")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rulebook, self.redirects = _compiled(config)
        #: Held by a reload (``gateway.reload``): two SIGHUPs in a row apply in turn.
        self.reloading = asyncio.Lock()

    def replace(self, config: Config) -> None:
        """Serve ``config`` from the next request on."""
        rulebook, redirects = _compiled(config)
        self.config, self.rulebook, self.redirects = config, rulebook, redirects


def _compiled(config: Config) -> tuple[RuleBook, RedirectPolicy]:
    gateway = config.gateway
    return (RuleBook(gateway.rules, gateway.default_policy, config.media.url_pattern),
            RedirectPolicy(config.portal.allowed_redirects))
