"""The destination guard: a forward proxy between the download tools and the network.

:func:`check_destination` judges the link the user gave, but gallery-dl and yt-dlp then follow redirects and
resolve host names on their own: a public page that redirects to ``http://169.254.169.254/`` (a cloud's metadata
service) or to the owner's router, or a name that resolves to a public address once and a private one the next
time, would reach what the check refused. So every tool runs with ``--proxy`` pointing here (and the proxy
variables in its environment), and this proxy resolves each host itself, judges every address, and connects to
the address it judged — no second lookup for a rebinding name to exploit.

It speaks just enough HTTP/1.1 for that: ``CONNECT host:port`` for https (then it only splices bytes; TLS stays
end to end) and absolute-form requests (``GET http://host/path``) for plain http, sent on with ``Connection:
close``. A refused destination gets ``403`` and is remembered, so the job can say why it failed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from urllib.parse import urlsplit

import attrs
import trio

from .._util import single_error
from ._urls import is_public_address, names_this_machine, resolve

log = logging.getLogger("storyflow.proxy")

MAX_HEAD_BYTES = 32 * 1024
HEAD_DEADLINE_SECONDS = 30.0
CONNECT_DEADLINE_SECONDS = 30.0
CHUNK_BYTES = 64 * 1024
# Hop-by-hop and proxy headers a plain-http request loses on its way to the site.
_DROPPED_HEADERS = frozenset({b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive", b"host"})


class _Refused(Exception):
    """The request cannot go on: answer ``status`` with ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@attrs.define(eq=False)
class GuardProxy:
    """A running guard: ``url`` is what the tools get as ``--proxy``; ``refused`` lists what it turned away."""

    url: str
    refused: list[str] = attrs.field(factory=list)

    def tool_environment(self) -> dict[str, str]:
        """Proxy variables for a child process, so anything it starts (ffmpeg) goes through the guard too."""
        return {name: self.url for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                                            "ALL_PROXY")} | {"no_proxy": "", "NO_PROXY": ""}


@asynccontextmanager
async def open_guard_proxy(*, is_allowed: Callable[[str], bool] = is_public_address) -> AsyncIterator[GuardProxy]:
    """Run a guard on an ephemeral 127.0.0.1 port for the duration of the block (Trio-flavoured).

    ``is_allowed(address)`` judges each resolved address (default: public internet only)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    proxy = GuardProxy(f"http://127.0.0.1:{port}")
    # The block's own error leaves as itself, not wrapped in the nursery's group.
    with single_error():
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, partial(_serve, proxy, is_allowed), listeners))
            try:
                yield proxy
            finally:
                nursery.cancel_scope.cancel()


async def _serve(proxy: GuardProxy, is_allowed: Callable[[str], bool], client: trio.SocketStream) -> None:
    async with client:
        try:
            with trio.fail_after(HEAD_DEADLINE_SECONDS):
                head, rest = await _read_head(client)
            method, target, headers = _parse_head(head)
            if method == b"CONNECT":
                host, port = _authority(target.decode("ascii", "replace"))
            else:
                host, port, head = _origin_form(method, target, headers)
            upstream = await _connect(proxy, is_allowed, host, port)
        except _Refused as refusal:
            await _answer(client, refusal.status, refusal.reason)
            return
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        async with upstream:
            try:
                if method == b"CONNECT":
                    await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    await upstream.send_all(head)
                if rest:
                    await upstream.send_all(rest)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, upstream)
                    nursery.start_soon(_pump, upstream, client)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return


async def _read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever arrived after it."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise _Refused(431, "request head too large")
        chunk = await stream.receive_some(CHUNK_BYTES)
        if not chunk:
            raise trio.BrokenResourceError("the client left before finishing its request")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise _Refused(431, "request head too large")
    return head + b"\r\n\r\n", rest


def _parse_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    request_line, *header_lines = head[:-4].split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _Refused(400, "not an HTTP/1.x proxy request")
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise _Refused(400, "malformed header")
        headers.append((name, value.strip()))
    return parts[0].upper(), parts[1], headers


def _authority(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a CONNECT request."""
    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        raise _Refused(400, "malformed CONNECT target") from None
    if not host or port is None:
        raise _Refused(400, "CONNECT needs host:port")
    return host, port


def _origin_form(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[str, int, bytes]:
    """A plain-http proxy request rewritten for the site itself: path-only target, one request per connection."""
    try:
        parts = urlsplit(target.decode("ascii"))
        host, port = parts.hostname, parts.port or 80
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "malformed request target") from None
    if parts.scheme != "http" or not host:
        raise _Refused(400, "only http:// targets, or CONNECT for https")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    kept = [(name, value) for name, value in headers if name.lower() not in _DROPPED_HEADERS]
    # The site judged is the site asked: Host comes from the target, never from the client's headers.
    authority = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    lines = [b"%s %s HTTP/1.1" % (method, path.encode("ascii")), b"Host: " + authority.encode("ascii")]
    lines += [name + b": " + value for name, value in kept]
    lines.append(b"Connection: close")
    return host, port, b"\r\n".join(lines) + b"\r\n\r\n"


async def _connect(
    proxy: GuardProxy, is_allowed: Callable[[str], bool], host: str, port: int
) -> trio.SocketStream:
    """Resolve ``host``, judge every address, connect to one of the judged addresses (never a second lookup)."""
    if names_this_machine(host):
        # Whatever a resolver (or a judge that trusts some local address) says.
        proxy.refused.append(host)
        raise _Refused(403, f"{host} is a local or private address (this machine)")
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise _Refused(502, f"cannot resolve {host}: {exc}") from None
    for address in addresses:
        if not is_allowed(address):
            where = host if host == address else f"{host} ({address})"
            proxy.refused.append(where)
            log.info("refused a download tool's connection to %s: not a public address", where)
            raise _Refused(403, f"{where} is a local or private address")
    last_error: OSError | None = None
    for address in addresses:
        try:
            with trio.fail_after(CONNECT_DEADLINE_SECONDS):
                return await trio.open_tcp_stream(address, port)
        except (OSError, trio.TooSlowError) as exc:
            last_error = exc if isinstance(exc, OSError) else OSError(f"connecting to {host} timed out")
    raise _Refused(502, f"cannot connect to {host}: {last_error}")


async def _answer(client: trio.SocketStream, status: int, reason: str) -> None:
    body = reason.encode("utf-8", "replace") + b"\n"
    phrase = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large",
              502: "Bad Gateway"}.get(status, "Error")
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii")
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await client.send_all(head + body)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy until ``source`` ends, then tell ``sink`` no more is coming (half-close)."""
    try:
        while chunk := await source.receive_some(CHUNK_BYTES):
            await sink.send_all(chunk)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        # One side went away: nothing more can pass either way.
        await source.aclose()
        await sink.aclose()
