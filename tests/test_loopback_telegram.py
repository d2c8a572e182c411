"""The loopback Telegram, driven by plain Telethon clients over real MTProto on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from telethon import TelegramClient, errors, events, utils
from telethon.network import ConnectionTcpFull, MTProtoSender
from telethon.tl import functions, types
from trio_asyncio import aio_as_trio

from storyflow.testing.telegram import LoopbackTelegram, open_client, open_loopback_telegram

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


@pytest.fixture
async def server() -> AsyncIterator[LoopbackTelegram]:
    async with open_loopback_telegram() as running:
        yield running
        assert running.internal_errors == []


def call(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Telethon's asyncio coroutine method as a Trio one."""
    return aio_as_trio(method)  # type: ignore[no-any-return]


@asynccontextmanager
async def collect(client: TelegramClient, event: Any) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
    """Telethon events of one kind, delivered to the test through a Trio channel."""
    send, receive = trio.open_memory_channel[Any](100)

    async def handler(update: Any) -> None:
        send.send_nowait(update)

    client.add_event_handler(handler, event)
    try:
        yield receive
    finally:
        client.remove_event_handler(handler, event)


async def next_event(channel: trio.MemoryReceiveChannel[Any]) -> Any:
    with trio.fail_after(5):
        return await channel.receive()


