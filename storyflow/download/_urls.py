"""What a URL must be before any download process sees it.

Both tools read an argument starting with ``-`` as an option even in URL position, and treat prefixes such as
``ytdl:``, ``generic:``, ``recursive:`` or ``file:`` as control signals (``recursive:file:///…`` reads a local
file). So only plain ``http(s)://`` URLs pass, and their host must not resolve to a local or private address
unless the owner allowed that explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from urllib.parse import urlsplit, urlunsplit

import trio

from .._errors import NetworkError, PrivateAddress, UnsafeURL

MAX_URL_LENGTH = 2048
_ALLOWED_SCHEMES = frozenset({"http", "https"})


def _has_invisible_characters(text: str) -> bool:
    # Control and format characters (RTL overrides, zero-width joiners, …) make a link read as something else.
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


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
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeURL(f"invalid host name: {_shorten(host)}") from None
    netloc = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip.teredo is not None:
            ip = ip.teredo[1]
    # is_global is False for loopback, RFC 1918, link-local, CGNAT (100.64/10), reserved and unspecified.
    return ip.is_global and not ip.is_multicast


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a non-public address. Resolution runs in a worker thread.

    The resolver also accepts numeric hosts in the odd forms (``2130706433``, ``0x7f.1``, ``127.1``) the
    download tools would accept, so they are judged by where they really point.
    """
    if allow_private:
        return
    host, port = host_and_port(url)
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise NetworkError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if not is_public_address(address):
            raise PrivateAddress(f"{host} points to a local or private address ({address})")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
