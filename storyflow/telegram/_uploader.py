"""Our own uploader over upload.saveFilePart / saveBigFilePart: parts read from disk off the event loop, several
in flight, no whole file in memory. Plain Trio: it talks to Telegram only through a :class:`PartSink`.

Telegram's rules (core.telegram.org/api/files): every part the same size except the last, ``part_size % 1024 == 0``
and ``524288 % part_size == 0``; ``saveBigFilePart`` for files over 10 MB; at most 4000 parts (8000 premium).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import attrs
import trio

from .._errors import FloodWait, MediaRejected, TelegramError, TelegramUnavailable
from .._util import single_error
from ._values import UploadedFile, random_id

log = logging.getLogger("storyflow.upload")

PART_SIZE = 512 * 1024
BIG_FILE_THRESHOLD = 10 * 1024 * 1024
PARTS_LIMIT = 4000
PARTS_LIMIT_PREMIUM = 8000
# A part that keeps failing for reasons other than flood waits fails its upload after this many tries.
PART_ATTEMPTS = 5


def upload_limit(premium: bool) -> int:
    """The largest file Telegram takes from this account, in bytes (2000 MiB, or 4000 MiB with premium)."""
    return (PARTS_LIMIT_PREMIUM if premium else PARTS_LIMIT) * PART_SIZE


class PartSink(Protocol):
    async def save_part(self, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool) -> None: ...


@attrs.define(eq=False)
class PartsInFlight:
    """How many parts may be on their way at once, shared by every upload of one userbot.

    A flood wait halves it (never below one) and it creeps back up by one after every ``recover_after`` parts that
    went through without complaint.
    """

    maximum: int
    recover_after: int = 64
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    _clean_parts: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.limiter = trio.CapacityLimiter(self.maximum)

    @property
    def current(self) -> int:
        return int(self.limiter.total_tokens)

    def flooded(self) -> None:
        self._clean_parts = 0
        if self.limiter.total_tokens > 1:
            self.limiter.total_tokens = max(1, int(self.limiter.total_tokens) // 2)
            log.info("flood wait on uploads: %d parts in flight from now on", self.current)

    def part_done(self) -> None:
        self._clean_parts += 1
        if self._clean_parts >= self.recover_after and self.limiter.total_tokens < self.maximum:
            self._clean_parts = 0
            self.limiter.total_tokens = int(self.limiter.total_tokens) + 1


def _read_part(fd: int, index: int, part_size: int) -> bytes:
    return os.pread(fd, part_size, index * part_size)


async def upload_file(
    sink: PartSink,
    path: Path,
    *,
    name: str,
    in_flight: PartsInFlight,
    parts_limit: int = PARTS_LIMIT,
    on_progress: Callable[[int, int], None] = lambda sent, total: None,
) -> UploadedFile:
    """Upload ``path`` and return its handle. ``on_progress(bytes_sent, size)`` follows acknowledged parts."""
    size = (await trio.Path(path).stat()).st_size
    if size == 0:
        raise MediaRejected(f"{name} is empty; Telegram does not take empty files")
    total_parts = math.ceil(size / PART_SIZE)
    if total_parts > parts_limit:
        raise MediaRejected(f"{name} needs {total_parts} parts; this account may send at most {parts_limit}")
    big = size > BIG_FILE_THRESHOLD
    file_id = random_id()
    md5 = hashlib.md5(usedforsecurity=False) if not big else None
    sent = 0

    async def send_part(index: int, data: bytes, token: object) -> None:
        nonlocal sent
        try:
            await _save_with_retries(sink, file_id, index, total_parts, data, big=big, name=name, in_flight=in_flight)
        finally:
            in_flight.limiter.release_on_behalf_of(token)
        sent += len(data)
        on_progress(sent, size)

    fd = await trio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        # One reader, in order (a small file's MD5 needs that), taking a token before it reads a part and handing
        # it to that part's sender: parts in memory never outnumber the parts allowed in flight.
        with single_error():
            async with trio.open_nursery() as nursery:
                for index in range(total_parts):
                    token = object()
                    await in_flight.limiter.acquire_on_behalf_of(token)
                    try:
                        data = await trio.to_thread.run_sync(_read_part, fd, index, PART_SIZE)
                        if len(data) != min(PART_SIZE, size - index * PART_SIZE):
                            raise MediaRejected(f"{name} changed size while it was being uploaded")
                    except BaseException:
                        in_flight.limiter.release_on_behalf_of(token)
                        raise
                    if md5 is not None:
                        md5.update(data)
                    nursery.start_soon(send_part, index, data, token)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(os.close, fd)
    return UploadedFile(file_id, total_parts, name, size, big, md5.hexdigest() if md5 is not None else "")


async def _save_with_retries(
    sink: PartSink, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool, name: str,
    in_flight: PartsInFlight,
) -> None:
    """Flood waits are waited out (and shrink the parts in flight); other failures get a few tries."""
    failures = 0
    while True:
        try:
            await sink.save_part(file_id, index, total_parts, data, big=big)
        except FloodWait as flood:
            in_flight.flooded()
            await trio.sleep(flood.seconds)
            continue
        except (TelegramUnavailable, MediaRejected) as exc:
            failures += 1
            if failures >= PART_ATTEMPTS:
                raise TelegramError(f"part {index + 1} of {name} kept failing: {exc.message}") from None
            await trio.sleep(failures)
            continue
        in_flight.part_done()
        return
