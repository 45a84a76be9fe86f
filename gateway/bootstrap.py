"""First start: the config's tenants, the ``default`` tenant and the root user."""

from __future__ import annotations

import secrets
import sys
from typing import TextIO

from gateway.config import Config
from gateway.passwords import PasswordHasher
from gateway.storage import NewUser, Store

__all__ = ["bootstrap"]

ROOT_ROLE = 0


async def bootstrap(store: Store, config: Config, hasher: PasswordHasher, now: float,
                    out: TextIO = sys.stderr) -> None:
    """Create missing config tenants; on an empty database, the root user.

    The root password is ``$GATEWAY_ADMIN_PASSWORD``, else a random one printed once to
    ``out``: the only time the gateway ever prints a password.
    """
    for tenant in ("default", *config.tenants):
        if not await store.tenant_exists(tenant):
            await store.add_tenant(tenant, now)
    if await store.count_users() > 0:
        return
    admin = config.admin
    generated = admin.password is None
    password = secrets.token_urlsafe(18) if admin.password is None else admin.password.get_secret_value()
    created = await store.bootstrap_root(NewUser(
        tenant="default", username=admin.username, password_hash=await hasher.hash(password),
        email=admin.email, role=ROOT_ROLE, roles=("ROLE_ADMIN",),
    ), now)
    if created and generated:
        print(
            f"gateway: created root user {admin.username!r} in tenant 'default' with password: "
            f"{password}\ngateway: this password is shown once; change it with "
            f"'gateway users passwd {admin.username}'",
            file=out, flush=True,
        )
