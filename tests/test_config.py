"""gateway.config: parse_config / load_config, ${ENV} interpolation, one-line errors
(docs/configuration.md)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, ConfigError, load_config, parse_config

SECRET = "s" * 40
ENV = {"GATEWAY_SECRET_KEY": SECRET}


def parse(data: object, **extra_env: str) -> Config:
    return parse_config(data, {**ENV, **extra_env})


def config_error(data: object, **extra_env: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, **extra_env)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Defaults


def test_empty_config_gives_the_documented_defaults() -> None:
    config = parse({})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 25441
    assert config.server.workers == 1
    assert config.server.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
    assert config.storage.path == Path("./data/gateway.db")
    assert config.tokens.issuer == "gateway"
    assert config.tokens.access_lifetime == 300
    assert config.tokens.refresh_lifetime == 86400
    assert config.tokens.rotate_refresh_tokens is False
    assert config.tokens.blacklist_after_rotation is True
    assert config.tokens.session_lifetime == 86400
    assert config.tokens.api_token_max_life == 365 * 86400
    assert config.tokens.leeway == 0
    assert config.login.reveal_unknown_user is False
    assert config.login.regulation.max_retries == 5
    assert config.login.regulation.max_retries_per_address == 50
    assert config.login.regulation.find_time == 120
    assert config.login.regulation.ban_time == 300
    assert config.media.token.start == 0
    assert config.media.token.expire == 3600
    assert config.media.token.unique is True
    assert config.media.token.ipRange == ()
    assert config.media.token.algorithm == "RS256"
    assert set(config.media.algorithms) == {"RS256", "RS384", "RS512", "ES256", "ES384", "HS256"}
    assert config.media.url_pattern == r"^/media/(?P<id>[^/?]+)"
    assert list(config.tenants) == ["default"]
    assert config.gateway.default_policy == "authenticated"
    assert config.gateway.rules == ()
    assert config.gateway.headers.user == "X-Auth-User"
    assert config.gateway.headers.roles == "X-Auth-Roles"
    assert config.gateway.headers.tenant == "X-Auth-Tenant"
    assert config.gateway.headers.token_id == "X-Auth-Token-Id"
    assert config.gateway.upstreams == ()
    assert config.logging.format == "text"
    assert config.logging.level == "info"


def test_none_document_is_all_defaults() -> None:
    # An empty YAML file loads as None.
    assert parse(None).server.port == 25441


def test_secret_and_admin_come_from_the_environment() -> None:
    config = parse_config({}, {**ENV, "GATEWAY_ADMIN_USERNAME": "boss",
                               "GATEWAY_ADMIN_PASSWORD": "boss-password",
                               "GATEWAY_ADMIN_EMAIL": "boss@example.org"})
    assert config.secret_key is not None
    assert config.secret_key.get_secret_value() == SECRET
    assert config.admin.username == "boss"
    assert config.admin.password is not None
    assert config.admin.password.get_secret_value() == "boss-password"
    assert config.admin.email == "boss@example.org"


def test_without_environment_the_admin_has_defaults_and_no_password() -> None:
    config = parse_config({}, {})
    assert config.secret_key is None
    assert config.admin.username == "admin"
    assert config.admin.password is None
    assert config.admin.email == "admin@localhost"


def test_secrets_do_not_show_in_repr_or_dump() -> None:
    config = parse_config({}, {**ENV, "GATEWAY_ADMIN_PASSWORD": "hunter2-hunter2"})
    assert SECRET not in repr(config)
    assert "hunter2-hunter2" not in repr(config)
    dumped = str(config.model_dump())
    assert SECRET not in dumped
    assert "hunter2-hunter2" not in dumped


def test_documented_values_are_read() -> None:
    config = parse({
        "server": {"host": "0.0.0.0", "port": 8080, "workers": 4,
                   "trusted_proxies": ["10.0.0.0/8", "fd00::/8"]},
        "tokens": {"access_lifetime": "10 minutes", "refresh_lifetime": "1 day 2 hours",
                   "api_token_max_life": 3600, "leeway": "30s"},
        "login": {"reveal_unknown_user": True,
                  "regulation": {"max_retries": 0, "find_time": "2h30m", "ban_time": "90s"}},
        "media": {"token": {"expire": 600, "unique": False, "ipRange": ["192.0.2.0/24"],
                            "algorithm": "ES256"}},
        "tenants": {"default": {}, "acme": {"media": {"token": {"expire": 600}}}},
        "gateway": {"default_policy": "deny",
                    "rules": [{"path": "^/admin", "methods": ["get"], "roles": ["ROLE_ADMIN"]}],
                    "upstreams": [{"prefix": "/media/", "url": "http://127.0.0.1:9000"}]},
        "logging": {"format": "json", "level": "debug"},
    })
    assert config.server.port == 8080
    assert config.server.trusted_proxies[1] == ipaddress.ip_network("fd00::/8")
    assert config.tokens.access_lifetime == 600
    assert config.tokens.refresh_lifetime == 93600
    assert config.tokens.leeway == 30
    assert config.login.reveal_unknown_user is True
    assert config.login.regulation.find_time == 9000
    assert config.login.regulation.ban_time == 90
    assert config.media.token.ipRange == (ipaddress.ip_network("192.0.2.0/24"),)
    assert set(config.tenants) == {"default", "acme"}
    assert config.tenants["acme"].media.token.expire == 600
    assert config.gateway.rules[0].methods == ("GET",)
    assert config.gateway.upstreams[0].url == "http://127.0.0.1:9000"
    assert config.logging.format == "json"


# Unknown keys and wrong types: one line naming the dotted key


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"servr": {}}, "servr"),
        ({"server": {"prot": 8080}}, "server.prot"),
        ({"login": {"regulation": {"max_retry": 3}}}, "login.regulation.max_retry"),
        ({"media": {"token": {"expires": 60}}}, "media.token.expires"),
        ({"gateway": {"rules": [{"path": "^/", "polciy": "deny"}]}}, "gateway.rules.0.polciy"),
    ],
)
def test_unknown_key_is_named(data: dict[str, Any], key: str) -> None:
    assert config_error(data) == f"{key}: unknown key"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"server": {"port": "abc"}}, "server.port"),
        ({"server": {"port": 70000}}, "server.port"),
        ({"server": {"port": 0}}, "server.port"),
        ({"server": {"port": 8080.5}}, "server.port"),
        ({"server": {"workers": 0}}, "server.workers"),
        ({"server": {"trusted_proxies": ["not-an-ip"]}}, "server.trusted_proxies.0"),
        ({"server": "localhost"}, "server"),
        ({"login": {"reveal_unknown_user": ["yes"]}}, "login.reveal_unknown_user"),
        ({"login": {"reveal_unknown_user": "perhaps"}}, "login.reveal_unknown_user"),
        ({"login": {"regulation": {"max_retries": -1}}}, "login.regulation.max_retries"),
        ({"media": {"token": {"ipRange": ["10.0.0.0/33"]}}}, "media.token.ipRange.0"),
        ({"media": {"token": {"algorithm": "none"}}}, "media.token.algorithm"),
        ({"media": {"algorithms": ["HS256", "none"]}}, "media.algorithms.1"),
        ({"tokens": {"algorithm": "RS384"}}, "tokens.algorithm"),
        ({"tokens": {"algorithm": "none"}}, "tokens.algorithm"),
        ({"gateway": {"default_policy": "allow"}}, "gateway.default_policy"),
        ({"gateway": {"upstreams": [{"prefix": "media", "url": "http://x"}]}},
         "gateway.upstreams.0.prefix"),
        ({"logging": {"format": "xml"}}, "logging.format"),
    ],
)
def test_wrong_type_or_value_is_named(data: dict[str, Any], key: str) -> None:
    assert config_error(data).startswith(f"{key}: ")


@pytest.mark.parametrize("tenant", ["acme\n", "acme\r\n", "ac\u200bme", "ac me", "\uff41cme"])
def test_a_tenant_id_with_a_control_format_or_other_character_is_refused(tenant: str) -> None:
    message = config_error({"tenants": {tenant: {}}})
    assert message.startswith("tenants: invalid tenant id ")


@pytest.mark.parametrize("username", ["ad\u200bmin", "admin\n", "ad min", "ad\x07min"])
def test_an_admin_username_with_a_control_format_or_space_character_is_refused(
        username: str) -> None:
    message = config_error({}, GATEWAY_ADMIN_USERNAME=username)
    assert message.startswith("admin.username: GATEWAY_ADMIN_USERNAME: a username cannot contain U+")


def test_the_admin_username_is_kept_nfkc_normalised() -> None:
    assert parse({}, GATEWAY_ADMIN_USERNAME="\uff41dmin").admin.username == "admin"


def test_boolean_is_not_a_port() -> None:
    assert config_error({"server": {"port": True}}).startswith("server.port: ")


def test_top_level_must_be_a_mapping() -> None:
    assert config_error([1, 2]).startswith("config: ")


@pytest.mark.parametrize(
    "key", ["access_lifetime", "refresh_lifetime", "session_lifetime", "api_token_max_life"])
def test_bad_duration_is_named(key: str) -> None:
    message = config_error({"tokens": {key: "5 parsecs"}})
    assert message.startswith(f"tokens.{key}: ")
    assert "parsecs" in message


@pytest.mark.parametrize("value", [0, "0 seconds", -5, "soon", 1.5, True])
def test_token_lifetimes_must_be_positive_durations(value: object) -> None:
    assert config_error({"tokens": {"access_lifetime": value}}).startswith("tokens.access_lifetime: ")


def test_duration_in_a_nested_section_is_named() -> None:
    assert config_error({"login": {"regulation": {"ban_time": "forever"}}}).startswith(
        "login.regulation.ban_time: ")


# ${NAME} and ${NAME:-default}


def test_missing_environment_variable_names_key_and_variable() -> None:
    message = config_error({"server": {"host": "${GW_TEST_HOST}"}})
    assert message.startswith("server.host: ")
    assert "GW_TEST_HOST" in message


def test_missing_environment_variable_in_a_list_names_the_index() -> None:
    message = config_error({"server": {"trusted_proxies": ["127.0.0.1/32", "${GW_PROXY}"]}})
    assert message.startswith("server.trusted_proxies.1: ")
    assert "GW_PROXY" in message


def test_environment_variable_is_substituted() -> None:
    assert parse({"server": {"host": "${GW_HOST}"}}, GW_HOST="0.0.0.0").server.host == "0.0.0.0"


def test_environment_variable_inside_a_longer_string() -> None:
    config = parse({"tokens": {"issuer": "https://${GW_DOMAIN}/auth"}}, GW_DOMAIN="example.org")
    assert config.tokens.issuer == "https://example.org/auth"


def test_default_is_used_when_the_variable_is_unset() -> None:
    config = parse({"server": {"host": "${GW_UNSET_HOST:-10.1.2.3}"}})
    assert config.server.host == "10.1.2.3"


def test_set_variable_wins_over_its_default() -> None:
    config = parse({"server": {"host": "${GW_HOST:-10.1.2.3}"}}, GW_HOST="192.0.2.1")
    assert config.server.host == "192.0.2.1"


def test_default_is_used_when_the_variable_is_empty() -> None:
    config = parse({"server": {"host": "${GW_HOST:-10.1.2.3}"}}, GW_HOST="")
    assert config.server.host == "10.1.2.3"


def test_substitution_into_a_typed_field() -> None:
    assert parse({"server": {"port": "${P}"}}, P="8080").server.port == 8080
    assert parse({"tokens": {"access_lifetime": "${LIFE}"}}, LIFE="10 minutes").tokens.access_lifetime == 600
    assert parse({"login": {"reveal_unknown_user": "${R}"}}, R="true").login.reveal_unknown_user is True


def test_default_into_a_typed_field() -> None:
    assert parse({"server": {"port": "${GW_UNSET_PORT:-9090}"}}).server.port == 9090


def test_substituted_value_is_still_validated() -> None:
    assert config_error({"server": {"port": "${P}"}}, P="eighty").startswith("server.port: ")


def test_substituted_value_is_not_interpolated_again() -> None:
    config = parse({"tokens": {"issuer": "${A}"}}, A="${B}", B="nested")
    assert config.tokens.issuer == "${B}"


# Regexes, tenants, secrets


def test_bad_regex_in_a_gateway_rule_is_named() -> None:
    message = config_error({"gateway": {"rules": [{"path": "^/ok"}, {"path": "^/admin(["}]}})
    assert message.startswith("gateway.rules.1.path: ")
    assert "regular expression" in message


def test_url_pattern_must_have_an_id_group() -> None:
    message = config_error({"media": {"url_pattern": "^/media/([^/]+)"}})
    assert message.startswith("media.url_pattern: ")
    assert "(?P<id>" in message


def test_url_pattern_must_compile() -> None:
    assert config_error({"media": {"url_pattern": "^/media/(?P<id>"}}).startswith("media.url_pattern: ")


def test_url_pattern_with_an_id_group_is_accepted() -> None:
    config = parse({"media": {"url_pattern": r"^/files/(?P<id>\d+)\.mp4$"}})
    assert config.media.url_pattern == r"^/files/(?P<id>\d+)\.mp4$"


def test_default_media_algorithm_must_be_allowed() -> None:
    message = config_error({"media": {"algorithms": ["HS256"]}})
    assert message.startswith("media")
    assert "RS256" in message


def test_media_start_must_be_before_expire() -> None:
    assert config_error({"media": {"token": {"start": 600, "expire": 600}}}).startswith("media.token")


@pytest.mark.parametrize("tenant", ["bad id", "-leading-dash", "", "a/b", "x" * 65, "ünïcode"])
def test_invalid_tenant_id_is_refused(tenant: str) -> None:
    message = config_error({"tenants": {tenant: {}}})
    assert message.startswith("tenants")
    assert "tenant id" in message


def test_valid_tenant_ids_are_accepted() -> None:
    config = parse({"tenants": {"default": {}, "acme": {}, "acme.eu-1_b": {}, "X" * 64: {}}})
    assert "acme.eu-1_b" in config.tenants


def test_unknown_key_in_a_tenant_override_is_named() -> None:
    assert config_error({"tenants": {"acme": {"media": {"token": {"expyre": 1}}}}}) == (
        "tenants.acme.media.token.expyre: unknown key")


@pytest.mark.parametrize("secret", ["short", "x" * 31, "é" * 15])
def test_short_secret_key_is_refused(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({}, {"GATEWAY_SECRET_KEY": secret})
    message = str(info.value)
    assert "GATEWAY_SECRET_KEY" in message
    assert "32 bytes" in message
    assert secret not in message


def test_secret_key_length_counts_utf8_bytes() -> None:
    # 16 characters, 32 bytes.
    config = parse_config({}, {"GATEWAY_SECRET_KEY": "é" * 16})
    assert config.secret_key is not None


@pytest.mark.parametrize(
    "data", [{"secret_key": "x" * 40}, {"admin": {"password": "pw"}}, {"admin": None}])
def test_secrets_in_yaml_are_refused(data: dict[str, Any]) -> None:
    message = config_error(data)
    assert "GATEWAY_SECRET_KEY" in message
    assert "config.yaml" in message


# load_config: files, $GATEWAY_CONFIG, paths


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "server:\n  port: 8081\n")
    assert load_config(path, ENV).server.port == 8081


def test_load_config_uses_gateway_config_when_no_path(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere.yaml", "server: {port: 8082}\n")
    assert load_config(None, {**ENV, "GATEWAY_CONFIG": str(path)}).server.port == 8082


def test_explicit_path_wins_over_gateway_config(tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.yaml", "server: {port: 8083}\n")
    other = write(tmp_path / "other.yaml", "server: {port: 8084}\n")
    assert load_config(chosen, {**ENV, "GATEWAY_CONFIG": str(other)}).server.port == 8083


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing, ENV)
    assert str(missing) in str(info.value)


def test_missing_gateway_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(None, {**ENV, "GATEWAY_CONFIG": str(tmp_path / "nope.yaml")})


def test_missing_default_config_means_defaults(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None, ENV).server.port == 25441


def test_default_config_in_the_working_directory_is_read(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "config.yaml", "server: {port: 8085}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(None, ENV).server.port == 8085


@pytest.mark.parametrize("text", ["server: [\n", "server:\n  port: 1\n port: 2\n", "a: b: c\n"])
def test_invalid_yaml_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "config.yaml", text)
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path, ENV)
    assert "\n" not in str(info.value)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"server:\n  host: \xff\xfe\n")
    with pytest.raises(ConfigError):
        load_config(path, ENV)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "")
    assert load_config(path, ENV).server.port == 25441


def test_relative_storage_path_is_resolved_against_the_config_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "etc" / "gateway"
    config_dir.mkdir(parents=True)
    path = write(config_dir / "config.yaml", "storage:\n  path: ./data/gw.db\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path, ENV)
    assert config.storage.path.is_absolute()
    assert config.storage.path.resolve() == (config_dir / "data" / "gw.db").resolve()
    assert config.data_dir == (config_dir / "data").resolve()


def test_relative_config_path_and_relative_storage_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf" / "config.yaml", "storage: {path: gw.db}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/config.yaml", ENV)
    assert config.storage.path.resolve() == (tmp_path / "conf" / "gw.db").resolve()


def test_absolute_storage_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "somewhere" / "gw.db"
    path = write(tmp_path / "config.yaml", f"storage:\n  path: {target}\n")
    assert load_config(path, ENV).storage.path == target


def test_environment_is_interpolated_in_files(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "server:\n  port: ${GW_PORT}\n")
    assert load_config(path, {**ENV, "GW_PORT": "8086"}).server.port == 8086


def test_error_in_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "tokens:\n  access_lifetime: 5 parsecs\n")
    with pytest.raises(ConfigError, match=r"^tokens\.access_lifetime: "):
        load_config(path, ENV)


# The real command line


def test_cli_config_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path / "BAD.yaml", "server:\n  prot: 8080\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    env["GATEWAY_SECRET_KEY"] = SECRET
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--config", str(bad)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gateway: config error:")
    assert "server.prot" in lines[0]
    assert "unknown key" in lines[0]
    # Nothing was created for a config that did not load.
    assert not (tmp_path / "data").exists()