async def test_connect_and_get_me(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as client:
        me = await call(client.get_me)()
        assert me.id == server.owner.user_id
        assert me.username == "storyflow_owner"
        assert me.is_self
    assert server.api.unhandled_methods == []


async def test_unknown_auth_key_gets_404(server: LoopbackTelegram) -> None:
    refused = False
    try:
        async with open_client(server, server.owner, session=server.unknown_session_string()):
            pytest.fail("connected with an unknown auth key")
    except* errors.AuthKeyNotFound:
        refused = True
    assert refused


async def test_two_accounts_message_each_other_with_live_updates(server: LoopbackTelegram) -> None:
    async with (
        open_client(server, server.owner) as owner,
        open_client(server, server.friend) as friend,
        collect(friend, events.NewMessage) as to_friend,
        collect(owner, events.NewMessage) as to_owner,
    ):
        await call(friend.get_me)()
        sent = await call(owner.send_message)("storyflow_friend", "hello friend")
        received = await next_event(to_friend)
        assert received.message.message == "hello friend"
        assert received.message.id == sent.id
        assert received.sender_id == server.owner.user_id
        assert not received.message.out

        await call(friend.send_message)(server.owner.user_id, "hi owner", reply_to=received.message.id)
        back = await next_event(to_owner)
        assert back.message.message == "hi owner"
        assert back.message.reply_to_msg_id == sent.id

    records = server.messages(server.owner, server.friend)
    assert [(r.sender.name, r.text, r.reply_to) for r in records] == [
        ("owner", "hello friend", None),
        ("friend", "hi owner", sent.id),
    ]


async def test_owner_messages_reach_owner_other_connections_as_outgoing(server: LoopbackTelegram) -> None:
    async with (
        open_client(server, server.owner) as userbot,
        open_client(server, server.owner, new_device=True) as phone,
        collect(userbot, events.NewMessage(outgoing=True)) as commands,
    ):
        await call(userbot.get_me)()
        await call(phone.send_message)("me", ".dl https://example.invalid/video")
        command = await next_event(commands)
        assert command.message.out
        assert command.message.message == ".dl https://example.invalid/video"
        assert command.chat_id == server.owner.user_id  # Saved Messages

        server.send_message(server.owner, server.friend, "typed on another device")
        typed = await next_event(commands)
        assert typed.message.message == "typed on another device"
        assert typed.chat_id == server.friend.user_id


async def test_edit_and_delete_push_updates(server: LoopbackTelegram) -> None:
    async with (
        open_client(server, server.owner) as owner,
        open_client(server, server.friend) as friend,
        collect(friend, events.MessageEdited) as edits,
        collect(friend, events.MessageDeleted) as deletes,
    ):
        await call(friend.get_me)()
        status = await call(owner.send_message)("storyflow_friend", "downloading…")
        await call(owner.edit_message)("storyflow_friend", status.id, "uploading 50%")
        edited = await next_event(edits)
        assert edited.message.message == "uploading 50%"
        assert server.message(status.id).edit_date is not None

        with pytest.raises(errors.MessageNotModifiedError):
            await call(owner.edit_message)("storyflow_friend", status.id, "uploading 50%")

        before = await call(owner.get_messages)("storyflow_friend", limit=10)
        assert [(m.id, m.message, m.out) for m in before] == [(status.id, "uploading 50%", True)]
        await call(owner.delete_messages)("storyflow_friend", [status.id])
        deleted = await next_event(deletes)
        assert deleted.deleted_ids == [status.id]
        assert server.message(status.id).deleted
        with pytest.raises(errors.MessageIdInvalidError):
            await call(owner.edit_message)("storyflow_friend", status.id, "done")

        history = await call(owner.get_messages)("storyflow_friend", limit=10)
        assert [m.id for m in history] == []


async def test_random_id_reuse_is_rejected(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner, request_retries=1) as owner:
        friend = await call(owner.get_input_entity)("storyflow_friend")
        request = functions.messages.SendMessageRequest(friend, "once", random_id=42)
        await call(owner)(request)
        with pytest.raises(errors.RandomIdDuplicateError):
            await call(owner)(functions.messages.SendMessageRequest(friend, "twice", random_id=42))
    assert [r.text for r in server.messages(server.owner, server.friend)] == ["once"]


async def test_send_photo_video_and_document_keep_attributes(server: LoopbackTelegram) -> None:
    video_bytes = os.urandom(300_000)
    async with open_client(server, server.owner) as owner:
        photo = io.BytesIO(PNG_1x1)
        photo.name = "pixel.png"
        await call(owner.send_file)("storyflow_friend", photo, caption="a photo")
        video = io.BytesIO(video_bytes)
        video.name = "clip.mp4"
        sent_video = await call(owner.send_file)(
            "storyflow_friend",
            video,
            caption="a video",
            thumb=io.BytesIO(PNG_1x1),
            attributes=[types.DocumentAttributeVideo(duration=12.5, w=640, h=360, supports_streaming=True)],
        )
        doc = io.BytesIO(b"just a document")
        doc.name = "notes.txt"
        await call(owner.send_file)("storyflow_friend", doc, force_document=True)

        downloaded = await call(owner.download_media)(sent_video, file=bytes)
        assert downloaded == video_bytes

    photo_record, video_record, doc_record = server.messages(server.owner, server.friend)
    assert photo_record.media is not None
    assert photo_record.media.kind == "photo"
    assert photo_record.text == "a photo"
    assert photo_record.media.sha256 == hashlib.sha256(PNG_1x1).hexdigest()
    assert (photo_record.media.width, photo_record.media.height) == (1, 1)
    media = video_record.media
    assert media is not None
    assert media.kind == "video"
    assert media.duration == 12.5
    assert media.supports_streaming
    assert media.video is not None
    assert (media.video.w, media.video.h) == (640, 360)
    assert media.mime_type == "video/mp4"
    assert media.file_name == "clip.mp4"
    assert media.has_thumbnail
    assert (media.size, media.sha256) == (len(video_bytes), hashlib.sha256(video_bytes).hexdigest())
    assert doc_record.media is not None
    assert doc_record.media.kind == "document"
    assert doc_record.media.file_name == "notes.txt"


async def test_album_keeps_grouping_and_captions(server: LoopbackTelegram) -> None:
    files = []
    for index in range(3):
        item = io.BytesIO(PNG_1x1 if index == 0 else os.urandom(50_000 + index))
        item.name = "pic.png" if index == 0 else f"part{index}.bin"
        files.append(item)
    async with (
        open_client(server, server.owner) as owner,
        open_client(server, server.friend) as friend,
        collect(friend, events.Album) as albums,
    ):
        await call(friend.get_me)()
        sent = await call(owner.send_file)(
            "storyflow_friend", files, caption=["first", "second", "third"], force_document=True
        )
        album = await next_event(albums)
        assert len(album.messages) == 3
    assert len(sent) == 3
    records = server.messages(server.owner, server.friend)
    assert [r.text for r in records] == ["first", "second", "third"]
    assert len({r.grouped_id for r in records}) == 1
    assert records[0].grouped_id is not None


async def test_thirty_megabyte_file_arrives_intact(server: LoopbackTelegram) -> None:
    payload = os.urandom(30 * 1024 * 1024)
    async with open_client(server, server.owner) as owner:
        big = io.BytesIO(payload)
        big.name = "big.bin"
        await call(owner.send_file)("me", big, force_document=True)
    [record] = server.messages(server.owner)
    assert record.media is not None
    assert record.media.size == len(payload)
    assert record.media.sha256 == hashlib.sha256(payload).hexdigest()
    part_size = utils.get_appropriated_part_size(len(payload)) * 1024
    assert server.api.calls["upload.saveBigFilePart"] == -(-len(payload) // part_size)


async def test_large_uploads_can_be_hashed_and_discarded() -> None:
    payload = os.urandom(3 * 512 * 1024)
    async with (
        open_loopback_telegram(keep_file_bytes_limit=1024 * 1024) as server,
        open_client(server, server.owner) as owner,
    ):
        blob = io.BytesIO(payload)
        blob.name = "blob.bin"
        await call(owner.send_file)("me", blob, force_document=True)
    [record] = server.messages(server.owner)
    assert record.media is not None
    assert record.media.file.data is None
    assert record.media.sha256 == hashlib.sha256(payload).hexdigest()


async def test_pts_gap_is_recovered_with_get_difference(server: LoopbackTelegram) -> None:
    async with (
        open_client(server, server.owner) as owner,
        open_client(server, server.friend) as friend,
        collect(friend, events.NewMessage) as to_friend,
    ):
        await call(friend.get_me)()
        server.withhold_updates(server.friend, 1)
        await call(owner.send_message)("storyflow_friend", "lost on the way")
        await call(owner.send_message)("storyflow_friend", "arrives live")
        texts = {(await next_event(to_friend)).message.message for _ in range(2)}
        assert texts == {"lost on the way", "arrives live"}
    assert server.api.calls.get("updates.getDifference", 0) >= 1


async def test_dropped_connection_and_telethon_reconnect(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as owner:
        await call(owner.get_me)()
        server.drop_connections_after(requests=0)
        message = await call(owner.send_message)("me", "after the drop")
        assert message.message == "after the drop"
    assert server.faults.connections_dropped == 1
    assert [r.text for r in server.messages(server.owner)] == ["after the drop"]


async def test_drop_after_bytes_during_upload(server: LoopbackTelegram) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    async with open_client(server, server.owner) as owner:
        await call(owner.get_me)()
        server.drop_connections_after(bytes=1024 * 1024)
        blob = io.BytesIO(payload)
        blob.name = "blob.bin"
        await call(owner.send_file)("me", blob, force_document=True)
    [record] = server.messages(server.owner)
    assert record.media is not None
    assert record.media.sha256 == hashlib.sha256(payload).hexdigest()
    assert server.faults.connections_dropped == 1


async def test_injected_flood_wait_reaches_the_client(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as owner:
        await call(owner.get_me)()
        server.inject_flood_wait("messages.sendMessage", 37)
        with pytest.raises(errors.FloodWaitError) as caught:
            await call(owner.send_message)("me", "too fast")
        assert caught.value.seconds == 37
        # A flood wait only answers the method it was injected for (Telethon now refuses sendMessage itself).
        server.inject_flood_wait(functions.messages.EditMessageRequest, 5)
        assert (await call(owner.get_me)()).id == server.owner.user_id


async def test_premium_flood_wait_and_flood_sleep(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner, flood_sleep_threshold=1) as owner:
        message = await call(owner.send_message)("me", "x")
        server.inject_flood_wait("messages.editMessage", 1, premium=True)
        await call(owner.edit_message)("me", message.id, "y")  # slept through, then retried
        server.inject_flood_wait("messages.editMessage", 30, premium=True)
        with pytest.raises(errors.FloodPremiumWaitError):
            await call(owner.edit_message)("me", message.id, "z")
    assert server.api.calls["messages.editMessage"] == 1  # flooded calls never reach the handler


async def test_rpc_delay_and_bandwidth(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as owner:
        await call(owner.get_me)()
        server.set_rpc_delay(0.3)
        start = trio.current_time()
        await call(owner.get_me)()
        assert trio.current_time() - start >= 0.3
        server.set_rpc_delay(0)
        server.set_bandwidth(2 * 1024 * 1024)
        start = trio.current_time()
        blob = io.BytesIO(os.urandom(1024 * 1024))
        blob.name = "blob.bin"
        await call(owner.upload_file)(blob)
        assert trio.current_time() - start >= 0.4
        server.set_bandwidth(None)


async def test_streamed_upload_rules(server: LoopbackTelegram) -> None:
    part = 512 * 1024
    async with open_client(server, server.owner) as owner:
        save = call(owner)

        async def big(file_id: int, index: int, total: int, data: bytes) -> Any:
            return await save(functions.upload.SaveBigFilePartRequest(file_id, index, total, data))

        payload = os.urandom(2 * part)
        # Parts out of order and in parallel, size unknown until the end: an empty final part.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(big, 1, 1, -1, payload[part:])
            nursery.start_soon(big, 1, 0, -1, payload[:part])
        await big(1, 2, 3, b"")
        uploaded = types.InputFileBig(1, 3, "stream.mp4")
        media = types.InputMediaUploadedDocument(
            uploaded, "video/mp4", [types.DocumentAttributeVideo(3.0, 320, 240, supports_streaming=True)]
        )
        await save(functions.messages.SendMediaRequest(types.InputPeerSelf(), media, "streamed"))
        [record] = server.messages(server.owner)
        assert record.media is not None
        assert record.media.sha256 == hashlib.sha256(payload).hexdigest()

        with pytest.raises(errors.FilePartSizeInvalidError):
            await big(2, 0, -1, os.urandom(1000))
        await big(3, 0, -1, os.urandom(part))
        with pytest.raises(errors.FilePartSizeChangedError):
            await big(3, 1, -1, os.urandom(part // 2))
        with pytest.raises(errors.FilePartsInvalidError):
            await big(4, 0, 4001, os.urandom(part))
        server.set_premium(server.owner)
        await big(4, 0, 4001, os.urandom(part))
        with pytest.raises(errors.FilePartEmptyError):
            await save(functions.upload.SaveFilePartRequest(5, 0, b""))

        # A streamed upload cannot become a photo.
        await big(6, 0, 1, PNG_1x1)
        await big(7, 0, -1, os.urandom(part))
        await big(7, 1, 2, PNG_1x1)
        with pytest.raises(errors.FilePartsInvalidError):
            await save(functions.messages.UploadMediaRequest(
                types.InputPeerSelf(), types.InputMediaUploadedPhoto(types.InputFileBig(7, 2, "p.png"))
            ))

        await save(functions.upload.SaveFilePartRequest(8, 0, os.urandom(part)))
        await save(functions.upload.SaveFilePartRequest(8, 2, PNG_1x1))
        with pytest.raises(errors.FilePartMissingError) as missing:
            await save(functions.messages.UploadMediaRequest(
                types.InputPeerSelf(), types.InputMediaUploadedPhoto(types.InputFile(8, 3, "p.png", ""))
            ))
        assert missing.value.which == 1
        await save(functions.upload.SaveFilePartRequest(9, 0, PNG_1x1))
        with pytest.raises(errors.Md5ChecksumInvalidError):
            await save(functions.messages.UploadMediaRequest(
                types.InputPeerSelf(), types.InputMediaUploadedPhoto(types.InputFile(9, 1, "p.png", "0" * 32))
            ))


async def test_albums_are_all_visual_all_documents_or_all_audio(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as owner:
        save = call(owner)

        async def stored(data: bytes, name: str, kind: str) -> Any:
            """Telegram's stored copy of an upload, as an album takes it (uploadMedia first)."""
            uploaded = await call(owner.upload_file)(data, file_name=name)
            attributes: dict[str, list[Any]] = {
                "video": [types.DocumentAttributeVideo(1.0, 2, 2)], "audio": [types.DocumentAttributeAudio(1)],
                "document": [],
            }
            media: Any = types.InputMediaUploadedPhoto(uploaded) if kind == "photo" else (
                types.InputMediaUploadedDocument(uploaded, "application/octet-stream", attributes[kind],
                                                 force_file=kind == "document")
            )
            result = await save(functions.messages.UploadMediaRequest(types.InputPeerSelf(), media))
            return utils.get_input_media(result)

        async def album(*items: Any) -> Any:
            singles = [types.InputSingleMedia(item, "") for item in items]
            return await save(functions.messages.SendMultiMediaRequest(types.InputPeerSelf(), singles))

        photo = await stored(PNG_1x1, "pixel.png", "photo")
        video = await stored(os.urandom(2000), "clip.mp4", "video")
        documents = [await stored(os.urandom(1000), f"notes{i}.pdf", "document") for i in range(2)]
        songs = [await stored(os.urandom(1000), f"song{i}.mp3", "audio") for i in range(2)]
        await album(photo, video)
        await album(*documents)
        await album(*songs)
        for mixed in [(photo, documents[0]), (documents[0], video), (songs[0], documents[0]), (photo, songs[0])]:
            with pytest.raises(errors.MediaInvalidError):
                await album(*mixed)
    assert [r.media.kind for r in server.messages(server.owner) if r.media] == [
        "photo", "video", "document", "document", "audio", "audio"
    ]


async def test_a_refused_photo_upload_can_still_be_sent_as_a_document(server: LoopbackTelegram) -> None:
    server.refuse_uploaded_media("photo", "IMAGE_PROCESS_FAILED")
    async with open_client(server, server.owner) as owner:
        save = call(owner)
        uploaded = await call(owner.upload_file)(PNG_1x1, file_name="pixel.png")
        with pytest.raises(errors.ImageProcessFailedError):
            await save(functions.messages.UploadMediaRequest(types.InputPeerSelf(),
                                                             types.InputMediaUploadedPhoto(uploaded)))
        as_file = types.InputMediaUploadedDocument(uploaded, "image/png", [], force_file=True)
        await save(functions.messages.SendMediaRequest(types.InputPeerSelf(), as_file, "as a file"))
    [record] = server.messages(server.owner)
    assert record.media is not None and record.media.kind == "document"
    assert record.media.sha256 == hashlib.sha256(PNG_1x1).hexdigest()


async def test_lengths_are_counted_in_utf16_code_units(server: LoopbackTelegram) -> None:
    wide = "\U0001f600"  # one character, two UTF-16 code units
    async with open_client(server, server.owner) as owner:
        save = call(owner)

        async def say(text: str) -> Any:
            return await save(functions.messages.SendMessageRequest(types.InputPeerSelf(), text))

        await say(wide * 2048)
        with pytest.raises(errors.MessageTooLongError):
            await say(wide * 2049)  # 2049 characters: 4098 units
        short = await call(owner.send_message)("me", "short")
        longer = functions.messages.EditMessageRequest(types.InputPeerSelf(), short.id, message="a" + wide * 2048)
        with pytest.raises(errors.MessageTooLongError):
            await save(longer)

        uploaded = await call(owner.upload_file)(b"a document", file_name="notes.txt")
        document = types.InputMediaUploadedDocument(uploaded, "text/plain", [], force_file=True)
        with pytest.raises(errors.MediaCaptionTooLongError):
            await save(functions.messages.SendMediaRequest(types.InputPeerSelf(), document, wide * 513))
        await save(functions.messages.SendMediaRequest(types.InputPeerSelf(), document, wide * 512))
    assert [len(r.text) for r in server.messages(server.owner)] == [2048, 5, 512]


async def test_files_over_ten_megabytes_need_big_file_parts(server: LoopbackTelegram) -> None:
    part = os.urandom(512 * 1024)
    ten_megabytes = 20  # parts of 512 KB
    async with open_client(server, server.owner) as owner:
        save = call(owner)

        async def small_parts(file_id: int, count: int) -> None:
            for index in range(count):
                await save(functions.upload.SaveFilePartRequest(file_id, index, part))

        async def as_document(input_file: Any) -> Any:
            media = types.InputMediaUploadedDocument(input_file, "application/octet-stream", [], force_file=True)
            return await save(functions.messages.SendMediaRequest(types.InputPeerSelf(), media, ""))

        await small_parts(1, ten_megabytes)
        await as_document(types.InputFile(1, ten_megabytes, "ten.bin", ""))  # exactly 10 MB: still a small file

        await small_parts(2, ten_megabytes)
        with pytest.raises(errors.FilePartsInvalidError):
            await save(functions.upload.SaveFilePartRequest(2, ten_megabytes, part))

        await small_parts(3, ten_megabytes)
        await save(functions.upload.SaveFilePartRequest(3, ten_megabytes, b"tail"))  # its size shows only at the end
        with pytest.raises(errors.FilePartsInvalidError):
            await as_document(types.InputFile(3, ten_megabytes + 1, "over.bin", ""))

        for index in range(ten_megabytes):
            await save(functions.upload.SaveBigFilePartRequest(4, index, ten_megabytes + 1, part))
        await save(functions.upload.SaveBigFilePartRequest(4, ten_megabytes, ten_megabytes + 1, b"tail"))
        await as_document(types.InputFileBig(4, ten_megabytes + 1, "over.bin"))
    assert [r.media.size for r in server.messages(server.owner) if r.media] == [
        ten_megabytes * len(part), ten_megabytes * len(part) + 4
    ]


async def test_sent_media_is_resendable_until_references_expire(server: LoopbackTelegram) -> None:
    async with open_client(server, server.owner) as owner:
        doc = io.BytesIO(b"cached bytes")
        doc.name = "cached.txt"
        first = await call(owner.send_file)("me", doc, force_document=True)
        again = await call(owner.send_file)("storyflow_friend", first.media)
        assert again.media.document.id == first.media.document.id
        server.expire_file_references()
        with pytest.raises(errors.FileReferenceExpiredError):
            await call(owner.send_file)("storyflow_friend", first.media)
        [fresh] = await call(owner.get_messages)("me", ids=[first.id])
        await call(owner.send_file)("storyflow_friend", fresh.media)
    assert [r.media.media_id for r in server.messages(server.owner, server.friend) if r.media] == [
        first.media.document.id
    ] * 2


async def test_stories_are_listed_and_downloadable(server: LoopbackTelegram) -> None:
    channel = server.add_channel("News", username="storyflow_news")
    photo = server.post_story(server.friend, PNG_1x1)
    video_bytes = os.urandom(200_000)
    video = server.post_story(channel, video_bytes, kind="video", duration=7.0)
    async with open_client(server, server.owner) as owner:
        friend_stories = await call(owner)(functions.stories.GetPeerStoriesRequest("storyflow_friend"))
        [item] = friend_stories.stories.stories
        assert item.id == photo.id
        assert isinstance(item.media, types.MessageMediaPhoto)
        assert await call(owner.download_media)(item.media, file=bytes) == PNG_1x1

        by_id = await call(owner)(functions.stories.GetStoriesByIDRequest("storyflow_news", [video.id, 999]))
        found, missing = by_id.stories
        assert isinstance(missing, types.StoryItemDeleted)
        assert found.media.document.attributes[0].duration == 7.0
        assert await call(owner.download_media)(found.media, file=bytes) == video_bytes

        _, location = utils.get_input_location(found.media)
        with pytest.raises(errors.LimitInvalidError):
            await call(owner)(functions.upload.GetFileRequest(location, offset=0, limit=5000))


async def test_group_messages_reach_every_member(server: LoopbackTelegram) -> None:
    group = server.create_group("Family", [server.owner, server.friend, server.stranger])
    async with (
        open_client(server, server.friend) as friend,
        open_client(server, server.stranger) as stranger,
        collect(stranger, events.NewMessage) as to_stranger,
    ):
        await call(stranger.get_me)()
        await call(friend.get_dialogs)()
        await call(friend.send_message)(types.PeerChat(group.chat_id), "hello group")
        event = await next_event(to_stranger)
        assert event.chat_id == -group.chat_id
        assert event.message.message == "hello group"
    assert [r.text for r in server.messages(group)] == ["hello group"]


async def test_wait_for_message_uses_events(server: LoopbackTelegram) -> None:
    async with trio.open_nursery() as nursery:
        found: list[str] = []

        async def waiter() -> None:
            record = await server.wait_for_message(lambda m: m.text.startswith("done"))
            found.append(record.text)

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        server.send_message(server.owner, server.friend, "not yet")
        server.send_message(server.owner, server.friend, "done: 3 files")
    assert found == ["done: 3 files"]


async def test_standalone_process_prints_sessions() -> None:
    async with trio.open_nursery() as nursery:
        command = [sys.executable, "-m", "storyflow.testing.telegram", "--port", "0", "--account", "extra"]
        process = await nursery.start(
            functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        lines: dict[str, str] = {}
        buffer = b""
        with trio.fail_after(20):
            while "extra" not in lines:
                buffer += await process.stdout.receive_some()
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    name, _, value = line.decode().partition("=")
                    lines[name] = value
        assert set(lines) >= {"port", "owner", "friend", "stranger", "extra"}
        standalone = LoopbackTelegram()  # only to build a client; its port is the process's
        standalone.port = int(lines["port"])
        async with open_client(standalone, standalone.owner, session=lines["owner"]) as client:
            me = await call(client.get_me)()
            assert me.username == "storyflow_owner"
        process.terminate()


async def _send_all(sender: MTProtoSender, requests: list[Any]) -> list[Any]:
    """asyncio-flavoured: every request in flight at once on one sender."""
    return list(await asyncio.gather(*(sender.send(request) for request in requests)))


async def test_extra_upload_sender_with_the_same_key_gets_no_updates(server: LoopbackTelegram) -> None:
    part = 512 * 1024
    payload = os.urandom(5 * part + 1234)
    chunks = [payload[i : i + part] for i in range(0, len(payload), part)]
    async with open_client(server, server.owner) as owner:
        await call(owner.get_me)()
        sender = MTProtoSender(owner.session.auth_key, loggers=owner._log)
        connection = ConnectionTcpFull("127.0.0.1", server.port, owner.session.dc_id, loggers=owner._log)
        await call(sender.connect)(connection)
        try:
            requests = [
                functions.upload.SaveBigFilePartRequest(77, index, len(chunks), chunk)
                for index, chunk in reversed(list(enumerate(chunks)))
            ]
            assert await call(_send_all)(sender, requests) == [True] * len(chunks)
            upload_only = [c for c in server.connections(server.owner) if not c.receives_updates]
            assert len(upload_only) == 1
            assert upload_only[0].requests_handled == len(chunks)
        finally:
            await call(sender.disconnect)()
        media = types.InputMediaUploadedDocument(
            types.InputFileBig(77, len(chunks), "parallel.bin"), "application/octet-stream", []
        )
        await call(owner)(functions.messages.SendMediaRequest(types.InputPeerSelf(), media, "", random_id=5))
    [record] = server.messages(server.owner)
    assert record.media is not None
    assert record.media.sha256 == hashlib.sha256(payload).hexdigest()
    assert record.media.file_name == "parallel.bin"
