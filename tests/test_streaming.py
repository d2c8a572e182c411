"""Streamed uploads of growing files, checked by the loopback Telegram's own upload rules (``UploadStore``), and end
to end through the userbot with a real download."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
from telethon.tl import types

from storyflow._ffmpeg import ffmpeg_executable
from storyflow.download import FileReady
from storyflow.jobs import JobFile
from storyflow.telegram import PartsInFlight
from storyflow.telegram._streaming import open_folder_streams, streamable
from storyflow.telegram._uploader import BIG_FILE_THRESHOLD, PART_SIZE
from storyflow.telegram._values import UploadedFile
from storyflow.testing._httpserver import Delivery, MediaServer, generated_sha256
from storyflow.testing._media import make_padded_video, make_video, video_page_html
from storyflow.testing.telegram import LoopbackTelegram
from storyflow.testing.telegram._uploads import PARTS_LIMIT_DEFAULT, UploadStore

from .conftest import BotRig, running_userbot, userbot_config


@attrs.define
class ServerSink:
    """Parts go into the loopback server's upload store, which rejects what Telegram rejects."""

    store: UploadStore = attrs.field(factory=lambda: UploadStore(keep_bytes_limit=64 * 1024 * 1024))
    totals: list[int] = attrs.field(factory=list)
    _grew: trio.Event = attrs.field(factory=trio.Event)

    async def wait_for_parts(self, count: int) -> None:
        with trio.fail_after(20):
            while len(self.totals) < count:
                await self._grew.wait()

    async def save_part(self, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool) -> None:
        self.totals.append(total_parts)
        self._grew.set()
        self._grew = trio.Event()
        self.store.save_part((1, file_id), index, data, big=big, total_parts=total_parts if big else None,
                             parts_limit=PARTS_LIMIT_DEFAULT)

    def assembled(self, uploaded: UploadedFile) -> bytes:
        finished = self.store.finish((1, uploaded.file_id), types.InputFileBig(uploaded.file_id, uploaded.parts,
                                                                             uploaded.name))
        assert finished.streamed and finished.file.data is not None
        return finished.file.data


async def grow(path: Path, data: bytes, sink: ServerSink, *, parts_first: int = 15) -> None:
    """Write ``data`` to ``path`` + ".part" as a download tool does: most of it, then — once the stream has sent
    ``parts_first`` parts of it — the rest; then rename it to ``path``."""
    part = path.with_name(path.name + ".part")
    first = BIG_FILE_THRESHOLD + PART_SIZE
    async with await trio.open_file(part, "wb") as handle:
        await handle.write(data[:first])
        await handle.flush()
        await sink.wait_for_parts(parts_first)
        await handle.write(data[first:])
    await trio.Path(part).rename(path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [BIG_FILE_THRESHOLD + 3 * PART_SIZE + 12345, 24 * PART_SIZE])  # odd end, boundary
