"""SIGHUP: read the config file again and apply what may change while serving.

What changes live, for the next request: ``gateway`` (rules, default policy, identity
header names, upstreams, forward-auth headers), ``tenants`` (new ones are created, per-tenant
overrides apply), ``login`` (regulation, ``reveal_unknown_user``), ``portal`` and
``logging``. The rest (``server``, ``storage``, ``tokens``, ``media``, ``passwords``,
``cache``, ``introspection``, ``audit``, the environment's secrets) is read at start: a
reload that changes it keeps the running values and names the sections in its log line. A
file that does not load (YAML, an unknown key, a bad value) is refused with its one-line
error, and the running config stays.

With ``--workers N`` the supervisor loads the file first (refusing a bad one once, for
all), keeps the result for the workers it starts later, and passes SIGHUP on; each worker
then loads the file itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from gateway.appkeys import CLOCK, LOGINS, SETTINGS, STORE
from gateway.bootstrap import ensure_tenants
from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging
from gateway.storage import StorageError

__all__ = ["RELOADABLE", "load_for_reload", "merge", "reload_config"]

log = logging.getLogger("gateway")

#: The config sections a reload applies.
RELOADABLE = frozenset({"gateway", "tenants", "login", "portal", "logging"})


def merge(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """``running`` with the reloadable sections of ``loaded``, and the names of the other
    sections that differ (they need a restart; their values are never logged)."""
    kept = sorted(name for name in type(running).model_fields
                  if name not in RELOADABLE and getattr(loaded, name) != getattr(running, name))
    update = {name: getattr(loaded, name) for name in RELOADABLE}
    return running.model_copy(update=update), kept


def load_for_reload(path: str | Path | None, running: Config) -> tuple[Config, list[str]] | None:
    """The merged config, or None (logged) when the file does not load."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        log.error("config reload refused (pid %d): %s; the running config stays", os.getpid(), exc)
        return None
    return merge(running, loaded)


async def reload_config(app: web.Application, path: str | Path | None) -> bool:
    """Reload ``app``'s config from ``path`` (see the module docstring); True when applied."""
    settings = app[SETTINGS]
    async with settings.reloading:
        merged = load_for_reload(path, settings.config)
        if merged is None:
            return False
        config, kept = merged
        try:
            await ensure_tenants(app[STORE], config, app[CLOCK]())
        except StorageError as exc:
            log.error("config reload refused (pid %d): cannot create its tenants: %s",
                      os.getpid(), exc)
            return False
        settings.replace(config)
        app[LOGINS].set_regulation(config.login.regulation)
        configure_logging(config.logging.level, config.logging.format)
        restart = f"; a restart applies {', '.join(kept)}" if kept else ""
        log.info("config reloaded (pid %d)%s", os.getpid(), restart)
        return True
