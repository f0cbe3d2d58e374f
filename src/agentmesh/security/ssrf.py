"""A guard against server-side request forgery for URLs the mesh calls on a user's
behalf (approval webhooks, callbacks): only ``http``/``https`` to a public address.

>>> check_public_url("https://hooks.example.com/approvals")
>>> check_public_url("http://169.254.169.254/latest/meta-data")
Traceback (most recent call last):
...
agentmesh.errors.UnsafeUrl: ...

Host names are resolved and EVERY address they resolve to must be public, so a name
pointing at ``127.0.0.1`` is refused like the literal address. ``allow_private=True``
(an explicit per-tenant opt-in, e.g. for a webhook receiver on the same network) lifts
the address check but never the scheme check.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from agentmesh.errors import UnsafeUrl

_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _why_not_public(addr: Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("private", addr.is_private),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("unspecified", addr.is_unspecified),
        ("shared (carrier-grade NAT)", addr in ipaddress.ip_network("100.64.0.0/10")),
    )
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


def _resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"cannot resolve host {host!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_public_url(url: str, *, allow_private: bool = False) -> None:
    """Return when ``url`` is an ``http(s)`` URL whose host is public; raise
    :class:`~agentmesh.errors.UnsafeUrl` naming the reason otherwise (bad scheme, no
    host, credentials in the URL, or a private, loopback, link-local, multicast,
    reserved or cloud-metadata address, literal or resolved)."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("the URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"URL scheme must be http or https, got {parts.scheme or 'none'!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl(f"URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("credentials in the URL are not allowed")
    if allow_private:
        return
    if host in _METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise UnsafeUrl(f"host {host!r} is not public")
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    for addr in addresses:
        reason = _why_not_public(addr)
        if reason is not None:
            raise UnsafeUrl(f"host {host!r} resolves to {addr}, {reason}")


__all__ = ["check_public_url"]
