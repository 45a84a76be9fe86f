"""Every route of the gateway, in one table."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import SETTINGS
from gateway.handlers import (
    access_refresh,
    admin,
    forward_auth,
    introspection,
    login,
    media,
    named_tokens,
    ops,
    portal,
    proxy,
)
from gateway.proxy.upstreams import UpstreamResource

__all__ = ["setup_routes"]

NAMED = "/api/v1alpha/token"


def setup_routes(app: web.Application) -> None:
    """Register the handlers of every API family."""
    app.router.add_routes([
        # Seed 003
        web.post("/login", login.login),
        web.post("/logout", login.logout),
        # Seeds 001/002: with and without the trailing slash, as clients send both.
        web.post(NAMED, named_tokens.create),
        web.post(f"{NAMED}/", named_tokens.create),
        web.get(NAMED, named_tokens.list_tokens, allow_head=False),
        web.get(f"{NAMED}/", named_tokens.list_tokens, allow_head=False),
        web.get(NAMED + "/{token_id}", named_tokens.show, allow_head=False),
        web.get(NAMED + "/{token_id}/", named_tokens.show, allow_head=False),
        web.delete(NAMED + "/{token_id}", named_tokens.delete),
        web.delete(NAMED + "/{token_id}/", named_tokens.delete),
        # Seed 004, also without the trailing slash: behind Django's APPEND_SLASH SimpleJWT
        # answers a POST there with a redirect, which clients follow as a GET, body lost.
        web.post("/api/token/", access_refresh.obtain),
        web.post("/api/token", access_refresh.obtain),
        web.post("/api/token/refresh/", access_refresh.refresh),
        web.post("/api/token/refresh", access_refresh.refresh),
        web.post("/api/token/verify/", access_refresh.verify),
        web.post("/api/token/verify", access_refresh.verify),
        web.post("/api/token/blacklist/", access_refresh.blacklist),
        web.post("/api/token/blacklist", access_refresh.blacklist),
        # Seed 000: media download tokens
        web.post("/token", media.issue),
        web.post("/token/check", media.check),
        web.get("/.well-known/jwks.json", media.jwks, allow_head=False),
        # Introspection, revocation and the metadata naming them (RFC 7662, 7009, 8414)
        web.post("/introspect", introspection.introspect),
        web.post("/revoke", introspection.revoke),
        web.get("/.well-known/oauth-authorization-server", introspection.metadata,
                allow_head=False),
        # Administration
        web.get("/admin/users", admin.list_users, allow_head=False),
        web.post("/admin/users", admin.create_user),
        web.get("/admin/users/{username}", admin.show_user, allow_head=False),
        web.patch("/admin/users/{username}", admin.update_user),
        web.delete("/admin/users/{username}", admin.delete_user),
        web.get("/admin/users/{username}/tokens", admin.user_tokens, allow_head=False),
        web.delete("/admin/users/{username}/tokens", admin.revoke_tokens),
        web.get("/admin/tenants", admin.list_tenants, allow_head=False),
        web.post("/admin/tenants", admin.add_tenant),
        web.get("/admin/keys", admin.keys, allow_head=False),
        web.post("/admin/keys/rotate", admin.rotate_keys),
        web.get("/admin/audit", admin.audit, allow_head=False),
        # Operations
        web.get("/healthz", ops.healthz, allow_head=False),
        web.get("/readyz", ops.readyz, allow_head=False),
        web.get("/metrics", ops.metrics, allow_head=False),
        web.get("/openapi.yaml", ops.openapi, allow_head=False),
        # Reverse-proxy gateway
        web.route("*", "/auth", forward_auth.forward_auth),
        # Browser sign-in portal (404 unless portal.enabled)
        web.get("/portal/login", portal.login_form),
        web.post("/portal/login", portal.login),
        web.get("/portal/", portal.home),
        web.post("/portal/logout", portal.logout),
        web.post("/portal/tokens", portal.create_token),
        web.post("/portal/tokens/{token_id}/delete", portal.delete_token),
        web.get("/portal/style.css", portal.stylesheet),
    ])
    # Upstreams last: a prefix never hides the gateway's own endpoints. The prefixes are
    # read from the running config on each match, so a reload can change them.
    app.router.register_resource(UpstreamResource(app[SETTINGS], proxy.proxy))
