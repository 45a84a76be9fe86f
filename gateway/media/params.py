"""Media download tokens (seed 000): parameters, claims and restrictions. Pure functions.

``parse_request`` turns a decoded body (JSON, or PHP-bracket form via ``forms``) plus the
tenant's defaults into ``MediaTokenRequest``, raising ``BadRequest`` that names the field.
``build_claims`` makes the token's claims; ``MediaService.check`` (``media.service``)
enforces them at use, in the order docs/media-tokens.md gives.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config
from gateway.errors import BadRequest
from gateway.netaddr import IPAddress, IPNetwork, in_networks, parse_network

__all__ = [
    "MediaTokenRequest",
    "address_allowed",
    "build_claims",
    "defaults_for",
    "parse_ranges",
    "parse_request",
]

SUBJECT = "Media download"
FIELDS = ("unique", "kid", "ipRange", "user", "media", "start", "expire", "algorithm")
_KID = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
MAX_RANGES = 100
MAX_ROLES = 50


@dataclass(frozen=True)
class MediaTokenRequest:
    """A validated ``POST /token`` body with every default filled in."""

    unique: bool
    kid: str
    ip_ranges: tuple[IPNetwork, ...]
    username: str | None
    roles: tuple[str, ...]
    media: dict[str, str | int | float | bool] = field(default_factory=dict)
    start: int = 0
    expire: int = 3600
    algorithm: str = "RS256"


def defaults_for(config: Config, tenant: str) -> dict[str, Any]:
    """``media.token`` merged with the tenant's override from config.yaml."""
    base = config.media.token.model_dump()
    tenant_config = config.tenants.get(tenant)
    if tenant_config is not None:
        override = tenant_config.media.token.model_dump(exclude_none=True)
        base.update(override)
    return base


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadRequest(f"{name} must be a boolean (true/false, 1/0)")


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be a whole number of seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    raise BadRequest(f"{name} must be a whole number of seconds")


def _network(name: str, value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an IP address or CIDR string")
    try:
        return parse_network(value)
    except ValueError:
        raise BadRequest(f"{name} is not an IP address or CIDR: {value[:64]!r}") from None


def _ranges(value: object) -> tuple[IPNetwork, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise BadRequest("ipRange must be a list of IP addresses or CIDR ranges")
    if len(items) > MAX_RANGES:
        raise BadRequest(f"ipRange has more than {MAX_RANGES} entries")
    return tuple(_network(f"ipRange[{index}]", item) for index, item in enumerate(items))


def _user(value: object) -> tuple[str | None, tuple[str, ...]]:
    if value in (None, "", []):
        return None, ()
    if not isinstance(value, dict):
        raise BadRequest("user must be an object with username and/or roles")
    unknown = set(value) - {"username", "roles"}
    if unknown:
        raise BadRequest(f"user.{sorted(unknown)[0]} is not a known field (username, roles)")
    username = value.get("username")
    if username is not None and (not isinstance(username, str) or not username.strip()
                                 or len(username) > 256):
        raise BadRequest("user.username must be a non-blank string")
    roles_value = value.get("roles", [])
    roles_list = [roles_value] if isinstance(roles_value, str) else roles_value
    if not isinstance(roles_list, list) or len(roles_list) > MAX_ROLES or not all(
        isinstance(role, str) and role.strip() and len(role) <= 64 for role in roles_list
    ):
        raise BadRequest("user.roles must be a list of role names")
    return username, tuple(roles_list)


def _media(value: object) -> dict[str, str | int | float | bool]:
    if value in (None, "", []):
        return {}
    if not isinstance(value, dict):
        raise BadRequest("media must be an object, e.g. {\"id\": 28}")
    media: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool) or (isinstance(item, str) and len(item) > 512):
            raise BadRequest(f"media.{key} must be a short string or a number")
        media[str(key)] = item
    if "id" in media:
        media_id = media["id"]
        if isinstance(media_id, bool) or not str(media_id).strip():
            raise BadRequest("media.id must be a string or a number")
        media["id"] = str(media_id)
    return media


def parse_request(body: Mapping[str, Any], defaults: Mapping[str, Any],
                  allowed_algorithms: Sequence[str]) -> MediaTokenRequest:
    """Validate a ``POST /token`` body; unset fields take ``defaults``."""
    unknown = [name for name in body if name not in FIELDS]
    if unknown:
        raise BadRequest(f"{unknown[0]} is not a known parameter ({', '.join(FIELDS)})")
    unique = _boolean("unique", body.get("unique", defaults["unique"]))
    kid_value = body.get("kid")
    if kid_value is None:
        kid = uuid.uuid4().hex
    elif isinstance(kid_value, str) and _KID.fullmatch(kid_value):
        kid = kid_value
    else:
        raise BadRequest("kid must be 1 to 128 letters, digits or . _ : ~ -")
    ranges = _ranges(body["ipRange"]) if "ipRange" in body else tuple(
        _network("ipRange", str(item)) for item in defaults["ipRange"]
    )
    username, roles = _user(body.get("user"))
    media = _media(body.get("media"))
    start = _integer("start", body.get("start", defaults["start"]))
    expire = _integer("expire", body.get("expire", defaults["expire"]))
    if start < 0:
        raise BadRequest("start must not be negative")
    if expire <= 0:
        raise BadRequest("expire must be greater than 0")
    if start >= expire:
        raise BadRequest("start must be smaller than expire")
    if expire > 10 * 365 * 86400:
        raise BadRequest("expire must be at most 10 years")
    algorithm = body.get("algorithm", defaults["algorithm"])
    if not isinstance(algorithm, str) or algorithm not in allowed_algorithms:
        raise BadRequest(f"algorithm must be one of {', '.join(allowed_algorithms)}")
    return MediaTokenRequest(unique=unique, kid=kid, ip_ranges=ranges, username=username,
                             roles=roles, media=media, start=start, expire=expire,
                             algorithm=algorithm)


def build_claims(request: MediaTokenRequest, *, jti: str, tenant: str, issuer: str,
                 issued_at: int) -> dict[str, Any]:
    """The claims of a media token (docs/media-tokens.md): nbf = iat + start, exp = iat + expire."""
    user: dict[str, Any] = {}
    if request.username is not None:
        user["username"] = request.username
    if request.roles:
        user["roles"] = list(request.roles)
    return {
        "token_type": "media",
        "sub": SUBJECT,
        "jti": jti,
        "kid": request.kid,
        "tenant": tenant,
        "iss": issuer,
        "iat": issued_at,
        "nbf": issued_at + request.start,
        "exp": issued_at + request.expire,
        "context": {
            "date": {"created_at": issued_at, "start": issued_at + request.start},
            "rangeip": [str(network) for network in request.ip_ranges],
            "unique": request.unique,
            "user": user,
            "media": request.media,
        },
    }


def parse_ranges(ranges: Sequence[object]) -> tuple[IPNetwork, ...] | None:
    """A token's ``rangeip`` as networks, parsed once; None when it restricts nothing.

    Entries that do not parse are skipped, so a list of only unreadable entries refuses
    every address rather than allowing any.
    """
    if not ranges:
        return None
    networks: list[IPNetwork] = []
    for text in ranges:
        try:
            networks.append(parse_network(str(text)))
        except ValueError:
            continue
    return tuple(networks)


def address_allowed(address: IPAddress | None, networks: tuple[IPNetwork, ...] | None) -> bool:
    """True when ``networks`` is None (no restriction) or ``address`` lies in one of them."""
    if networks is None:
        return True
    return address is not None and in_networks(address, networks)
