"""The gateway: the one module that imports Telethon (and asyncio, through trio-asyncio).

Everything outside it is plain Trio. Telethon runs inside ``trio_asyncio.open_loop()`` within the caller's
nursery; every public method of :class:`Gateway` is **Trio-flavoured** and speaks in the plain values of
``_values.py``. Functions whose names end in ``_aio`` are **asyncio-flavoured** and only ever run through
``aio_as_trio``. Telethon's errors become StoryFlow errors in exactly one place, :func:`_translated`.

Choices that differ from Telethon's defaults, and why:

- ``flood_sleep_threshold=0``: every flood wait reaches us, because the callers know better than a blind sleep
  (the status board closes that chat's edit gate, the uploader halves its parts in flight).
- ``request_retries=0``: one attempt per call. Telethon files RANDOM_ID_DUPLICATE under server errors and would
  retry it for ~10 s; the gateway retries transient failures itself (:meth:`Gateway._call`).
- ``connection_retries=-1``: a userbot that runs for months reconnects for as long as it takes; callers bound
  the first connection with ``trio.fail_after``.
- ``catch_up=False``: commands typed while StoryFlow was down are not replayed hours later.
- Uploads go over a second connection with the same auth key (no updates are pushed to it), so a 2 GB upload
  never delays a ``.ping`` answer or a status edit on the main connection, and they skip Telethon's per-request
  gzip attempt, which never shrinks media and cost three quarters of the client's CPU.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
import trio_asyncio
from telethon import TelegramClient, errors, events, utils
from telethon.extensions import html
from telethon.network import ConnectionTcpFull, MTProtoSender
from telethon.sessions import StringSession
from telethon.tl import functions, types
from telethon.tl.alltlobjects import LAYER
from telethon.tl.core import GzipPacked
from telethon.tl.tlobject import TLObject, TLRequest

from .._errors import (
    ChatUnavailable,
    DuplicateSend,
    FloodWait,
    InputError,
    MediaRejected,
    MessageGone,
    NotAuthorized,
    NotModified,
    PeerNotFound,
    ReferenceExpired,
    TelegramError,
    TelegramUnavailable,
)
from .._util import TELEGRAM_ID_MAX, single_error, whole_number
from .._version import __version__
from ._text import MESSAGE_LIMIT, cut, utf16_len
from ._values import (
    AttachedDocument,
    Incoming,
    Me,
    MediaSpec,
    MediaType,
    OutgoingMedia,
    SentMedia,
    StoryInfo,
    StoryList,
    UploadedFile,
    random_id,
)

log = logging.getLogger("storyflow.telegram")
T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 10
RETRY_DELAY_SECONDS = 2
# Transient failures (Telegram's internal errors, a connection that broke mid-call) are retried this often.
TRANSIENT_ATTEMPTS = 4
INCOMING_BUFFER = 256
# How far back a sent message whose answer was lost is looked for.
SENT_LOOKBACK = 20
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
# Flood waits up to this long are waited out inside a call (answers to commands, stories, lookups). Sends of a job's
# media wait however long Telegram says (the job can be cancelled meanwhile); edits and parts never wait here.
FLOOD_WAIT_LIMIT_SECONDS = 300.0
# Shutdown must finish within seconds (SIGTERM → exit in < 5 s), so a disconnect that hangs is abandoned.
DISCONNECT_GRACE_SECONDS = 2.0


# -- Telethon settings ------------------------------------------------------------------------------------


@attrs.frozen
class GatewaySettings:
    api_id: int
    api_hash: str = attrs.field(repr=False)
    session: str = attrs.field(repr=False)  # a StringSession
    dc_id: int | None = None
    dc_address: str | None = None  # host:port, e.g. Telegram's test DCs or the loopback server
    # How long the first contact may take: Telethon itself would retry for ever. Once connected, it reconnects for as
    # long as it takes.
    connect_timeout: float = 60.0


def _client(settings: GatewaySettings) -> TelegramClient:
    session = StringSession(settings.session)
    if settings.dc_address is not None:
        host, _, port = settings.dc_address.rpartition(":")
        session.set_dc(settings.dc_id or session.dc_id or 2, host, int(port))
    # help.getConfig is cached on the class; a client of an earlier run in this process may have cached another
    # server's (tests, benchmarks).
    TelegramClient._config = None
    return TelegramClient(
        session,
        settings.api_id,
        settings.api_hash,
        connection=ConnectionTcpFull,
        use_ipv6=False,
        proxy=None,
        timeout=CONNECT_TIMEOUT_SECONDS,
        request_retries=0,
        connection_retries=-1,
        retry_delay=RETRY_DELAY_SECONDS,
        auto_reconnect=True,
        sequential_updates=False,
        flood_sleep_threshold=0,
        raise_last_call_error=True,
        device_model="StoryFlow",
        system_version=f"{platform.system()} {platform.release()}".strip(),
        app_version=__version__,
        lang_code="en",
        system_lang_code="en",
        base_logger=logging.getLogger("storyflow.telethon"),
        receive_updates=True,
        catch_up=False,
        entity_cache_limit=5000,
    )


# -- no gzip attempt for file parts -----------------------------------------------------------------------

_FILE_PART_CONSTRUCTORS = frozenset(
    struct.pack("<I", request.CONSTRUCTOR_ID)
    for request in (functions.upload.SaveFilePartRequest, functions.upload.SaveBigFilePartRequest)
)
_stock_gzip_if_smaller = GzipPacked.gzip_if_smaller


def _gzip_unless_file_part(content_related: bool, data: bytes) -> bytes:
    if data[:4] in _FILE_PART_CONSTRUCTORS:
        return data
    result: bytes = _stock_gzip_if_smaller(content_related, data)
    return result


GzipPacked.gzip_if_smaller = staticmethod(_gzip_unless_file_part)


# -- the one translation point ----------------------------------------------------------------------------

_MEDIA_REJECTIONS = (
    errors.FilePartsInvalidError, errors.FilePartMissingError, errors.FilePartTooBigError,
    errors.FilePartSizeInvalidError, errors.PhotoInvalidDimensionsError, errors.PhotoExtInvalidError,
    errors.PhotoSaveFileInvalidError, errors.MediaCaptionTooLongError, errors.MediaInvalidError,
    errors.ImageProcessFailedError, errors.FileReferenceInvalidError, errors.VideoFileInvalidError,
    errors.MultiMediaTooLongError, errors.FilePartEmptyError, errors.Md5ChecksumInvalidError,
    errors.PhotoInvalidError,
)
_CHAT_REFUSALS = (
    errors.ChatWriteForbiddenError, errors.ChannelPrivateError, errors.UserIsBlockedError,
    errors.ChatAdminRequiredError, errors.ChatRestrictedError, errors.UserBannedInChannelError,
    errors.PeerIdInvalidError, errors.InputUserDeactivatedError, errors.ChatIdInvalidError,
    errors.ChatSendMediaForbiddenError,
)


# Handled where they happen (the login dialogue), not translated.
_LOGIN_ERRORS = (
    errors.SessionPasswordNeededError, errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError,
    errors.PhoneCodeExpiredError, errors.PasswordHashInvalidError, errors.PhoneNumberInvalidError,
    errors.PhoneNumberUnoccupiedError, errors.PhoneNumberBannedError,
)


def _reason(exc: errors.RPCError) -> str:
    """Telethon's words for an RPC error, without the "(caused by …Request)" tail."""
    return str(exc).split(" (caused by ", 1)[0] or exc.message


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Telethon's exceptions → StoryFlow's tree (``storyflow._errors``). ``what`` names the call for messages."""
    try:
        yield
    except _LOGIN_ERRORS:
        raise
    except (errors.FloodWaitError, errors.FloodPremiumWaitError, errors.SlowModeWaitError) as exc:
        raise FloodWait(f"{what}: Telegram asked to wait {exc.seconds} s", seconds=max(1, exc.seconds)) from None
    except errors.MessageNotModifiedError:
        raise NotModified(f"{what}: nothing changed") from None
    except (errors.MessageIdInvalidError, errors.MessageEditTimeExpiredError, errors.MessageAuthorRequiredError):
        raise MessageGone(f"{what}: the message no longer exists") from None
    except errors.RandomIdDuplicateError:
        raise DuplicateSend(f"{what}: already sent") from None
    except (errors.FileReferenceExpiredError, errors.MediaEmptyError):
        raise ReferenceExpired(f"{what}: Telegram's stored copy has expired") from None
    except _MEDIA_REJECTIONS as exc:
        raise MediaRejected(f"{what}: Telegram refused the file ({_reason(exc)})") from None
    except _CHAT_REFUSALS as exc:
        raise ChatUnavailable(f"{what}: cannot write in that chat ({_reason(exc)})") from None
    except (errors.UsernameNotOccupiedError, errors.UsernameInvalidError) as exc:
        raise PeerNotFound(f"{what}: no such user ({_reason(exc)})") from None
    except (errors.UnauthorizedError, errors.AuthKeyError) as exc:
        raise NotAuthorized(f"{what}: the session is not authorized ({_reason(exc)})") from None
    except (errors.ServerError, errors.TimedOutError, errors.RpcCallFailError) as exc:
        raise TelegramUnavailable(f"{what}: Telegram had an internal error ({_reason(exc)})") from None
    except errors.RPCError as exc:
        raise TelegramError(f"{what}: Telegram said {_reason(exc)}") from None
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise TelegramUnavailable(f"{what}: connection trouble ({type(exc).__name__})") from None


# -- incoming messages ------------------------------------------------------------------------------------


def _attached_document(message: Any) -> AttachedDocument | None:
    document = getattr(message, "document", None)
    if not isinstance(document, types.Document):
        return None
    name = next(
        (a.file_name for a in document.attributes if isinstance(a, types.DocumentAttributeFilename)), ""
    )
    return AttachedDocument(name=name, size=int(document.size), mime_type=str(document.mime_type or ""))


def _parsed(text_html: str, limit: int = MESSAGE_LIMIT) -> tuple[str, list[TLObject]]:
    """Text and entities for a message, cut to Telegram's limit (so an answer that quotes a long input still
    goes out) without an entity hanging over the cut."""
    text, entities = html.parse(text_html)
    if utf16_len(text) <= limit:
        return text, list(entities or [])
    text = cut(text, limit)
    length = utf16_len(text)
    return text, [e for e in entities or [] if e.offset + e.length <= length]


def _message_ids(result: TLObject, random_ids: Sequence[int]) -> list[int]:
    """The ids Telegram gave the messages of one send, in the order of ``random_ids``."""
    if isinstance(result, types.UpdateShortSentMessage):
        return [result.id]
    by_random_id: dict[int, int] = {}
    for update in getattr(result, "updates", ()):
        if isinstance(update, types.UpdateMessageID):
            by_random_id[update.random_id] = update.id
    missing = [r for r in random_ids if r not in by_random_id]
    if missing:
        raise TelegramError(f"Telegram's answer did not say which message {len(missing)} sends became")
    return [by_random_id[r] for r in random_ids]


def _sent_media(media: TLObject) -> SentMedia:
    if isinstance(media, types.MessageMediaPhoto) and isinstance(media.photo, types.Photo):
        return SentMedia(True, media.photo.id, media.photo.access_hash, media.photo.file_reference)
    if isinstance(media, types.MessageMediaDocument) and isinstance(media.document, types.Document):
        document = media.document
        return SentMedia(False, document.id, document.access_hash, document.file_reference)
    raise MediaRejected(f"Telegram stored the file as {type(media).__name__}, not as a photo or document")


def _input_media(media: SentMedia) -> TLObject:
    if media.photo:
        return types.InputMediaPhoto(types.InputPhoto(media.media_id, media.access_hash, media.file_reference))
    return types.InputMediaDocument(types.InputDocument(media.media_id, media.access_hash, media.file_reference))


def _input_file(file: UploadedFile) -> TLObject:
    if file.big:
        return types.InputFileBig(file.file_id, file.parts, file.name)
    return types.InputFile(file.file_id, file.parts, file.name, file.md5)


def _uploaded_media(spec: MediaSpec, *, as_file: bool) -> TLObject:
    if spec.type is MediaType.PHOTO and not as_file:
        return types.InputMediaUploadedPhoto(_input_file(spec.file))
    attributes: list[TLObject] = [types.DocumentAttributeFilename(spec.file_name)]
    if spec.video is not None and not as_file:
        attributes.append(types.DocumentAttributeVideo(
            duration=spec.video.duration, w=spec.video.width, h=spec.video.height,
            supports_streaming=spec.video.supports_streaming, nosound=spec.video.silent or None,
        ))
    if spec.audio is not None and not as_file:
        attributes.append(types.DocumentAttributeAudio(
            duration=round(spec.audio.duration), title=spec.audio.title, performer=spec.audio.performer,
        ))
    return types.InputMediaUploadedDocument(
        file=_input_file(spec.file),
        mime_type=spec.mime_type,
        attributes=attributes,
        thumb=_input_file(spec.thumbnail) if spec.thumbnail is not None else None,
        force_file=True if as_file or spec.type is MediaType.DOCUMENT else None,
        nosound_video=True if spec.video is not None and spec.video.silent and not as_file else None,
    )


# -- the gateway ------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Gateway:
    """A logged-in Telegram account. Obtain one from :func:`open_gateway`; every method is Trio-flavoured."""

    me: Me
    incoming: trio.MemoryReceiveChannel[Incoming]
    _client: TelegramClient
    _loop: Any
    _upload_sender: MTProtoSender | None
    _peers: dict[int, TLObject] = attrs.field(factory=dict)

    # -- calling Telethon ---------------------------------------------------------------------------------

    async def _aio(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        result: T = await trio_asyncio.aio_as_trio(fn, loop=self._loop)(*args)
        return result

    async def _call(
        self, request: TLRequest, what: str, *, sender: MTProtoSender | None = None,
        wait_floods: float = FLOOD_WAIT_LIMIT_SECONDS,
    ) -> Any:
        """One request with the gateway's retry policy: transient failures are retried with a short backoff
        (every request we make is idempotent: sends carry a random_id, parts and edits can repeat), and a flood
        wait of at most ``wait_floods`` seconds is waited out; a longer one is raised for the caller to handle
        (the status board closes a chat's gate, the uploader halves its parts in flight)."""
        attempt = 0
        while True:
            try:
                with _translated(what):
                    if sender is None:
                        return await self._aio(self._client, request)
                    return await self._aio(self._client._call, sender, request)
            except FloodWait as flood:
                if flood.seconds > wait_floods:
                    raise
                log.info("%s; waiting %g s", flood.message, flood.seconds)
                await trio.sleep(flood.seconds)
            except TelegramUnavailable as exc:
                attempt += 1
                if attempt >= TRANSIENT_ATTEMPTS:
                    raise
                log.info("%s; retrying (%d of %d)", exc.message, attempt, TRANSIENT_ATTEMPTS - 1)
                await trio.sleep(attempt * 0.5)

    async def _peer(self, chat_id: int) -> TLObject:
        if chat_id == self.me.user_id:
            return types.InputPeerSelf()
        known = self._peers.get(chat_id)
        if known is not None:
            return known
        with _translated("finding the chat"):
            try:
                peer: TLObject = await self._aio(self._client.get_input_entity, chat_id)
            except ValueError:
                raise PeerNotFound(f"chat {chat_id} is unknown to this session") from None
        self._peers[chat_id] = peer
        return peer

    def remember_peers(self, peers: dict[int, bytes]) -> None:
        """Input peers saved from earlier runs (``Incoming.peer``), so resumed jobs can reach their chats."""
        for chat_id, data in peers.items():
            try:
                self._peers.setdefault(chat_id, _read_tl(data))
            except Exception:  # a corrupt row must not stop the userbot
                log.warning("ignoring an unreadable saved peer for chat %d", chat_id)

    # -- messages -----------------------------------------------------------------------------------------

    async def send_text(
        self, chat_id: int, text_html: str, *, reply_to: int | None = None, send_id: int | None = None
    ) -> int:
        """Send an HTML message; returns its id. ``send_id`` (a random_id) makes the send exactly-once: sent before,
        it raises :class:`DuplicateSend`."""
        text, entities = _parsed(text_html)
        fresh = send_id is None
        send_id = random_id() if send_id is None else send_id
        peer = await self._peer(chat_id)
        request = functions.messages.SendMessageRequest(
            peer=peer, message=text, entities=entities or None, no_webpage=True,
            reply_to=types.InputReplyToMessage(reply_to) if reply_to else None, random_id=send_id,
        )
        try:
            result = await self._call(request, "sending a message")
        except DuplicateSend:
            if not fresh:
                raise
            # A random_id made for this very send can only have been used by it: it reached Telegram, and the
            # connection dropped before the answer did (Telethon then sends the request again). Find the message.
            found = await self._sent_text(peer, text, reply_to)
            if found is None:
                raise
            log.info("a message reached chat %d before its answer was lost; found it again", chat_id)
            return found
        return _message_ids(result, [send_id])[0]

    async def _sent_text(self, peer: TLObject, text: str, reply_to: int | None) -> int | None:
        """The newest of our recent messages in a chat with this text (and reply), if any."""
        request = functions.messages.GetHistoryRequest(
            peer=peer, offset_id=0, offset_date=None, add_offset=0, limit=SENT_LOOKBACK, max_id=0, min_id=0, hash=0,
        )
        history = await self._call(request, "finding a sent message")
        for message in getattr(history, "messages", []):
            replied = getattr(getattr(message, "reply_to", None), "reply_to_msg_id", None)
            if getattr(message, "out", False) and getattr(message, "message", None) == text and replied == reply_to:
                return int(message.id)
        return None

    async def edit_text(self, chat_id: int, message_id: int, text_html: str) -> None:
        text, entities = _parsed(text_html)
        request = functions.messages.EditMessageRequest(
            peer=await self._peer(chat_id), id=message_id, message=text, entities=entities or None,
            no_webpage=True,
        )
        await self._call(request, "editing a message", wait_floods=0)

    async def delete_messages(self, chat_id: int, message_ids: Sequence[int]) -> None:
        peer = await self._peer(chat_id)
        if isinstance(peer, types.InputPeerChannel):
            request: TLRequest = functions.channels.DeleteMessagesRequest(peer, list(message_ids))
        else:
            request = functions.messages.DeleteMessagesRequest(list(message_ids), revoke=True)
        await self._call(request, "deleting messages")

    # -- files and media ----------------------------------------------------------------------------------

    async def save_part(self, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool) -> None:
        """Store one part of an upload. ``total_parts`` is -1 while a streamed upload's size is unknown."""
        request: TLRequest
        if big:
            request = functions.upload.SaveBigFilePartRequest(file_id, index, total_parts, data)
        else:
            request = functions.upload.SaveFilePartRequest(file_id, index, data)
        ok = await self._call(request, f"uploading part {index}", sender=self._upload_sender, wait_floods=0)
        if ok is not True:
            raise MediaRejected(f"Telegram did not accept part {index} of the upload")

    async def prepare_media(self, chat_id: int, spec: MediaSpec, *, as_file: bool = False) -> SentMedia:
        """Turn an uploaded file into Telegram's stored copy (messages.uploadMedia), ready for albums."""
        request = functions.messages.UploadMediaRequest(
            peer=await self._peer(chat_id), media=_uploaded_media(spec, as_file=as_file)
        )
        return _sent_media(await self._call(request, f"storing {spec.file_name}", wait_floods=math.inf))

    async def send_media(
        self, chat_id: int, items: Sequence[OutgoingMedia], *, reply_to: int | None = None
    ) -> list[int]:
        """Send one media message, or an album of 2–10; returns the message ids in order."""
        if not items:
            raise ValueError("nothing to send")
        peer = await self._peer(chat_id)
        reply = types.InputReplyToMessage(reply_to) if reply_to else None
        request: TLRequest
        if len(items) == 1:
            item = items[0]
            text, entities = html.parse(item.caption_html)
            request = functions.messages.SendMediaRequest(
                peer=peer, media=_input_media(item.media), message=text, entities=entities or None,
                random_id=item.random_id, reply_to=reply,
            )
        else:
            singles = []
            for item in items:
                text, entities = html.parse(item.caption_html)
                singles.append(types.InputSingleMedia(
                    _input_media(item.media), text, random_id=item.random_id, entities=entities or None
                ))
            request = functions.messages.SendMultiMediaRequest(peer=peer, multi_media=singles, reply_to=reply)
        result = await self._call(
            request, "sending media" if len(items) == 1 else "sending an album", wait_floods=math.inf
        )
        return _message_ids(result, [item.random_id for item in items])

    async def refresh_media(self, chat_id: int, message_ids: Sequence[int]) -> list[SentMedia | None]:
        """Fetch messages again for fresh file references (they expire); None where a message is gone."""
        peer = await self._peer(chat_id)
        ids = [types.InputMessageID(i) for i in message_ids]
        if isinstance(peer, types.InputPeerChannel):
            request: TLRequest = functions.channels.GetMessagesRequest(peer, ids)
        else:
            request = functions.messages.GetMessagesRequest(ids)
        result = await self._call(request, "fetching messages")
        found = {m.id: m for m in result.messages if isinstance(m, types.Message)}
        refreshed: list[SentMedia | None] = []
        for message_id in message_ids:
            message = found.get(message_id)
            try:
                refreshed.append(_sent_media(message.media) if message is not None else None)
            except MediaRejected:
                refreshed.append(None)
        return refreshed

    # -- people -------------------------------------------------------------------------------------------

    async def resolve_user(self, who: str) -> tuple[int, str]:
        """``@username`` or a numeric id → (user id, display name)."""
        name = who.lstrip("@")
        if name.lower() in ("me", "self"):
            return self.me.user_id, self.me.name
        number = whole_number(name, lowest=-TELEGRAM_ID_MAX, highest=TELEGRAM_ID_MAX)
        if number is None and not _USERNAME.fullmatch(name):
            raise PeerNotFound(f"{name[:40]!r} is neither a @username nor a numeric id")
        target: str | int = number if number is not None else name
        with _translated(f"finding {who}"):
            try:
                entity = await self._aio(self._client.get_entity, target)
            except ValueError:
                raise PeerNotFound(f"no user or chat {who}") from None
        if isinstance(entity, types.User):
            self._peers[entity.id] = utils.get_input_peer(entity)
        return utils.get_peer_id(entity), utils.get_display_name(entity) or str(who)

    async def message_sender(self, chat_id: int, message_id: int) -> tuple[int, str] | None:
        """Who wrote a message (for ``.allow`` as a reply): (user id, display name), None if unknown."""
        with _translated("fetching a message"):
            messages = await self._aio(
                functools.partial(self._client.get_messages, await self._peer(chat_id), ids=[message_id])
            )
        message = messages[0] if isinstance(messages, list) and messages else messages
        if message is None or getattr(message, "sender_id", None) is None:
            return None
        sender = getattr(message, "sender", None)
        name = utils.get_display_name(sender) if sender is not None else ""
        return int(message.sender_id), name or str(message.sender_id)

    async def download_document(self, chat_id: int, message_id: int, destination: Path, *, max_bytes: int) -> int:
        """Save the document attached to a message (e.g. a cookies.txt) to ``destination``; returns its size.

        Refuses before downloading anything when there is no document or it is larger than ``max_bytes``.
        """
        with _translated("fetching a message"):
            found = await self._aio(
                functools.partial(self._client.get_messages, await self._peer(chat_id), ids=[message_id])
            )
        message = found[0] if isinstance(found, list) and found else found
        document = getattr(message, "document", None) if message is not None else None
        if not isinstance(document, types.Document):
            raise InputError("that message has no file attached", hint="reply to the message with the file")
        if document.size > max_bytes:
            raise MediaRejected(f"the file is {document.size} bytes; the limit is {max_bytes}")
        handle = await trio.open_file(destination, "wb")
        written = 0
        try:
            with _translated("downloading a file"):
                chunks = self._client.iter_download(document, request_size=128 * 1024)
                async for chunk in trio_asyncio.aio_as_trio(chunks, loop=self._loop):
                    written += len(chunk)
                    if written > max_bytes:
                        raise MediaRejected(f"the file is over the limit of {max_bytes} bytes")
                    await handle.write(chunk)
        finally:
            with trio.CancelScope(shield=True):
                await handle.aclose()
        return written

    # -- stories ------------------------------------------------------------------------------------------

    async def list_stories(self, who: str | int, *, pinned: bool = False) -> StoryList:
        """The active stories of a user or channel (``@name`` or id), or with ``pinned`` the ones kept on their
        profile (Telegram's highlights)."""
        peer = await self._resolve(who)
        if pinned:
            result = await self._call(
                functions.stories.GetPinnedStoriesRequest(peer, offset_id=0, limit=100), "listing pinned stories"
            )
            items, users, chats = list(result.stories), result.users, result.chats
        else:
            result = await self._call(functions.stories.GetPeerStoriesRequest(peer), "listing stories")
            items, users, chats = list(result.stories.stories), result.users, result.chats
        skipped = [item.id for item in items if isinstance(item, types.StoryItemSkipped)]
        if skipped:
            full = await self._call(functions.stories.GetStoriesByIDRequest(peer, skipped), "fetching stories")
            by_id = {item.id: item for item in full.stories if isinstance(item, types.StoryItem)}
            items = [by_id.get(item.id, item) for item in items]
        entity = next(
            (e for e in [*users, *chats] if utils.get_peer_id(e) == utils.get_peer_id(peer)), None
        ) if not isinstance(peer, types.InputPeerSelf) else None
        stories = tuple(
            StoryInfo(
                item.id, item.date.timestamp() if item.date else None,
                isinstance(item.media, types.MessageMediaPhoto), item.caption or "",
            )
            for item in sorted(items, key=lambda i: i.id)
            if isinstance(item, types.StoryItem)
        )
        owner_id = self.me.user_id if isinstance(peer, types.InputPeerSelf) else utils.get_peer_id(peer)
        name = utils.get_display_name(entity) if entity is not None else str(who)
        username = getattr(entity, "username", None) if entity is not None else self.me.username
        return StoryList(owner_id, name or str(who), username, bytes(peer), stories)

    async def download_story(self, owner_id: int, story_id: int, destination: Path) -> Path:
        """Download one story's media to ``destination`` plus its extension, streamed to disk off the loop."""
        peer = await self._peer(owner_id)
        result = await self._call(functions.stories.GetStoriesByIDRequest(peer, [story_id]), "fetching a story")
        item = next((s for s in result.stories if isinstance(s, types.StoryItem) and s.id == story_id), None)
        if item is None or item.media is None:
            raise MessageGone(f"story {story_id} has expired or was deleted")
        if isinstance(item.media, types.MessageMediaPhoto):
            path = destination.with_name(destination.name + ".jpg")
        else:
            document = getattr(item.media, "document", None)
            mime = str(getattr(document, "mime_type", "") or "")
            path = destination.with_name(destination.name + (".mp4" if "mp4" in mime or not mime else ".bin"))
        handle = await trio.open_file(path, "wb")
        try:
            with _translated("downloading a story"):
                chunks = self._client.iter_download(item.media, request_size=512 * 1024)
                async for chunk in trio_asyncio.aio_as_trio(chunks, loop=self._loop):
                    await handle.write(chunk)
        except BaseException:
            with trio.CancelScope(shield=True):
                await handle.aclose()
                await trio.Path(path).unlink(missing_ok=True)
            raise
        await handle.aclose()
        return path

    async def _resolve(self, who: str | int) -> TLObject:
        if isinstance(who, int):
            return await self._peer(who)
        name = who.strip().lstrip("@")
        number = whole_number(name, lowest=-TELEGRAM_ID_MAX, highest=TELEGRAM_ID_MAX)
        if number is not None:
            return await self._peer(number)
        if name.lower() in ("me", "self"):
            return types.InputPeerSelf()
        if not _USERNAME.fullmatch(name):
            raise PeerNotFound(f"{name[:40]!r} is not a Telegram username")
        with _translated(f"finding @{name}"):
            try:
                peer: TLObject = await self._aio(self._client.get_input_entity, name)
            except ValueError:
                raise PeerNotFound(f"no user or channel @{name}") from None
        self._peers[utils.get_peer_id(peer)] = peer
        return peer

    # -- receiving ----------------------------------------------------------------------------------------

    def _incoming(self, event: Any) -> Incoming:
        message = event.message
        peer = event.input_chat
        if peer is not None:
            self._peers[event.chat_id] = peer
        return Incoming(
            chat_id=int(event.chat_id),
            message_id=int(message.id),
            sender_id=event.sender_id,
            text=message.message or "",
            outgoing=bool(message.out),
            private=bool(event.is_private),
            saved_messages=event.chat_id == self.me.user_id,
            forwarded=message.fwd_from is not None,
            via_bot=message.via_bot_id is not None,
            reply_to=message.reply_to_msg_id,
            peer=bytes(peer) if peer is not None else b"",
            document=_attached_document(message),
        )


async def _disconnect(disconnect_aio: Callable[[], Awaitable[None]], loop: Any) -> None:
    """Disconnect, but never hold up a shutdown: with Telegram unreachable, Telethon's disconnect can wait on a
    reconnect loop that never ends (``connection_retries=-1``)."""
    with trio.move_on_after(DISCONNECT_GRACE_SECONDS) as gave_up:
        await trio_asyncio.aio_as_trio(disconnect_aio, loop=loop)()
    if gave_up.cancelled_caught:
        log.warning("Telegram did not let go within %g s; leaving anyway", DISCONNECT_GRACE_SECONDS)


def _read_tl(data: bytes) -> TLObject:
    from telethon.extensions import BinaryReader

    with BinaryReader(data) as reader:
        obj: TLObject = reader.tgread_object()
    return obj


async def _open_upload_sender_aio(client: TelegramClient) -> MTProtoSender:
    """asyncio-flavoured: a second connection to the same DC with the same auth key, for upload.* only."""
    session = client.session
    sender = MTProtoSender(
        session.auth_key, loggers=client._log, retries=-1, delay=RETRY_DELAY_SECONDS, auto_reconnect=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    await sender.connect(client._connection(
        session.server_address, session.port, session.dc_id, loggers=client._log, proxy=client._proxy,
        local_addr=client._local_addr,
    ))
    init = client._init_request
    first = functions.InitConnectionRequest(
        api_id=init.api_id, device_model=init.device_model, system_version=init.system_version,
        app_version=init.app_version, system_lang_code=init.system_lang_code, lang_pack=init.lang_pack,
        lang_code=init.lang_code, query=functions.help.GetConfigRequest(),
    )
    await sender.send(functions.InvokeWithLayerRequest(LAYER, first))
    return sender


@contextmanager
def _reaching_telegram(seconds: float) -> Iterator[None]:
    """The first contact with Telegram, given ``seconds`` (the user's telegram.connect_timeout)."""
    with trio.move_on_after(seconds) as connecting:
        yield
    if connecting.cancelled_caught:
        raise TelegramUnavailable(f"could not reach Telegram within {seconds:g} s",
                                  hint="check the network, and telegram.dc_address if you set one")


@asynccontextmanager
async def open_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    """Connect and log in for the duration of the block (Trio-flavoured; owns its asyncio loop and nursery).

    Raises :class:`NotAuthorized` if the session is not logged in, :class:`TelegramUnavailable` if Telegram cannot
    be reached within ``settings.connect_timeout``. If Telegram drops us for good (the session was revoked), the
    block is cancelled with :class:`TelegramUnavailable` / :class:`NotAuthorized`. Errors leave as themselves, not
    wrapped in the groups of the nurseries inside.
    """
    with single_error():
        async with _connected_gateway(settings) as gateway:
            yield gateway


@asynccontextmanager
async def _connected_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    async with trio_asyncio.open_loop() as loop:
        client = _client(settings)
        upload_sender: MTProtoSender | None = None
        try:
            with _reaching_telegram(settings.connect_timeout), _translated("connecting to Telegram"):
                await trio_asyncio.aio_as_trio(client.connect, loop=loop)()
                if not await trio_asyncio.aio_as_trio(client.is_user_authorized, loop=loop)():
                    raise NotAuthorized("this session is not logged in")
                user = await trio_asyncio.aio_as_trio(client.get_me, loop=loop)()
                upload_sender = await trio_asyncio.aio_as_trio(_open_upload_sender_aio, loop=loop)(client)
            me = Me(
                user_id=int(user.id), name=utils.get_display_name(user) or "me", username=user.username,
                premium=bool(user.premium),
            )
            send, receive = trio.open_memory_channel[Incoming](INCOMING_BUFFER)
            gateway = Gateway(me, receive, client, loop, upload_sender)

            async def on_new_message_aio(event: Any) -> None:
                try:
                    incoming = gateway._incoming(event)
                except Exception:
                    log.exception("could not read an incoming message")
                    return
                await trio_asyncio.trio_as_aio(send.send)(incoming)

            client.add_event_handler(on_new_message_aio, events.NewMessage())

            async def watch_connection() -> None:
                async def disconnected_aio() -> None:
                    await client.disconnected

                with _translated("staying connected"):
                    await trio_asyncio.aio_as_trio(disconnected_aio, loop=loop)()
                raise TelegramUnavailable("Telegram disconnected StoryFlow and it could not reconnect")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_connection)
                with send:
                    yield gateway
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if upload_sender is not None:
                    await _disconnect(upload_sender.disconnect, loop)
                await _disconnect(client.disconnect, loop)


# -- first login --------------------------------------------------------------------------------------------

Prompt = Callable[[str, bool], Awaitable[str]]
LOGIN_ATTEMPTS = 3


async def login(settings: GatewaySettings, prompt: Prompt) -> tuple[str, Me]:
    """Interactive first login (Trio-flavoured): phone, code, and the 2FA password if the account has one.

    ``prompt(question, secret)`` asks the user. Returns the new StringSession and who logged in. Codes and
    passwords are asked for again on a typo, up to three times each.
    """
    async with trio_asyncio.open_loop() as loop:
        client = _client(attrs.evolve(settings, session=""))

        async def aio(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
            result: T = await trio_asyncio.aio_as_trio(functools.partial(fn, *args, **kwargs), loop=loop)()
            return result

        try:
            with _reaching_telegram(settings.connect_timeout), _translated("connecting to Telegram"):
                await aio(client.connect)
            phone = (await prompt("Phone number (international format, e.g. +4915…): ", False)).strip()
            try:
                with _translated("asking for a login code"):
                    sent = await aio(client.send_code_request, phone)
            except (errors.PhoneNumberInvalidError, errors.PhoneNumberUnoccupiedError):
                raise PeerNotFound("Telegram knows no account with that phone number",
                                   hint="type it with the country code, e.g. +4915…") from None
            except errors.PhoneNumberBannedError:
                raise NotAuthorized("Telegram has banned that phone number", hint="") from None
            user = await _sign_in_with_code(aio, client, phone, sent.phone_code_hash, prompt)
            session: str = client.session.save()
        finally:
            with trio.CancelScope(shield=True):
                await aio(client.disconnect)
    me = Me(int(user.id), utils.get_display_name(user) or "me", user.username, bool(user.premium))
    return session, me


async def _sign_in_with_code(aio: Any, client: TelegramClient, phone: str, code_hash: str, prompt: Prompt) -> Any:
    for attempt in range(1, LOGIN_ATTEMPTS + 1):
        code = (await prompt("The code Telegram sent you: ", False)).strip()
        try:
            with _translated("signing in"):
                return await aio(client.sign_in, phone, code, phone_code_hash=code_hash)
        except errors.SessionPasswordNeededError:
            return await _sign_in_with_password(aio, client, prompt)
        except (errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError):
            if attempt == LOGIN_ATTEMPTS:
                raise NotAuthorized(
                    "the login code was wrong three times", hint="run `storyflow login` again"
                ) from None
        except errors.PhoneCodeExpiredError:
            raise NotAuthorized("the login code has expired", hint="run `storyflow login` again") from None
    raise AssertionError("unreachable")


async def _sign_in_with_password(aio: Any, client: TelegramClient, prompt: Prompt) -> Any:
    for attempt in range(1, LOGIN_ATTEMPTS + 1):
        password = await prompt("Two-step verification password: ", True)
        try:
            with _translated("checking the password"):
                return await aio(client.sign_in, password=password)
        except errors.PasswordHashInvalidError:
            if attempt == LOGIN_ATTEMPTS:
                raise NotAuthorized("wrong two-step verification password, three times") from None
    raise AssertionError("unreachable")
