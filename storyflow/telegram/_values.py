"""Plain values that cross the gateway: what arrives from Telegram and what is sent to it. No Telethon here."""

from __future__ import annotations

import enum
import os

import attrs


def random_id() -> int:
    """A fresh 64-bit random_id: Telegram's exactly-once key for a send (and our upload file ids)."""
    return int.from_bytes(os.urandom(8), "little", signed=True)


@attrs.frozen
class Me:
    """The account StoryFlow runs on."""

    user_id: int
    name: str
    username: str | None
    premium: bool


@attrs.frozen
class AttachedDocument:
    """A document attached to an incoming message (e.g. a cookies.txt the owner sends)."""

    name: str
    size: int
    mime_type: str


@attrs.frozen
class Incoming:
    """A new message StoryFlow can see: the owner's own (``outgoing``) or someone else's.

    ``chat_id`` is Telegram's marked id (users positive, groups negative, channels -100…).
    ``peer`` is the chat's input peer, serialised, so the chat stays reachable after a restart.
    """

    chat_id: int
    message_id: int
    sender_id: int | None
    text: str
    outgoing: bool
    private: bool
    saved_messages: bool
    forwarded: bool
    via_bot: bool
    reply_to: int | None
    peer: bytes = attrs.field(repr=False)
    document: AttachedDocument | None = None


@attrs.frozen
class UploadedFile:
    """A file whose parts Telegram holds, ready to be referenced in one media request."""

    file_id: int
    parts: int
    name: str
    size: int
    big: bool
    md5: str = ""  # hex; only for small files, empty when unknown


class MediaType(enum.StrEnum):
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


@attrs.frozen
class VideoAttributes:
    duration: float
    width: int
    height: int
    supports_streaming: bool = True
    silent: bool = False


@attrs.frozen
class AudioAttributes:
    duration: float
    title: str | None = None
    performer: str | None = None


@attrs.frozen
class MediaSpec:
    """An uploaded file and how Telegram should present it."""

    type: MediaType
    file: UploadedFile
    mime_type: str
    file_name: str
    video: VideoAttributes | None = None
    audio: AudioAttributes | None = None
    thumbnail: UploadedFile | None = None


@attrs.frozen
class SentMedia:
    """Telegram's stored copy of a photo or document: re-sendable without uploading it again."""

    photo: bool
    media_id: int
    access_hash: int
    file_reference: bytes = attrs.field(repr=False)

    def to_json(self) -> dict[str, object]:
        return {"photo": self.photo, "id": self.media_id, "hash": self.access_hash,
                "ref": self.file_reference.hex()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SentMedia:
        return cls(bool(data["photo"]), int(str(data["id"])), int(str(data["hash"])),
                   bytes.fromhex(str(data["ref"])))


@attrs.frozen
class OutgoingMedia:
    """One item of a send: Telegram's copy of the media, its caption (HTML) and its exactly-once id."""

    media: SentMedia
    caption_html: str
    random_id: int


@attrs.frozen
class StoryInfo:
    story_id: int
    posted_at: float | None  # unix time
    photo: bool
    caption: str = ""


@attrs.frozen
class StoryList:
    """The stories of one user or channel, oldest first, as Telegram lists them."""

    owner_id: int  # marked peer id
    owner_name: str
    username: str | None
    peer: bytes = attrs.field(repr=False)  # serialised input peer, to reach the owner after a restart
    stories: tuple[StoryInfo, ...] = ()
