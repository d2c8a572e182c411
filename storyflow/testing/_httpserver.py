"""A loopback HTTP/1.1 media server on plain Trio streams, for tests and benchmarks.

gallery-dl and yt-dlp download from it as real child processes, so it speaks the parts of HTTP/1.1
they rely on: persistent connections, HEAD, single byte ranges (206 / 416 with ``Content-Range``),
``Content-Length`` on every response, redirects and error statuses. Bodies are streamed in chunks from
files, bytes or a deterministic generator, so a multi-GiB download costs no memory.

Faults for timeout and resume tests are per route (`Delivery`): a per-response throttle, a stall
after N body bytes (``stall_after=0`` is "headers, then nothing"), or a dropped connection after N
body bytes. `MediaServer.set_rate_limit` throttles all responses together, like a slow link.

Run ``python -m storyflow.testing._httpserver --dir D`` to serve a directory from another process;
it prints its base URL on the first line of stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import hashlib
import mimetypes
import re
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from os import PathLike
from pathlib import Path

import attrs
import trio

__all__ = [
    "Delivery",
    "MediaServer",
    "RequestRecord",
    "generated_bytes",
    "generated_sha256",
    "main",
    "open_media_server",
    "serve_media",
]

StrPath = str | PathLike[str]

# A request head larger than this is not something our clients send; refusing it bounds memory.
_MAX_HEAD_BYTES = 64 * 1024
# Request bodies are read and thrown away; none of our clients sends one to a media URL.
_MAX_DISCARDED_BODY = 1024 * 1024
_DEFAULT_CHUNK = 64 * 1024
# Throttled bodies go out in pieces worth this long at the configured rate, so pacing stays smooth
# without a syscall per byte at low rates.
_PACING_SLICE_SECONDS = 0.02
_GENERATED_BLOCK = 64 * 1024

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
}


def content_type_for(name: str) -> str:
    """Content-Type by extension; our own table first, since the system mime.types varies by machine."""
    suffix = Path(name).suffix.lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


# ---------------------------------------------------------------------------------------------------------
# Values


@attrs.frozen
class Delivery:
    """How a route's body goes out.

    ``bytes_per_second`` throttles each response on its own (on top of the server-wide rate limit).
    ``stall_after``: send that many body bytes, then hold the connection open forever.
    ``drop_after``: send that many body bytes, then close the connection (a truncated transfer).
    Counts are per response, so a client resuming with ``Range`` makes progress on each attempt.
    """

    bytes_per_second: float | None = None
    stall_after: int | None = None
    drop_after: int | None = None


@attrs.frozen
class RequestRecord:
    """One request as the server saw it: ``range`` is the raw Range header, ``status`` what we answered.

    Logged when the answer starts, so a stalled body already shows up; a route that never answers
    (``add_hang(send_headers=False)``) logs status 0.
    """

    method: str
    path: str
    range: str | None
    status: int
    cookie: str | None = None  # the raw Cookie header, so tests see which cookies a tool sent


# ---------------------------------------------------------------------------------------------------------
# Bodies


@attrs.frozen
class _BytesBody:
    data: bytes

    async def size(self) -> int | None:
        return len(self.data)

    async def chunks(self, start: int, stop: int, chunk: int) -> AsyncGenerator[bytes, None]:
        view = memoryview(self.data)
        for offset in range(start, stop, chunk):
            yield bytes(view[offset : min(offset + chunk, stop)])


@attrs.frozen
class _FileBody:
    path: Path

    async def size(self) -> int | None:
        try:
            stat = await trio.Path(self.path).stat()
        except FileNotFoundError:
            return None
        return stat.st_size

    async def chunks(self, start: int, stop: int, chunk: int) -> AsyncGenerator[bytes, None]:
        async with await trio.open_file(self.path, "rb") as f:
            await f.seek(start)
            remaining = stop - start
            while remaining > 0:
                data = await f.read(min(chunk, remaining))
                if not data:
                    return  # the file shrank under us; the sender sees the short body
                remaining -= len(data)
                yield data


@attrs.frozen
class _GeneratedBody:
    length: int
    seed: int
    head: bytes

    async def size(self) -> int | None:
        return self.length

    async def chunks(self, start: int, stop: int, chunk: int) -> AsyncGenerator[bytes, None]:
        for piece in _generate(self.length, self.seed, self.head, start, stop, chunk):
            yield piece
            # A CPU-only generator: let other connections run between chunks.
            await trio.lowlevel.checkpoint()


_Body = _BytesBody | _FileBody | _GeneratedBody


def generated_bytes(size: int, *, seed: int = 0, head: bytes = b"", start: int = 0, stop: int | None = None) -> bytes:
    """Bytes ``start:stop`` of the body `MediaServer.add_generated` serves for these arguments."""
    stop = size if stop is None else min(stop, size)
    return b"".join(_generate(size, seed, head, start, stop, _DEFAULT_CHUNK))


def generated_sha256(size: int, *, seed: int = 0, head: bytes = b"") -> str:
    """Hex sha256 of a generated body, computed in chunks (it may be far larger than memory)."""
    digest = hashlib.sha256()
    for piece in _generate(size, seed, head, 0, size, 1 << 20):
        digest.update(piece)
    return digest.hexdigest()


def _generate(length: int, seed: int, head: bytes, start: int, stop: int, chunk: int) -> Iterator[bytes]:
    """The generated body: ``head``, then 64 KiB blocks of seeded noise, each stamped with its index.

    The index stamp makes every block distinct, so a client that resumes at the wrong offset gets a
    different hash instead of landing on an identical repeat of the pattern.
    """
    noise = hashlib.shake_256(b"storyflow-generated:%d" % seed).digest(_GENERATED_BLOCK)
    offset = start
    while offset < min(stop, length):
        end = min(offset + chunk, stop, length)
        parts: list[bytes] = []
        pos = offset
        if pos < len(head):
            parts.append(head[pos : min(end, len(head))])
            pos = min(end, len(head))
        while pos < end:
            index, inner = divmod(pos, _GENERATED_BLOCK)
            block_end = min(end, (index + 1) * _GENERATED_BLOCK)
            block = index.to_bytes(8, "big") + noise[8:]
            parts.append(block[inner : inner + block_end - pos])
            pos = block_end
        yield b"".join(parts)
        offset = end


# ---------------------------------------------------------------------------------------------------------
# Routes


@attrs.frozen
class _Content:
    body: _Body
    content_type: str
    delivery: Delivery
    chunk: int = _DEFAULT_CHUNK


@attrs.frozen
class _Redirect:
    location: str
    status: int


@attrs.frozen
class _Status:
    status: int
    retry_after: int | None


@attrs.frozen
class _Silence:
    """Read the request, never answer: for clients' header (read) timeouts."""


