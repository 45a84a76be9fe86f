"""First start: the config's tenants, the ``default`` tenant and the root user."""

from __future__ import annotations

import secrets
import sys
from typing import TextIO

from gateway.config import Config
from gateway.passwords import PasswordHasher
from gateway.storage import NewUser, Role, Store

__all__ = ["bootstrap", "ensure_tenants"]


async def ensure_tenants(store: Store, config: Config, now: float) -> None:
    """Create ``default`` and the tenants named in config.yaml when they are missing."""
    for tenant in ("default", *config.tenants):
        if not await store.tenant_exists(tenant):
            await store.add_tenant(tenant, now)


async def bootstrap(store: Store, config: Config, hasher: PasswordHasher, now: float,
                    out: TextIO = sys.stderr) -> None:
    """When no root user exists yet, create one in ``default`` (which must exist).

    The root password is ``$GATEWAY_ADMIN_PASSWORD``, else a random one printed once to
    ``out``: the only time the gateway ever prints a password.
    """
    if await store.has_root():
        return
    admin = config.admin
    if await store.get_user("default", admin.username) is not None:
        print(f"gateway: warning: no root user, and {admin.username!r} is taken by another "
              f"user; create one with 'gateway users add NAME --role root'", file=out, flush=True)
        return
    generated = admin.password is None
    password = secrets.token_urlsafe(18) if admin.password is None else admin.password.get_secret_value()
    created = await store.bootstrap_root(NewUser(
        tenant="default", username=admin.username, password_hash=await hasher.hash(password),
        email=admin.email, role=Role.ROOT, roles=("ROLE_ADMIN",),
    ), now)
    if created and generated:
        print(
            f"gateway: created root user {admin.username!r} in tenant 'default' with password: "
            f"{password}\ngateway: this password is shown once; change it with "
            f"'gateway users passwd {admin.username}'",
            file=out, flush=True,
        )
