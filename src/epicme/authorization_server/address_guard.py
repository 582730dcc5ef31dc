"""Which addresses a server-side fetch may connect to: public unicast ones only.

CIMD draft §6 (Server Side Request Forgery): a client metadata document URL is chosen by whoever
starts an authorization request, so fetching it must not reach the server's own network. The
fetcher (client_metadata.py) resolves the host itself, checks every address here, and connects to
the checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_forbidden_address(address: str | IPAddress) -> bool:
    """True if a fetch must not connect to `address`: anything but a public unicast address.

    CIMD draft §6 (Server Side Request Forgery): the document URL is chosen by whoever starts an
    authorization request, so it must not reach the server's own network: loopback, RFC 1918 and
    unique-local (fc00::/7) ranges, link-local (169.254.0.0/16, holding cloud metadata services at
    169.254.169.254, and fe80::/10), CGNAT (100.64.0.0/10), unspecified, multicast, reserved and
    documentation ranges. An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, NAT64) is
    judged by the embedded address.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return True
    elif ip in _CGNAT:
        return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
