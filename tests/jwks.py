"""Reading the served JWKS as a downstream verifier does, with PyJWT."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt


async def key_set(client: Any, tenant: str | None = None) -> pyjwt.PyJWKSet:
    """The tenant's ``/.well-known/jwks.json`` as PyJWT's key set."""
    query = {} if tenant is None else {"tenant": tenant}
    response = await client.get("/.well-known/jwks.json", params=query)
    assert response.status == 200
    return pyjwt.PyJWKSet.from_dict(await response.json())


def verified_by_pyjwt(keys: pyjwt.PyJWKSet, token: str) -> dict[str, Any]:
    """PyJWT's reading of a token: key by ``kid`` from the set, algorithm from that key."""
    header = pyjwt.get_unverified_header(token)
    key = keys[header["kid"]]
    claims: dict[str, Any] = pyjwt.decode(token, key, algorithms=[header["alg"]],
                                          issuer="gateway")
    return claims


def kid_of(token: str) -> str:
    return str(pyjwt.get_unverified_header(token)["kid"])
