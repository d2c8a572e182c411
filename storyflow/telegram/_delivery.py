"""Delivery to Telegram: each file is uploaded the moment the engine publishes it, while the job still downloads.

Photos and videos go out as albums of up to ten, as soon as a group is full or the job ends; audio as audio;
anything else, and a photo or video Telegram would take only as a file, as a document on its own. A file over
the account's upload limit is cut into playable parts (videos) or numbered parts (anything else). Every send's
random_id is saved before the send, so a send repeated after a crash is refused by Telegram as a duplicate instead
of posting twice. Plain Trio: Telegram is reached through :class:`TelegramPort`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mimetypes
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import attrs
import trio

from .._errors import (
    ChatUnavailable,
    DuplicateSend,
    MediaRejected,
    NotAuthorized,
    StoryFlowError,
    TelegramError,
)
from .._util import single_error
from ..download import DeliveryHandle
from ..jobs import Job, JobFile, JobStore, MediaKind
from ..media import (
    SplitError,
    make_thumbnail,
    probe_audio,
    probe_image,
    probe_video,
    split_file,
    split_video,
)
from ._streaming import FolderStreams, open_folder_streams
from ._text import CAPTION_LIMIT, CAPTION_LIMIT_PREMIUM, Caption, StoryLine
from ._uploader import PART_SIZE, PARTS_LIMIT, PARTS_LIMIT_PREMIUM, PartsInFlight, upload_file, upload_limit
from ._values import (
    AudioAttributes,
    Me,
    MediaSpec,
    MediaType,
    OutgoingMedia,
    SentMedia,
    UploadedFile,
    VideoAttributes,
    random_id,
)

log = logging.getLogger("storyflow.delivery")

ALBUM_SIZE = 10
PHOTO_MAX_BYTES = 10 * 1000 * 1000
PHOTO_MAX_SIDES = 10_000  # width + height
PHOTO_MAX_RATIO = 20
# Telegram plays these inline; other containers still get video attributes but may show as files.
_STREAMABLE_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})
_MIME_OVERRIDES = {".mkv": "video/x-matroska", ".webm": "video/webm", ".m4a": "audio/mp4", ".opus": "audio/ogg"}


class TelegramPort(Protocol):
    me: Me

    async def save_part(self, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool) -> None: ...

    async def prepare_media(self, chat_id: int, spec: MediaSpec, *, as_file: bool = False) -> SentMedia: ...

    async def send_media(
        self, chat_id: int, items: Sequence[OutgoingMedia], *, reply_to: int | None = None
    ) -> list[int]: ...


@attrs.frozen
class UploadProgress:
    """A file's upload moved on (bytes acknowledged by Telegram)."""

    job_id: int
    file_name: str
    sent: int
    total: int


@attrs.frozen
class FilesSent:
    """Messages went out for a job: how many files are now delivered, and the ids of the new messages."""

    job_id: int
    files: tuple[JobFile, ...]
    message_ids: tuple[int, ...]


DeliveryEvent = UploadProgress | FilesSent


@attrs.frozen
class CachedItem:
    """What the sent-file cache keeps of one message: enough to send the same media again."""

    message_id: int | None
    media: SentMedia
    caption_html: str
    visual: bool

    def to_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "media": self.media.to_json(), "caption": self.caption_html,
                "visual": self.visual}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CachedItem:
        media = data["media"]
        assert isinstance(media, dict)
        message_id = data.get("message_id")
        return cls(int(str(message_id)) if message_id is not None else None, SentMedia.from_json(media),
                   str(data["caption"]), bool(data["visual"]))


@attrs.frozen
class _Ready:
    """One message's worth of a file: uploaded, stored by Telegram, captioned."""

    file: JobFile
    piece: int
    media: SentMedia
    caption_html: str
    visual: bool


@attrs.define(eq=False)
class _Slot:
    file: JobFile
    done: trio.Event = attrs.field(factory=trio.Event)
    ready: list[_Ready] = attrs.field(factory=list)
    error: StoryFlowError | None = None


def _mime(path: Path) -> str:
    suffix = path.suffix.lower()
    return _MIME_OVERRIDES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@attrs.define(eq=False)
