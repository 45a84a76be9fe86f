"""Client addresses behind trusted proxies, and IP/CIDR matching. Pure functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = [
    "ClientAddresses",
    "IPAddress",
    "IPNetwork",
    "address_text",
    "client_address",
    "in_networks",
    "parse_address",
    "parse_network",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str | None) -> IPAddress | None:
    """Parse an address, taking IPv4-mapped IPv6 (``::ffff:1.2.3.4``) as its IPv4; None if bad."""
    if not text:
        return None
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> IPNetwork:
    """Parse an address or CIDR (host bits allowed), or raise ValueError.

    An IPv4-mapped IPv6 range (``::ffff:10.0.0.0/104``) is taken as its IPv4 range
    (``10.0.0.0/8``), as ``parse_address`` takes client addresses, so it matches them.
    The one parser of every configured or requested range.
    """
    network = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def address_text(address: IPAddress | None) -> str:
    """An address as regulation and logs write it ("unknown" when there is none)."""
    return "unknown" if address is None else str(address)


def in_networks(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """True when ``address`` lies in one of ``networks`` (of its own IP version)."""
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None,
    forwarded_for: str | None,
    real_ip: str | None,
    trusted: Sequence[IPNetwork],
) -> IPAddress | None:
    """The address of the client, believing forwarding headers only from trusted proxies.

    When the peer is a trusted proxy, ``X-Forwarded-For`` is read from the right, skipping
    trusted hops: the first untrusted hop is the client (entries further left were
    written by the client itself and prove nothing). Without it, ``X-Real-IP`` is used.
    A malformed hop stops the walk at the last good address.
    """
    peer_address = parse_address(peer)
    if peer_address is None or not in_networks(peer_address, trusted):
        return peer_address
    if forwarded_for:
        current = peer_address
        for hop_text in reversed(forwarded_for.split(",")):
            hop = parse_address(hop_text)
            if hop is None:
                return current
            current = hop
            if not in_networks(hop, trusted):
                return hop
        return current
    if real_ip:
        return parse_address(real_ip) or peer_address
    return peer_address


class ClientAddresses:
    """``client_address`` for one list of trusted proxies, remembering recent answers.

    A server sees few distinct (peer, forwarding headers) triples, and parsing them costs
    more than the rest of a cached ``/auth``; the memory is cleared when it grows past
    ``size`` entries, so it stays bounded whatever clients send.
    """

    def __init__(self, trusted: Sequence[IPNetwork], size: int = 4096) -> None:
        self._trusted = tuple(trusted)
        self._size = size
        self._known: dict[tuple[str | None, str | None, str | None], IPAddress | None] = {}

    def trusts(self, peer: str | None) -> bool:
        """True when ``peer`` (the TCP peer's address text) is one of the trusted proxies."""
        address = parse_address(peer)
        return address is not None and in_networks(address, self._trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None,
                 real_ip: str | None) -> IPAddress | None:
        key = (peer, forwarded_for, real_ip)
        try:
            return self._known[key]
        except KeyError:
            pass
        address = client_address(peer, forwarded_for, real_ip, self._trusted)
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[key] = address
        return address
