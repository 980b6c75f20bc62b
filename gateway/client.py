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

from aiohttp import web

from gateway.keys import SETTINGS
from handlers.netaddr import is_trusted, limit_key, parse_address, parse_networks, trusted_networks

__all__ = ["client_address", "limit_key", "parse_networks"]


def client_address(request: web.Request) -> str:
    """The client's IP address as text ("unknown" when the socket has none, e.g. a Unix
    socket): the peer, or — when the peer is a trusted proxy — the rightmost address of
    `X-Forwarded-For` that is not itself a trusted proxy. Walking left stops at an entry
    that is not an address: nothing a trusted proxy wrote lies beyond it, so the last
    address passed is the answer."""
    peer = parse_address(request.remote or "")
    if peer is None:
        return request.remote or "unknown"
    trusted = trusted_networks(request.config_dict[SETTINGS].trusted_proxies)
    if not trusted or not is_trusted(peer, trusted):
        return str(peer)
    hops = [hop for value in request.headers.getall("X-Forwarded-For", [])
            for hop in value.split(",")]
    client = peer
    for hop in reversed(hops[-64:]):  # a header of thousands of entries is read no further
        address = parse_address(hop)
        if address is None:
            break
        client = address
        if not is_trusted(address, trusted):
            break
    return str(client)
