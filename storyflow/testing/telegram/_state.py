"""What the loopback Telegram remembers: accounts, chats, messages, stored media and stories.

These records are also what tests assert on (`server.messages(...)`), so they carry plain Python values
(text, sizes, sha256) next to the Telethon TL objects a client sent.
"""

from __future__ import annotations

import collections
import datetime
import os
from collections.abc import Iterator
from typing import Literal

import attrs
from telethon.tl import types
from telethon.tl.tlobject import TLObject

MediaKind = Literal["photo", "video", "audio", "voice", "round", "document"]

# Every update an account can still fetch through getDifference; older gaps get differenceTooLong.
UPDATE_LOG_LENGTH = 4000


def random_long() -> int:
    return int.from_bytes(os.urandom(8), "little", signed=True)


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


@attrs.define(eq=False)
class Account:
    """A Telegram user the server hosts; its auth keys are what a client's StringSession carries."""

    name: str
    user_id: int
    access_hash: int
    first_name: str
    username: str | None
    phone: str
    premium: bool = False
    auth_keys: list[bytes] = attrs.field(factory=list)

    def __repr__(self) -> str:
        return f"<Account {self.name} id={self.user_id}>"


@attrs.define(eq=False)
class AuthKeyRecord:
    """An auth key the server holds. A pre-shared key belongs to its account from the start; a key made
    by the key exchange has no account (unauthorized) until a sign-in on it succeeds."""

    key: bytes = attrs.field(repr=False)
    key_id: int
    account: Account | None = None
    created: datetime.datetime = attrs.field(factory=now_utc)


@attrs.define(eq=False)
class Channel:
    """A broadcast channel: resolvable by username and able to hold stories (no message history)."""

    channel_id: int
    access_hash: int
    title: str
    username: str | None

    def __repr__(self) -> str:
        return f"<Channel {self.title!r} id={self.channel_id}>"


@attrs.define(eq=False)
class Group:
    """A basic group (`PeerChat`): messages go to every member's account-wide update sequence."""

    chat_id: int
    title: str
    members: list[Account]
    date: datetime.datetime = attrs.field(factory=now_utc)

    def __repr__(self) -> str:
        return f"<Group {self.title!r} id={self.chat_id}>"


@attrs.frozen
class PrivateChat:
    """The one-to-one chat between two accounts (the same account twice: Saved Messages)."""

    user_ids: frozenset[int]


Chat = PrivateChat | Group
Owner = Account | Channel


@attrs.frozen
class StoredFile:
    """Bytes that arrived through upload.* (or were posted by a test). `data` is None when discarded."""

    size: int
    sha256: str
    md5: str
    name: str
    data: bytes | None = attrs.field(repr=False)


@attrs.define(eq=False)
class StoredMedia:
    """A photo or document in the server's file cache, re-sendable by (id, access_hash, file_reference)."""

    kind: MediaKind
    media_id: int
    access_hash: int
    file_reference: bytes
    file: StoredFile
    mime_type: str
    attributes: tuple[TLObject, ...] = ()
    thumbnail: StoredFile | None = None
    date: datetime.datetime = attrs.field(factory=now_utc)
    spoiler: bool = False
    nosound_video: bool = False
    force_file: bool = False
    width: int = 0
    height: int = 0

    def _attribute(self, kind: type[TLObject]) -> TLObject | None:
        return next((a for a in self.attributes if isinstance(a, kind)), None)

    @property
    def size(self) -> int:
        return self.file.size

    @property
    def sha256(self) -> str:
        return self.file.sha256

    @property
    def has_thumbnail(self) -> bool:
        return self.thumbnail is not None

    @property
    def file_name(self) -> str | None:
        attribute = self._attribute(types.DocumentAttributeFilename)
        return attribute.file_name if isinstance(attribute, types.DocumentAttributeFilename) else None

    @property
    def video(self) -> types.DocumentAttributeVideo | None:
        attribute = self._attribute(types.DocumentAttributeVideo)
        return attribute if isinstance(attribute, types.DocumentAttributeVideo) else None

    @property
    def audio(self) -> types.DocumentAttributeAudio | None:
        attribute = self._attribute(types.DocumentAttributeAudio)
        return attribute if isinstance(attribute, types.DocumentAttributeAudio) else None

    @property
    def duration(self) -> float | None:
        described = self.video or self.audio
        return None if described is None else float(described.duration)

    @property
    def supports_streaming(self) -> bool:
        video = self.video
        return bool(video and video.supports_streaming)


@attrs.frozen
class MessageContent:
    """What a client asked to post: one message, or one item of an album."""

    text: str
    entities: tuple[TLObject, ...] = ()
    media: StoredMedia | None = None
    reply_to: int | None = None
    grouped_id: int | None = None
    random_id: int | None = None
    forwarded_from: Account | None = None


@attrs.define(eq=False)
class MessageRecord:
    """One message as the server keeps it; ids are server-wide unique, so both sides see the same id."""

    id: int
    chat: Chat
    sender: Account
    date: datetime.datetime
    text: str
    entities: tuple[TLObject, ...] = ()
    media: StoredMedia | None = None
    reply_to: int | None = None
    grouped_id: int | None = None
    random_id: int | None = None
    forwarded_from: Account | None = None  # a forward shows whose words these were
    edit_date: datetime.datetime | None = None
    deleted: bool = False
    # Deleted without `revoke`: gone for these users only.
    deleted_for: set[int] = attrs.field(factory=set)


@attrs.define(eq=False)
class StoryRecord:
    id: int
    owner: Owner
    media: StoredMedia
    date: datetime.datetime
    expire_date: datetime.datetime
    caption: str = ""
    pinned: bool = False


@attrs.define(eq=False)
class UpdateBox:
    """An account's common update sequence: one pts for private chats and basic groups."""

    pts: int = 1
    # (pts after the update, update) pairs; bounded so a long benchmark does not grow without end.
    log: collections.deque[tuple[int, TLObject]] = attrs.field(
        factory=lambda: collections.deque(maxlen=UPDATE_LOG_LENGTH)
    )

    def record(self, make_update: type[TLObject], *, pts_count: int = 1, **fields: object) -> TLObject:
        """Advance pts by `pts_count` and log the update built with the new pts."""
        self.pts += pts_count
        update = make_update(**fields, pts=self.pts, pts_count=pts_count)
        self.log.append((self.pts, update))
        return update

    def since(self, pts: int) -> Iterator[TLObject] | None:
        """Updates after `pts`, or None when the log no longer reaches back that far."""
        if self.log and self.log[0][0] > pts + 1:
            return None
        return (update for update_pts, update in self.log if update_pts > pts)