class TelegramDelivery:
    """The engine's :class:`~storyflow.download.Delivery` for the userbot."""

    telegram: TelegramPort
    store: JobStore
    in_flight: PartsInFlight
    on_event: Callable[[DeliveryEvent], None] = lambda event: None
    upload_limit_override: int | None = None  # bytes; None: what the account allows
    files_at_once: int = 2
    stream_uploads: bool = True  # big files' uploads follow their downloads (see _streaming)
    sent: dict[int, list[CachedItem]] = attrs.field(init=False, factory=dict)
    _streams: dict[int, FolderStreams] = attrs.field(init=False, factory=dict)
    streamed_files: int = attrs.field(init=False, default=0)  # uploads that followed their download to the end

    @property
    def parts_limit(self) -> int:
        return min(PARTS_LIMIT_PREMIUM if self.telegram.me.premium else PARTS_LIMIT,
                   math.ceil(self.upload_limit / PART_SIZE))

    @property
    def upload_limit(self) -> int:
        allowed = upload_limit(self.telegram.me.premium)
        return min(allowed, self.upload_limit_override) if self.upload_limit_override else allowed

    @property
    def caption_limit(self) -> int:
        return CAPTION_LIMIT_PREMIUM if self.telegram.me.premium else CAPTION_LIMIT

    async def deliver(self, handle: DeliveryHandle) -> None:
        job = handle.job
        if job.origin.chat_id is None:
            raise ChatUnavailable(f"job #{job.id} has no chat to deliver to")
        self.sent.setdefault(job.id, [])
        slots_send, slots_receive = trio.open_memory_channel[_Slot](math.inf)
        preparing = trio.CapacityLimiter(self.files_at_once)

        def streamed(name: str, sent: int) -> None:
            self.on_event(UploadProgress(job.id, name, sent, 0))

        following = open_folder_streams(
            self.telegram, self.in_flight, handle.folder, parts_limit=self.parts_limit, on_progress=streamed
        ) if self.stream_uploads else contextlib.nullcontext(None)
        async with following as streams:
            if streams is not None:
                self._streams[job.id] = streams
            try:
                with single_error():
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._send_in_order, handle, slots_receive)
                        with slots_send:
                            async for file in handle.files:
                                slot = _Slot(file)
                                await slots_send.send(slot)
                                nursery.start_soon(self._prepare_slot, job, handle.folder, slot, preparing)
                        if streams is not None:
                            streams.download_done()
            finally:
                self._streams.pop(job.id, None)

    # -- preparing: upload + uploadMedia, several files at once --------------------------------------------

    async def _prepare_slot(self, job: Job, folder: Path, slot: _Slot, preparing: trio.CapacityLimiter) -> None:
        try:
            async with preparing:
                slot.ready = await self._prepare(job, folder, slot.file)
        except (NotAuthorized, ChatUnavailable):
            raise  # nowhere to deliver: the job stops
        except StoryFlowError as exc:
            slot.error = exc
        finally:
            slot.done.set()

    async def _prepare(self, job: Job, folder: Path, file: JobFile) -> list[_Ready]:
        path = folder / file.path
        as_file = job.options.as_file
        pieces = await self._pieces(path, file, as_file, folder)
        ready = []
        for number, piece in enumerate(pieces, start=1):
            note = f"part {number}/{len(pieces)}" if len(pieces) > 1 else ""
            name = file.name if len(pieces) == 1 else _piece_name(file.name, piece, number)
            whole = len(pieces) == 1 and piece == path
            spec = await self._spec(job.id, piece, file.kind, name, as_file=as_file,
                                    expected_sha256=file.sha256 if whole else None)
            assert job.origin.chat_id is not None
            media, stored_as_file = await self._store_media(job.origin.chat_id, spec, as_file=as_file)
            caption = caption_for(job, file, note)
            # Telegram's albums are all photos/videos, all documents or all audio: a file it took only as a
            # document would spoil the album it joined (MEDIA_INVALID), so it goes out on its own.
            visual = spec.type in (MediaType.PHOTO, MediaType.VIDEO) and not stored_as_file
            ready.append(_Ready(file, number, media, caption.to_html(self.caption_limit), visual))
        return ready

    async def _store_media(self, chat_id: int, spec: MediaSpec, *, as_file: bool) -> tuple[SentMedia, bool]:
        """Telegram's stored copy, and whether it is a plain document (asked for, or all Telegram would take)."""
        try:
            return await self.telegram.prepare_media(chat_id, spec, as_file=as_file), as_file
        except MediaRejected:
            if spec.type is MediaType.DOCUMENT or as_file:
                raise
            # A photo with odd dimensions or a video Telegram cannot read still arrives, as a file.
            log.info("%s refused as %s; sending it as a document", spec.file_name, spec.type)
            return await self.telegram.prepare_media(chat_id, spec, as_file=True), True

    async def _pieces(self, path: Path, file: JobFile, as_file: bool, folder: Path) -> list[Path]:
        limit = self.upload_limit
        if file.size <= limit:
            return [path]
        out_dir = folder / f".parts-{file.index}"
        await trio.Path(out_dir).mkdir(exist_ok=True)
        if file.kind is MediaKind.VIDEO and not as_file:
            try:
                return await split_video(path, limit, out_dir)
            except SplitError as exc:
                log.info("%s cannot be cut into playable parts (%s); sending numbered parts", file.name, exc)
        return await split_file(path, limit, out_dir)

    async def _spec(
        self, job_id: int, path: Path, kind: MediaKind, name: str, *, as_file: bool, expected_sha256: str | None
    ) -> MediaSpec:
        def progress(sent: int, total: int) -> None:
            self.on_event(UploadProgress(job_id, name, sent, total))

        media_type = MediaType.DOCUMENT
        video: VideoAttributes | None = None
        audio: AudioAttributes | None = None
        thumbnail_path: Path | None = None
        size = (await trio.Path(path).stat()).st_size
        if not as_file and kind is MediaKind.PHOTO:
            image = await probe_image(path)
            if image is not None and _photo_ok(size, image.width, image.height):
                media_type = MediaType.PHOTO
        elif not as_file and kind is MediaKind.VIDEO:
            info = await probe_video(path)
            if info is not None:
                media_type = MediaType.VIDEO
                video = VideoAttributes(
                    duration=info.duration, width=info.width, height=info.height,
                    supports_streaming=path.suffix.lower() in _STREAMABLE_SUFFIXES, silent=not info.has_audio,
                )
                thumbnail_path = await make_thumbnail(path, path.with_name(path.name + ".thumb.jpg"))
        elif not as_file and kind is MediaKind.AUDIO:
            sound = await probe_audio(path)
            if sound is not None:
                media_type = MediaType.AUDIO
                audio = AudioAttributes(duration=sound.duration, title=sound.title, performer=sound.performer)
        uploaded = await self._streamed(job_id, path, name, expected_sha256)
        if uploaded is None:
            uploaded = await upload_file(
                self.telegram, path, name=name, in_flight=self.in_flight, parts_limit=self.parts_limit,
                on_progress=progress,
            )
        thumbnail: UploadedFile | None = None
        if thumbnail_path is not None:
            thumbnail = await upload_file(self.telegram, thumbnail_path, name="thumb.jpg", in_flight=self.in_flight)
        mime = "image/jpeg" if media_type is MediaType.PHOTO else _mime(Path(name))
        return MediaSpec(media_type, uploaded, mime, name, video=video, audio=audio, thumbnail=thumbnail)

    async def _streamed(
        self, job_id: int, path: Path, name: str, expected_sha256: str | None
    ) -> UploadedFile | None:
        """The upload that followed this file's download, if there was one and it sent exactly this file."""
        streams = self._streams.get(job_id)
        if streams is None or expected_sha256 is None:
            return None
        stream = await streams.claim(path)
        if stream is None:
            return None
        uploaded = await stream.finish(expected_sha256)
        if uploaded is not None:
            self.streamed_files += 1
            uploaded = attrs.evolve(uploaded, name=name)  # the name Telegram shows is ours, not the tool's
        return uploaded

    # -- sending: in arrival order, albums of up to ten -----------------------------------------------------

    async def _send_in_order(self, handle: DeliveryHandle, slots: trio.MemoryReceiveChannel[_Slot]) -> None:
        job = handle.job
        album: list[_Ready] = []
        waiting: dict[int, int] = {}  # file index -> its pieces not sent yet
        async with slots:
            async for slot in slots:
                await slot.done.wait()
                if slot.error is not None:
                    await handle.failed(slot.file, slot.error)
                    continue
                waiting[slot.file.index] = len(slot.ready)
                for ready in slot.ready:
                    if ready.visual:
                        album.append(ready)
                        if len(album) == ALBUM_SIZE:
                            await self._send(handle, album, waiting)
                            album = []
                    else:
                        await self._send(handle, [ready], waiting)
        if album:
            await self._send(handle, album, waiting)
        log.debug("job %d: delivery finished", job.id)

    async def _send(self, handle: DeliveryHandle, group: list[_Ready], waiting: dict[int, int]) -> None:
        job = handle.job
        assert job.origin.chat_id is not None
        items = [
            OutgoingMedia(
                ready.media, ready.caption_html,
                await self.store.send_id(job.id, f"{ready.file.index}:{ready.piece}", random_id()),
            )
            for ready in group
        ]
        try:
            message_ids: list[int | None] = list(
                await self.telegram.send_media(job.origin.chat_id, items, reply_to=job.origin.message_id)
            )
        except DuplicateSend:
            message_ids = await self._send_one_by_one(job, items)
        except (NotAuthorized, ChatUnavailable):
            raise
        except TelegramError as exc:
            for ready in group:
                if waiting.pop(ready.file.index, None) is not None:
                    await handle.failed(ready.file, exc)
            return
        finished = []
        for ready, message_id in zip(group, message_ids, strict=True):
            self.sent[job.id].append(CachedItem(message_id, ready.media, ready.caption_html, ready.visual))
            remaining = waiting.get(ready.file.index)
            if remaining is None:
                continue  # an earlier piece of this file failed
            if remaining == 1:
                del waiting[ready.file.index]
                finished.append(ready.file)
            else:
                waiting[ready.file.index] = remaining - 1
        if finished:
            await handle.delivered_all(finished)
        self.on_event(FilesSent(job.id, tuple(finished), tuple(m for m in message_ids if m is not None)))

    async def _send_one_by_one(self, job: Job, items: list[OutgoingMedia]) -> list[int | None]:
        """After a crash an album may be regrouped: items sent before are duplicates, the rest go out alone."""
        assert job.origin.chat_id is not None
        ids: list[int | None] = []
        for item in items:
            try:
                ids.extend(await self.telegram.send_media(job.origin.chat_id, [item], reply_to=job.origin.message_id))
            except DuplicateSend:
                ids.append(None)
        return ids


