"""The loopback media server and generated media: HTTP details, then real yt-dlp / gallery-dl downloads."""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from storyflow._ffmpeg import ffmpeg_executable
from storyflow.testing._httpserver import (
    Delivery,
    MediaServer,
    generated_bytes,
    generated_sha256,
    open_media_server,
    serve_media,
)
from storyflow.testing._media import (
    make_audio,
    make_image,
    make_padded_video,
    make_video,
    og_video_page_html,
    padded_mp4_head,
    sha256_file,
    video_page_html,
)

# ---------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video(media_dir: Path) -> Path:
    # Long enough (~170 KB) that yt-dlp and gallery-dl write several blocks before a dropped connection.
    return make_video(media_dir / "clip.mp4", seconds=3.0, width=320, height=240)


@pytest.fixture(scope="module")
def video_data(video: Path) -> bytes:
    return video.read_bytes()


@pytest.fixture(scope="module")
def image(media_dir: Path) -> Path:
    return make_image(media_dir / "photo.jpg", width=320, height=240)


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    async with open_media_server() as media_server:
        yield media_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: no proxy from the environment may see loopback test traffic.
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


async def raw_exchange(server: MediaServer, request: bytes, *, listen_for: float | None = None) -> bytes:
    """Send raw bytes, collect the answer until the server closes (or ``listen_for`` seconds pass)."""
    received = bytearray()
    # A server that never closes fails the test instead of hanging it.
    with trio.fail_after(10):
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(request)
            with trio.move_on_after(listen_for if listen_for is not None else float("inf")):
                while chunk := await stream.receive_some(65536):
                    received += chunk
    return bytes(received)


def split_responses(data: bytes, methods: list[str]) -> list[tuple[int, dict[str, str], bytes]]:
    """Parse consecutive responses (one per request method) out of a raw byte stream."""
    responses = []
    for method in methods:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = 0 if method == "HEAD" else int(headers["content-length"])
        responses.append((int(status_line.split(" ")[1]), headers, data[:length]))
        data = data[length:]
    assert data == b""
    return responses


# ---------------------------------------------------------------------------------------------------------
# HTTP


async def test_get_and_head_a_file(
    server: MediaServer, client: httpx.AsyncClient, video: Path, video_data: bytes
) -> None:
    url = server.add_file("/clip.mp4", video)
    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == video_data
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-length"] == str(len(video_data))
    assert response.headers["accept-ranges"] == "bytes"

    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(video_data))
    assert [(r.method, r.path, r.status) for r in server.requests] == [
        ("GET", "/clip.mp4", 200),
        ("HEAD", "/clip.mp4", 200),
    ]


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-", 100, None),
        ("bytes=-5", -5, None),
        ("bytes=1000-99999999", 1000, None),
    ],
)
async def test_single_ranges_get_206(
    server: MediaServer,
    client: httpx.AsyncClient,
    video: Path,
    video_data: bytes,
    range_header: str,
    start: int,
    stop: int | None,
) -> None:
    url = server.add_file("/clip.mp4", video)
    data = video_data
    response = await client.get(url, headers={"Range": range_header})
    expected = data[start:stop]
    first = start if start >= 0 else len(data) + start
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert server.requests[-1].range == range_header


