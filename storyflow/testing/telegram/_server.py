"""The loopback Telegram server: state, fan-out of updates, the test-facing API and the Trio service."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import logging
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

import attrs
import trio
from telethon.crypto import AuthKey
from telethon.sessions import StringSession
from telethon.tl import types
from telethon.tl.tlobject import TLObject

from . import _render as render
from ._api import Api
from ._connection import Connection
from ._crypto import ServerMsgIds
from ._errors import RpcFailure, bad_request
from ._faults import DropConnection, FaultPlan
from ._handshake import HandshakeError, KeyExchange, is_plain_message, plain_message, read_plain_message
from ._login import Logins, normalize_phone
from ._rsa import ServerRsaKey, process_rsa_key, trust_server_key
from ._state import (
    Account,
    AuthKeyRecord,
    Channel,
    Chat,
    Group,
    MediaKind,
    MessageContent,
    MessageRecord,
    Owner,
    PrivateChat,
    StoredFile,
    StoredMedia,
    StoryRecord,
    UpdateBox,
    now_utc,
    random_long,
)
from ._transport import TcpFullStream, TransportError
from ._uploads import UploadStore

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_KEEP_FILE_BYTES = 64 * 1024 * 1024
STORY_LIFETIME = datetime.timedelta(hours=24)
_UNKNOWN_KEY_ANSWER = 404


def _new_key() -> bytes:
    return os.urandom(256)


def _key_id(key: bytes) -> int:
    return int(AuthKey(key).key_id)


def login_session(port: int, host: str = "127.0.0.1") -> StringSession:
    """An empty StringSession aimed at a loopback server: what a first login starts from.

    It has no auth key, so it cannot be saved as a string yet; Telethon creates the key on connect.
    """
    session = StringSession()
    session.set_dc(render.DC_ID, host, port)
    return session


def _sniff_image_size(data: bytes | None) -> tuple[int, int]:
    """Width and height from a PNG or JPEG header; (0, 0) when unknown."""
    if not data:
        return 0, 0
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        offset = 2
        while offset + 9 < len(data):
            if data[offset] != 0xFF:
                break
            marker = data[offset + 1]
            (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
                return width, height
            offset += 2 + length
    return 0, 0


@attrs.define(eq=False)
class LoopbackTelegram:
    """A small Telegram speaking real MTProto 2.0 on 127.0.0.1, for unmodified Telethon clients.

    Trio-flavoured. Start it with `port = await nursery.start(server.serve)` (or the
    `open_loopback_telegram()` context manager); accounts `owner`, `friend` and `stranger` exist from the
    start, and `session_string(account)` gives a Telethon StringSession that points at this server.

    A client may also start from an empty session (`login_session()`): it creates an auth key with the
    key exchange, which needs this server's RSA key trusted in the client's process (`trust_rsa_key()`,
    or `trust_server_key(rsa_public_key_pem)` in a child process), and then signs in with a code
    (`last_login_code(phone)`), a 2FA password (`set_password`) or a QR token (`accept_login_token`).
    """

    host: str = "127.0.0.1"
    keep_file_bytes_limit: int = DEFAULT_KEEP_FILE_BYTES
    # None: the key shared by every server in this process, generated on first use (~0.3 s).
    _rsa_key: ServerRsaKey | None = attrs.field(default=None, alias="rsa_key")
    # Every login code is this one when set (handy for a child process typing it); else random digits.
    login_code: str | None = None
    # Called with each login code sent, e.g. to print it (the standalone server does).
    on_login_code: Callable[[Account, str], None] | None = None
    port: int = attrs.field(init=False, default=0)
    faults: FaultPlan = attrs.field(init=False, factory=FaultPlan)
    uploads: UploadStore = attrs.field(init=False)
    logins: Logins = attrs.field(init=False)
    api: Api = attrs.field(init=False)
    completed_key_exchanges: int = attrs.field(init=False, default=0)
    _accounts: dict[str, Account] = attrs.field(init=False, factory=dict)
    _accounts_by_id: dict[int, Account] = attrs.field(init=False, factory=dict)
    _keys: dict[int, AuthKeyRecord] = attrs.field(init=False, factory=dict)
    _boxes: dict[int, UpdateBox] = attrs.field(init=False, factory=dict)
    # Connections of signed-in keys by user id (who gets updates), and of every key by key id.
    _connections: dict[int, set[Connection]] = attrs.field(init=False, factory=dict)
    _key_connections: dict[int, set[Connection]] = attrs.field(init=False, factory=dict)
    _withheld_updates: dict[int, int] = attrs.field(init=False, factory=dict)
    _messages: dict[int, MessageRecord] = attrs.field(init=False, factory=dict)
    _chat_messages: dict[Chat, list[MessageRecord]] = attrs.field(init=False, factory=dict)
    _random_ids: set[tuple[int, int]] = attrs.field(init=False, factory=set)
    _media: dict[int, StoredMedia] = attrs.field(init=False, factory=dict)
    _stories: dict[int, list[StoryRecord]] = attrs.field(init=False, factory=dict)
    _channels: dict[int, Channel] = attrs.field(init=False, factory=dict)
    _groups: dict[int, Group] = attrs.field(init=False, factory=dict)
    _ids: Iterator[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _entity_ids: Iterator[int] = attrs.field(init=False, factory=lambda: itertools.count(7_000_000_001))
    _story_ids: Iterator[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    internal_errors: list[Exception] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.uploads = UploadStore(keep_bytes_limit=self.keep_file_bytes_limit)
        self.logins = Logins(self, fixed_code=self.login_code, on_code=self.on_login_code)
        self.api = Api(self)
        self.add_account("owner", first_name="Owner", username="storyflow_owner")
        self.add_account("friend", first_name="Friend", username="storyflow_friend")
        self.add_account("stranger", first_name="Stranger", username="storyflow_stranger")

    # --- the Trio service -----------------------------------------------------------------------

    async def serve(self, *, port: int = 0, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; `task_status.started(port)` once clients can connect."""
        listeners = await trio.open_tcp_listeners(port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_stream, listeners)
            task_status.started(self.port)

    async def _serve_stream(self, stream: trio.SocketStream) -> None:
        transport = TcpFullStream(stream)
        connection: Connection | None = None
        try:
            first = await transport.receive_packet()
            if first is not None and is_plain_message(first):
                first = await self._exchange_keys(transport, first)
            if first is None or len(first) < 8:
                return
            known = self._keys.get(struct.unpack_from("<Q", first)[0])
            if known is None:
                await transport.send_transport_error(_UNKNOWN_KEY_ANSWER)
                return
            connection = Connection(self, transport, known)
            self._attach(connection)
            await connection.run(first)
        except* (DropConnection, TransportError, trio.BrokenResourceError, trio.ClosedResourceError) as closed:
            log.debug("connection closed: %r", closed.exceptions)
        except* Exception as failed:
            # One broken connection must not take the server down; tests can assert on these.
            log.exception("loopback Telegram connection failed", exc_info=failed)
            self.internal_errors.extend(failed.exceptions)
        finally:
            if connection is not None:
                self._detach(connection)
            await trio.aclose_forcefully(stream)

    async def _exchange_keys(self, transport: TcpFullStream, packet: bytes | None) -> bytes | None:
        """Answer unencrypted messages (the auth key exchange) until the client sends an encrypted one,
        usually on its new key; returns that packet, or None when the client hung up."""
        exchange = KeyExchange(self.rsa_key)
        msg_ids = ServerMsgIds()
        while packet is not None and is_plain_message(packet):
            try:
                answer = exchange.answer(read_plain_message(packet))
            except HandshakeError as error:
                log.warning("auth key exchange failed: %s", error)
                raise DropConnection from error
            key = exchange.take_key()
            if key is not None:
                if _key_id(key) in self._keys:
                    raise DropConnection  # 2**-64; Telethon starts over on the next connection
                self._register_key(key, None)
                self.completed_key_exchanges += 1
            await transport.send_packet(plain_message(msg_ids.next(reply=True), bytes(answer)))
            packet = await transport.receive_packet()
        return packet

    # --- auth keys ------------------------------------------------------------------------------

    @property
    def rsa_key(self) -> ServerRsaKey:
        """The RSA key pair this server proves itself with in the key exchange."""
        if self._rsa_key is None:
            self._rsa_key = process_rsa_key()
        return self._rsa_key

    @property
    def rsa_public_key_pem(self) -> str:
        """The PEM a client process needs trusted (`trust_server_key`) before its first key exchange."""
        return self.rsa_key.public_pem

    @property
    def rsa_public_key_line(self) -> str:
        """The same key as one line of base64 (what the standalone server prints as `rsa_key=`)."""
        return self.rsa_key.public_key_line

    def trust_rsa_key(self) -> None:
        """Make Telethon in this process accept this server in a key exchange."""
        trust_server_key(self.rsa_public_key_pem)

    def login_session(self) -> StringSession:
        """An empty StringSession aimed at this server, for a first login (see `login_session()`)."""
        if not self.port:
            raise RuntimeError("the server is not listening yet")
        return login_session(self.port, self.host)

    def _register_key(self, key: bytes, account: Account | None) -> AuthKeyRecord:
        record = AuthKeyRecord(key=key, key_id=_key_id(key))
        self._keys[record.key_id] = record
        if account is not None:
            self.authorize_key(record, account)
        return record

    def authorize_key(self, record: AuthKeyRecord, account: Account) -> None:
        """Bind a key to an account (a successful sign-in): its connections now get updates."""
        record.account = account
        if record.key not in account.auth_keys:
            account.auth_keys.append(record.key)
        for connection in self._key_connections.get(record.key_id, ()):
            self._connections.setdefault(account.user_id, set()).add(connection)
        self.notify()

    def drop_key(self, record: AuthKeyRecord) -> None:
        """Forget a key (auth.logOut): live connections on it are unauthorized, new ones get -404."""
        self._keys.pop(record.key_id, None)
        account, record.account = record.account, None
        if account is not None:
            if record.key in account.auth_keys:
                account.auth_keys.remove(record.key)
            for connection in self._key_connections.get(record.key_id, ()):
                self._connections.get(account.user_id, set()).discard(connection)
        self.notify()

    def account_for_key(self, key: bytes) -> Account | None:
        """Whom a key (e.g. `client.session.auth_key.key`) is signed in as; None if unauthorized or unknown."""
        record = self._keys.get(_key_id(key))
        return None if record is None else record.account

    def connections_on_key(self, key_id: int) -> list[Connection]:
        return list(self._key_connections.get(key_id, ()))

    def _attach(self, connection: Connection) -> None:
        self._key_connections.setdefault(connection.key_id, set()).add(connection)
        if connection.auth.account is not None:
            self._connections.setdefault(connection.auth.account.user_id, set()).add(connection)

    def _detach(self, connection: Connection) -> None:
        connections = self._key_connections.get(connection.key_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._key_connections[connection.key_id]
        for by_account in self._connections.values():
            by_account.discard(connection)

    # --- logging in: what tests set and read ----------------------------------------------------

    def account_by_phone(self, phone: str) -> Account | None:
        wanted = normalize_phone(phone)
        return next((a for a in self._accounts.values() if a.phone == wanted), None)

    def last_login_code(self, phone: str | Account) -> str | None:
        """The code of the last auth.sendCode for this phone (what the app would show), if still pending."""
        return self.logins.last_code(phone.phone if isinstance(phone, Account) else phone)

    async def wait_for_login_code(self, phone: str | Account) -> str:
        """The login code for this phone, waiting (on events) for a client to ask for one."""
        return await self.wait_until(lambda: self.last_login_code(phone))

    def expire_login_code(self, phone: str | Account) -> None:
        """The pending code for this phone answers PHONE_CODE_EXPIRED from now on."""
        self.logins.expire_code(phone.phone if isinstance(phone, Account) else phone)

    def set_password(self, account: Account, password: str | None, *, hint: str | None = None) -> None:
        """Turn on 2FA (None: off). Sign-ins then answer SESSION_PASSWORD_NEEDED until the SRP check.
        Costs one 100 000-round PBKDF2 (~0.1 s), as on a real client."""
        self.logins.set_password(account, password, hint=hint)

    def last_login_token(self) -> bytes | None:
        """The QR login token a client exported last (the bytes in its tg://login URL), until accepted."""
        return self.logins.last_token

    async def wait_for_login_token(self) -> bytes:
        return await self.wait_until(self.last_login_token)

    def accept_login_token(self, account: Account, token: bytes) -> None:
        """Scan the QR code on another device of `account` (what auth.acceptLoginToken does)."""
        self.logins.accept_token(account, token)

    # --- accounts and peers ---------------------------------------------------------------------

    def add_account(
        self, name: str, *, first_name: str | None = None, username: str | None = None, premium: bool = False
    ) -> Account:
        if name in self._accounts:
            raise ValueError(f"account {name!r} exists")
        user_id = next(self._entity_ids)
        account = Account(
            name=name,
            user_id=user_id,
            access_hash=random_long(),
            first_name=first_name or name.capitalize(),
            username=username,
            phone=f"999{user_id % 10_000_000:07d}",
            premium=premium,
        )
        self._accounts[name] = account
        self._accounts_by_id[user_id] = account
        self._boxes[user_id] = UpdateBox()
        self._register_key(_new_key(), account)
        return account

    def account(self, name: str) -> Account:
        return self._accounts[name]

    @property
    def owner(self) -> Account:
        return self._accounts["owner"]

    @property
    def friend(self) -> Account:
        return self._accounts["friend"]

    @property
    def stranger(self) -> Account:
        return self._accounts["stranger"]

    @property
    def accounts(self) -> list[Account]:
        return list(self._accounts.values())

    def add_auth_key(self, account: Account) -> bytes:
        """Another authorization (device) for the account, as a second login would create."""
        key = _new_key()
        self._register_key(key, account)
        return key

    def session_string(self, account: Account, *, new_device: bool = False) -> str:
        """A Telethon StringSession for the account on this server (the port must be known)."""
        if not self.port:
            raise RuntimeError("the server is not listening yet")
        key = self.add_auth_key(account) if new_device or not account.auth_keys else account.auth_keys[0]
        return self._session_for_key(key)

    def unknown_session_string(self) -> str:
        """A session whose auth key the server has never seen: the client gets the -404 answer."""
        return self._session_for_key(_new_key())

    def _session_for_key(self, key: bytes) -> str:
        session = StringSession()
        session.set_dc(render.DC_ID, self.host, self.port)
        session.auth_key = AuthKey(key)
        saved: str = session.save()
        return saved

    def set_premium(self, account: Account, premium: bool = True) -> None:
        account.premium = premium

    def add_channel(self, title: str, *, username: str | None = None) -> Channel:
        channel = Channel(next(self._entity_ids), random_long(), title, username)
        self._channels[channel.channel_id] = channel
        return channel

    def create_group(self, title: str, members: Iterable[Account]) -> Group:
        group = Group(next(self._entity_ids) % 1_000_000_000, title, list(members))
        self._groups[group.chat_id] = group
        return group

    @staticmethod
    def private_chat(first: Account, second: Account) -> PrivateChat:
        return PrivateChat(frozenset((first.user_id, second.user_id)))

    def find_username(self, username: str) -> Account | Channel | None:
        wanted = username.lower()
        for account in self._accounts.values():
            if account.username and account.username.lower() == wanted:
                return account
        for channel in self._channels.values():
            if channel.username and channel.username.lower() == wanted:
                return channel
        return None

    def account_by_id(self, user_id: int) -> Account | None:
        return self._accounts_by_id.get(user_id)

    def channel_by_id(self, channel_id: int) -> Channel | None:
        return self._channels.get(channel_id)

    def group_by_id(self, chat_id: int) -> Group | None:
        return self._groups.get(chat_id)

    def members(self, chat: Chat) -> list[Account]:
        return render.chat_members(chat, self._accounts_by_id)

    # --- messages: what tests read --------------------------------------------------------------

    def messages(
        self, first: Account | Group, second: Account | None = None, *, include_deleted: bool = False
    ) -> list[MessageRecord]:
        """Messages of a chat, oldest first: `messages(a, b)` private, `messages(a)` Saved Messages,
        `messages(group)`."""
        chat = first if isinstance(first, Group) else self.private_chat(first, second or first)
        return [m for m in self._chat_messages.get(chat, []) if include_deleted or not m.deleted]

    def all_messages(self) -> list[MessageRecord]:
        return list(self._messages.values())

    def message(self, message_id: int) -> MessageRecord:
        return self._messages[message_id]

    def stored_media(self, media_id: int) -> StoredMedia | None:
        return self._media.get(media_id)

    def stories(self, owner: Owner) -> list[StoryRecord]:
        return list(self._stories.get(self._owner_id(owner), []))

    def connections(self, account: Account) -> list[Connection]:
        return list(self._connections.get(account.user_id, ()))

    async def wait_until(self, condition: Callable[[], T | None]) -> T:
        """Wait (on trio events, no polling) until `condition()` returns something other than None."""
        while True:
            result = condition()
            if result is not None:
                return result
            await self._changed.wait()

    async def wait_for_message(self, predicate: Callable[[MessageRecord], bool]) -> MessageRecord:
        """The first message, existing or future, that matches `predicate` (edits are re-checked)."""

        def find() -> MessageRecord | None:
            return next((m for m in self._messages.values() if not m.deleted and predicate(m)), None)

        return await self.wait_until(find)

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- messages: acting as a user from the test side -----------------------------------------

    def send_message(
        self, sender: Account, to: Account | Group, text: str, *, reply_to: int | None = None,
        forwarded_from: Account | None = None,
    ) -> MessageRecord:
        """Post a message as `sender` from "another device": every connection of every member,
        including the sender's own, gets it as a live update. `forwarded_from` makes it a forward of that
        account's words (a `fwd_from` header), as Telegram's forward button does."""
        chat = to if isinstance(to, Group) else self.private_chat(sender, to)
        content = MessageContent(text, reply_to=reply_to, forwarded_from=forwarded_from)
        [record] = self.post_messages(sender, chat, [content], origin=None)[0]
        return record

    # --- fault injection ------------------------------------------------------------------------

    def inject_flood_wait(self, method: str | type, seconds: int, *, count: int = 1, premium: bool = False) -> None:
        """The next `count` calls of `method` ('messages.sendMessage') fail with FLOOD_WAIT_<seconds>
        (FLOOD_PREMIUM_WAIT_<seconds> with premium=True)."""
        self.faults.inject_flood_wait(method, seconds, count=count, premium=premium)

    def lose_answers(self, method: str | type, *, count: int = 1, after: int = 0) -> None:
        """After `after` more calls of `method` answered as usual, the next `count` are carried out but the
        connection drops before the answer leaves, as when a link dies just after Telegram got a request: the
        client knows nothing of the result."""
        self.faults.lose_answers(method, count, after=after)

    def refuse_uploaded_media(self, kind: Literal["photo", "video"], error: str, *, count: int = 1) -> None:
        """The next `count` newly uploaded photos (InputMediaUploadedPhoto) or videos (an uploaded document with
        video attributes, not forced to be a file) are refused with `error`, as Telegram refuses a picture it
        cannot process (IMAGE_PROCESS_FAILED, PHOTO_INVALID_DIMENSIONS) or a video it cannot read. The upload
        itself stays usable, e.g. as a plain document."""
        self.faults.refuse_media(kind, error, count=count)

    def drop_connections_after(self, *, requests: int | None = None, bytes: int | None = None) -> None:
        """Cut the connection that receives request number `requests + 1` (or crosses `bytes` more
        received bytes), without answering. One-shot."""
        self.faults.drop_after(requests=requests, bytes=bytes)

    def drop_connections(self, account: Account | None = None) -> None:
        for user_id, connections in self._connections.items():
            if account is None or account.user_id == user_id:
                for connection in list(connections):
                    connection.close()

    def set_rpc_delay(self, seconds: float) -> None:
        """Delay every RPC answer, like a long round trip (requests in flight overlap)."""
        self.faults.rpc_delay = seconds

    def set_bandwidth(
        self, bytes_per_second: float | None, *, downstream_bytes_per_second: float | None | bool = True
    ) -> None:
        """Limit the link shared by all connections; downstream defaults to the same rate."""
        self.faults.upstream.bytes_per_second = bytes_per_second
        self.faults.downstream.bytes_per_second = (
            bytes_per_second if downstream_bytes_per_second is True else downstream_bytes_per_second or None
        )

    def withhold_updates(self, account: Account, count: int = 1) -> None:
        """Do not push the next `count` live updates to the account (they stay in getDifference):
        the client sees a pts gap, as when Telegram loses an update."""
        self._withheld_updates[account.user_id] = self._withheld_updates.get(account.user_id, 0) + count

    def expire_file_references(self) -> None:
        """Give every stored photo/document a new file_reference; old ones get FILE_REFERENCE_EXPIRED."""
        for media in self._media.values():
            media.file_reference = os.urandom(12)

    # --- media and stories ----------------------------------------------------------------------

    def store_media(
        self,
        kind: MediaKind,
        file: StoredFile,
        *,
        mime_type: str,
        attributes: Iterable[TLObject] = (),
        thumbnail: StoredFile | None = None,
        spoiler: bool = False,
        nosound_video: bool = False,
        force_file: bool = False,
    ) -> StoredMedia:
        width, height = _sniff_image_size(file.data) if kind == "photo" else (0, 0)
        media = StoredMedia(
            kind=kind,
            media_id=random_long() & (2**63 - 1),
            access_hash=random_long(),
            file_reference=os.urandom(12),
            file=file,
            mime_type=mime_type,
            attributes=tuple(attributes),
            thumbnail=thumbnail,
            spoiler=spoiler,
            nosound_video=nosound_video,
            force_file=force_file,
            width=width,
            height=height,
        )
        self._media[media.media_id] = media
        return media

    def post_story(
        self,
        owner: Owner,
        data: bytes,
        *,
        kind: MediaKind = "photo",
        date: datetime.datetime | None = None,
        caption: str = "",
        duration: float = 5.0,
        width: int = 720,
        height: int = 1280,
        mime_type: str | None = None,
        pinned: bool = False,
    ) -> StoryRecord:
        """Publish a story (photo or video) for an account or channel, as if posted from an app."""
        if kind not in ("photo", "video"):
            raise ValueError("stories are photos or videos")
        file = StoredFile(
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data).hexdigest(),
            name="story.jpg" if kind == "photo" else "story.mp4",
            data=data,
        )
        attributes: list[TLObject] = []
        if kind == "video":
            attributes.append(
                types.DocumentAttributeVideo(duration=duration, w=width, h=height, supports_streaming=True)
            )
        media = self.store_media(
            kind, file, mime_type=mime_type or ("image/jpeg" if kind == "photo" else "video/mp4"),
            attributes=attributes,
        )
        if kind == "photo" and not media.width:
            media.width, media.height = width, height
        posted = date or now_utc()
        story = StoryRecord(
            id=next(self._story_ids),
            owner=owner,
            media=media,
            date=posted,
            expire_date=posted + STORY_LIFETIME,
            caption=caption,
            pinned=pinned,
        )
        self._stories.setdefault(self._owner_id(owner), []).append(story)
        self.notify()
        return story

    @staticmethod
    def _owner_id(owner: Owner) -> int:
        return owner.channel_id if isinstance(owner, Channel) else owner.user_id

    def active_stories(self, owner: Owner) -> list[StoryRecord]:
        now = now_utc()
        return [s for s in self._stories.get(self._owner_id(owner), []) if s.expire_date > now]

    # --- the update machinery (used by the API handlers) ----------------------------------------

    def box(self, account: Account) -> UpdateBox:
        return self._boxes[account.user_id]

    def updates_for(self, viewer: Account, updates: list[TLObject], chats: Iterable[Chat] = ()) -> types.Updates:
        """Wrap updates with every user and chat a client needs to resolve them (seq 0: pts-only)."""
        users = {viewer.user_id: viewer}
        tl_chats: list[TLObject] = []
        for chat in chats:
            for member in self.members(chat):
                users[member.user_id] = member
            if isinstance(chat, Group):
                tl_chats.append(render.group(chat))
        return types.Updates(
            updates=updates,
            users=[render.user(account, viewer) for account in users.values()],
            chats=tl_chats,
            date=now_utc(),
            seq=0,
        )

    def push(self, account: Account, updates: types.Updates, *, origin: Connection | None) -> None:
        withheld = self._withheld_updates.get(account.user_id, 0)
        if withheld:
            self._withheld_updates[account.user_id] = withheld - 1
            return
        for connection in list(self._connections.get(account.user_id, ())):
            if connection is not origin and connection.receives_updates:
                connection.push_updates(updates)

    def fan_out(
        self,
        chat: Chat,
        build: Callable[[Account, UpdateBox], list[TLObject]],
        *,
        origin: Connection | None,
        accounts: Iterable[Account] | None = None,
    ) -> dict[int, types.Updates]:
        """Build each member's updates (advancing its pts), push them, and return them per user id."""
        built: dict[int, types.Updates] = {}
        for member in accounts if accounts is not None else self.members(chat):
            updates = build(member, self.box(member))
            if not updates:
                continue
            envelope = self.updates_for(member, updates, [chat])
            built[member.user_id] = envelope
            self.push(member, envelope, origin=origin)
        self.notify()
        return built

    def post_messages(
        self,
        sender: Account,
        chat: Chat,
        contents: list[MessageContent],
        *,
        origin: Connection | None,
    ) -> tuple[list[MessageRecord], types.Updates]:
        """Store messages (an album when several) and deliver them; returns the sender's Updates."""
        if isinstance(chat, Group) and sender not in chat.members:
            raise bad_request("CHAT_WRITE_FORBIDDEN")
        for content in contents:
            if content.random_id is not None and (sender.user_id, content.random_id) in self._random_ids:
                raise RpcFailure(500, "RANDOM_ID_DUPLICATE")
        date = now_utc()
        records = []
        for content in contents:
            reply_to = content.reply_to
            # Telegram drops a reply header that points nowhere rather than failing the send.
            if reply_to is not None and not self._visible(self._messages.get(reply_to), chat, sender):
                reply_to = None
            record = MessageRecord(
                id=next(self._ids),
                chat=chat,
                sender=sender,
                date=date,
                text=content.text,
                entities=content.entities,
                media=content.media,
                reply_to=reply_to,
                grouped_id=content.grouped_id,
                random_id=content.random_id,
                forwarded_from=content.forwarded_from,
            )
            if record.random_id is not None:
                self._random_ids.add((sender.user_id, record.random_id))
            self._messages[record.id] = record
            self._chat_messages.setdefault(chat, []).append(record)
            records.append(record)

        def build(member: Account, box: UpdateBox) -> list[TLObject]:
            updates: list[TLObject] = []
            if member is sender:
                updates += [
                    types.UpdateMessageID(id=r.id, random_id=r.random_id) for r in records if r.random_id is not None
                ]
            updates += [box.record(types.UpdateNewMessage, message=render.message(r, member)) for r in records]
            return updates

        built = self.fan_out(chat, build, origin=origin)
        return records, built[sender.user_id]

    def _visible(self, record: MessageRecord | None, chat: Chat | None, viewer: Account) -> bool:
        if record is None or record.deleted or viewer.user_id in record.deleted_for:
            return False
        if chat is not None and record.chat != chat:
            return False
        return viewer in self.members(record.chat)

    def visible_message(self, message_id: int, viewer: Account, chat: Chat | None = None) -> MessageRecord | None:
        record = self._messages.get(message_id)
        return record if record is not None and self._visible(record, chat, viewer) else None

    def chat_history(self, chat: Chat, viewer: Account) -> list[MessageRecord]:
        return [m for m in self._chat_messages.get(chat, []) if self._visible(m, None, viewer)]

    def chats_of(self, viewer: Account) -> list[Chat]:
        return [chat for chat in self._chat_messages if viewer in self.members(chat)]

