"""Streamed uploads of files still being downloaded: a video's upload follows its download a few parts behind.

While a job downloads, its folder is watched for the ``*.part`` files both tools write (then rename). Once such a
file is past Telegram's big-file threshold, each full 512 KB part is sent with ``upload.saveBigFilePart`` and
``file_total_parts = -1`` as soon as it is on disk, read through a descriptor opened on the growing file, so the
rename that finishes it changes nothing. When the engine reports the finished file, the stream that has the same
inode sends the rest, the last part with the real part count (or one empty part when the file ends on a part
boundary), and the SHA-256 of everything it sent is compared with the engine's hash of the finished file. Any
difference — post-processing that rewrote the file, a tool that started over, a merge into a new file — discards
the stream and the file is uploaded the normal way. A stream nobody claims (the download failed, the job was
cancelled, the file was a format yt-dlp merges away) is abandoned: Telegram forgets unfinished uploads, and no
message is ever sent for it. Photos are never streamed (Telegram does not take streamed photos), nor are HLS
downloads of MPEG-TS, which yt-dlp always remuxes into a new MP4 file once they end (its FixupM3u8): streaming
them would only send every byte twice.

Plain Trio; Telegram is reached through the uploader's :class:`~storyflow.telegram._uploader.PartSink`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from .._errors import StoryFlowError
from .._util import single_error
from ..jobs import MediaKind, kind_for_name
from ._uploader import BIG_FILE_THRESHOLD, PART_SIZE, PartsInFlight, PartSink, _save_with_retries
from ._values import UploadedFile, random_id

log = logging.getLogger("storyflow.stream")

POLL_SECONDS = 0.25
# yt-dlp downloads the formats it will merge as "<name>.f137.mp4": those never become the file that is sent.
_MERGE_PART = re.compile(r"\.f[\w-]+\.\w+$")
_STREAMABLE = frozenset({MediaKind.VIDEO, MediaKind.AUDIO, MediaKind.DOCUMENT})
_TS_PACKET = 188  # MPEG-TS: 188-byte packets, each starting with the sync byte 0x47
# FixupM3u8 remuxes only files with these extensions.
_REMUXED_SUFFIXES = frozenset({".mp4", ".m4a"})


def streamable(part_name: str) -> bool:
    """Whether a ``*.part`` file is worth streaming: not a photo (Telegram refuses streamed photos), not a format
    yt-dlp downloads only to merge."""
    if not part_name.endswith(".part"):
        return False
    final = part_name[: -len(".part")]
    return kind_for_name(final) in _STREAMABLE and not _MERGE_PART.search(final)


@attrs.define(eq=False)
class StreamedUpload:
    """One growing file on its way to Telegram. Its parts go out while it grows; :meth:`finish` completes it."""

    sink: PartSink
    in_flight: PartsInFlight
    fd: int
    inode: int
    name: str
    parts_limit: int
    on_progress: Callable[[int], None] = lambda sent: None
    # yt-dlp appends HLS/DASH fragments to this file: its "<name>.ytdl" state file, written before the .part is
    # created and removed once the download ends, was there when the .part was first seen.
    fragments: bool = False
    file_id: int = attrs.field(factory=random_id)
    offset: int = 0  # bytes handed to senders so far (always whole parts while streaming)
    digest: hashlib._Hash = attrs.field(factory=hashlib.sha256)
    broken: str | None = None  # why this stream can no longer be used
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _done: trio.Event = attrs.field(factory=trio.Event)

    async def follow(self) -> None:
        """Send every full part as it appears, until told to stop (by :meth:`finish`, or the job ending)."""
        try:
            with single_error():
                async with trio.open_nursery() as senders:
                    await self._follow(senders)
        except StoryFlowError as exc:
            self.broken = f"a part could not be sent: {exc.message}"
        finally:
            self._done.set()

    async def _follow(self, senders: trio.Nursery) -> None:
        while not self._stop.is_set() and self.broken is None:
            size = (await trio.to_thread.run_sync(os.fstat, self.fd)).st_size
            if size < self.offset:
                self.broken = "the file shrank while it was being uploaded (the tool started over)"
                return
            if size <= BIG_FILE_THRESHOLD or size - self.offset < PART_SIZE:
                with trio.move_on_after(POLL_SECONDS):
                    await self._stop.wait()
                continue
            if self.offset == 0 and await trio.to_thread.run_sync(self._remuxed_when_done):
                self.broken = "yt-dlp remuxes this HLS download into a new file when it ends"
                log.debug("%s: not streamed (%s)", self.name, self.broken)
                return
            while size - self.offset >= PART_SIZE and not self._stop.is_set():
                await self._send_part(senders, self.offset // PART_SIZE, -1, PART_SIZE)
            if self.offset // PART_SIZE >= self.parts_limit:
                self.broken = "the file is over this account's upload limit"

    def _remuxed_when_done(self) -> bool:
        """Whether yt-dlp will replace this file once it is downloaded: HLS fragments (a ``.ytdl`` state file beside
        it) of MPEG-TS in an .mp4/.m4a, which its FixupM3u8 always remuxes into a new file."""
        if not self.fragments or Path(self.name).suffix.lower() not in _REMUXED_SUFFIXES:
            return False
        head = os.pread(self.fd, _TS_PACKET + 1, 0)
        return len(head) > _TS_PACKET and head[0] == head[_TS_PACKET] == 0x47

    async def _send_part(self, senders: trio.Nursery, index: int, total: int, length: int) -> None:
        token = object()
        await self.in_flight.limiter.acquire_on_behalf_of(token)
        try:
            data = await trio.to_thread.run_sync(os.pread, self.fd, length, index * PART_SIZE)
        except BaseException:
            self.in_flight.limiter.release_on_behalf_of(token)
            raise
        if len(data) != length:
            self.in_flight.limiter.release_on_behalf_of(token)
            raise StoryFlowError(f"{self.name} changed while it was being uploaded")
        self.digest.update(data)
        self.offset += length

        async def send() -> None:
            try:
                await _save_with_retries(
                    self.sink, self.file_id, index, total, data, big=True, name=self.name, in_flight=self.in_flight
                )
            finally:
                self.in_flight.limiter.release_on_behalf_of(token)
            self.on_progress(min(self.offset, (index + 1) * PART_SIZE))

        senders.start_soon(send)

    def stop(self) -> None:
        self._stop.set()

    async def finish(self, expected_sha256: str) -> UploadedFile | None:
        """Send the rest of the (now complete) file; the upload if its bytes are the finished file's, else None."""
        self._stop.set()
        await self._done.wait()
        if self.broken is not None:
            log.info("%s: streamed upload discarded (%s)", self.name, self.broken)
            return None
        size = (await trio.to_thread.run_sync(os.fstat, self.fd)).st_size
        total = math.ceil(size / PART_SIZE)
        if size <= BIG_FILE_THRESHOLD or total > self.parts_limit or size < self.offset:
            return None
        try:
            counted = False  # whether a part has told Telegram the count
            with single_error():
                async with trio.open_nursery() as senders:
                    while self.offset < size:
                        index = self.offset // PART_SIZE
                        counted = index == total - 1
                        length = min(PART_SIZE, size - self.offset)
                        await self._send_part(senders, index, total if counted else -1, length)
                    if not counted:
                        # Every part went out as "-1" (it ended on a part boundary while streaming): one empty part
                        # more names the count.
                        await _save_with_retries(self.sink, self.file_id, total, total, b"", big=True,
                                                 name=self.name, in_flight=self.in_flight)
        except StoryFlowError as exc:
            log.info("%s: streamed upload failed at the end (%s)", self.name, exc.message)
            return None
        if self.digest.hexdigest() != expected_sha256:
            log.info("%s: the finished file differs from what was streamed; uploading it again", self.name)
            return None
        return UploadedFile(self.file_id, total, self.name, size, big=True)