async def test_unsatisfiable_range_gets_416(server: MediaServer, client: httpx.AsyncClient) -> None:
    url = server.add_bytes("/ten", b"0123456789", content_type="application/octet-stream")
    response = await client.get(url, headers={"Range": "bytes=10-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */10"


@pytest.mark.parametrize("range_header", ["bytes=0-1,4-5", "bytes=5-2", "items=0-1", "bytes=x-"])
async def test_ranges_we_do_not_serve_get_the_whole_body(
    server: MediaServer, client: httpx.AsyncClient, range_header: str
) -> None:
    url = server.add_bytes("/ten", b"0123456789", content_type="application/octet-stream")
    response = await client.get(url, headers={"Range": range_header})
    assert (response.status_code, response.content) == (200, b"0123456789")


async def test_pipelined_requests_share_one_connection(server: MediaServer) -> None:
    server.add_bytes("/a.txt", b"alpha", content_type="text/plain")
    request = (
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n"
        b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses = split_responses(await raw_exchange(server, request), ["GET", "HEAD", "GET", "GET"])
    assert [(status, body) for status, _, body in responses] == [
        (200, b"alpha"),
        (200, b""),
        (206, b"lp"),
        (404, b"404 Not Found\n"),
    ]
    assert responses[1][1]["content-length"] == "5"
    assert responses[3][1]["connection"] == "close"


async def test_http10_closes_unless_asked_to_keep_alive(server: MediaServer) -> None:
    server.add_bytes("/a.txt", b"alpha", content_type="text/plain")
    closed = await raw_exchange(server, b"GET /a.txt HTTP/1.0\r\n\r\n")
    assert split_responses(closed, ["GET"])[0][1]["connection"] == "close"
    kept = await raw_exchange(server, b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", listen_for=0.2)
    assert split_responses(kept, ["GET"])[0][1]["connection"] == "keep-alive"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /a HTTP/2.0\r\n\r\n", 505),
        (b"GET /a HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", 431),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ],
)
async def test_malformed_requests_are_refused_and_closed(
    server: MediaServer, request_bytes: bytes, status: int
) -> None:
    response = await raw_exchange(server, request_bytes)
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in response


async def test_request_body_is_skipped_and_method_refused(server: MediaServer) -> None:
    server.add_bytes("/a.txt", b"alpha", content_type="text/plain")
    request = b"POST /a.txt HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n"
    (refused, allowed) = split_responses(await raw_exchange(server, request), ["POST", "GET"])
    assert (refused[0], refused[1]["allow"]) == (405, "GET, HEAD")
    assert (allowed[0], allowed[2]) == (200, b"alpha")


async def test_statuses_and_redirects(server: MediaServer, client: httpx.AsyncClient) -> None:
    target = server.add_bytes("/real.bin", b"payload", content_type="application/octet-stream")
    moved = server.add_redirect("/moved.bin", target, status=301)
    limited = server.add_status("/limited", 429, retry_after=7)
    broken = server.add_status("/broken", 500)

    followed = await client.get(moved, follow_redirects=True)
    assert followed.content == b"payload"
    assert [r.status_code for r in followed.history] == [301]
    assert followed.history[0].headers["location"] == target
    too_many = await client.get(limited)
    assert (too_many.status_code, too_many.headers["retry-after"]) == (429, "7")
    assert (await client.get(broken)).status_code == 500
    assert (await client.get(server.url("/nothing-here"))).status_code == 404


async def test_query_strings_are_kept_in_urls_and_ignored_for_matching(
    server: MediaServer, client: httpx.AsyncClient
) -> None:
    url = server.add_bytes("/v.mp4?sig=abc&exp=1", b"v", content_type="video/mp4")
    assert url.endswith("/v.mp4?sig=abc&exp=1")
    assert (await client.get(url)).content == b"v"
    assert (await client.get(server.url("/v.mp4?other=1"))).content == b"v"
    assert server.request_count("/v.mp4") == 2


async def test_generated_body_streams_and_ranges(server: MediaServer, client: httpx.AsyncClient) -> None:
    size = 3 * 1024 * 1024 + 17
    url = server.add_generated("/big.bin", size, content_type="application/octet-stream", seed=3)
    digest = hashlib.sha256()
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == generated_sha256(size, seed=3)
    assert generated_sha256(size, seed=3) != generated_sha256(size, seed=4)

    ranged = await client.get(url, headers={"Range": "bytes=65530-65545"})
    assert ranged.content == generated_bytes(size, seed=3, start=65530, stop=65546)
    # Every 64 KiB block is stamped with its index, so blocks never repeat.
    assert generated_bytes(size, start=0, stop=1000) != generated_bytes(size, start=65536, stop=66536)


async def test_generated_body_with_an_mp4_head_is_a_valid_video(
    server: MediaServer, client: httpx.AsyncClient, video_data: bytes, tmp_path: Path
) -> None:
    size = 2_000_000
    head = padded_mp4_head(video_data, size)
    url = server.add_generated("/padded.mp4", size, content_type="video/mp4", head=head)
    target = tmp_path / "padded.mp4"
    await trio.Path(target).write_bytes((await client.get(url)).content)
    assert top_level_boxes(target)[-1] == ("free", size - len(video_data))
    assert_ffmpeg_decodes(target)


async def test_stall_after_sends_that_many_bytes_then_holds(server: MediaServer) -> None:
    server.add_bytes("/stall", b"x" * 1000, content_type="text/plain", delivery=Delivery(stall_after=300))
    received = await raw_exchange(server, b"GET /stall HTTP/1.1\r\n\r\n", listen_for=0.3)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head
    assert body == b"x" * 300


async def test_hang_routes(server: MediaServer) -> None:
    server.add_hang("/headers-only")
    server.add_hang("/silent", send_headers=False)
    headers_only = await raw_exchange(server, b"GET /headers-only HTTP/1.1\r\n\r\n", listen_for=0.2)
    assert headers_only.startswith(b"HTTP/1.1 200 OK\r\n")
    assert headers_only.endswith(b"\r\n\r\n")
    assert await raw_exchange(server, b"GET /silent HTTP/1.1\r\n\r\n", listen_for=0.2) == b""
    # The silent route never answered, which the log records as status 0.
    assert (await server.wait_for_request("/silent")).status == 0


async def test_drop_after_truncates_each_response(server: MediaServer, client: httpx.AsyncClient) -> None:
    url = server.add_bytes(
        "/drop", bytes(range(200)), content_type="application/octet-stream", delivery=Delivery(drop_after=50)
    )
    received = await raw_exchange(server, b"GET /drop HTTP/1.1\r\n\r\n")
    assert received.partition(b"\r\n\r\n")[2] == bytes(range(50))
    resumed = await raw_exchange(server, b"GET /drop HTTP/1.1\r\nRange: bytes=150-\r\nConnection: close\r\n\r\n")
    assert resumed.partition(b"\r\n\r\n")[2] == bytes(range(150, 200))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(url)


async def test_wait_for_request_wakes_on_arrival(server: MediaServer, client: httpx.AsyncClient) -> None:
    url = server.add_bytes("/ping", b"pong", content_type="text/plain")
    seen = []

    async def watch() -> None:
        seen.append(await server.wait_for_request("/ping", count=2))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await client.get(url)
        await client.get(url, headers={"Range": "bytes=1-"})
    assert [(r.range, r.status) for r in seen] == [("bytes=1-", 206)]
    assert server.request_count("/ping") == 2


async def test_rate_limits_pace_bodies(server: MediaServer, client: httpx.AsyncClient) -> None:
    slow = server.add_slow("/slow", b"s" * 40_000, bytes_per_second=200_000)
    fast = server.add_bytes("/fast", b"f" * 40_000, content_type="application/octet-stream")
    start = trio.current_time()
    assert len((await client.get(slow)).content) == 40_000
    assert trio.current_time() - start >= 0.18

    server.set_rate_limit(400_000)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        # The server-wide limit is shared: two bodies at once take as long as both in a row.
        for _ in range(2):
            nursery.start_soon(client.get, fast)
    assert trio.current_time() - start >= 0.18
    server.set_rate_limit(None)
    start = trio.current_time()
    await client.get(fast)
    assert trio.current_time() - start < 0.15


async def test_directory_serving_stays_inside_the_directory(
    server: MediaServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    (served / "sub" / "a b.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    (served / "link.txt").symlink_to(tmp_path / "secret.txt")
    base = server.add_directory("/files", served)

    found = await client.get(base + "sub/a%20b.png")
    assert (found.status_code, found.content, found.headers["content-type"]) == (200, b"png", "image/png")
    for path in ["/files/link.txt", "/files/sub/", "/files/sub/../../secret.txt", "/files/%2e%2e/secret.txt"]:
        raw = await raw_exchange(server, f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        assert raw.startswith(b"HTTP/1.1 404 "), path


async def test_serve_media_is_ready_when_started(video: Path) -> None:
    async with trio.open_nursery() as nursery:
        media_server = await nursery.start(serve_media)
        url = media_server.add_file("/clip.mp4", video)
        async with httpx.AsyncClient(trust_env=False) as http_client:
            assert (await http_client.get(url)).status_code == 200
        nursery.cancel_scope.cancel()


async def test_standalone_process_serves_a_directory(media_dir: Path, video: Path, video_data: bytes) -> None:
    command = [sys.executable, "-m", "storyflow.testing._httpserver", "--dir", str(media_dir)]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False, env=loopback_env())
        )
        assert process.stdout is not None
        first_line = b""
        while not first_line.endswith(b"\n"):
            first_line += await process.stdout.receive_some(1)
        base_url = first_line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(trust_env=False) as http_client:
            response = await http_client.get(f"{base_url}/{video.name}")
        assert response.content == video_data
        process.terminate()


# ---------------------------------------------------------------------------------------------------------
# Generated media


def test_video_is_reproducible_and_variants_differ(tmp_path: Path) -> None:
    first = make_video(tmp_path / "a.mp4")
    again = make_video(tmp_path / "b.mp4")
    other = make_video(tmp_path / "c.mp4", variant=1, audio=False, faststart=False)
    assert sha256_file(first) == sha256_file(again) != sha256_file(other)
    assert [box for box, _ in top_level_boxes(first)][:2] == ["ftyp", "moov"]
    assert [box for box, _ in top_level_boxes(other)][-1] == "moov"
    streams = ffmpeg_probe(first)
    assert "Video: h264" in streams or "Video: mpeg4" in streams
    assert "Audio: aac" in streams
    assert "Audio:" not in ffmpeg_probe(other)


def test_images_and_audio(tmp_path: Path) -> None:
    assert make_image(tmp_path / "a.jpg", width=64, height=48).read_bytes()[:3] == b"\xff\xd8\xff"
    assert make_image(tmp_path / "a.png", width=64, height=48, fmt="png").read_bytes()[:4] == b"\x89PNG"
    mp3 = make_audio(tmp_path / "a.mp3", seconds=0.5, title="Song", artist="Band")
    assert mp3.read_bytes()[:3] == b"ID3"
    tags = ffmpeg_probe(mp3)
    assert "Song" in tags
    assert "Band" in tags
    m4a = make_audio(tmp_path / "a.m4a", seconds=0.5, fmt="m4a", title="Tune")
    assert b"M4A " in m4a.read_bytes()[:32]
    assert "Tune" in ffmpeg_probe(m4a)


def test_padded_video_has_the_exact_size_and_still_plays(tmp_path: Path) -> None:
    big = make_padded_video(tmp_path / "big.mp4", 5_000_000_000)
    assert big.stat().st_size == 5_000_000_000
    # Sparse: the padding took no disk blocks worth mentioning.
    assert big.stat().st_blocks * 512 < 10_000_000
    assert top_level_boxes(big)[-1][0] == "free"
    with pytest.raises(ValueError, match="no room"):
        padded_mp4_head(b"x" * 100, 104)


def top_level_boxes(path: Path) -> list[tuple[str, int]]:
    boxes = []
    with path.open("rb") as f:
        size_on_disk = path.stat().st_size
        offset = 0
        while offset < size_on_disk:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                (size,) = struct.unpack(">Q", f.read(8))
            boxes.append((kind.decode(), size))
            offset += size
    assert offset == size_on_disk
    return boxes


def ffmpeg_probe(path: Path) -> str:
    # No ffprobe in the imageio-ffmpeg wheel: `ffmpeg -i` without an output prints the stream info.
    return subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    ).stderr


def assert_ffmpeg_decodes(path: Path) -> None:
    result = subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------------------------
# Real downloaders


def loopback_env() -> dict[str, str]:
    """The environment minus proxy settings, so the children talk to 127.0.0.1 directly."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return env | {"NO_PROXY": "*", "no_proxy": "*"}


async def yt_dlp(*args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "yt_dlp", "--ignore-config", "--no-cache-dir", "--no-playlist", *args]
    return await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, env=loopback_env())


async def gallery_dl(*args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "gallery_dl", "--ignore-config", *args]
    return await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, env=loopback_env())


@pytest.mark.parametrize("page", ["direct", "video-tag", "og-video"])
async def test_yt_dlp_downloads_direct_links_and_pages(
    server: MediaServer, video: Path, tmp_path: Path, page: str
) -> None:
    video_url = server.add_file("/media/clip.mp4", video)
    url = {
        "direct": video_url,
        "video-tag": server.add_html("/watch", video_page_html("/media/clip.mp4")),
        "og-video": server.add_html("/share/123", og_video_page_html(video_url, title="Shared clip")),
    }[page]
    # Limiting the extractors halves yt-dlp's start-up; a <video> page needs "html5" besides "generic"
    # (with "generic" alone it is an Unsupported URL). The og:video page runs with all of them.
    ies = [] if page == "og-video" else ["--ies", "generic,html5"]
    result = await yt_dlp(*ies, "-o", str(tmp_path / "out.%(ext)s"), "--print", "after_move:filepath", "--", url)
    assert result.returncode == 0, result.stderr.decode()
    downloaded = Path(result.stdout.decode().strip())
    assert downloaded == tmp_path / "out.mp4"
    assert sha256_file(downloaded) == sha256_file(video)


async def test_yt_dlp_resumes_dropped_transfers_with_ranges(server: MediaServer, video: Path, tmp_path: Path) -> None:
    url = server.add_file("/clip.mp4", video, delivery=Delivery(drop_after=60_000))
    result = await yt_dlp("--ies", "generic", "-o", str(tmp_path / "out.%(ext)s"), "--", url)
    assert result.returncode == 0, result.stderr.decode()
    assert sha256_file(tmp_path / "out.mp4") == sha256_file(video)
    resumed = [r for r in server.requests if r.status == 206]
    assert resumed
    assert all(r.range and r.range.startswith("bytes=") for r in resumed)


async def test_yt_dlp_continues_a_part_file(
    server: MediaServer, video: Path, video_data: bytes, tmp_path: Path
) -> None:
    url = server.add_file("/clip.mp4", video)
    await trio.Path(tmp_path / "out.mp4.part").write_bytes(video_data[:50_000])
    result = await yt_dlp("--ies", "generic", "--continue", "-o", str(tmp_path / "out.%(ext)s"), "--", url)
    assert result.returncode == 0, result.stderr.decode()
    assert sha256_file(tmp_path / "out.mp4") == sha256_file(video)
    assert [r.range for r in server.requests if r.status == 206] == ["bytes=50000-"]


async def test_yt_dlp_follows_redirects_and_times_out_on_a_stall(
    server: MediaServer, video: Path, tmp_path: Path
) -> None:
    server.add_file("/cdn/clip.mp4", video)
    url = server.add_redirect("/clip.mp4", server.url("/cdn/clip.mp4"))
    result = await yt_dlp("--ies", "generic", "-o", str(tmp_path / "out.%(ext)s"), "--", url)
    assert result.returncode == 0, result.stderr.decode()
    assert sha256_file(tmp_path / "out.mp4") == sha256_file(video)

    hang = server.add_hang("/hang.mp4")
    with trio.fail_after(15):
        stalled = await yt_dlp(
            "--ies",
            "generic",
            "--socket-timeout",
            "1",
            "--retries",
            "0",
            "-o",
            str(tmp_path / "hang.%(ext)s"),
            "--",
            hang,
        )
    assert stalled.returncode == 1
    assert b"timed out" in stalled.stderr


async def test_gallery_dl_downloads_direct_links_and_redirects(
    server: MediaServer, video: Path, image: Path, tmp_path: Path
) -> None:
    server.add_file("/cdn/photo.jpg", image)
    urls = [
        server.add_file("/media/clip.mp4", video),
        server.add_redirect("/p/photo.jpg", server.url("/cdn/photo.jpg")),
    ]
    result = await gallery_dl("-D", str(tmp_path), "--", *urls)
    assert result.returncode == 0, result.stderr.decode()
    printed = [Path(line) for line in result.stdout.decode().splitlines()]
    assert [sha256_file(p) for p in printed] == [sha256_file(video), sha256_file(image)]
    assert all(p.parent == tmp_path for p in printed)


async def test_gallery_dl_resumes_a_dropped_transfer(server: MediaServer, video: Path, tmp_path: Path) -> None:
    # gallery-dl writes 32 KiB blocks; a drop inside the first block would leave it nothing to resume from.
    url = server.add_file("/clip.mp4", video, delivery=Delivery(drop_after=120_000))
    result = await gallery_dl("-D", str(tmp_path), "-o", "downloader.http.retries=2", "--", url)
    assert result.returncode == 0, result.stderr.decode()
    (downloaded,) = await trio.Path(tmp_path).iterdir()
    assert sha256_file(downloaded) == sha256_file(video)
    assert [r.status for r in server.requests] == [200, 206]
    assert (server.requests[1].range or "").startswith("bytes=")