_Route = _Content | _Redirect | _Status | _Silence


@attrs.define(eq=False)
class _Pacer:
    """A byte budget over time; one is shared by all responses for the server-wide rate limit."""

    bytes_per_second: float | None = None
    _next_free: float = 0.0

    def reserve(self, nbytes: int) -> float:
        """The time at which ``nbytes`` have finished crossing this (modelled) link."""
        if self.bytes_per_second is None:
            return -float("inf")
        start = max(trio.current_time(), self._next_free)
        self._next_free = start + nbytes / self.bytes_per_second
        return self._next_free


# ---------------------------------------------------------------------------------------------------------
# The server


@attrs.define(eq=False)
class MediaServer:
    """The routes table and request log of one running server; get one from `open_media_server`.

    Routes are matched on the URL path without its query string, so ``add_bytes("/v.mp4?sig=1", ...)``
    returns a URL with the query, as CDN links have, and also answers ``/v.mp4``.
    """

    host: str
    port: int
    requests: list[RequestRecord] = attrs.field(factory=list, init=False)
    _routes: dict[str, _Route] = attrs.field(factory=dict, init=False)
    _directories: dict[str, tuple[Path, Delivery]] = attrs.field(factory=dict, init=False)
    _link: _Pacer = attrs.field(factory=_Pacer, init=False)
    _request_seen: trio.Event = attrs.field(factory=trio.Event, init=False)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, url_path: str) -> str:
        return self.base_url + url_path

    # -- routes ---------------------------------------------------------------------------------------------

    def add_file(
        self,
        url_path: str,
        file_path: StrPath,
        *,
        content_type: str | None = None,
        delivery: Delivery = Delivery(),
        chunk: int = _DEFAULT_CHUNK,
    ) -> str:
        """Serve a file, read from disk on each request (so a test may change or delete it)."""
        path = Path(file_path)
        return self._add(
            url_path, _Content(_FileBody(path), content_type or content_type_for(path.name), delivery, chunk)
        )

    def add_bytes(self, url_path: str, data: bytes, *, content_type: str, delivery: Delivery = Delivery()) -> str:
        return self._add(url_path, _Content(_BytesBody(bytes(data)), content_type, delivery))

    def add_html(self, url_path: str, html: str) -> str:
        return self.add_bytes(url_path, html.encode(), content_type="text/html; charset=utf-8")

    def add_redirect(self, url_path: str, target_url: str, status: int = 302) -> str:
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"{status} is not a redirect status")
        return self._add(url_path, _Redirect(target_url, status))

    def add_status(self, url_path: str, status: int, *, retry_after: int | None = 1) -> str:
        """Answer with a bare status; 429 and 503 carry ``Retry-After: retry_after`` unless it is None."""
        return self._add(url_path, _Status(status, retry_after))

    def add_generated(
        self,
        url_path: str,
        size: int,
        *,
        content_type: str,
        seed: int = 0,
        head: bytes = b"",
        chunk: int = _DEFAULT_CHUNK,
        delivery: Delivery = Delivery(),
    ) -> str:
        """Serve ``size`` deterministic bytes made on the fly; `generated_sha256` gives their hash.

        ``head`` replaces the start of the body, e.g. `padded_mp4_head` to make it a valid mp4.
        """
        if len(head) > size:
            raise ValueError("head is longer than the body")
        return self._add(url_path, _Content(_GeneratedBody(size, seed, bytes(head)), content_type, delivery, chunk))

    def add_slow(
        self,
        url_path: str,
        source: StrPath | bytes,
        *,
        bytes_per_second: float,
        content_type: str | None = None,
    ) -> str:
        """A file or bytes throttled to ``bytes_per_second`` per response."""
        delivery = Delivery(bytes_per_second=bytes_per_second)
        if isinstance(source, bytes):
            return self.add_bytes(
                url_path, source, content_type=content_type or "application/octet-stream", delivery=delivery
            )
        return self.add_file(url_path, source, content_type=content_type, delivery=delivery)

    def add_hang(
        self,
        url_path: str,
        *,
        send_headers: bool = True,
        size: int = 1 << 20,
        content_type: str = "video/mp4",
    ) -> str:
        """A route that never finishes: headers (200, ``size`` bytes) then silence, or no answer at all."""
        if not send_headers:
            return self._add(url_path, _Silence())
        return self.add_generated(url_path, size, content_type=content_type, delivery=Delivery(stall_after=0))

    def add_directory(self, url_prefix: str, directory: StrPath, *, delivery: Delivery = Delivery()) -> str:
        """Serve the files under ``directory`` at ``url_prefix`` (no listings, nothing outside it)."""
        prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"
        _check_url_path(prefix)
        self._directories[prefix] = (Path(directory).resolve(), delivery)
        return self.url(prefix)

    def _add(self, url_path: str, route: _Route) -> str:
        _check_url_path(url_path)
        self._routes[url_path.partition("?")[0]] = route
        return self.url(url_path)

    # -- throttling and the request log ---------------------------------------------------------------------

    def set_rate_limit(self, bytes_per_second: float | None) -> None:
        """Cap the bytes per second of all response bodies together; None lifts the cap."""
        self._link = _Pacer(bytes_per_second)

    def request_count(self, path: str) -> int:
        return sum(1 for record in self.requests if record.path == path)

    async def wait_for_request(self, path: str, count: int = 1) -> RequestRecord:
        """Wait until ``path`` has been requested ``count`` times; returns that request's record."""
        while True:
            matching = [record for record in self.requests if record.path == path]
            if len(matching) >= count:
                return matching[count - 1]
            await self._request_seen.wait()

    def _record(self, request: _Request, status: int) -> None:
        self.requests.append(RequestRecord(
            request.method, request.path, request.headers.get("range"), status, request.headers.get("cookie")
        ))
        self._request_seen.set()
        self._request_seen = trio.Event()

    # -- serving --------------------------------------------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        reader = _RequestReader(stream)
        try:
            async with stream:
                while True:
                    try:
                        request = await reader.next_request()
                    except _BadRequest as exc:
                        await _send_simple(stream, exc.status, keep_alive=False)
                        return
                    if request is None or not await self._answer(stream, request):
                        return
        except trio.BrokenResourceError:
            # The client hung up, possibly mid-body: yt-dlp does when it has what it wants.
            pass

    async def _answer(self, stream: trio.SocketStream, request: _Request) -> bool:
        """Send one response; False when the connection must close after it."""
        keep_alive = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            self._record(request, 405)
            await _send_simple(stream, 405, keep_alive=keep_alive, extra=[("Allow", "GET, HEAD")], request=request)
            return keep_alive
        route = self._routes.get(request.path) or await self._directory_route(request.path)
        match route:
            case None:
                self._record(request, 404)
                await _send_simple(stream, 404, keep_alive=keep_alive, request=request)
            case _Redirect(location, status):
                self._record(request, status)
                await _send_simple(
                    stream, status, keep_alive=keep_alive, extra=[("Location", location)], request=request
                )
            case _Status(status, retry_after):
                self._record(request, status)
                extra = [("Retry-After", str(retry_after))] if status in (429, 503) and retry_after is not None else []
                await _send_simple(stream, status, keep_alive=keep_alive, extra=extra, request=request)
            case _Silence():
                self._record(request, 0)
                await trio.sleep_forever()
            case _Content():
                return await self._send_content(stream, request, route)
        return keep_alive

    async def _send_content(self, stream: trio.SocketStream, request: _Request, route: _Content) -> bool:
        size = await route.body.size()
        if size is None:
            self._record(request, 404)
            await _send_simple(stream, 404, keep_alive=request.keep_alive, request=request)
            return request.keep_alive
        # Without validators we cannot tell whether an If-Range still matches, so the safe answer
        # (RFC 9110 §13.1.5) is the whole body.
        try:
            span = None if "if-range" in request.headers else _parse_range(request.headers.get("range"), size)
        except _RangeNotSatisfiable:
            self._record(request, 416)
            extra = [("Content-Range", f"bytes */{size}")]
            await _send_simple(stream, 416, keep_alive=request.keep_alive, extra=extra, request=request)
            return request.keep_alive
        headers = [("Content-Type", route.content_type), ("Accept-Ranges", "bytes")]
        if span is None:
            status, start, stop = 200, 0, size
        else:
            status, (start, stop) = 206, span
            headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
        headers.append(("Content-Length", str(stop - start)))
        self._record(request, status)
        await stream.send_all(_response_head(status, headers, request.keep_alive, request.version))
        if request.method == "HEAD":
            return request.keep_alive
        complete = await self._send_body(stream, route, start, stop)
        # A short body leaves the client waiting for bytes that never come; closing tells it.
        return complete and request.keep_alive

    async def _send_body(self, stream: trio.SocketStream, route: _Content, start: int, stop: int) -> bool:
        delivery = route.delivery
        faults = [n for n in (delivery.stall_after, delivery.drop_after) if n is not None]
        send_until = min([stop, *(start + n for n in faults)])
        per_response = _Pacer(delivery.bytes_per_second)
        link = self._link
        rates = [p.bytes_per_second for p in (per_response, link) if p.bytes_per_second is not None]
        piece = min([route.chunk, *(max(1, int(rate * _PACING_SLICE_SECONDS)) for rate in rates)])
        sent = start
        # aclosing: a client hanging up mid-body must close the file now, not whenever the GC finalises it.
        async with contextlib.aclosing(route.body.chunks(start, send_until, piece)) as chunks:
            async for data in chunks:
                deadline = max(per_response.reserve(len(data)), link.reserve(len(data)))
                if deadline > trio.current_time():
                    await trio.sleep_until(deadline)
                await stream.send_all(data)
                sent += len(data)
        if sent == stop:
            return True
        if delivery.stall_after is not None and sent == start + delivery.stall_after:
            await trio.sleep_forever()
        return False

    async def _directory_route(self, path: str) -> _Content | None:
        for prefix in sorted(self._directories, key=len, reverse=True):
            if not path.startswith(prefix):
                continue
            root, delivery = self._directories[prefix]
            parts = urllib.parse.unquote(path[len(prefix) :]).split("/")
            if any(part in ("", ".", "..") for part in parts):
                return None
            candidate = trio.Path(root.joinpath(*parts))
            resolved = await candidate.resolve()
            # resolve() follows symlinks: refuse any that lead out of the served directory.
            if not resolved.is_relative_to(root) or not await resolved.is_file():
                return None
            return _Content(_FileBody(Path(resolved)), content_type_for(resolved.name), delivery)
        return None