@attrs.define(eq=False)
class FolderStreams:
    """Starts a :class:`StreamedUpload` for each growing file in a job folder; hands them out by inode."""

    sink: PartSink
    in_flight: PartsInFlight
    folder: Path
    parts_limit: int
    on_progress: Callable[[str, int], None] = lambda name, sent: None
    _streams: dict[int, StreamedUpload] = attrs.field(factory=dict)
    _seen: set[str] = attrs.field(factory=set)
    _claimed: set[int] = attrs.field(factory=set)

    async def watch(self, nursery: trio.Nursery) -> None:
        while True:
            for name in await trio.to_thread.run_sync(_part_files, self.folder):
                if name in self._seen:
                    continue
                self._seen.add(name)
                opened = await trio.to_thread.run_sync(_open_part, self.folder, name)
                if opened is None:
                    continue
                fd, inode, fragments = opened
                display = name[: -len(".part")]
                stream = StreamedUpload(
                    self.sink, self.in_flight, fd, inode, display, self.parts_limit,
                    on_progress=functools.partial(self.on_progress, display), fragments=fragments,
                )
                self._streams[inode] = stream
                nursery.start_soon(stream.follow)
            await trio.sleep(POLL_SECONDS)

    async def claim(self, path: Path) -> StreamedUpload | None:
        """The stream that has been sending ``path`` (the same file, renamed from its ``.part``), if any."""
        try:
            inode = (await trio.Path(path).stat()).st_ino
        except OSError:
            return None
        stream = self._streams.get(inode)
        if stream is not None:
            self._claimed.add(inode)
        return stream

    def download_done(self) -> None:
        """Nothing grows any more: every stream stops following (a claimed one still finishes)."""
        for stream in self._streams.values():
            stream.stop()

    async def release(self) -> None:
        for stream in self._streams.values():
            stream.stop()
            await stream._done.wait()
            await trio.to_thread.run_sync(_close, stream.fd)
        self._streams.clear()


@asynccontextmanager
async def open_folder_streams(
    sink: PartSink, in_flight: PartsInFlight, folder: Path, *, parts_limit: int,
    on_progress: Callable[[str, int], None] = lambda name, sent: None,
) -> AsyncIterator[FolderStreams]:
    """Watch ``folder`` for the block; on the way out, unfinished streams are stopped and their files closed."""
    streams = FolderStreams(sink, in_flight, folder, parts_limit, on_progress)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(streams.watch, nursery)
            try:
                yield streams
            finally:
                # Claimed streams finished inside the block; anything still running now is abandoned.
                streams.download_done()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await streams.release()


def _part_files(folder: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)
                      and streamable(entry.name))
    except FileNotFoundError:
        return []


def _open_part(folder: Path, name: str) -> tuple[int, int, bool] | None:
    """A descriptor and the inode of ``folder / name``, and whether yt-dlp is appending fragments to it."""
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None  # already renamed or removed: the finished file goes the normal way
    fragments = (folder / f"{name[: -len('.part')]}.ytdl").is_file()
    return fd, os.fstat(fd).st_ino, fragments


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