async def test_a_growing_file_streams_and_arrives_exactly(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    sink = ServerSink()
    path = tmp_path / "video.mp4"
    async with open_folder_streams(sink, PartsInFlight(4), tmp_path, parts_limit=PARTS_LIMIT_DEFAULT) as streams:
        await grow(path, data, sink)
        stream = await streams.claim(path)
        assert stream is not None
        uploaded = await stream.finish(sha256(data))
    assert uploaded is not None
    assert sink.assembled(uploaded) == data
    assert sink.totals.count(-1) == len(sink.totals) - 1  # "-1" on every part but the one that names the count
    assert sink.totals[-1] == uploaded.parts == -(-size // PART_SIZE)


async def test_a_file_rewritten_after_streaming_is_not_used(tmp_path: Path) -> None:
    data = os.urandom(BIG_FILE_THRESHOLD + 5 * PART_SIZE)
    sink = ServerSink()
    path = tmp_path / "video.mp4"
    async with open_folder_streams(sink, PartsInFlight(4), tmp_path, parts_limit=PARTS_LIMIT_DEFAULT) as streams:
        await grow(path, data, sink)
        # Post-processing rewrites the start of the file in place (the same inode, other bytes).
        rewritten = b"\x00" * 4096 + data[4096:]
        with path.open("r+b") as handle:
            handle.write(rewritten[:4096])
        stream = await streams.claim(path)
        assert stream is not None
        assert await stream.finish(sha256(rewritten)) is None


async def test_a_tool_that_starts_over_breaks_the_stream(tmp_path: Path) -> None:
    first_try = os.urandom(BIG_FILE_THRESHOLD + 8 * PART_SIZE)
    second_try = os.urandom(len(first_try))  # a live encode, another CDN node: not the bytes of the first try
    sink = ServerSink()
    part = tmp_path / "video.mp4.part"
    async with open_folder_streams(sink, PartsInFlight(4), tmp_path, parts_limit=PARTS_LIMIT_DEFAULT) as streams:
        part.write_bytes(first_try)
        await sink.wait_for_parts(20)
        part.write_bytes(second_try[:PART_SIZE])  # truncated: the tool begins again, in the same file
        with part.open("ab") as handle:
            handle.write(second_try[PART_SIZE:])
        part.rename(tmp_path / "video.mp4")
        stream = await streams.claim(tmp_path / "video.mp4")
        assert stream is not None
        # Whether it saw the file shrink or only the hash tells, the parts it sent are not this file's.
        assert await stream.finish(sha256(second_try)) is None


async def test_unclaimed_streams_are_abandoned_and_closed(tmp_path: Path) -> None:
    sink = ServerSink()
    part = tmp_path / "video.mp4.part"
    fds_before = len(os.listdir("/proc/self/fd"))
    with trio.CancelScope() as scope:
        async with open_folder_streams(sink, PartsInFlight(4), tmp_path, parts_limit=PARTS_LIMIT_DEFAULT):
            part.write_bytes(os.urandom(BIG_FILE_THRESHOLD + 4 * PART_SIZE))
            await sink.wait_for_parts(1)
            scope.cancel()  # the job was cancelled mid-stream
            await trio.sleep_forever()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert sink.totals and all(total == -1 for total in sink.totals)  # never finished: no file on Telegram


def test_what_is_streamed() -> None:
    assert streamable("clip.mp4.part") and streamable("notes.pdf.part") and streamable("song.m4a.part")
    assert not streamable("photo.jpg.part")  # Telegram takes no streamed photos
    assert not streamable("clip.f137.mp4.part")  # a format yt-dlp will merge away
    assert not streamable("clip.mp4") and not streamable("clip.mp4.ytdl")


async def test_a_big_video_uploads_while_it_downloads(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    video = make_padded_video(tmp_path / "big.mp4", 14_000_000)
    site.add_file("/big.mp4", video, delivery=Delivery(bytes_per_second=4_000_000))
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        parts_at_download_end: list[int] = []
        bot.running.engine.subscribe(
            lambda e: parts_at_download_end.append(telegram.uploads.parts_received)
            if type(e).__name__ == "FileReady" else None
        )
        command = await bot.type(f".dl {site.url('/big.mp4')}")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        [posted] = bot.media_replies(command)
        assert bot.running.userbot.delivery.streamed_files == 1
    assert posted.media is not None and posted.media.kind == "video"
    assert posted.media.sha256 == hashlib.sha256(video.read_bytes()).hexdigest()
    assert parts_at_download_end[0] >= 15  # most of it was on Telegram before the download ended


async def test_cancel_and_failure_mid_stream_leave_no_message(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    for name in ("one", "two"):
        site.add_generated(f"/stalls-{name}.mp4", 30_000_000, content_type="video/mp4",
                           delivery=Delivery(stall_after=16_000_000))
    config = userbot_config(tmp_path, telegram, download={"job_timeout": 10.0})
    async with running_userbot(telegram, config) as bot:
        cancelled = await bot.type(f".dl {site.url('/stalls-one.mp4')}")
        with trio.fail_after(30):
            await telegram.wait_until(lambda: telegram.uploads.parts_received >= 10 or None)
        await bot.answer(await bot.type(".cancel all"))
        assert (await bot.final_status(cancelled)).text.startswith("🚫")
        timed_out = await bot.type(f".dl {site.url('/stalls-two.mp4')}")
        final = await bot.final_status(timed_out)
        assert final.text.startswith("❌") and "did not finish" in final.text, final.text
        assert bot.media_replies(cancelled) == [] and bot.media_replies(timed_out) == []
        assert await bot.running.store.unfinished_jobs() == []
        assert bot.running.userbot.delivery.streamed_files == 0


async def test_a_download_resumed_after_drops_still_streams_the_right_bytes(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    size = 20_000_000
    site.add_generated("/drops.mp4", size, content_type="video/mp4", delivery=Delivery(drop_after=6_000_000))
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        command = await bot.type(f".dl {site.url('/drops.mp4')} file")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        [posted] = bot.media_replies(command)
    assert posted.media is not None and posted.media.sha256 == generated_sha256(size)
    assert any(r.range for r in site.requests if r.path == "/drops.mp4")  # it really resumed


@asynccontextmanager
async def held_back_file(data: bytes, first: int, release: Callable[[], Awaitable[object]]) -> AsyncIterator[str]:
    """An HTTP server of one file that sends its first ``first`` bytes and the rest only once ``release()`` returns,
    so a download stops at a known point instead of racing the upload that follows it."""

    async def answer(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            received = await stream.receive_some()
            if not received:
                return
            request += received
        head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode())
        if request.startswith(b"HEAD "):
            return
        await stream.send_all(data[:first])
        await release()
        await stream.send_all(data[first:])

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(functools.partial(trio.serve_tcp, answer, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listener.socket.getsockname()[1]}/video.mp4"
        nursery.cancel_scope.cancel()


def finished_files(bot: BotRig) -> list[JobFile]:
    """The files the engine reports finished, as it hashed them on disk, in order."""
    found: list[JobFile] = []
    bot.running.engine.subscribe(lambda event: found.append(event.file) if isinstance(event, FileReady) else None)
    return found


async def test_a_file_post_processing_replaced_is_delivered_as_finished_and_the_stream_dropped(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    # yt-dlp downloads the video (streamed while it grows), then extracts its audio into a new file and deletes
    # the video: what it finally reports is not what was streamed.
    video = make_padded_video(tmp_path / "big.mp4", 24_000_000).read_bytes()
    # yt-dlp reads up to 4 MiB at a time before it writes: held back here, the .part is past the big-file threshold
    # by more than the parts waited for.
    held_back_at = BIG_FILE_THRESHOLD + 4 * 1024 * 1024 + 5 * PART_SIZE

    async def once_parts_are_on_telegram() -> None:
        with trio.fail_after(60):
            await telegram.wait_until(lambda: telegram.uploads.parts_received >= 4 or None)

    async with (
        held_back_file(video, held_back_at, once_parts_are_on_telegram) as video_url,
        running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot,
    ):
        site.add_html("/watch/big.html", video_page_html(video_url, title="Big"))
        finished = finished_files(bot)
        command = await bot.type(f".dl {site.url('/watch/big.html')} audio")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        [posted] = bot.media_replies(command)
        assert bot.running.userbot.delivery.streamed_files == 0
    [final] = finished
    assert final.name.endswith(".m4a")
    stored = posted.media
    assert stored is not None and stored.kind == "audio" and stored.file.data is not None
    assert (stored.size, stored.sha256) == (final.size, final.sha256)
    assert hashlib.sha256(stored.file.data).hexdigest() == final.sha256
    # The streamed parts are still an unfinished upload on Telegram: no message was made of them.
    [abandoned] = telegram.uploads.unfinished()
    assert abandoned.streamed and abandoned.size >= 4 * PART_SIZE


def make_hls(folder: Path, *, segments: int, segment_bytes: int) -> Path:
    """An HLS stream of ``segments`` MPEG-TS segments, each padded with null packets (which players and ffmpeg skip)
    to ``segment_bytes``; returns the playlist."""
    folder.mkdir()
    source = make_video(folder / "source.mp4", seconds=float(segments), keyframe_every=10)
    subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(source), "-c", "copy",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod",
         "-hls_segment_filename", str(folder / "segment%d.ts"), str(folder / "index.m3u8")],
        check=True,
    )
    null_packet = b"\x47\x1f\xff\x10" + b"\xff" * 184
    written = sorted(folder.glob("segment*.ts"))
    assert len(written) == segments
    for segment in written:
        with segment.open("ab") as handle:
            handle.write(null_packet * ((segment_bytes - segment.stat().st_size) // len(null_packet)))
    return folder / "index.m3u8"


async def test_hls_downloads_that_yt_dlp_remuxes_are_not_streamed(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    await trio.to_thread.run_sync(functools.partial(make_hls, tmp_path / "hls", segments=4, segment_bytes=4_000_000))
    site.add_directory("/hls", tmp_path / "hls", delivery=Delivery(bytes_per_second=4_000_000))
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        finished = finished_files(bot)
        command = await bot.type(f".dl {site.url('/hls/index.m3u8')}")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        [posted] = bot.media_replies(command)
    [final] = finished
    stored = posted.media
    assert stored is not None and stored.kind == "video" and stored.file.data is not None
    assert stored.file.data[4:8] == b"ftyp"  # the remuxed MP4, not the MPEG-TS that was downloaded
    assert (stored.size, stored.sha256) == (final.size, final.sha256)
    # The 16 MB of MPEG-TS yt-dlp wrote first never went to Telegram.
    assert telegram.api.calls.get("upload.saveBigFilePart", 0) == 0
    assert telegram.uploads.unfinished() == []
