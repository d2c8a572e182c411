"""Server records → the TL objects a given viewer receives."""

from __future__ import annotations

from telethon.tl import types
from telethon.tl.tlobject import TLObject

from ._state import Account, Channel, Chat, Group, MessageRecord, PrivateChat, StoredMedia, StoryRecord

DC_ID = 2


def user(account: Account, viewer: Account) -> types.User:
    is_self = account is viewer
    return types.User(
        id=account.user_id,
        is_self=is_self,
        access_hash=account.access_hash,
        first_name=account.first_name,
        username=account.username,
        phone=account.phone if is_self else None,
        premium=account.premium,
        status=types.UserStatusRecently(),
    )


def group(chat: Group) -> types.Chat:
    return types.Chat(
        id=chat.chat_id,
        title=chat.title,
        photo=types.ChatPhotoEmpty(),
        participants_count=len(chat.members),
        date=chat.date,
        version=1,
    )


def channel(chan: Channel) -> types.Channel:
    return types.Channel(
        id=chan.channel_id,
        title=chan.title,
        photo=types.ChatPhotoEmpty(),
        date=None,
        broadcast=True,
        access_hash=chan.access_hash,
        username=chan.username,
    )


def peer(chat: Chat, viewer: Account) -> types.PeerUser | types.PeerChat:
    if isinstance(chat, Group):
        return types.PeerChat(chat.chat_id)
    others = chat.user_ids - {viewer.user_id}
    return types.PeerUser(next(iter(others)) if others else viewer.user_id)


def owner_peer(owner: Account | Channel) -> types.PeerUser | types.PeerChannel:
    if isinstance(owner, Channel):
        return types.PeerChannel(owner.channel_id)
    return types.PeerUser(owner.user_id)


def document(media: StoredMedia) -> types.Document:
    thumbs: list[TLObject] | None = None
    if media.thumbnail is not None:
        thumbs = [types.PhotoSize(type="m", w=320, h=320, size=media.thumbnail.size)]
    return types.Document(
        id=media.media_id,
        access_hash=media.access_hash,
        file_reference=media.file_reference,
        date=media.date,
        mime_type=media.mime_type,
        size=media.file.size,
        dc_id=DC_ID,
        attributes=list(media.attributes),
        thumbs=thumbs,
    )


def photo(media: StoredMedia) -> types.Photo:
    return types.Photo(
        id=media.media_id,
        access_hash=media.access_hash,
        file_reference=media.file_reference,
        date=media.date,
        sizes=[types.PhotoSize(type="y", w=media.width or 1280, h=media.height or 1280, size=media.file.size)],
        dc_id=DC_ID,
    )


def message_media(media: StoredMedia) -> types.MessageMediaPhoto | types.MessageMediaDocument:
    if media.kind == "photo":
        return types.MessageMediaPhoto(photo=photo(media), spoiler=media.spoiler or None)
    return types.MessageMediaDocument(
        document=document(media),
        video=media.kind in ("video", "round") or None,
        round=media.kind == "round" or None,
        voice=media.kind == "voice" or None,
        spoiler=media.spoiler or None,
    )


def message(record: MessageRecord, viewer: Account) -> types.Message:
    return types.Message(
        id=record.id,
        peer_id=peer(record.chat, viewer),
        date=record.date,
        message=record.text,
        out=record.sender is viewer,
        from_id=types.PeerUser(record.sender.user_id),
        reply_to=types.MessageReplyHeader(reply_to_msg_id=record.reply_to) if record.reply_to else None,
        media=None if record.media is None else message_media(record.media),
        entities=list(record.entities) or None,
        edit_date=record.edit_date,
        grouped_id=record.grouped_id,
        fwd_from=types.MessageFwdHeader(date=record.date, from_id=types.PeerUser(record.forwarded_from.user_id))
        if record.forwarded_from is not None else None,
    )


def story(record: StoryRecord, viewer: Account) -> types.StoryItem:
    return types.StoryItem(
        id=record.id,
        date=record.date,
        expire_date=record.expire_date,
        media=message_media(record.media),
        pinned=record.pinned or None,
        public=True,
        out=record.owner is viewer or None,
        caption=record.caption or None,
    )


def chat_members(chat: Chat, accounts_by_id: dict[int, Account]) -> list[Account]:
    if isinstance(chat, PrivateChat):
        return [accounts_by_id[user_id] for user_id in sorted(chat.user_ids)]
    return list(chat.members)
