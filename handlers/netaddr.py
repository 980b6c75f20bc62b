"""Client network addresses as text: parsing what sockets and proxies write, the networks
of a setting, and the key a rate limit counts a client by. No I/O, no request objects:
the HTTP side (gateway/client.py) and the SMTP side (mail/server.py) both count clients
with these."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["Address", "Network", "is_trusted", "limit_key", "parse_address", "parse_networks",
           "trusted_networks"]


def parse_networks(text: str) -> tuple[Network, ...]:
    """`EMIL_TRUSTED_PROXIES`: addresses or networks, separated by commas or spaces
    (`10.0.0.5, 192.168.0.0/24, ::1`). Raises ValueError naming the entry it cannot read."""
    networks = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def trusted_networks(text: str) -> tuple[Network, ...]:
    return parse_networks(text)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `v4:port`, `[v6]` or `[v6]:port`; an
    IPv4-mapped IPv6 address is the IPv4 address it carries. None if it is none of these."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port (IPv6 has two colons or more)
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def limit_key(address: str) -> str:
    """The key a rate limit counts a client by: its IPv4 address, or the /64 of an IPv6
    one — a single subscriber gets a whole /64 (RFC 6177) and could otherwise take a
    fresh address for every try."""
    found = parse_address(address)
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return address
