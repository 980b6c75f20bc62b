"""Who is on the other end of an HTTP request: the one place that decides it.

Every rate limit, every audit entry and every page that shows "from where" asks
:func:`client_address`. Straight from the internet that is the socket's peer. Behind a
reverse proxy (the only way to get https here) every peer is the proxy, so
`EMIL_TRUSTED_PROXIES` names the proxies, and only when the peer is one of them is
`X-Forwarded-For` read: from the right, each proxy appends the address it saw, so the
first entry that is not a trusted proxy is the client, and whatever stands to the left of
it was written by the client itself and is ignored (MDN, "X-Forwarded-For: Selecting an
IP address"; the same rule as nginx's `real_ip_recursive on`). RFC 7239's `Forwarded`
header is not read: the proxies in use write `X-Forwarded-For`.

aiohttp's own `request.remote` does not look at headers. aiohttp-remotes'
`XForwardedStrict` (1.3) expects a fixed chain, one trusted hop per proxy plus the client:
a request straight to us, or a client that sends its own `X-Forwarded-For` (the spoof
that must be ignored), has another number of entries and is refused, and an entry with a
port does not parse. A function of ours, called by the limits and the audit, is smaller.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from gateway.keys import SETTINGS

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["client_address", "limit_key", "parse_networks"]


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
def _trusted(text: str) -> tuple[Network, ...]:
    return parse_networks(text)


def _address(text: str) -> Address | None:
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


def _is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(request: web.Request) -> str:
    """The client's IP address as text ("unknown" when the socket has none, e.g. a Unix
    socket): the peer, or — when the peer is a trusted proxy — the rightmost address of
    `X-Forwarded-For` that is not itself a trusted proxy. Walking left stops at an entry
    that is not an address: nothing a trusted proxy wrote lies beyond it, so the last
    address passed is the answer."""
    peer = _address(request.remote or "")
    if peer is None:
        return request.remote or "unknown"
    trusted = _trusted(request.config_dict[SETTINGS].trusted_proxies)
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    hops = [hop for value in request.headers.getall("X-Forwarded-For", [])
            for hop in value.split(",")]
    client = peer
    for hop in reversed(hops[-64:]):  # a header of thousands of entries is read no further
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted):
            break
    return str(client)


def limit_key(address: str) -> str:
    """The key a rate limit counts a client by: its IPv4 address, or the /64 of an IPv6
    one — a single subscriber gets a whole /64 (RFC 6177) and could otherwise take a
    fresh address for every try."""
    found = _address(address)
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return address
