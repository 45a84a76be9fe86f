"""config.yaml: loading, ``${ENV}`` interpolation and validation (docs/configuration.md).

``load_config`` is the only place that reads the environment: the secret key and the
bootstrap admin come from ``$GATEWAY_*`` variables into the ``Config`` object, so
``create_app(config)`` depends on nothing but its argument.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.durations import parse_duration
from gateway.netaddr import IPNetwork, parse_network
from gateway.usernames import InvalidUsername, normalize_username

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]

DEFAULT_CONFIG_PATH = "config.yaml"
#: A tenant id: ASCII letters, digits, '.', '_', '-' (``\Z``, not ``$``: no trailing newline slips by).
TENANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """A configuration problem, rendered as one line: the key, then what is wrong."""


def _duration(value: object) -> int:
    return parse_duration(value)


def _network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address or CIDR string, got {value!r}")
    try:
        return parse_network(value)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR: {value!r}") from None


def _integer(value: object) -> object:
    # Lax validation turns YAML's true/false into 1/0; a port of "true" is a mistake.
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {str(value).lower()}")
    return value


Duration = Annotated[int, BeforeValidator(_duration)]
Int = Annotated[int, BeforeValidator(_integer)]
Network = Annotated[IPNetwork, BeforeValidator(_network)]
Policy = Literal["bypass", "authenticated", "deny"]
MediaAlgorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "HS256"]
MEDIA_ALGORITHMS: tuple[MediaAlgorithm, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "HS256")
#: User tokens: HS256 with the shared secret, or RS256/ES256 with the tenant's key.
UserTokenAlgorithm = Literal["HS256", "RS256", "ES256"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Int = Field(25441, ge=1, le=65535)
    #: Processes sharing the port, or "auto": one per CPU core, resolved to a number here
    #: (``--workers`` goes through this same validation).
    workers: Int = Field(1, ge=1, le=64)
    trusted_proxies: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    #: Largest request body accepted, in bytes (aiohttp's client_max_size).
    max_body_size: Int = Field(1024 * 1024, ge=1024)
    #: Seconds given to in-flight requests on SIGTERM.
    shutdown_timeout: Duration = 10

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().lower() == "auto":
                # The cores this process may run on (3.13+), else all of the machine's;
                # capped at the largest number allowed.
                count: int | None = getattr(os, "process_cpu_count", os.cpu_count)()
                return min(max(count or 1, 1), 64)
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"expected a number from 1 to 64 or auto, got {value!r}") from None
        return value


class StorageConfig(_Section):
    """Where the gateway keeps its state: a SQLite file (default) or a PostgreSQL database.

    ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``postgresql://user:password@host:5432/database`` (``$GATEWAY_STORAGE_URL`` wins over
    the file). A ``sqlite:`` url sets ``path``; ``path`` alone keeps working.
    """

    path: Path = Path("./data/gateway.db")
    url: str | None = None
    #: SQLite: "full" makes every committed write survive power loss, not only a crash.
    synchronous: Literal["full", "normal"] = "full"
    #: SQLite: how long a writer waits for another process's lock; PostgreSQL: how long a
    #: request waits for a pooled connection (and for a new connection to open).
    busy_timeout: Duration = 5
    #: PostgreSQL: connections in each process's pool, at most.
    pool_size: Int = Field(10, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("url") in (None, ""):
            return data
        url = data["url"]
        if not isinstance(url, str):
            raise ValueError("url: expected a string")
        scheme, separator, rest = url.partition("://")
        scheme = scheme.lower()
        if scheme == "sqlite" and separator:
            if not rest.startswith("/") or rest == "/":
                raise ValueError("url: write sqlite:///relative/path.db or sqlite:////absolute/path.db")
            return {**data, "path": rest[1:], "url": None}
        if scheme in ("postgresql", "postgres") and separator:
            return data  # asyncpg reads the rest, libpq-style (an empty host: the local socket)
        # The url may hold a password: never echo it.
        raise ValueError("url: expected sqlite:///path or postgresql://user@host:5432/db")

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which ``Store`` implementation the config asks for."""
        return "postgresql" if self.url is not None else "sqlite"


