"""SSRF guard: in production a webhook may only reach public (globally routable) addresses.

Checked when an endpoint is registered (a clear 422), and again on every connection of the
delivery client: `guarded_transport()` is httpx's transport with a network backend that
resolves the host once, refuses the request if any address is not public, and connects to the
address it checked. A name that resolves to a public address at registration and to
169.254.169.254 a second later (DNS rebinding) therefore never gets a connection. The URL is
unchanged, so the Host header and the TLS server name (SNI, certificate check) stay the name.

"Public" is `ipaddress`'s `is_global` (no loopback, private, link-local, carrier-grade NAT
100.64/10, reserved or documentation ranges), not multicast, with IPv4 addresses embedded in
IPv6 ones (mapped, 6to4, NAT64, Teredo) judged as IPv4. Dev and test allow local receivers,
which is how the tests and a laptop demo work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from {{ cookiecutter.package_name }}.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses the name resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeTargetError(ValueError):
    """The URL points at a network the service must not call."""


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo client), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: Address) -> bool:
    """May a webhook in production connect to `address`?"""
    address = _embedded_ipv4(address)
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver (IP literals resolve to themselves)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def allowed_addresses(
    host: str,
    port: int,
    *,
    resolve: Resolver = system_resolver,
    allow: Callable[[Address], bool] = is_public,
) -> list[str]:
    """The addresses of `host`, all allowed, or UnsafeTargetError (OSError if unresolvable).

    One forbidden address refuses the name: which address a client picks is not ours to steer."""
    addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"{host} has no address")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        if not allow(address):
            raise UnsafeTargetError(
                f"{host} resolves to {address}, a loopback, private, link-local or otherwise "
                "non-public address"
            )
    return addresses


async def check_target(url: str, settings: Settings) -> None:
    """Raise UnsafeTargetError if `url` resolves to a forbidden address (production only);
    OSError if its host cannot be resolved."""
    if settings.environment != "production":
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise UnsafeTargetError("the URL has no host")
    await allowed_addresses(host, parts.port or (443 if parts.scheme == "https" else 80))


def safe_origin(url: str) -> str:
    """`scheme://host[:port]` of a receiver URL, for logs and errors: receivers put tokens in
    userinfo, paths and queries (Slack-style URLs), and those never reach a log line."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that connects only to allowed addresses, resolved once."""

    def __init__(
        self,
        *,
        resolve: Resolver = system_resolver,
        allow: Callable[[Address], bool] = is_public,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolve
        self._allow = allow
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, check every address, then connect to the first one that answers."""
        async with asyncio.timeout(timeout):
            addresses = await allowed_addresses(
                host, port, resolve=self._resolve, allow=self._allow
            )
        failure: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are local by definition: never for a webhook."""
        raise UnsafeTargetError("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        """Delegate (httpcore's retry back-off)."""
        await self._inner.sleep(seconds)


def guarded_transport(
    *, limits: httpx.Limits | None = None, backend: GuardedBackend | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend`."""
    limits = limits or httpx.Limits()
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx has no network-backend option: give the transport the same connection pool it
    # would build, with the guarding backend (proxies from the environment are not used by
    # a client that is handed a transport, so nothing bypasses the check).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend or GuardedBackend(),
    )
    return transport
