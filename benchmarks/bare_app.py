"""The bare aiohttp baseline of benchmarks/hot_path.py: ``/auth`` answers 200, empty body.

Usage: python benchmarks/bare_app.py PORT

One process, ``web.run_app`` with its defaults: logging is not configured, so aiohttp's
access logger is disabled and writes nothing. The handler does one header lookup, the
least any forward-auth endpoint must do.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def auth(request: web.Request) -> web.Response:
    request.headers.get("Authorization")
    return web.Response(status=200)


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/auth", auth)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
