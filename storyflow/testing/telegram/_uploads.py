"""Upload parts as Telegram takes them (core.telegram.org/api/files).

Parts may come in any order and from several connections at once. They are hashed in order as soon as
the contiguous prefix grows, so only the out-of-order window is buffered; a file's bytes are kept only
up to `keep_bytes_limit`, beyond that just size and digests survive. A file over 10 MB must go up with
saveBigFilePart and be named by an InputFileBig; saveFilePart parts past 10 MB are FILE_PARTS_INVALID.
"""

from __future__ import annotations

import collections
import hashlib

import attrs
from telethon.tl import types

from ._errors import bad_request
from ._state import StoredFile

MAX_PART_SIZE = 512 * 1024
# Anything bigger must go up with saveBigFilePart and be named by an InputFileBig.
SMALL_FILE_MAX = 10 * 1024 * 1024
PARTS_LIMIT_DEFAULT = 4000
PARTS_LIMIT_PREMIUM = 8000
# Uploaded-but-used files stay usable again for a while, like Telegram's temporary storage.
_FINISHED_UPLOADS_KEPT = 512
# Abandoned uploads (a client that died mid-file) are forgotten oldest-first, like expired parts.
_PENDING_UPLOADS_KEPT = 256

UploadKey = tuple[int, int]  # (auth key id, client's file_id)


def _valid_full_part_size(size: int) -> bool:
    return size > 0 and size % 1024 == 0 and MAX_PART_SIZE % size == 0


@attrs.define(eq=False)
class _PendingUpload:
    big: bool
    keep_bytes_limit: int
    streamed: bool = False
    announced_total: int | None = None
    final_index: int | None = None
    part_size: int | None = None
    part_sizes: dict[int, int] = attrs.field(factory=dict)
    waiting: dict[int, bytes] = attrs.field(factory=dict)
    next_index: int = 0
    size: int = 0
    sha256: hashlib._Hash = attrs.field(factory=hashlib.sha256)
    md5: hashlib._Hash = attrs.field(factory=hashlib.md5)
    kept: bytearray | None = attrs.field(factory=bytearray)

    def feed(self, index: int, data: bytes) -> None:
        if index < self.next_index:
            return  # a retried part that was already hashed; Telegram keeps the first copy too
        self.waiting[index] = data
        while self.next_index in self.waiting:
            chunk = self.waiting.pop(self.next_index)
            self.sha256.update(chunk)
            self.md5.update(chunk)
            self.size += len(chunk)
            if self.kept is not None:
                if self.size <= self.keep_bytes_limit:
                    self.kept += chunk
                else:
                    self.kept = None
            self.next_index += 1


@attrs.frozen
class UnfinishedUpload:
    """Parts that no media request has used (yet): an upload in progress, or one its client abandoned."""

    big: bool
    streamed: bool
    size: int  # bytes received in order so far


@attrs.define(eq=False)
class FinishedUpload:
    file: StoredFile
    big: bool
    streamed: bool


