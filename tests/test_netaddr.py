"""gateway.netaddr: address parsing, CIDR matching and the client address behind proxies."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from gateway.media.params import defaults_for, parse_request
from gateway.netaddr import IPNetwork, client_address, in_networks, parse_address, parse_network
from tests.conftest import make_config

TRUSTED: tuple[IPNetwork, ...] = (ip_network("127.0.0.1/32"), ip_network("::1/128"),
                                  ip_network("10.0.0.0/8"))


# parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", IPv4Address("203.0.113.9")),
        (" 203.0.113.9 ", IPv4Address("203.0.113.9")),
        ("2001:db8::1", IPv6Address("2001:db8::1")),
        ("[2001:db8::1]", IPv6Address("2001:db8::1")),
        (" [::1] ", IPv6Address("::1")),
        ("::ffff:203.0.113.9", IPv4Address("203.0.113.9")),
        ("::FFFF:203.0.113.9", IPv4Address("203.0.113.9")),
        ("::ffff:cb00:7109", IPv4Address("203.0.113.9")),
        ("[::ffff:127.0.0.1]", IPv4Address("127.0.0.1")),
    ],
)
def test_parse_address(text: str, expected: IPv4Address | IPv6Address) -> None:
    parsed = parse_address(text)
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "garbage", "256.1.1.1", "1.2.3", "1.2.3.4.5", "10.0.0.0/8",
     "1.2.3.4:8080", "[1.2.3.4", "2001:db8::1]", "[]", "2001:db8:::1", "unknown", "1.2.3.4, 5.6.7.8"],
)
def test_parse_address_garbage_is_none(text: str | None) -> None:
    assert parse_address(text) is None


def test_ipv6_that_only_contains_ipv4_digits_stays_ipv6() -> None:
    # 6to4 / NAT64 addresses are not IPv4-mapped; only ::ffff:0:0/96 is.
    assert isinstance(parse_address("64:ff9b::203.0.113.9"), IPv6Address)
    assert isinstance(parse_address("::203.0.113.9"), IPv6Address)


# in_networks


def test_address_inside_and_outside() -> None:
    networks = [ip_network("192.0.2.0/24")]
    assert in_networks(ip_address("192.0.2.1"), networks)
    assert not in_networks(ip_address("198.51.100.1"), networks)


def test_empty_network_list_matches_nothing() -> None:
    assert not in_networks(ip_address("127.0.0.1"), [])


@pytest.mark.parametrize(
    ("network", "first", "last", "before", "after"),
    [
        ("192.0.2.0/24", "192.0.2.0", "192.0.2.255", "192.0.1.255", "192.0.3.0"),
        ("10.0.0.0/8", "10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"),
        ("192.0.2.8/30", "192.0.2.8", "192.0.2.11", "192.0.2.7", "192.0.2.12"),
        ("203.0.113.9/32", "203.0.113.9", "203.0.113.9", "203.0.113.8", "203.0.113.10"),
        ("2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff",
         "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
        ("::1/128", "::1", "::1", "::", "::2"),
    ],
)
def test_cidr_edges(network: str, first: str, last: str, before: str, after: str) -> None:
    networks = [ip_network(network)]
    assert in_networks(ip_address(first), networks)
    assert in_networks(ip_address(last), networks)
    assert not in_networks(ip_address(before), networks)
    assert not in_networks(ip_address(after), networks)


def test_ipv4_and_ipv6_never_cross_match() -> None:
    everything_v4 = [ip_network("0.0.0.0/0")]
    everything_v6 = [ip_network("::/0")]
    assert in_networks(ip_address("203.0.113.9"), everything_v4)
    assert not in_networks(ip_address("203.0.113.9"), everything_v6)
    assert in_networks(ip_address("2001:db8::1"), everything_v6)
    assert not in_networks(ip_address("2001:db8::1"), everything_v4)
    # An IPv4-mapped IPv6 address object is IPv6: callers convert it with parse_address first.
    assert not in_networks(ip_address("::ffff:127.0.0.1"), [ip_network("127.0.0.0/8")])
    mapped = parse_address("::ffff:127.0.0.1")
    assert mapped is not None
    assert in_networks(mapped, [ip_network("127.0.0.0/8")])


def test_mixed_list_matches_by_version() -> None:
    networks = [ip_network("::/0"), ip_network("192.0.2.0/24")]
    assert in_networks(ip_address("192.0.2.7"), networks)
    assert not in_networks(ip_address("198.51.100.7"), networks)


# client_address


def addr(text: str) -> IPv4Address | IPv6Address:
    return ip_address(text)


def test_no_headers_gives_the_peer() -> None:
    assert client_address("203.0.113.9", None, None, TRUSTED) == addr("203.0.113.9")


def test_peer_mapped_ipv6_is_taken_as_ipv4() -> None:
    assert client_address("::ffff:203.0.113.9", None, None, TRUSTED) == addr("203.0.113.9")


def test_unparsable_peer_is_none() -> None:
    assert client_address(None, "198.51.100.1", None, TRUSTED) is None
    assert client_address("not-an-ip", "198.51.100.1", "198.51.100.2", TRUSTED) is None


def test_untrusted_peer_cannot_forge_x_forwarded_for() -> None:
    assert client_address("203.0.113.9", "198.51.100.1", None, TRUSTED) == addr("203.0.113.9")


def test_untrusted_peer_cannot_forge_x_real_ip() -> None:
    assert client_address("203.0.113.9", None, "198.51.100.1", TRUSTED) == addr("203.0.113.9")


def test_untrusted_peer_ignores_both_headers() -> None:
    assert client_address("203.0.113.9", "127.0.0.1", "10.0.0.1", TRUSTED) == addr("203.0.113.9")


def test_no_trusted_proxies_trusts_no_header() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", "198.51.100.2", ()) == addr("127.0.0.1")


def test_trusted_peer_single_hop() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", None, TRUSTED) == addr("198.51.100.1")


def test_trusted_peer_over_ipv6_loopback() -> None:
    assert client_address("::1", "2001:db8::7", None, TRUSTED) == addr("2001:db8::7")


def test_trusted_peer_takes_the_right_most_untrusted_hop() -> None:
    # The client wrote "1.1.1.1" itself; the proxy appended the real address on the right.
    assert client_address("127.0.0.1", "1.1.1.1, 198.51.100.1", None, TRUSTED) == addr("198.51.100.1")


def test_chain_of_trusted_proxies_is_skipped() -> None:
    result = client_address("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.1.1, 10.2.2.2", None, TRUSTED)
    assert result == addr("198.51.100.1")


def test_hops_without_spaces_and_mapped_hops() -> None:
    assert client_address("127.0.0.1", "198.51.100.1,10.0.0.2", None, TRUSTED) == addr("198.51.100.1")
    assert client_address("127.0.0.1", "::ffff:198.51.100.1", None, TRUSTED) == addr("198.51.100.1")


def test_all_hops_trusted_gives_the_left_most_hop() -> None:
    assert client_address("127.0.0.1", "10.0.0.1, 10.0.0.2", None, TRUSTED) == addr("10.0.0.1")


def test_malformed_right_most_hop_stops_at_the_peer() -> None:
    assert client_address("127.0.0.1", "198.51.100.1, garbage", None, TRUSTED) == addr("127.0.0.1")


def test_malformed_hop_stops_at_the_last_good_address() -> None:
    # Walking from the right: 10.0.0.2 (trusted), then garbage: stop at 10.0.0.2,
    # never reaching the client-written 198.51.100.1.
    result = client_address("127.0.0.1", "198.51.100.1, garbage, 10.0.0.2", None, TRUSTED)
    assert result == addr("10.0.0.2")


def test_empty_hop_is_malformed() -> None:
    assert client_address("127.0.0.1", "198.51.100.1, ", None, TRUSTED) == addr("127.0.0.1")


def test_x_real_ip_is_the_fallback_from_a_trusted_peer() -> None:
    assert client_address("127.0.0.1", None, "198.51.100.1", TRUSTED) == addr("198.51.100.1")
    assert client_address("127.0.0.1", "", "198.51.100.1", TRUSTED) == addr("198.51.100.1")


def test_x_forwarded_for_wins_over_x_real_ip() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", "198.51.100.2", TRUSTED) == addr("198.51.100.1")


def test_malformed_x_real_ip_gives_the_peer() -> None:
    assert client_address("127.0.0.1", None, "garbage", TRUSTED) == addr("127.0.0.1")


def test_mapped_x_real_ip_is_taken_as_ipv4() -> None:
    assert client_address("127.0.0.1", None, "::ffff:198.51.100.1", TRUSTED) == addr("198.51.100.1")


# parse_network: the one CIDR parser of trusted_proxies and media ipRange


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.0/8", "10.0.0.0/8"),
    (" 10.1.2.3/8 ", "10.0.0.0/8"),
    ("203.0.113.9", "203.0.113.9/32"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::FFFF:192.0.2.128/121", "192.0.2.128/25"),
    ("::ffff:203.0.113.9", "203.0.113.9/32"),
    ("::ffff:0:0/96", "0.0.0.0/0"),
    ("::ffff:0:0/95", "::fffe:0:0/95"),  # wider than the mapped space: stays IPv6
])
def test_parse_network(text: str, expected: str) -> None:
    assert parse_network(text) == ip_network(expected)


@pytest.mark.parametrize("text", ["", "10.0.0.0/33", "not-an-ip", "::ffff:10.0.0.0/129"])
def test_parse_network_refuses_what_is_not_a_range(text: str) -> None:
    with pytest.raises(ValueError):
        parse_network(text)


def test_a_mapped_trusted_proxy_and_a_mapped_media_range_are_the_same_range(tmp_path) -> None:
    config = make_config(tmp_path, {"server": {"trusted_proxies": ["::ffff:10.0.0.0/104"]}})
    request = parse_request({"ipRange": ["::ffff:10.0.0.0/104"]}, defaults_for(config, "default"),
                            config.media.algorithms)
    assert config.server.trusted_proxies == request.ip_ranges == (ip_network("10.0.0.0/8"),)
    # A mapped peer is normalised to IPv4 and so is behind the mapped trusted range.
    assert client_address("::ffff:10.0.0.5", "198.51.100.1", None,
                          config.server.trusted_proxies) == addr("198.51.100.1")
