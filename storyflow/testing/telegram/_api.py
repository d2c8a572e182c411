"""The Telegram API methods the loopback server answers, one handler per TL request type.

Handlers are plain functions of (connection, request) that return a TL result or raise RpcFailure with
Telegram's error name. Anything not listed answers INPUT_METHOD_INVALID and is remembered in
`Api.unhandled_methods`, so a test can see what a client wanted.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject, TLRequest

from . import _render as render
from ._errors import RpcFailure, bad_request
from ._state import (
    Account,
    Channel,
    Chat,
    Group,
    MediaKind,
    MessageContent,
    MessageRecord,
    StoredMedia,
    now_utc,
    random_long,
)
from ._uploads import PARTS_LIMIT_DEFAULT, PARTS_LIMIT_PREMIUM

if TYPE_CHECKING:
    from ._connection import Connection
    from ._server import LoopbackTelegram

log = logging.getLogger(__name__)

MESSAGE_LENGTH_MAX = 4096
CAPTION_LENGTH_MAX = 1024
CAPTION_LENGTH_MAX_PREMIUM = 2048
ALBUM_SIZE_MAX = 10
_ALBUM_FAMILIES: dict[MediaKind, str] = {"photo": "visual", "video": "visual", "document": "document", "audio": "audio"}
_MEGABYTE = 1024 * 1024

Handler = Callable[["Connection", Any], object]

# What a key that is not signed in may call (Telegram answers AUTH_KEY_UNREGISTERED to the rest);
# account.getPassword only between a right login code and the 2FA check.
_WITHOUT_SIGN_IN = frozenset({"help.getConfig", "help.getNearestDc", "help.getAppConfig", "account.getPassword"})


class Api:
    def __init__(self, server: LoopbackTelegram) -> None:
        self.server = server
        self.unhandled_methods: list[str] = []
        self.calls: dict[str, int] = {}
        m, u, up, st, h = functions.messages, functions.users, functions.upload, functions.stories, functions.help
        self._handlers: dict[type[TLRequest], Handler] = {
            h.GetConfigRequest: self.get_config,
            h.GetAppConfigRequest: self.get_app_config,
            h.GetNearestDcRequest: self.get_nearest_dc,
            u.GetUsersRequest: self.get_users,
            u.GetFullUserRequest: self.get_full_user,
            functions.contacts.ResolveUsernameRequest: self.resolve_username,
            functions.contacts.GetContactsRequest: self.get_contacts,
            functions.updates.GetStateRequest: self.get_state,
            functions.updates.GetDifferenceRequest: self.get_difference,
            functions.account.UpdateStatusRequest: self.acknowledge,
            m.SetTypingRequest: self.acknowledge,
            m.SendMessageRequest: self.send_message,
            m.SendMediaRequest: self.send_media,
            m.SendMultiMediaRequest: self.send_multi_media,
            m.UploadMediaRequest: self.upload_media,
            m.EditMessageRequest: self.edit_message,
            m.DeleteMessagesRequest: self.delete_messages,
            m.GetMessagesRequest: self.get_messages,
            m.GetHistoryRequest: self.get_history,
            m.ReadHistoryRequest: self.read_history,
            m.GetDialogsRequest: self.get_dialogs,
            m.GetChatsRequest: self.get_chats,
            functions.channels.GetChannelsRequest: self.get_channels,
            up.SaveFilePartRequest: self.save_file_part,
            up.SaveBigFilePartRequest: self.save_big_file_part,
            up.GetFileRequest: self.get_file,
            st.GetPeerStoriesRequest: self.get_peer_stories,
            st.GetStoriesByIDRequest: self.get_stories_by_id,
            st.GetPinnedStoriesRequest: self.get_pinned_stories,
            **server.logins.handlers(),
        }

    def call(self, connection: Connection, request: TLRequest, method: str) -> object:
        self.calls[method] = self.calls.get(method, 0) + 1
        if not connection.authorized and not (method in _WITHOUT_SIGN_IN or method.startswith("auth.")):
            raise RpcFailure(401, "AUTH_KEY_UNREGISTERED")
        handler = self._handlers.get(type(request))
        if handler is None:
            log.warning("loopback Telegram does not implement %s", method)
            self.unhandled_methods.append(method)
            raise bad_request("INPUT_METHOD_INVALID")
        return handler(connection, request)

    # --- peers ----------------------------------------------------------------------------------

    def _user(self, me: Account, input_user: TLObject) -> Account:
        if isinstance(input_user, types.InputUserSelf | types.InputPeerSelf):
            return me
        if isinstance(input_user, types.InputUser | types.InputPeerUser):
            account = self.server.account_by_id(input_user.user_id)
            if account is not None and account.access_hash == input_user.access_hash:
                return account
        raise bad_request("USER_ID_INVALID")

    def _peer(self, me: Account, input_peer: TLObject) -> Chat | Channel:
        if isinstance(input_peer, types.InputPeerSelf):
            return self.server.private_chat(me, me)
        if isinstance(input_peer, types.InputPeerUser):
            account = self.server.account_by_id(input_peer.user_id)
            if account is not None and account.access_hash == input_peer.access_hash:
                return self.server.private_chat(me, account)
        elif isinstance(input_peer, types.InputPeerChat):
            group = self.server.group_by_id(input_peer.chat_id)
            if group is not None and me in group.members:
                return group
        elif isinstance(input_peer, types.InputPeerChannel):
            channel = self.server.channel_by_id(input_peer.channel_id)
            if channel is not None and channel.access_hash == input_peer.access_hash:
                return channel
            raise bad_request("CHANNEL_INVALID")
        raise bad_request("PEER_ID_INVALID")

    def _chat(self, me: Account, input_peer: TLObject) -> Chat:
        peer = self._peer(me, input_peer)
        if isinstance(peer, Channel):
            raise bad_request("CHAT_WRITE_FORBIDDEN")
        return peer

    def _story_owner(self, me: Account, input_peer: TLObject) -> Account | Channel:
        peer = self._peer(me, input_peer)
        if isinstance(peer, Group):
            raise bad_request("PEER_ID_INVALID")
        if isinstance(peer, Channel):
            return peer
        others = [m for m in self.server.members(peer) if m is not me]
        return others[0] if others else me

    def _users_and_chats(
        self, me: Account, records: list[MessageRecord]
    ) -> tuple[list[TLObject], list[TLObject]]:
        users = {me.user_id: me}
        chats: dict[int, TLObject] = {}
        for record in records:
            for member in self.server.members(record.chat):
                users[member.user_id] = member
            if isinstance(record.chat, Group):
                chats[record.chat.chat_id] = render.group(record.chat)
        return [render.user(a, me) for a in users.values()], list(chats.values())

    # --- help, users, contacts ------------------------------------------------------------------

    def get_config(self, connection: Connection, request: Any) -> types.Config:
        now = now_utc()
        return types.Config(
            date=now, expires=now + datetime.timedelta(hours=1), test_mode=False, this_dc=render.DC_ID,
            dc_options=[types.DcOption(id=render.DC_ID, ip_address=self.server.host, port=self.server.port)],
            dc_txt_domain_name="loopback.invalid", chat_size_max=200, megagroup_size_max=200000,
            forwarded_count_max=100, online_update_period_ms=210000, offline_blur_timeout_ms=5000,
            offline_idle_timeout_ms=30000, online_cloud_timeout_ms=300000, notify_cloud_delay_ms=30000,
            notify_default_delay_ms=1500, push_chat_period_ms=60000, push_chat_limit=2,
            edit_time_limit=172800, revoke_time_limit=2147483647, revoke_pm_time_limit=2147483647,
            rating_e_decay=2419200, stickers_recent_limit=200, channels_read_media_period=604800,
            call_receive_timeout_ms=20000, call_ring_timeout_ms=90000, call_connect_timeout_ms=30000,
            call_packet_timeout_ms=10000, me_url_prefix="https://t.me/", caption_length_max=CAPTION_LENGTH_MAX,
            message_length_max=MESSAGE_LENGTH_MAX, webfile_dc_id=render.DC_ID,
        )

    def get_app_config(self, connection: Connection, request: Any) -> types.help.AppConfig:
        def number(key: str, value: int) -> types.JsonObjectValue:
            return types.JsonObjectValue(key=key, value=types.JsonNumber(value=value))

        return types.help.AppConfig(
            hash=1,
            config=types.JsonObject(
                value=[
                    number("upload_max_fileparts_default", PARTS_LIMIT_DEFAULT),
                    number("upload_max_fileparts_premium", PARTS_LIMIT_PREMIUM),
                    number("caption_length_limit_default", CAPTION_LENGTH_MAX),
                    number("caption_length_limit_premium", CAPTION_LENGTH_MAX_PREMIUM),
                ]
            ),
        )

    def get_nearest_dc(self, connection: Connection, request: Any) -> types.NearestDc:
        return types.NearestDc(country="XX", this_dc=render.DC_ID, nearest_dc=render.DC_ID)

    def acknowledge(self, connection: Connection, request: Any) -> bool:
        return True

    def get_users(self, connection: Connection, request: Any) -> list[TLObject]:
        me = connection.account
        found = []
        for input_user in request.id:
            try:
                found.append(render.user(self._user(me, input_user), me))
            except RpcFailure:
                continue
        return found

    def get_full_user(self, connection: Connection, request: Any) -> types.users.UserFull:
        me = connection.account
        account = self._user(me, request.id)
        stories = self.server.active_stories(account)
        full = types.UserFull(
            id=account.user_id,
            settings=types.PeerSettings(),
            notify_settings=types.PeerNotifySettings(),
            common_chats_count=0,
            stories=types.PeerStories(
                peer=types.PeerUser(account.user_id), stories=[render.story(s, me) for s in stories]
            )
            if stories
            else None,
        )
        return types.users.UserFull(full_user=full, chats=[], users=[render.user(account, me)])

    def resolve_username(self, connection: Connection, request: Any) -> types.contacts.ResolvedPeer:
        me = connection.account
        found = self.server.find_username(request.username)
        if found is None:
            raise bad_request("USERNAME_NOT_OCCUPIED")
        if isinstance(found, Channel):
            return types.contacts.ResolvedPeer(
                peer=types.PeerChannel(found.channel_id), chats=[render.channel(found)], users=[]
            )
        return types.contacts.ResolvedPeer(
            peer=types.PeerUser(found.user_id), chats=[], users=[render.user(found, me)]
        )

    def get_contacts(self, connection: Connection, request: Any) -> types.contacts.Contacts:
        return types.contacts.Contacts(contacts=[], saved_count=0, users=[])

    def get_chats(self, connection: Connection, request: Any) -> types.messages.Chats:
        me = connection.account
        groups = [self.server.group_by_id(chat_id) for chat_id in request.id]
        return types.messages.Chats(chats=[render.group(g) for g in groups if g is not None and me in g.members])

    def get_channels(self, connection: Connection, request: Any) -> types.messages.Chats:
        chats = []
        for input_channel in request.id:
            channel = self.server.channel_by_id(getattr(input_channel, "channel_id", 0))
            if channel is None or channel.access_hash != getattr(input_channel, "access_hash", None):
                raise bad_request("CHANNEL_INVALID")
            chats.append(render.channel(channel))
        return types.messages.Chats(chats=chats)

    # --- updates --------------------------------------------------------------------------------

    def get_state(self, connection: Connection, request: Any) -> types.updates.State:
        box = self.server.box(connection.account)
        return types.updates.State(pts=box.pts, qts=0, date=now_utc(), seq=0, unread_count=0)

    def get_difference(self, connection: Connection, request: Any) -> TLObject:
        me = connection.account
        box = self.server.box(me)
        if request.pts >= box.pts:
            return types.updates.DifferenceEmpty(date=now_utc(), seq=0)
        pending = box.since(request.pts)
        if pending is None:
            return types.updates.DifferenceTooLong(pts=box.pts)
        new_messages: list[TLObject] = []
        other_updates: list[TLObject] = []
        for update in pending:
            if isinstance(update, types.UpdateNewMessage):
                new_messages.append(update.message)
            else:
                other_updates.append(update)
        chats = [render.group(g) for g in self.server.chats_of(me) if isinstance(g, Group)]
        return types.updates.Difference(
            new_messages=new_messages,
            new_encrypted_messages=[],
            other_updates=other_updates,
            chats=chats,
            users=[render.user(a, me) for a in self.server.accounts],
            state=types.updates.State(pts=box.pts, qts=0, date=now_utc(), seq=0, unread_count=0),
        )

    # --- media ----------------------------------------------------------------------------------

    def _check_reference(self, media: StoredMedia | None, access_hash: int, file_reference: bytes) -> StoredMedia:
        if media is None or media.access_hash != access_hash:
            raise bad_request("MEDIA_INVALID")
        if file_reference != media.file_reference:
            raise bad_request("FILE_REFERENCE_EXPIRED")
        return media

    def _media(self, connection: Connection, input_media: TLObject) -> StoredMedia:
        """InputMedia → a stored photo/document, assembling uploaded files on first use."""
        server = self.server
        key_id = connection.key_id
        if isinstance(input_media, types.InputMediaUploadedPhoto):
            upload = server.uploads.finish((key_id, input_media.file.id), input_media.file)
            if upload.streamed:
                raise bad_request("FILE_PARTS_INVALID")  # Telegram wants photos with a known size
            server.faults.check_media("photo")
            return server.store_media("photo", upload.file, mime_type="image/jpeg", spoiler=bool(input_media.spoiler))
        if isinstance(input_media, types.InputMediaUploadedDocument):
            upload = server.uploads.finish((key_id, input_media.file.id), input_media.file)
            thumbnail = None
            if input_media.thumb is not None:
                thumbnail = server.uploads.finish((key_id, input_media.thumb.id), input_media.thumb).file
            attributes = list(input_media.attributes)
            kind = _document_kind(attributes, bool(input_media.force_file))
            if kind == "video":
                server.faults.check_media("video")
            if upload.file.name and not any(isinstance(a, types.DocumentAttributeFilename) for a in attributes):
                attributes.append(types.DocumentAttributeFilename(file_name=upload.file.name))
            return server.store_media(
                kind,
                upload.file,
                mime_type=input_media.mime_type,
                attributes=attributes,
                thumbnail=thumbnail,
                spoiler=bool(input_media.spoiler),
                nosound_video=bool(input_media.nosound_video),
                force_file=bool(input_media.force_file),
            )
        if isinstance(input_media, types.InputMediaPhoto) and isinstance(input_media.id, types.InputPhoto):
            ref = input_media.id
            media = self._check_reference(server.stored_media(ref.id), ref.access_hash, ref.file_reference)
            if media.kind != "photo":
                raise bad_request("MEDIA_INVALID")
            return media
        if isinstance(input_media, types.InputMediaDocument) and isinstance(input_media.id, types.InputDocument):
            ref = input_media.id
            media = self._check_reference(server.stored_media(ref.id), ref.access_hash, ref.file_reference)
            if media.kind == "photo":
                raise bad_request("MEDIA_INVALID")
            return media
        if isinstance(input_media, types.InputMediaEmpty | types.InputMediaPhoto | types.InputMediaDocument):
            raise bad_request("MEDIA_EMPTY")
        raise bad_request("MEDIA_INVALID")

    def _check_caption(self, me: Account, caption: str) -> None:
        limit = CAPTION_LENGTH_MAX_PREMIUM if me.premium else CAPTION_LENGTH_MAX
        if utf16_length(caption) > limit:
            raise bad_request("MEDIA_CAPTION_TOO_LONG")

    def upload_media(self, connection: Connection, request: Any) -> TLObject:
        self._chat(connection.account, request.peer)
        return render.message_media(self._media(connection, request.media))

    # --- messages -------------------------------------------------------------------------------

    def send_message(self, connection: Connection, request: Any) -> types.Updates:
        me = connection.account
        chat = self._chat(me, request.peer)
        if not request.message.strip():
            raise bad_request("MESSAGE_EMPTY")
        if utf16_length(request.message) > MESSAGE_LENGTH_MAX:
            raise bad_request("MESSAGE_TOO_LONG")
        content = MessageContent(
            request.message, tuple(request.entities or ()), random_id=request.random_id,
            reply_to=_reply_to(request.reply_to),
        )
        return self.server.post_messages(me, chat, [content], origin=connection)[1]

    def send_media(self, connection: Connection, request: Any) -> types.Updates:
        me = connection.account
        chat = self._chat(me, request.peer)
        self._check_caption(me, request.message)
        media = self._media(connection, request.media)
        content = MessageContent(
            request.message, tuple(request.entities or ()), media=media, random_id=request.random_id,
            reply_to=_reply_to(request.reply_to),
        )
        return self.server.post_messages(me, chat, [content], origin=connection)[1]

    def send_multi_media(self, connection: Connection, request: Any) -> types.Updates:
        me = connection.account
        chat = self._chat(me, request.peer)
        if len(request.multi_media) > ALBUM_SIZE_MAX:
            raise bad_request("MULTI_MEDIA_TOO_LONG")
        if not request.multi_media:
            raise bad_request("MEDIA_EMPTY")
        grouped_id = random_long() & (2**63 - 1)
        reply_to = _reply_to(request.reply_to)
        contents = []
        for single in request.multi_media:
            self._check_caption(me, single.message)
            contents.append(
                MessageContent(
                    single.message, tuple(single.entities or ()), media=self._media(connection, single.media),
                    reply_to=reply_to, grouped_id=grouped_id, random_id=single.random_id,
                )
            )
        # An album is photos and videos, or documents, or audio: never a mix, never voice notes or round videos.
        families = {_ALBUM_FAMILIES.get(content.media.kind) for content in contents if content.media is not None}
        if len(families) != 1 or None in families:
            raise bad_request("MEDIA_INVALID")
        return self.server.post_messages(me, chat, contents, origin=connection)[1]

    def edit_message(self, connection: Connection, request: Any) -> types.Updates:
        me = connection.account
        chat = self._chat(me, request.peer)
        record = self.server.visible_message(request.id, me, chat)
        if record is None:
            raise bad_request("MESSAGE_ID_INVALID")
        if record.sender is not me:
            raise bad_request("MESSAGE_AUTHOR_REQUIRED")
        text = record.text if request.message is None else request.message
        entities = tuple(request.entities or ()) if request.message is not None else record.entities
        media = None if request.media is None else self._media(connection, request.media)
        unchanged = text == record.text and [bytes(e) for e in entities] == [bytes(e) for e in record.entities]
        if unchanged and media is None:
            raise bad_request("MESSAGE_NOT_MODIFIED")
        if utf16_length(text) > (MESSAGE_LENGTH_MAX if record.media is None and media is None else CAPTION_LENGTH_MAX):
            raise bad_request("MESSAGE_TOO_LONG")
        record.text, record.entities, record.edit_date = text, entities, now_utc()
        if media is not None:
            record.media = media

        def build(member: Account, box: Any) -> list[TLObject]:
            return [box.record(types.UpdateEditMessage, message=render.message(record, member))]

        return self.server.fan_out(chat, build, origin=connection)[me.user_id]

    def delete_messages(self, connection: Connection, request: Any) -> types.messages.AffectedMessages:
        me = connection.account
        by_chat: dict[Chat, list[MessageRecord]] = {}
        for message_id in request.id:
            record = self.server.visible_message(message_id, me)
            if record is not None:
                by_chat.setdefault(record.chat, []).append(record)
        deleted = 0
        for chat, records in by_chat.items():
            ids = [r.id for r in records]
            for record in records:
                if request.revoke or isinstance(chat, Group):
                    record.deleted = True
                else:
                    record.deleted_for.add(me.user_id)
            everyone = bool(request.revoke) or isinstance(chat, Group)

            def build(member: Account, box: Any, ids: list[int] = ids) -> list[TLObject]:
                return [box.record(types.UpdateDeleteMessages, messages=ids, pts_count=len(ids))]

            self.server.fan_out(chat, build, origin=connection, accounts=None if everyone else [me])
            deleted += len(ids)
        box = self.server.box(me)
        return types.messages.AffectedMessages(pts=box.pts, pts_count=deleted)

    def _messages_result(
        self, me: Account, records: list[MessageRecord], extra: list[TLObject]
    ) -> types.messages.Messages:
        users, chats = self._users_and_chats(me, records)
        rendered: list[TLObject] = [render.message(r, me) for r in records]
        return types.messages.Messages(messages=rendered + list(extra), topics=[], chats=chats, users=users)

    def get_messages(self, connection: Connection, request: Any) -> types.messages.Messages:
        me = connection.account
        found: list[MessageRecord] = []
        missing: list[TLObject] = []
        for wanted in request.id:
            record = None
            if isinstance(wanted, types.InputMessageID):
                record = self.server.visible_message(wanted.id, me)
            elif isinstance(wanted, types.InputMessageReplyTo):
                replying = self.server.visible_message(wanted.id, me)
                if replying is not None and replying.reply_to is not None:
                    record = self.server.visible_message(replying.reply_to, me)
            if record is None:
                missing.append(types.MessageEmpty(id=getattr(wanted, "id", 0)))
            else:
                found.append(record)
        return self._messages_result(me, found, missing)

    def get_history(self, connection: Connection, request: Any) -> TLObject:
        me = connection.account
        chat = self._chat(me, request.peer)
        newest_first = list(reversed(self.server.chat_history(chat, me)))
        total = len(newest_first)
        if request.offset_id:
            newest_first = [m for m in newest_first if m.id < request.offset_id]
        # An unset offset_date arrives as 0, which Telethon reads as the epoch: no offset, as Telegram takes it.
        if request.offset_date and request.offset_date.timestamp() > 0:
            newest_first = [m for m in newest_first if m.date < request.offset_date]
        if request.max_id:
            newest_first = [m for m in newest_first if m.id < request.max_id]
        if request.min_id:
            newest_first = [m for m in newest_first if m.id > request.min_id]
        start = max(request.add_offset, 0)
        page = newest_first[start : start + max(request.limit, 0) if request.limit else start + 100]
        users, chats = self._users_and_chats(me, page)
        return types.messages.MessagesSlice(
            count=total, messages=[render.message(r, me) for r in page], topics=[], chats=chats, users=users
        )

    def read_history(self, connection: Connection, request: Any) -> types.messages.AffectedMessages:
        return types.messages.AffectedMessages(pts=self.server.box(connection.account).pts, pts_count=0)

    def get_dialogs(self, connection: Connection, request: Any) -> types.messages.Dialogs:
        me = connection.account
        if request.offset_id or request.offset_date:
            return types.messages.Dialogs(dialogs=[], messages=[], chats=[], users=[])
        tops = [history[-1] for chat in self.server.chats_of(me) if (history := self.server.chat_history(chat, me))]
        tops.sort(key=lambda record: record.id, reverse=True)
        dialogs = [
            types.Dialog(
                peer=render.peer(top.chat, me), top_message=top.id, read_inbox_max_id=top.id,
                read_outbox_max_id=top.id, unread_count=0, unread_mentions_count=0, unread_reactions_count=0,
                unread_poll_votes_count=0, notify_settings=types.PeerNotifySettings(),
            )
            for top in tops
        ]
        users, chats = self._users_and_chats(me, tops)
        return types.messages.Dialogs(
            dialogs=dialogs, messages=[render.message(t, me) for t in tops], chats=chats, users=users
        )

    # --- uploads and downloads ------------------------------------------------------------------

    def _parts_limit(self, connection: Connection) -> int:
        return PARTS_LIMIT_PREMIUM if connection.account.premium else PARTS_LIMIT_DEFAULT

    def save_file_part(self, connection: Connection, request: Any) -> bool:
        self.server.uploads.save_part(
            (connection.key_id, request.file_id), request.file_part, request.bytes,
            big=False, total_parts=None, parts_limit=self._parts_limit(connection),
        )
        self.server.notify()  # tests wait on upload progress too
        return True

    def save_big_file_part(self, connection: Connection, request: Any) -> bool:
        self.server.uploads.save_part(
            (connection.key_id, request.file_id), request.file_part, request.bytes,
            big=True, total_parts=request.file_total_parts, parts_limit=self._parts_limit(connection),
        )
        self.server.notify()
        return True

    def get_file(self, connection: Connection, request: Any) -> types.upload.File:
        offset, limit = request.offset, request.limit
        if request.precise:
            if offset % 1024 or limit % 1024 or not 0 < limit <= _MEGABYTE:
                raise bad_request("LIMIT_INVALID" if offset % 1024 == 0 else "OFFSET_INVALID")
        else:
            if offset % 4096 or offset < 0:
                raise bad_request("OFFSET_INVALID")
            crosses_megabyte = offset // _MEGABYTE != (offset + limit - 1) // _MEGABYTE
            if limit <= 0 or limit % 4096 or _MEGABYTE % limit or crosses_megabyte:
                raise bad_request("LIMIT_INVALID")
        location = request.location
        if not isinstance(location, types.InputDocumentFileLocation | types.InputPhotoFileLocation):
            raise bad_request("LOCATION_INVALID")
        media = self._check_reference(
            self.server.stored_media(location.id), location.access_hash, location.file_reference
        )
        stored = media.file
        if isinstance(location, types.InputDocumentFileLocation) and location.thumb_size:
            if media.thumbnail is None:
                raise bad_request("LOCATION_INVALID")
            stored = media.thumbnail
        if stored.data is None:
            # The server discarded these bytes (bounded memory); there is nothing to serve.
            raise bad_request("FILE_ID_INVALID")
        file_type: TLObject = types.storage.FileUnknown()
        if media.kind == "photo":
            file_type = types.storage.FileJpeg()
        elif media.mime_type == "video/mp4":
            file_type = types.storage.FileMp4()
        return types.upload.File(
            type=file_type, mtime=int(media.date.timestamp()), bytes=stored.data[offset : offset + limit]
        )

    # --- stories --------------------------------------------------------------------------------

    def _stories_envelope(self, me: Account, owner: Account | Channel) -> tuple[list[TLObject], list[TLObject]]:
        if isinstance(owner, Channel):
            return [render.channel(owner)], [render.user(me, me)]
        return [], [render.user(owner, me)] + ([render.user(me, me)] if owner is not me else [])

    def get_peer_stories(self, connection: Connection, request: Any) -> types.stories.PeerStories:
        me = connection.account
        owner = self._story_owner(me, request.peer)
        chats, users = self._stories_envelope(me, owner)
        stories = [render.story(s, me) for s in self.server.active_stories(owner)]
        return types.stories.PeerStories(
            stories=types.PeerStories(peer=render.owner_peer(owner), stories=stories, max_read_id=0),
            chats=chats, users=users,
        )

    def get_stories_by_id(self, connection: Connection, request: Any) -> types.stories.Stories:
        me = connection.account
        owner = self._story_owner(me, request.peer)
        by_id = {s.id: s for s in self.server.stories(owner)}
        items: list[TLObject] = [
            render.story(by_id[i], me) if i in by_id else types.StoryItemDeleted(id=i) for i in request.id
        ]
        chats, users = self._stories_envelope(me, owner)
        return types.stories.Stories(count=len(items), stories=items, chats=chats, users=users)

    def get_pinned_stories(self, connection: Connection, request: Any) -> types.stories.Stories:
        me = connection.account
        owner = self._story_owner(me, request.peer)
        pinned = [s for s in reversed(self.server.stories(owner)) if s.pinned]
        if request.offset_id:
            pinned = [s for s in pinned if s.id < request.offset_id]
        page = pinned[: request.limit or 100]
        chats, users = self._stories_envelope(me, owner)
        return types.stories.Stories(
            count=len(pinned), stories=[render.story(s, me) for s in page], chats=chats, users=users
        )


def utf16_length(text: str) -> int:
    """A text's length as Telegram counts it (and entity offsets): UTF-16 code units, so an emoji outside the
    Basic Multilingual Plane counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _reply_to(reply_to: TLObject | None) -> int | None:
    if isinstance(reply_to, types.InputReplyToMessage):
        return int(reply_to.reply_to_msg_id)
    return None


def _document_kind(attributes: list[TLObject], force_file: bool) -> MediaKind:
    if force_file:
        return "document"
    for attribute in attributes:
        if isinstance(attribute, types.DocumentAttributeVideo):
            return "round" if attribute.round_message else "video"
        if isinstance(attribute, types.DocumentAttributeAudio):
            return "voice" if attribute.voice else "audio"
    return "document"