def caption_for(job: Job, file: JobFile, note: str = "") -> Caption:
    """A file's caption: title, uploader and source link; for a story job, whose story and when instead."""
    source = file.source_url or job.urls[0]
    if not job.options.story:
        return Caption(title=file.title, uploader=file.uploader, source_url=source, note=note)
    label = job.labels.get(file.source_url) or job.labels.get(source)
    if label is not None:
        story = StoryLine(label.owner, label.posted_at or file.posted_at, label.position, label.total,
                          label.highlight)
        return Caption(title=file.title, source_url=label.link or source, note=note, story=story)
    # Listed by the download tool itself (Instagram via gallery-dl): its metadata, and the order it gave. The total
    # is unknown while the files still arrive.
    owner = file.uploader or _account_in(job.urls[0]) or "?"
    story = StoryLine(owner, file.posted_at, file.index + 1)
    return Caption(title=file.title, source_url=source, note=note, story=story)


_ACCOUNT = re.compile(r"@?([A-Za-z0-9._]{1,64})")


def _account_in(link: str) -> str | None:
    """The account a story page belongs to (``instagram.com/stories/<user>/``, ``tiktok.com/@<user>/stories``,
    ``x.com/<user>/media``), when the tool did not say."""
    segments = [s for s in urlsplit(link).path.split("/") if s and s != "stories"]
    match = _ACCOUNT.fullmatch(segments[0]) if segments else None
    return match.group(1) if match else None


def _photo_ok(size: int, width: int, height: int) -> bool:
    if size > PHOTO_MAX_BYTES or width <= 0 or height <= 0:
        return False
    return width + height <= PHOTO_MAX_SIDES and max(width, height) / min(width, height) <= PHOTO_MAX_RATIO


def _piece_name(name: str, piece: Path, number: int) -> str:
    stem, dot, suffix = name.rpartition(".")
    if piece.suffix.lower() == f".{suffix.lower()}" and dot:
        return f"{stem}.part{number:02d}.{suffix}"
    return f"{name}.{number:03d}"