def _check_url_path(url_path: str) -> None:
    if not url_path.startswith("/") or any(c.isspace() for c in url_path):
        raise ValueError(f"URL path must start with '/' and contain no whitespace: {url_path!r}")


# ---------------------------------------------------------------------------------------------------------
# HTTP/1.1 messages


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@attrs.frozen
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@attrs.define(eq=False)
class _RequestReader:
    stream: trio.abc.ReceiveStream
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)

    async def next_request(self) -> _Request | None:
        """The next request on the connection, or None once the client has closed it."""
        head = await self._read_head()
        if head is None:
            return None
        request = _parse_head(head)
        await self._discard_body(request)
        return request

    async def _read_head(self) -> bytes | None:
        scan_from = 0
        while True:
            # RFC 9112 §2.2: ignore empty lines before a request line (some clients send them).
            stripped = self._buffer.lstrip(b"\r\n")
            if len(stripped) != len(self._buffer):
                self._buffer = bytearray(stripped)
                scan_from = 0
            end = self._buffer.find(b"\r\n\r\n", scan_from)
            if end > _MAX_HEAD_BYTES:
                raise _BadRequest(431)
            if end >= 0:
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                return head
            if len(self._buffer) > _MAX_HEAD_BYTES:
                raise _BadRequest(431)
            scan_from = max(0, len(self._buffer) - 3)
            data = await self.stream.receive_some(_DEFAULT_CHUNK)
            if not data:
                return None
            self._buffer += data

    async def _discard_body(self, request: _Request) -> None:
        if "transfer-encoding" in request.headers:
            raise _BadRequest(501)
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit():
            raise _BadRequest(400)
        remaining = int(declared)
        if remaining > _MAX_DISCARDED_BODY:
            raise _BadRequest(413)
        while len(self._buffer) < remaining:
            data = await self.stream.receive_some(_DEFAULT_CHUNK)
            if not data:
                raise _BadRequest(400)
            self._buffer += data
        del self._buffer[:remaining]


