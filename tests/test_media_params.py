"""gateway.media.params: POST /token parameters, defaults, claims and use-time restrictions
(docs/media-tokens.md)."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

import pytest

from gateway.authz import user_matches
from gateway.config import ConfigError, parse_config
from gateway.errors import BadRequest
from gateway.media.params import (
    MAX_RANGES,
    MediaTokenRequest,
    address_allowed,
    build_claims,
    defaults_for,
    parse_ranges,
    parse_request,
)

CONFIG = parse_config(
    {"tenants": {"default": {}, "acme": {"media": {"token": {"expire": 600, "unique": False}}}}}, {}
)
DEFAULTS = defaults_for(CONFIG, "default")
ALLOWED = CONFIG.media.algorithms
TEN_YEARS = 10 * 365 * 86400
IAT = 1_700_000_000


def parse(body: dict[str, Any], defaults: dict[str, Any] | None = None,
          allowed: tuple[str, ...] | list[str] | None = None) -> MediaTokenRequest:
    return parse_request(body, DEFAULTS if defaults is None else defaults,
                         ALLOWED if allowed is None else allowed)


def refused(body: dict[str, Any], field: str, allowed: list[str] | None = None) -> BadRequest:
    """Parse ``body`` expecting a 400 whose message starts by naming ``field``."""
    with pytest.raises(BadRequest) as info:
        parse(body, allowed=allowed)
    assert info.value.status == 400
    # The field itself, not a longer name it prefixes ("uniq" vs "unique", "user" vs "user.roles").
    assert re.match(rf"{re.escape(field)}(?![\w.\[])", info.value.message), info.value.message
    return info.value


# Defaults


def test_defaults_fill_every_unset_field() -> None:
    request = parse({})
    assert request.unique is True
    assert re.fullmatch(r"[0-9a-f]{32}", request.kid)
    assert request.ip_ranges == ()
    assert request.username is None
    assert request.roles == ()
    assert request.media == {}
    assert (request.start, request.expire, request.algorithm) == (0, 3600, "RS256")


def test_configured_defaults_fill_every_unset_field() -> None:
    config = parse_config({"media": {"token": {
        "start": 60, "expire": 7200, "unique": False, "algorithm": "ES256",
        "ipRange": ["10.0.0.0/8", "::ffff:192.168.0.0/112"],
    }}}, {})
    request = parse({}, defaults_for(config, "default"), config.media.algorithms)
    assert request.unique is False
    assert (request.start, request.expire, request.algorithm) == (60, 7200, "ES256")
    # Default ranges are normalised like request ranges: the mapped one is its IPv4 range.
    assert request.ip_ranges == (ip_network("10.0.0.0/8"), ip_network("192.168.0.0/16"))


def test_given_fields_win_over_defaults() -> None:
    config = parse_config({"media": {"token": {"start": 60, "expire": 7200, "unique": True,
                                               "ipRange": ["10.0.0.0/8"]}}}, {})
    request = parse({"start": 0, "expire": 30, "unique": False, "ipRange": [], "algorithm": "HS256"},
                    defaults_for(config, "default"), config.media.algorithms)
    assert (request.start, request.expire, request.unique) == (0, 30, False)
    assert request.ip_ranges == ()
    assert request.algorithm == "HS256"


def test_defaults_for_merges_the_tenant_override() -> None:
    acme = defaults_for(CONFIG, "acme")
    assert acme["expire"] == 600
    assert acme["unique"] is False
    assert (acme["start"], acme["algorithm"], tuple(acme["ipRange"])) == (0, "RS256", ())
    request = parse({}, acme)
    assert (request.expire, request.unique) == (600, False)


def test_defaults_for_leaves_other_tenants_alone() -> None:
    defaults_for(CONFIG, "acme")
    default = defaults_for(CONFIG, "default")
    assert (default["expire"], default["unique"]) == (3600, True)
    assert CONFIG.media.token.expire == 3600


def test_defaults_for_an_unconfigured_tenant_is_the_global_default() -> None:
    # Tenants may also live only in the database.
    assert defaults_for(CONFIG, "from-database") == DEFAULTS


def test_tenant_override_inherits_changed_global_defaults() -> None:
    config = parse_config({"media": {"token": {"start": 30, "expire": 900}},
                           "tenants": {"default": {}, "acme": {"media": {"token": {"unique": False}}}}},
                          {})
    acme = defaults_for(config, "acme")
    assert (acme["start"], acme["expire"], acme["unique"]) == (30, 900, False)


def test_config_refuses_a_tenant_override_whose_merged_start_is_not_before_expire() -> None:
    with pytest.raises(ConfigError, match="acme"):
        parse_config({"media": {"token": {"start": 1000}},
                      "tenants": {"default": {}, "acme": {"media": {"token": {"expire": 600}}}}}, {})


def test_config_refuses_a_tenant_default_algorithm_that_is_not_allowed() -> None:
    with pytest.raises(ConfigError, match="acme"):
        parse_config({"media": {"algorithms": ["RS256"]},
                      "tenants": {"default": {}, "acme": {"media": {"token": {"algorithm": "HS256"}}}}},
                     {})


# Unknown fields


@pytest.mark.parametrize("name", ["uniq", "Unique", "ip_range", "iprange", "users", "expires", "alg", "jti"])
def test_unknown_top_level_field_is_refused_by_name(name: str) -> None:
    refused({"kid": "abc", name: "1"}, name)


# unique


@pytest.mark.parametrize("value", ["maybe", "2", "truee", "y", 2, -1, 1.0, ["1"], [True], {"a": "1"}])
def test_unique_not_a_boolean(value: object) -> None:
    refused({"unique": value}, "unique")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("0", False), ("true", True), ("false", False), ("yes", True), ("no", False),
     ("on", True), ("off", False), ("TRUE", True), (" Off ", False), (True, True), (False, False),
     (1, True), (0, False)],
)
def test_unique_boolean_spellings(value: object, expected: bool) -> None:
    assert parse({"unique": value}).unique is expected
    # Against the opposite default too, so a value ignored in favour of the default fails.
    acme = defaults_for(CONFIG, "acme")
    assert parse({"unique": value}, acme).unique is expected


# kid


@pytest.mark.parametrize(
    "value",
    ["a b", "a/b", "käse", "a\x00b", "a\tb", "", "x" * 129, "<script>", 123, ["abc"], {"a": "b"}, True],
)
def test_kid_refused(value: object) -> None:
    refused({"kid": value}, "kid")


@pytest.mark.parametrize("value", ["abc", "x" * 128, "A-Z_0.9:~", "0"])
def test_kid_accepted(value: str) -> None:
    assert parse({"kid": value}).kid == value


def test_default_kid_is_random() -> None:
    kids = {parse({}).kid for _ in range(5)}
    assert len(kids) == 5


@pytest.mark.parametrize("value", ["abc\n", "x" * 128 + "\n"])
def test_kid_with_a_trailing_newline_is_refused(value: str) -> None:
    refused({"kid": value}, "kid")


# ipRange


def test_ip_range_entry_not_an_ip_names_its_index() -> None:
    error = refused({"ipRange": ["10.0.0.0/8", "not-an-ip"]}, "ipRange[1]")
    assert "not-an-ip" in error.message


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.256", "", " ", "10.0.0.0/8/8", "2001:db8::/129",
                                   "example.com", "10.0.0.0-10.0.0.9"])
def test_ip_range_first_entry_not_an_ip(value: str) -> None:
    refused({"ipRange": [value]}, "ipRange[0]")


@pytest.mark.parametrize("value", [5, None, True, ["10.0.0.0/8"], {"a": "b"}])
def test_ip_range_entry_not_a_string(value: object) -> None:
    refused({"ipRange": ["10.0.0.0/8", "192.0.2.0/24", value]}, "ipRange[2]")


@pytest.mark.parametrize("value", [5, {"a": "10.0.0.0/8"}, True])
def test_ip_range_not_a_list(value: object) -> None:
    refused({"ipRange": value}, "ipRange")


def test_too_many_ip_ranges() -> None:
    refused({"ipRange": ["10.0.0.0/8"] * (MAX_RANGES + 1)}, "ipRange")
    assert len(parse({"ipRange": ["10.0.0.0/8"] * MAX_RANGES}).ip_ranges) == MAX_RANGES


def test_a_single_string_ip_range_is_accepted() -> None:
    assert parse({"ipRange": "10.0.0.0/8"}).ip_ranges == (ip_network("10.0.0.0/8"),)


def test_ip_ranges_parsed_in_order() -> None:
    request = parse({"ipRange": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]})
    assert request.ip_ranges == (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32"),
                                 ip_network("192.0.2.7/32"))


def test_host_bits_are_dropped() -> None:
    assert parse({"ipRange": ["10.1.2.3/8", " 192.0.2.9/24 "]}).ip_ranges == (
        ip_network("10.0.0.0/8"), ip_network("192.0.2.0/24"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("::ffff:10.0.0.0/104", "10.0.0.0/8"), ("::ffff:203.0.113.9", "203.0.113.9/32"),
     ("::ffff:0:0/96", "0.0.0.0/0"), ("::FFFF:192.0.2.128/121", "192.0.2.128/25")],
)
def test_ipv4_mapped_ipv6_range_is_its_ipv4_range(value: str, expected: str) -> None:
    (network,) = parse({"ipRange": [value]}).ip_ranges
    assert isinstance(network, IPv4Network)
    assert network == ip_network(expected)


def test_ipv6_range_that_is_not_mapped_stays_ipv6() -> None:
    (network,) = parse({"ipRange": ["64:ff9b::/96"]}).ip_ranges
    assert isinstance(network, IPv6Network)


# user


@pytest.mark.parametrize("value", ["abc", ["abc"], 5, True])
def test_user_not_an_object(value: object) -> None:
    refused({"user": value}, "user")


def test_unknown_user_key_is_refused_by_name() -> None:
    refused({"user": {"username": "abc", "name": "x"}}, "user.name")


@pytest.mark.parametrize("value", ["", "   ", 5, ["abc"], {"a": "b"}, "x" * 257])
def test_bad_username(value: object) -> None:
    refused({"user": {"username": value}}, "user.username")


@pytest.mark.parametrize("value", [5, [1], ["ROLE_A", 2], [""], ["  "], [["ROLE_A"]],
                                   {"0": "ROLE_A", "2": "ROLE_B"}, ["ROLE_A"] * 51])
def test_roles_not_a_list_of_strings(value: object) -> None:
    refused({"user": {"roles": value}}, "user.roles")


def test_user_with_username_and_roles() -> None:
    request = parse({"user": {"username": "100@mydomain.com", "roles": ["ROLE_USER", "ROLE_ADMIN"]}})
    assert request.username == "100@mydomain.com"
    assert request.roles == ("ROLE_USER", "ROLE_ADMIN")


def test_a_single_role_string_is_a_list_of_one() -> None:
    request = parse({"user": {"roles": "ROLE_ADMIN"}})
    assert (request.username, request.roles) == (None, ("ROLE_ADMIN",))


@pytest.mark.parametrize("value", [{}, [], "", None])
def test_empty_user_is_no_restriction(value: object) -> None:
    request = parse({"user": value})
    assert (request.username, request.roles) == (None, ())


# media


@pytest.mark.parametrize("value", ["28", 28, ["28"], True])
def test_media_not_an_object(value: object) -> None:
    refused({"media": value}, "media")


@pytest.mark.parametrize("value", [True, False, "", "  "])
def test_media_id_boolean_or_blank(value: object) -> None:
    refused({"media": {"id": value}}, "media.id")


@pytest.mark.parametrize(("value", "expected"), [(28, "28"), ("28", "28"), ("abc-1", "abc-1"), (0, "0")])
def test_media_id_is_kept_as_a_string(value: object, expected: str) -> None:
    # A form sends "28" and JSON sends 28: both must gate the same URL /media/28.
    assert parse({"media": {"id": value}}).media == {"id": expected}


def test_media_other_keys_are_kept() -> None:
    assert parse({"media": {"id": 28, "name": "a.mp4", "size": 1.5}}).media == {
        "id": "28", "name": "a.mp4", "size": 1.5}


@pytest.mark.parametrize("value", [{"x": "1"}, ["a"], None, "x" * 513])
def test_media_values_must_be_short_scalars(value: object) -> None:
    refused({"media": {"id": 28, "meta": value}}, "media.meta")


# start / expire


@pytest.mark.parametrize("value", [-1, "-1", -3600])
def test_start_negative(value: object) -> None:
    refused({"start": value}, "start")


@pytest.mark.parametrize("value", [0, -5, "0", "-1"])
def test_expire_not_positive(value: object) -> None:
    refused({"expire": value}, "expire")


def test_start_equal_to_expire() -> None:
    refused({"start": 3600, "expire": 3600}, "start")
    refused({"start": "3600"}, "start")


def test_start_after_expire() -> None:
    refused({"start": 7200, "expire": 3600}, "start")


def test_start_against_the_tenant_default_expire() -> None:
    with pytest.raises(BadRequest, match=r"^start"):
        parse({"start": 600}, defaults_for(CONFIG, "acme"))
    assert parse({"start": 599}, defaults_for(CONFIG, "acme")).start == 599


def test_expire_up_to_ten_years() -> None:
    assert parse({"expire": TEN_YEARS}).expire == TEN_YEARS
    refused({"expire": TEN_YEARS + 1}, "expire")
    refused({"expire": 10**30}, "expire")


@pytest.mark.parametrize("field", ["start", "expire"])
@pytest.mark.parametrize(
    ("text", "number"), [("1", 1), ("60", 60), (" 90 ", 90), ("0600", 600)]
)
def test_digit_strings_are_accepted(field: str, text: str, number: int) -> None:
    body = {"start": "0", "expire": "7200", field: text}
    assert getattr(parse(body), field) == number


@pytest.mark.parametrize("field", ["start", "expire"])
@pytest.mark.parametrize("value", ["1.5", "abc", "", "1e3", "0x10", "1 day", 1.5, 60.0, True, False,
                                   None, [60], {"s": 60}])
def test_non_integers_are_refused(field: str, value: object) -> None:
    refused({field: value}, field)


# algorithm


@pytest.mark.parametrize("value", ["none", "None", "HS512", "rs256", "", "RS256 ", 256, None, ["RS256"]])
def test_algorithm_not_allowed(value: object) -> None:
    refused({"algorithm": value}, "algorithm")


def test_algorithm_outside_a_narrower_allowed_list() -> None:
    refused({"algorithm": "ES384"}, "algorithm", allowed=["RS256"])
    assert parse({"algorithm": "RS256"}, allowed=["RS256"]).algorithm == "RS256"


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "ES256", "ES384", "HS256"])
def test_every_configured_algorithm_is_accepted(algorithm: str) -> None:
    assert algorithm in ALLOWED
    assert parse({"algorithm": algorithm}).algorithm == algorithm


# build_claims


def full_request() -> MediaTokenRequest:
    return parse({"unique": "1", "kid": "abc", "ipRange": ["10.0.0.0/8", "::ffff:192.0.2.0/120"],
                  "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
                  "media": {"id": 28}, "start": 60, "expire": 3600, "algorithm": "ES256"})


def test_build_claims() -> None:
    claims = build_claims(full_request(), jti="jti-1", tenant="acme", issuer="gateway", issued_at=IAT)
    assert claims == {
        "token_type": "media",
        "sub": "Media download",
        "jti": "jti-1",
        "kid": "abc",
        "tenant": "acme",
        "iss": "gateway",
        "iat": IAT,
        "nbf": IAT + 60,
        "exp": IAT + 3600,
        "context": {
            "date": {"created_at": IAT, "start": IAT + 60},
            "rangeip": ["10.0.0.0/8", "192.0.2.0/24"],
            "unique": True,
            "user": {"username": "abc", "roles": ["ROLE_USER", "ROLE_ADMIN"]},
            "media": {"id": "28"},
        },
    }
    # The claims go through a JSON encoder: no network objects or tuples left inside.
    assert json.loads(json.dumps(claims)) == claims


def test_build_claims_with_defaults() -> None:
    request = parse({"kid": "k"})
    claims = build_claims(request, jti="j", tenant="default", issuer="iss", issued_at=IAT)
    assert (claims["nbf"], claims["exp"]) == (IAT, IAT + 3600)
    assert claims["context"] == {"date": {"created_at": IAT, "start": IAT}, "rangeip": [],
                                 "unique": True, "user": {}, "media": {}}


@pytest.mark.parametrize(
    ("user", "expected"),
    [({"username": "abc"}, {"username": "abc"}), ({"roles": ["ROLE_USER"]}, {"roles": ["ROLE_USER"]}),
     ({}, {})],
)
def test_build_claims_user_holds_only_the_given_parts(user: dict[str, Any], expected: dict[str, Any]) -> None:
    claims = build_claims(parse({"user": user}), jti="j", tenant="t", issuer="i", issued_at=IAT)
    assert claims["context"]["user"] == expected


# address_allowed


@pytest.mark.parametrize("address", [ip_address("203.0.113.9"), ip_address("2001:db8::1"), None])
def test_empty_ranges_allow_any_address(address: Any) -> None:
    assert address_allowed(address, parse_ranges([]))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("192.0.2.0", True), ("192.0.2.255", True), ("192.0.2.77", True),
     ("192.0.3.0", False), ("192.0.1.255", False)],
)
def test_ipv4_cidr_boundaries(address: str, allowed: bool) -> None:
    assert address_allowed(ip_address(address), parse_ranges(["192.0.2.0/24"])) is allowed


def test_single_host_range() -> None:
    assert address_allowed(ip_address("203.0.113.9"), parse_ranges(["203.0.113.9/32"]))
    assert not address_allowed(ip_address("203.0.113.10"), parse_ranges(["203.0.113.9/32"]))
    assert not address_allowed(ip_address("203.0.113.8"), parse_ranges(["203.0.113.9/32"]))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("2001:db8::", True), ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", True), ("2001:db8:1::5", True),
     ("2001:db9::", False), ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", False), ("::1", False)],
)
def test_ipv6_cidr_boundaries(address: str, allowed: bool) -> None:
    assert address_allowed(ip_address(address), parse_ranges(["2001:db8::/32"])) is allowed


@pytest.mark.parametrize("ranges", [["::/0"], ["::fffe:0:0/95"], ["2001:db8::/32"]])
def test_ipv4_address_never_matches_an_ipv6_range(ranges: list[str]) -> None:
    assert not address_allowed(ip_address("10.0.0.1"), parse_ranges(ranges))


@pytest.mark.parametrize("ranges", [["::ffff:0:0/96"], ["::ffff:10.0.0.0/104"]])
def test_an_ipv4_mapped_range_is_its_ipv4_range(ranges: list[str]) -> None:
    # netaddr.parse_network, as for ipRange and trusted_proxies.
    assert address_allowed(ip_address("10.0.0.1"), parse_ranges(ranges))


def test_ipv6_address_never_matches_an_ipv4_range() -> None:
    assert not address_allowed(ip_address("::1"), parse_ranges(["0.0.0.0/0"]))


def test_no_address_with_ranges_is_refused() -> None:
    assert not address_allowed(None, parse_ranges(["0.0.0.0/0", "::/0"]))


def test_any_of_several_ranges() -> None:
    ranges = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"]
    assert address_allowed(ip_address("192.0.2.1"), parse_ranges(ranges))
    assert address_allowed(ip_address("2001:db8::1"), parse_ranges(ranges))
    assert not address_allowed(ip_address("198.51.100.1"), parse_ranges(ranges))


def test_unreadable_ranges_refuse_rather_than_allow() -> None:
    assert not address_allowed(ip_address("10.0.0.1"), parse_ranges(["garbage"]))
    assert address_allowed(ip_address("10.0.0.1"), parse_ranges(["garbage", "10.0.0.0/8"]))


def test_ranges_from_built_claims_match() -> None:
    claims = build_claims(full_request(), jti="j", tenant="t", issuer="i", issued_at=IAT)
    rangeip = claims["context"]["rangeip"]
    assert address_allowed(ip_address("10.255.255.255"), parse_ranges(rangeip))
    assert address_allowed(ip_address("192.0.2.200"), parse_ranges(rangeip))
    assert not address_allowed(ip_address("11.0.0.0"), parse_ranges(rangeip))


# user_matches (authz)


@pytest.mark.parametrize("restriction",
                         [{}, {"username": None, "roles": []}, {"username": "", "roles": None}])
def test_empty_restriction_allows_anyone_even_without_credential(restriction: dict[str, Any]) -> None:
    assert user_matches(restriction, None, [])
    assert user_matches(restriction, "someone", ["ROLE_USER"])


def test_username_restriction() -> None:
    assert user_matches({"username": "abc"}, "abc", [])
    assert not user_matches({"username": "abc"}, "abd", ["ROLE_ADMIN"])
    assert not user_matches({"username": "abc"}, "ABC", [])


def test_roles_restriction_is_any_of() -> None:
    restriction = {"roles": ["ROLE_USER", "ROLE_ADMIN"]}
    assert user_matches(restriction, "x", ["ROLE_ADMIN"])
    assert user_matches(restriction, "x", ["ROLE_OTHER", "ROLE_USER"])
    assert not user_matches(restriction, "x", ["ROLE_OTHER"])
    assert not user_matches(restriction, "x", [])


def test_username_and_roles_either_suffices() -> None:
    restriction = {"username": "abc", "roles": ["ROLE_ADMIN"]}
    assert user_matches(restriction, "abc", [])
    assert user_matches(restriction, "other", ["ROLE_ADMIN"])
    assert not user_matches(restriction, "other", ["ROLE_USER"])


@pytest.mark.parametrize("restriction", [{"username": "abc"}, {"roles": ["ROLE_ADMIN"]},
                                         {"username": "abc", "roles": ["ROLE_ADMIN"]}])
def test_no_credential_is_refused_when_restricted(restriction: dict[str, Any]) -> None:
    assert not user_matches(restriction, None, ["ROLE_ADMIN"])
    assert not user_matches(restriction, None, [])