@attrs.define(eq=False)
class UploadStore:
    keep_bytes_limit: int
    _pending: dict[UploadKey, _PendingUpload] = attrs.field(init=False, factory=dict)
    _finished: collections.OrderedDict[UploadKey, FinishedUpload] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
    parts_received: int = attrs.field(init=False, default=0)
    bytes_received: int = attrs.field(init=False, default=0)

    def save_part(
        self,
        key: UploadKey,
        index: int,
        data: bytes,
        *,
        big: bool,
        total_parts: int | None,
        parts_limit: int,
    ) -> None:
        """upload.saveFilePart (total_parts None) or upload.saveBigFilePart."""
        if len(data) > MAX_PART_SIZE:
            raise bad_request("FILE_PART_TOO_BIG")
        if index < 0 or index >= parts_limit:
            raise bad_request("FILE_PART_INVALID")
        if total_parts is not None and total_parts != -1 and not 0 < total_parts <= parts_limit:
            raise bad_request("FILE_PARTS_INVALID")
        upload = self._pending.get(key)
        if upload is None:
            self._finished.pop(key, None)
            upload = self._pending[key] = _PendingUpload(big=big, keep_bytes_limit=self.keep_bytes_limit)
            while len(self._pending) > _PENDING_UPLOADS_KEPT:
                del self._pending[next(iter(self._pending))]
        elif upload.big != big:
            raise bad_request("FILE_PARTS_INVALID")
        # Every saveFilePart part but the last is full-size, so this part ends at least here; past 10 MB the
        # file needed saveBigFilePart.
        if not big and (index + 1) * len(data) > SMALL_FILE_MAX:
            raise bad_request("FILE_PARTS_INVALID")

        final = False
        if big and total_parts == -1:
            upload.streamed = True
        elif big and total_parts is not None:
            if upload.announced_total is not None and upload.announced_total != total_parts:
                raise bad_request("FILE_PARTS_INVALID")
            # A stream that ends on a part boundary closes with one empty part, which may sit just
            # past ceil(size / part_size) when the client counted only the non-empty parts.
            terminator = upload.streamed and not data and index == total_parts
            if index >= total_parts and not terminator:
                raise bad_request("FILE_PART_INVALID")
            upload.announced_total = total_parts
            final = index == total_parts - 1 or terminator
            if final:
                upload.final_index = index
        if not data and not (big and final and index > 0):
            raise bad_request("FILE_PART_EMPTY")

        size = len(data)
        if big and not final:
            if not _valid_full_part_size(size):
                raise bad_request("FILE_PART_SIZE_INVALID")
            if upload.part_size is not None and upload.part_size != size:
                raise bad_request("FILE_PART_SIZE_CHANGED")
            upload.part_size = size
        elif upload.part_size is not None and size > upload.part_size:
            raise bad_request("FILE_PART_SIZE_INVALID")
        upload.part_sizes[index] = size
        upload.feed(index, data)
        self.parts_received += 1
        self.bytes_received += size

    def unfinished(self) -> list[UnfinishedUpload]:
        return [UnfinishedUpload(u.big, u.streamed, u.size) for u in self._pending.values()]

    def finish(self, key: UploadKey, input_file: types.TypeInputFile) -> FinishedUpload:
        """Check an InputFile/InputFileBig against its parts and return the reassembled file."""
        big = isinstance(input_file, types.InputFileBig)
        if not isinstance(input_file, types.InputFile | types.InputFileBig):
            raise bad_request("FILE_PARTS_INVALID")
        done = self._finished.get(key)
        if done is not None:
            if done.big != big:
                raise bad_request("FILE_PARTS_INVALID")
            return done
        upload = self._pending.get(key)
        if upload is None:
            raise bad_request("FILE_PART_0_MISSING")
        if upload.big != big:
            raise bad_request("FILE_PARTS_INVALID")
        parts = input_file.parts
        accepted_counts = {parts}
        if upload.final_index is not None:
            accepted_counts = {upload.final_index + 1}
            if upload.announced_total is not None:
                accepted_counts.add(upload.announced_total)
        if parts <= 0 or parts not in accepted_counts:
            raise bad_request("FILE_PARTS_INVALID")
        if not big and upload.size > SMALL_FILE_MAX:
            raise bad_request("FILE_PARTS_INVALID")
        count = max(accepted_counts)
        for index in range(count):
            if index not in upload.part_sizes:
                raise bad_request(f"FILE_PART_{index}_MISSING")
        if any(index >= count for index in upload.part_sizes):
            raise bad_request("FILE_PARTS_INVALID")
        full_sizes = {upload.part_sizes[index] for index in range(count - 1)}
        if len(full_sizes) > 1:
            raise bad_request("FILE_PART_SIZE_CHANGED")
        if full_sizes:
            (part_size,) = full_sizes
            if not _valid_full_part_size(part_size) or upload.part_sizes[count - 1] > part_size:
                raise bad_request("FILE_PART_SIZE_INVALID")
        md5 = upload.md5.hexdigest()
        # An empty checksum is allowed; a wrong one is not.
        checksum = input_file.md5_checksum if isinstance(input_file, types.InputFile) else ""
        if checksum and checksum.lower() != md5:
            raise bad_request("MD5_CHECKSUM_INVALID")
        del self._pending[key]
        stored = StoredFile(
            size=upload.size,
            sha256=upload.sha256.hexdigest(),
            md5=md5,
            name=input_file.name,
            data=None if upload.kept is None else bytes(upload.kept),
        )
        done = FinishedUpload(stored, big=big, streamed=upload.streamed)
        self._finished[key] = done
        while len(self._finished) > _FINISHED_UPLOADS_KEPT:
            self._finished.popitem(last=False)
        return done
