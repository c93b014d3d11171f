"""SSRF guard: in production a webhook may not target loopback, link-local or private networks.

Checked when an endpoint is registered and again before every delivery (DNS can change).
Dev and test allow local receivers, which is how the tests and a laptop demo work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from {{ cookiecutter.package_name }}.settings import Settings


class UnsafeTargetError(ValueError):
    """The URL points at a network the service must not call."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


async def check_target(url: str, settings: Settings) -> None:
    """Raise UnsafeTargetError if `url` resolves to a forbidden address (production only);
    OSError if its host cannot be resolved."""
    if settings.environment != "production":
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise UnsafeTargetError("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_rest, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if _forbidden(address):
            raise UnsafeTargetError(
                f"{host} resolves to {address}, a loopback, private or link-local address"
            )
