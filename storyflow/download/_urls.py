"""What a URL must be before any download process sees it.

Both tools read an argument starting with ``-`` as an option even in URL position, and treat prefixes such as
``ytdl:``, ``generic:``, ``recursive:`` or ``file:`` as control signals (``recursive:file:///…`` reads a local
file). So only plain ``http(s)://`` URLs pass, and their host must not resolve to a local or private address
unless the owner allowed that explicitly.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import trio

from .._errors import NetworkError, PrivateAddress, UnsafeURL

MAX_URL_LENGTH = 2048
_ALLOWED_SCHEMES = frozenset({"http", "https"})


# Unicode's Default_Ignorable_Code_Point ranges, and blank-looking letters and symbols: invisible in a link.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _has_invisible_characters(text: str) -> bool:
    """Control and format characters (RTL overrides, zero-width joiners, …) and blank fillers make a link read
    as something other than what it is."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return True
        code = ord(char)
        if any(low <= code <= high for low, high in _INVISIBLE_RANGES):
            return True
    return False


def _checked_host(host: str) -> str:
    """The host in ASCII, refused unless it is an IP literal or a name of valid labels (and not ``localhost``)."""
    if "%" in host:
        # A zone id ("fe80::1%eth0") or percent-encoding: both name something other than a public host.
        raise UnsafeURL(f"host {_shorten(host)} has a zone id or percent-encoding in it")
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeURL(f"invalid host name: {_shorten(host)}") from None
    ascii_host = ascii_host.lower().removesuffix(".")
    try:
        ipaddress.ip_address(ascii_host)
        return ascii_host
    except ValueError:
        pass
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise UnsafeURL(f"invalid host name: {_shorten(host)}", hint="labels are 1–63 letters, digits or dashes")
    return ascii_host


def validate_url(text: str) -> str:
    """Return ``text`` as a normalised http(s) URL, or raise :class:`UnsafeURL` saying why not."""
    url = text.strip()
    if not url:
        raise UnsafeURL("empty link")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"link is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if url.startswith("-"):
        raise UnsafeURL("a link cannot start with '-' (that is how options are injected)")
    if _has_invisible_characters(url):
        raise UnsafeURL("link contains invisible control or direction characters")
    if any(ch.isspace() for ch in url):
        raise UnsafeURL("link contains spaces")
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise UnsafeURL(f"not a link: {_shorten(url)}")
    if not scheme.isascii() or scheme.lower() not in _ALLOWED_SCHEMES:
        raise UnsafeURL(f"'{_shorten(scheme)}:' links are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"malformed link: {exc}") from None
    if not url[len(scheme) :].startswith("://"):
        raise UnsafeURL("a link must look like https://host/path")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("links with a user name or password in them are refused", hint="remove the 'user@' part")
    host = parts.hostname
    if not host:
        raise UnsafeURL("link has no host")
    ascii_host = _checked_host(host)
    netloc = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


# IANA's special-purpose ranges that are not the public internet, named here rather than left to the Python
# version's is_global (3.11 counts most of 192.0.0.0/24 as global).
_NOT_PUBLIC = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    if any(ip in network for network in _NOT_PUBLIC if network.version == ip.version):
        return False
    return ip.is_global and not ip.is_multicast


def names_this_machine(host: str) -> bool:
    """RFC 6761: ``localhost`` and ``*.localhost`` are this machine, whatever a resolver says."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, once each, in order (numeric hosts in every spelling the tools accept
    are resolved without a lookup). Raises OSError / UnicodeError as ``getaddrinfo`` does."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


async def check_destination(
    url: str, *, allow_private: bool, is_public: Callable[[str], bool] = is_public_address
) -> None:
    """Refuse a URL whose host resolves to a non-public address (``is_public`` judges each address). Resolution
    runs in a worker thread.

    The resolver also accepts numeric hosts in the odd forms (``2130706433``, ``0x7f.1``, ``127.1``) the
    download tools would accept, so they are judged by where they really point.
    """
    if allow_private:
        return
    host, port = host_and_port(url)
    if names_this_machine(host):
        raise PrivateAddress(f"{host} points to a local or private address (this machine)")
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise NetworkError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    except UnicodeError:
        raise UnsafeURL(f"invalid host name: {_shorten(host)}") from None
    for address in addresses:
        if not is_public(address):
            raise PrivateAddress(f"{host} points to a local or private address ({address})")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