def _parse_head(head: bytes) -> _Request:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise _BadRequest(400)
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise _BadRequest(400)
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise _BadRequest(505 if version.startswith("HTTP/") else 400)
    if target.startswith(("http://", "https://")):
        split = urllib.parse.urlsplit(target)
        target = split.path or "/"
    path = target.partition("?")[0]
    if not path.startswith("/"):
        raise _BadRequest(400)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        # No colon, whitespace before it, or obsolete line folding: all rejected by RFC 9112 §5.
        if not colon or not _TOKEN.fullmatch(name):
            raise _BadRequest(400)
        headers[name.lower()] = value.strip(" \t")
    return _Request(method, path, version, headers)


class _RangeNotSatisfiable(Exception):
    pass


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` for one satisfiable byte range, or None to send the whole body.

    Multiple ranges and malformed headers get the whole body, which RFC 9110 §14.2 allows.
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = re.fullmatch(r"\s*(\d*)-(\d*)\s*", spec)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _RangeNotSatisfiable
    stop = size if last == "" else min(int(last) + 1, size)
    return start, stop


def _response_head(status: int, headers: list[tuple[str, str]], keep_alive: bool, version: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    lines.append("Server: storyflow-media")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_simple(
    stream: trio.SocketStream,
    status: int,
    *,
    keep_alive: bool,
    extra: list[tuple[str, str]] | None = None,
    request: _Request | None = None,
) -> None:
    """A short text body: error pages, redirects. One write, so head and body share a packet."""
    body = f"{status} {HTTPStatus(status).phrase}\n".encode()
    headers = [
        *(extra or []),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    version = request.version if request else "HTTP/1.1"
    head = _response_head(status, headers, keep_alive, version)
    await stream.send_all(head if request is not None and request.method == "HEAD" else head + body)


# ---------------------------------------------------------------------------------------------------------
# Entry points


async def serve_media(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[MediaServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``started(server)`` comes once the socket is bound and being accepted on.

    ``host`` should be an IP literal: a name with several addresses would get a different free port
    on each, so only the first is kept.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    listener = listeners[0]
    server = MediaServer(host=host, port=listener.socket.getsockname()[1])
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server._serve_connection, [listener])
        task_status.started(server)


@asynccontextmanager
async def open_media_server(*, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[MediaServer]:
    """A running `MediaServer` for the body of the ``async with``; its tasks end on exit."""
    async with trio.open_nursery() as nursery:
        server: MediaServer = await nursery.start(_serve_media_at, host, port)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def _serve_media_at(host: str, port: int, task_status: trio.TaskStatus[MediaServer]) -> None:
    # nursery.start passes positional arguments only.
    await serve_media(host=host, port=port, task_status=task_status)


def main(argv: list[str] | None = None) -> None:
    """Serve a directory from its own process, for benchmark scripts; prints the base URL first."""
    parser = argparse.ArgumentParser(prog="python -m storyflow.testing._httpserver", description=main.__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="directory whose files are served at /")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rate", type=float, default=None, help="cap on all bodies together, bytes/second")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"not a directory: {args.dir}")
    # Ctrl-C is the way to stop it; a traceback for it is noise.
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_serve_directory, args.dir, args.host, args.port, args.rate)


async def _serve_directory(directory: Path, host: str, port: int, rate: float | None) -> None:
    async with open_media_server(host=host, port=port) as server:
        server.add_directory("/", directory)
        server.set_rate_limit(rate)
        print(server.base_url, flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    main()