class TokensConfig(_Section):
    issuer: str = Field("gateway", min_length=1)
    access_lifetime: Duration = 300
    refresh_lifetime: Duration = 86400
    rotate_refresh_tokens: bool = False
    blacklist_after_rotation: bool = True
    session_lifetime: Duration = 86400
    api_token_max_life: Duration = 365 * 86400
    leeway: Duration = 0
    #: What user tokens are signed with: HS256 (the shared secret) or the tenant's RS256 or
    #: ES256 key, published in the JWKS. Only tokens of this algorithm are accepted.
    algorithm: UserTokenAlgorithm = "HS256"

    @field_validator(
        "access_lifetime", "refresh_lifetime", "session_lifetime", "api_token_max_life"
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be longer than 0 seconds")
        return value


class RegulationConfig(_Section):
    """Brute-force regulation of password checks (the policy is in the README)."""

    #: Failures of one login (username or email, as typed, case-folded) within
    #: ``find_time`` that ban it for ``ban_time``; 0 turns regulation off (both counters).
    max_retries: Int = Field(5, ge=0)
    #: Failures from one client address, whatever the logins, within ``find_time`` that ban
    #: the address for ``ban_time``: larger, so that users behind one NAT address who each
    #: mistype now and then are not banned together; 0 turns only this counter off.
    max_retries_per_address: Int = Field(50, ge=0)
    find_time: Duration = 120
    ban_time: Duration = 300


class LoginConfig(_Section):
    reveal_unknown_user: bool = False
    regulation: RegulationConfig = RegulationConfig()


class PasswordsConfig(_Section):
    """argon2id cost; the floor is OWASP's minimum (m=19 MiB, t=2, p=1)."""

    memory_cost_kib: Int = Field(19456, ge=19456)
    time_cost: Int = Field(2, ge=2)
    parallelism: Int = Field(1, ge=1, le=16)


class MediaTokenDefaults(_Section):
    start: Int = Field(0, ge=0)
    expire: Int = Field(3600, gt=0)
    unique: bool = True
    ipRange: tuple[Network, ...] = ()
    algorithm: MediaAlgorithm = "RS256"

    @model_validator(mode="after")
    def _start_before_expire(self) -> MediaTokenDefaults:
        if self.start >= self.expire:
            raise ValueError("start must be smaller than expire")
        return self


class MediaTokenOverride(_Section):
    start: Int | None = Field(None, ge=0)
    expire: Int | None = Field(None, gt=0)
    unique: bool | None = None
    ipRange: tuple[Network, ...] | None = None
    algorithm: MediaAlgorithm | None = None


class MediaConfig(_Section):
    token: MediaTokenDefaults = MediaTokenDefaults()
    algorithms: tuple[MediaAlgorithm, ...] = MEDIA_ALGORITHMS
    url_pattern: str = r"^/media/(?P<id>[^/?]+)"

    @field_validator("url_pattern")
    @classmethod
    def _compiles_with_id(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "id" not in compiled.groupindex:
            raise ValueError("must have a named group (?P<id>...)")
        return value

    @model_validator(mode="after")
    def _default_allowed(self) -> MediaConfig:
        if self.token.algorithm not in self.algorithms:
            raise ValueError(f"token.algorithm {self.token.algorithm} is not in algorithms")
        return self


class TenantMediaOverride(_Section):
    token: MediaTokenOverride = MediaTokenOverride()


class TenantConfig(_Section):
    media: TenantMediaOverride = TenantMediaOverride()


class GatewayRule(_Section):
    path: str
    methods: tuple[str, ...] | None = None
    policy: Policy = "authenticated"
    roles: tuple[str, ...] | None = None
    tenant: str | None = None

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(m.upper() for m in value)


class GatewayHeaders(_Section):
    user: str = "X-Auth-User"
    roles: str = "X-Auth-Roles"
    tenant: str = "X-Auth-Tenant"
    token_id: str = "X-Auth-Token-Id"


class Upstream(_Section):
    prefix: str = Field(pattern=r"^/")
    url: str = Field(pattern=r"^https?://[^/\s]+")


class ForwardAuthConfig(_Section):
    #: Where ``/auth`` reads the original request: ``nginx`` only X-Original-URI/-Method,
    #: ``forwarded`` only X-Forwarded-Uri/-Method (Traefik, Caddy), ``auto`` either, and
    #: a 403 when both are sent and disagree (one of them is then the client's).
    headers: Literal["auto", "nginx", "forwarded"] = "auto"


class GatewayConfig(_Section):
    default_policy: Policy = "authenticated"
    rules: tuple[GatewayRule, ...] = ()
    headers: GatewayHeaders = GatewayHeaders()
    forward_auth: ForwardAuthConfig = ForwardAuthConfig()
    upstreams: tuple[Upstream, ...] = ()
    #: How long the proxy waits to connect, and between two reads, before a 504.
    upstream_timeout: Duration = 60

    @field_validator("upstream_timeout")
    @classmethod
    def _timeout_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be longer than 0 seconds")
        return value


class PortalCookie(_Section):
    """The portal's session cookie: always ``HttpOnly`` and ``Path=/``."""

    name: str = Field("gateway_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: ``Domain=``: set it to share the sign-in between sites of one parent domain.
    domain: str | None = Field(None, pattern=r"^\.?[A-Za-z0-9.-]{1,253}$")
    secure: bool = True
    same_site: Literal["lax", "strict", "none"] = "lax"

    @model_validator(mode="after")
    def _none_needs_secure(self) -> PortalCookie:
        if self.same_site == "none" and not self.secure:
            raise ValueError("same_site none needs secure: true (browsers refuse it otherwise)")
        return self


class PortalConfig(_Section):
    """The browser sign-in portal in front of forward-auth (``gateway.portal``)."""

    enabled: bool = False
    #: Public address of the portal, where browsers are sent to sign in: a proxy in front
    #: serves it on the same path as the gateway does, ``/portal``.
    url: str = Field("http://127.0.0.1:25441/portal", pattern=r"^https?://[^/\s?#]+/portal/?$")
    cookie: PortalCookie = PortalCookie()
    session_lifetime: Duration = 12 * 3600
    #: Regexes: a sign-in goes on to ``rd`` only when one matches it (see ``portal.redirects``).
    allowed_redirects: tuple[str, ...] = ()

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("session_lifetime")
    @classmethod
    def _lifetime_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be longer than 0 seconds")
        return value

    @field_validator("allowed_redirects")
    @classmethod
    def _compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return value


class CacheConfig(_Section):
    """The identity cache of each process (see ``identity.cache``)."""

    #: Verified tokens and credentials remembered per process (LRU); 0 turns it off.
    size: Int = Field(100_000, ge=0, le=10_000_000)
    #: How long a verified Basic credential is remembered (a password change, disabling
    #: the user or a roles change ends it at once anyway).
    basic_ttl: Duration = 60


class IntrospectionConfig(_Section):
    """Who may ask ``POST /introspect`` about tokens, besides root and admins."""

    #: Usernames (compared as logins are: case-folded, NFKC) allowed to introspect the
    #: tokens of their own tenant.
    clients: tuple[str, ...] = ()


class AuditConfig(_Section):
    """The audit trail of security events (``gateway.audit``)."""

    #: How long events are kept; ``gateway tokens prune`` drops older ones.
    retention: Duration = 90 * 86400

    @field_validator("retention")
    @classmethod
    def _retention_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be longer than 0 seconds")
        return value


class LoggingConfig(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class AdminBootstrap(_Section):
    """The root user created on the first start ($GATEWAY_ADMIN_*)."""

    username: str = Field("admin", min_length=1)
    password: SecretStr | None = None
    email: str = "admin@localhost"

    @field_validator("username")
    @classmethod
    def _valid_username(cls, value: str) -> str:
        try:
            return normalize_username(value)
        except InvalidUsername as exc:
            raise ValueError(f"GATEWAY_ADMIN_USERNAME: {exc}") from None

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("GATEWAY_ADMIN_PASSWORD must be at least 8 characters")
        return value


class Config(_Section):
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    tokens: TokensConfig = TokensConfig()
    login: LoginConfig = LoginConfig()
    passwords: PasswordsConfig = PasswordsConfig()
    media: MediaConfig = MediaConfig()
    tenants: dict[str, TenantConfig] = Field(default_factory=lambda: {"default": TenantConfig()})
    gateway: GatewayConfig = GatewayConfig()
    portal: PortalConfig = PortalConfig()
    cache: CacheConfig = CacheConfig()
    introspection: IntrospectionConfig = IntrospectionConfig()
    logging: LoggingConfig = LoggingConfig()
    audit: AuditConfig = AuditConfig()
    # From the environment, never from the YAML file (no secrets in config.yaml).
    secret_key: SecretStr | None = Field(None, exclude=True)
    admin: AdminBootstrap = Field(AdminBootstrap(), exclude=True)

    @field_validator("tenants")
    @classmethod
    def _tenant_ids(cls, value: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        for tenant_id in value:
            if not TENANT_ID_PATTERN.match(str(tenant_id)):
                raise ValueError(f"invalid tenant id {tenant_id!r}")
        return value

    @model_validator(mode="after")
    def _tenant_media_defaults(self) -> Config:
        # An override is checked merged with the global defaults, as POST /token uses it.
        base = self.media.token.model_dump()
        for tenant_id, tenant in self.tenants.items():
            merged = {**base, **tenant.media.token.model_dump(exclude_none=True)}
            where = f"tenants.{tenant_id}.media.token"
            if merged["start"] >= merged["expire"]:
                raise ValueError(f"{where}: start must be smaller than expire (with the defaults)")
            if merged["algorithm"] not in self.media.algorithms:
                raise ValueError(f"{where}: algorithm {merged['algorithm']} is not in media.algorithms")
        return self

    @field_validator("secret_key")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"GATEWAY_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @property
    def data_dir(self) -> Path:
        """The directory beside the database: generated secret, and nothing else now."""
        return self.storage.path.resolve().parent


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate(value, env, f"{where}.{key}" if where else str(key))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, env, f"{where}.{index}") for index, value in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            # As in the shell: ":-" takes the default when the variable is unset or empty.
            if env.get(name):
                return env[name]
            if default is not None:
                return default
            if name in env:
                return ""
            raise ConfigError(f"{where}: environment variable {name} is not set")

        return _ENV_REF.sub(substitute, node)
    return node


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"{location}: unknown key"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] in {"missing"}:
        message = "is required"
    return f"{location}: {message}"


def parse_config(data: object, env: dict[str, str] | None = None) -> Config:
    """Validate parsed YAML (a mapping) plus the ``GATEWAY_*`` environment into a Config."""
    env = dict(os.environ) if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections")
    resolved = _interpolate(data, env, "")
    admin: dict[str, str] = {}
    for key in ("username", "password", "email"):
        value = env.get(f"GATEWAY_ADMIN_{key.upper()}")
        if value:
            admin[key] = value
    if "secret_key" in resolved or "admin" in resolved:
        raise ConfigError("secret_key/admin: set them with $GATEWAY_SECRET_KEY and "
                          "$GATEWAY_ADMIN_*, not in config.yaml")
    resolved["admin"] = admin
    if env.get("GATEWAY_SECRET_KEY"):
        resolved["secret_key"] = env["GATEWAY_SECRET_KEY"]
    if env.get("GATEWAY_STORAGE_URL"):
        storage = resolved.get("storage")
        resolved["storage"] = {**(storage if isinstance(storage, dict) else {}),
                               "url": env["GATEWAY_STORAGE_URL"]}
    try:
        return Config.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate the config file: ``path``, else ``$GATEWAY_CONFIG``, else ./config.yaml.

    A missing file at the default location means "all defaults"; a path given explicitly
    must exist. Relative ``storage.path`` values are taken relative to the config file.
    """
    env = dict(os.environ) if env is None else env
    explicit = path is not None or bool(env.get("GATEWAY_CONFIG"))
    config_path = Path(path if path is not None else env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG_PATH)
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"{config_path}: config file not found")
        return parse_config({}, env)
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{config_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(config_path)
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ConfigError(f"{config_path}: not valid YAML: {first_line}") from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from None
    config = parse_config(data, env)
    if not config.storage.path.is_absolute():
        storage = config.storage.model_copy(
            update={"path": (config_path.resolve().parent / config.storage.path)}
        )
        config = config.model_copy(update={"storage": storage})
    return config
