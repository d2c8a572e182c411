"""The userbot end to end: real Telethon over MTProto to the loopback Telegram, real gallery-dl / yt-dlp downloads
from the loopback media server, commands typed by the owner's phone, a friend and a stranger."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import attrs
import pytest
import trio
from telethon.tl import types
from trio_asyncio import aio_as_trio

from storyflow.jobs import JobState
from storyflow.testing._httpserver import MediaServer
from storyflow.testing.telegram import LoopbackTelegram, open_client

from .conftest import BotRig, MediaFiles, child_pids, running_userbot, userbot_config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_dl_of_a_video_posts_it_with_attributes(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    command = await bot.type(f".dl {site.url('/clip.mp4')}")
    status = await bot.final_status(command)
    assert status.text.startswith("✅"), status.text
    [posted] = bot.media_replies(command)
    stored = posted.media
    assert stored is not None
    assert stored.kind == "video"
    assert stored.sha256 == sha256(media.video)
    video = stored.video
    assert video is not None
    assert (video.w, video.h) == (160, 120)
    assert 0.8 <= video.duration <= 1.3
    assert video.supports_streaming
    assert stored.has_thumbnail
    assert "127.0.0.1" in posted.text  # the caption links the source
    assert any(isinstance(e, types.MessageEntityTextUrl) for e in posted.entities)


async def test_ping_answers(bot: BotRig) -> None:
    command = await bot.type(".ping")
    answer = await bot.answer(command)
    assert answer.text.startswith("🏓 pong")


async def test_a_command_that_breaks_is_answered_and_the_userbot_goes_on(
    bot: BotRig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from storyflow.bot import _commands

    caplog.set_level(logging.ERROR, logger="storyflow.bot")

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug in a command handler")

    monkeypatch.setitem(_commands.COMMANDS, "stats", attrs.evolve(_commands.COMMANDS["stats"], handler=broken))
    answer = await bot.answer(await bot.type(".stats"))
    assert answer.text.startswith("❌ internal error"), answer.text
    assert "a bug in a command handler" not in answer.text  # details go to the log, not the chat
    assert any(r.exc_info and "a bug in a command handler" in str(r.exc_info[1]) for r in caplog.records)
    assert (await bot.answer(await bot.type(".ping"))).text.startswith("🏓 pong")


async def test_retry_posts_where_the_job_came_from(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    site.add_status("/later.jpg", 404)
    command = await bot.type(f".dl {site.url('/later.jpg')}")
    failed = await bot.final_status(command)
    assert failed.text.startswith("❌"), failed.text
    [job] = await bot.running.store.recent_jobs()
    site.add_file("/later.jpg", media.image)  # it is there now
    # Retried from another chat (the one with the friend): the answer there says where the results go.
    elsewhere = await bot.type(f".retry {job.id}", chat="storyflow_friend")
    note = await bot.answer(elsewhere)
    assert "retried in the chat it came from" in note.text, note.text
    final = await bot.answer(command, lambda m: m.media is None and m.id != failed.id and m.text.startswith("✅"))
    assert "sent 1 file" in final.text, final.text
    [photo] = bot.media_replies(command)
    assert photo.media is not None and photo.media.sha256 == hashlib.sha256(media.image.read_bytes()).hexdigest()
    done = await bot.answer(await bot.type(f".retry {job.id}"))
    assert "only failed or cancelled jobs" in done.text


async def test_stranger_gets_nothing(bot: BotRig, telegram: LoopbackTelegram, site: MediaServer) -> None:
    async with open_client(telegram, telegram.stranger) as stranger:
        sent = await aio_as_trio(stranger.send_message)("storyflow_owner", f".dl {site.url('/clip.mp4')}")
        ping = await aio_as_trio(stranger.send_message)("storyflow_owner", ".ping")
    # The owner's own ping is answered: so the stranger's, typed earlier, has been seen and ignored by then.
    mine = await bot.type(".ping")
    await bot.answer(mine)
    assert [m for m in telegram.all_messages() if m.reply_to in (sent.id, ping.id)] == []
    assert await bot.running.store.recent_jobs() == []
    assert site.request_count("/clip.mp4") == 0


async def test_gallery_of_twelve_goes_out_as_albums_of_ten_and_two(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    urls = [site.add_file(f"/gallery/{i:02d}.jpg", path) for i, path in enumerate(media.images)]
    config = userbot_config(tmp_path, telegram, download={"max_urls_per_message": 20})
    async with running_userbot(telegram, config) as bot:
        command = await bot.type(".dl " + " ".join(urls))
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        posted = bot.media_replies(command)
    assert [m.media.kind for m in posted if m.media] == ["photo"] * 12
    groups = [m.grouped_id for m in posted]
    assert groups[0] is not None and groups[10] is not None
    assert groups[:10] == [groups[0]] * 10 and groups[10:] == [groups[10]] * 2
    assert groups[0] != groups[10]
    # In the order of the links, with the exact bytes.
    assert [m.media.sha256 for m in posted if m.media] == [sha256(p) for p in media.images]


async def test_mixed_media_each_as_what_it_is(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    site.add_generated("/notes.pdf", 30_000, content_type="application/pdf")
    command = await bot.type(
        f".dl {site.url('/photo.jpg')} {site.url('/clip.mp4')} {site.url('/song.mp3')} {site.url('/notes.pdf')}"
    )
    status = await bot.final_status(command)
    assert status.text.startswith("✅"), status.text
    posted = {m.media.kind: m for m in bot.media_replies(command) if m.media}
    assert set(posted) == {"photo", "video", "audio", "document"}
    assert posted["photo"].grouped_id == posted["video"].grouped_id is not None  # one album
    audio = posted["audio"].media.audio  # type: ignore[union-attr]
    assert audio is not None and (audio.title, audio.performer) == ("Song", "Band")
    assert posted["document"].media.file_name == "notes.pdf"  # type: ignore[union-attr]
    assert posted["document"].media.size == 30_000  # type: ignore[union-attr]


async def test_as_file_sends_documents_untouched(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    command = await bot.type(f".dl {site.url('/photo.jpg')} file")
    await bot.final_status(command)
    [posted] = bot.media_replies(command)
    assert posted.media is not None and posted.media.kind == "document" and posted.media.force_file
    assert posted.media.sha256 == sha256(media.image)


async def test_status_message_moves_through_the_states(bot: BotRig, site: MediaServer) -> None:
    seen: list[str] = []
    command = await bot.type(f".dl {site.url('/slow.mp4')}")
    status = await bot.answer(command, lambda m: m.media is None)

    async def watch() -> None:
        while True:
            text = bot.server.message(status.id).text
            if not seen or seen[-1] != text:
                seen.append(text)
            if text.startswith("✅"):
                return
            await bot.server.wait_until(lambda shown=text: bot.server.message(status.id).text != shown or None)

    with trio.fail_after(60):
        await watch()
    assert any("downloading" in text and "%" in text for text in seen), seen
    assert seen[-1].startswith("✅") and "sent 1 file" in seen[-1]


async def test_a_status_message_shows_queued_then_uploading(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    site.add_generated("/big.bin", 3_000_000, content_type="application/octet-stream")
    config = userbot_config(tmp_path, telegram, download={"max_concurrent": 1},
                            telegram={"stream_uploads": False})
    async with running_userbot(telegram, config) as bot:
        blocker = await bot.type(f".dl {site.url('/hang.mp4')}")
        blocker_status = await bot.answer(blocker, lambda m: m.media is None)
        await site.wait_for_request("/hang.mp4")
        command = await bot.type(f".dl {site.url('/big.bin')}")
        waiting = await bot.answer(command, lambda m: m.media is None and "queued" in m.text)
        assert "position 1" in waiting.text, waiting.text  # first in line behind the running download
        telegram.set_bandwidth(500_000)  # the upload takes seconds: the status shows it
        await aio_as_trio(bot.phone.send_message)("me", ".cancel", reply_to=blocker_status.id)
        seen: list[str] = []
        with trio.fail_after(60):
            while True:
                shown = telegram.message(waiting.id).text
                if not seen or seen[-1] != shown:
                    seen.append(shown)
                if shown.startswith(("✅", "❌")):
                    break
                await telegram.wait_until(lambda shown=shown: telegram.message(waiting.id).text != shown or None)
        telegram.set_bandwidth(None)
        assert (await bot.final_status(blocker)).text.startswith("🚫")
    assert seen[-1].startswith("✅") and any("uploading" in text and "%" in text for text in seen), seen


async def test_repeat_url_is_answered_from_telegrams_copy(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    first = await bot.type(f".dl {site.url('/clip.mp4')}")
    await bot.final_status(first)
    [original] = bot.media_replies(first)
    uploads_before = bot.server.api.calls.get("upload.saveFilePart", 0)
    again = await bot.type(f".dl {site.url('/clip.mp4')}")
    answer = await bot.answer(again, lambda m: m.media is None)
    assert answer.text.startswith("♻️"), answer.text
    [resent] = bot.media_replies(again)
    assert resent.media is original.media  # the same stored document, not a new upload
    assert site.request_count("/clip.mp4") == 1
    assert bot.server.api.calls.get("upload.saveFilePart", 0) == uploads_before
    # Other options are another job.
    audio = await bot.type(f".dl {site.url('/clip.mp4')} 480p")
    assert (await bot.final_status(audio)).text.startswith("✅")
    assert site.request_count("/clip.mp4") == 2
    # Another user is another job too: what the owner fetched (perhaps with the owner's cookies) is not theirs.
    await bot.answer(await bot.type(".allow @storyflow_friend"))
    telegram = bot.server
    asked = telegram.send_message(telegram.friend, telegram.owner, f".dl {site.url('/clip.mp4')}")
    assert (await bot.final_status(asked.id)).text.startswith("✅")
    assert site.request_count("/clip.mp4") == 3


async def test_expired_reference_is_refreshed_from_the_old_message(bot: BotRig, site: MediaServer) -> None:
    first = await bot.type(f".dl {site.url('/photo.jpg')}")
    await bot.final_status(first)
    bot.server.expire_file_references()
    again = await bot.type(f".dl {site.url('/photo.jpg')}")
    answer = await bot.answer(again, lambda m: m.media is None)
    assert answer.text.startswith("♻️"), answer.text
    assert len(bot.media_replies(again)) == 1
    assert site.request_count("/photo.jpg") == 1


async def test_cancel_mid_download(bot: BotRig, site: MediaServer) -> None:
    command = await bot.type(f".dl {site.url('/slow.mp4')}")
    await bot.answer(command, lambda m: m.media is None)
    await site.wait_for_request("/slow.mp4")
    cancel = await bot.type(".cancel all")
    await bot.answer(cancel)
    final = await bot.final_status(command)
    assert final.text.startswith("🚫"), final.text
    assert bot.media_replies(command) == []
    assert child_pids() == set()


async def test_cancel_by_replying_to_the_status_message(bot: BotRig, site: MediaServer) -> None:
    bot.server.set_bandwidth(200_000)  # uploads crawl: the cancel lands mid-upload
    site.add_generated("/big.bin", 3_000_000, content_type="application/octet-stream")
    command = await bot.type(f".dl {site.url('/big.bin')}")
    status = await bot.answer(command, lambda m: m.media is None)
    with trio.fail_after(30):
        await bot.server.wait_until(lambda: bot.server.api.calls.get("upload.saveFilePart") or None)
    await aio_as_trio(bot.phone.send_message)("me", ".cancel", reply_to=status.id)
    final = await bot.final_status(command)
    assert final.text.startswith("🚫"), final.text
    bot.server.set_bandwidth(None)
    assert bot.media_replies(command) == []


async def test_friend_on_the_allow_list_gets_results_in_their_chat(
    bot: BotRig, telegram: LoopbackTelegram, site: MediaServer, media: MediaFiles
) -> None:
    allow = await bot.type(".allow @storyflow_friend")
    assert "may now use" in (await bot.answer(allow)).text
    async with open_client(telegram, telegram.friend) as friend:
        sent = await aio_as_trio(friend.send_message)("storyflow_owner", f".dl {site.url('/photo.jpg')}")
        with trio.fail_after(60):
            posted = await telegram.wait_for_message(lambda m: m.reply_to == sent.id and m.media is not None)
    assert posted.sender is telegram.owner
    assert posted.chat == telegram.private_chat(telegram.owner, telegram.friend)
    assert posted.media is not None and posted.media.sha256 == sha256(media.image)
    jobs = await bot.running.store.recent_jobs()
    assert jobs[0].owner == telegram.friend.user_id
    # And taken back.
    deny = await bot.type(".deny @storyflow_friend")
    await bot.answer(deny)
    async with open_client(telegram, telegram.friend) as friend:
        ignored = await aio_as_trio(friend.send_message)("storyflow_owner", ".ping")
    mine = await bot.type(".ping")
    await bot.answer(mine)
    assert [m for m in telegram.all_messages() if m.reply_to == ignored.id] == []


async def test_ping_answers_while_jobs_run(bot: BotRig, site: MediaServer) -> None:
    jobs = [await bot.type(f".dl {site.url('/hang.mp4')}?n={i}") for i in range(4)]
    await site.wait_for_request("/hang.mp4")
    ping = await bot.type(".ping")
    answer = await bot.answer(ping)
    assert "downloading" in answer.text
    cancel = await bot.type(".cancel all")
    await bot.answer(cancel)
    for command in jobs:
        assert (await bot.final_status(command)).text.startswith("🚫")


async def test_flood_waits_on_edits_and_parts_are_survived(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    bot.server.inject_flood_wait("messages.editMessage", 2, count=2)
    bot.server.inject_flood_wait("upload.saveFilePart", 1, count=3)
    command = await bot.type(f".dl {site.url('/clip.mp4')} {site.url('/photo.jpg')}")
    status = await bot.final_status(command)
    assert status.text.startswith("✅"), status.text
    posted = bot.media_replies(command)
    assert sorted(m.media.sha256 for m in posted if m.media) == sorted([sha256(media.video), sha256(media.image)])
    # Every injected wait was really served (and survived), not skipped.
    assert bot.server.faults.floods_served == {"messages.editMessage": 2, "upload.saveFilePart": 3}


async def test_deleted_status_message_does_not_break_the_job(bot: BotRig, site: MediaServer) -> None:
    from storyflow.download import JobUpdated

    ended: list[JobState] = []
    finished = trio.Event()

    def on_event(event: object) -> None:
        if isinstance(event, JobUpdated) and event.job.finished:
            ended.append(event.job.state)
            finished.set()

    bot.running.engine.subscribe(on_event)
    command = await bot.type(f".dl {site.url('/slow.mp4')}")
    status = await bot.answer(command, lambda m: m.media is None)
    await aio_as_trio(bot.phone.delete_messages)("me", [status.id])
    with trio.fail_after(60):
        await bot.server.wait_until(lambda: bot.media_replies(command) or None)
        await finished.wait()
    assert ended == [JobState.DONE]


async def test_bad_arguments_get_a_specific_hint(bot: BotRig) -> None:
    cases = {
        ".dl": "no link given",
        ".dl --exec=touch x": "cannot start with '-'",
        ".dl file:///etc/passwd": "'file:' links are not allowed",
        ".dl https://example.com/a 99999p": "heights go from",
        ".cancel x": "not a job number",
        ".frobnicate": "unknown command",
        ".retry 999": "no job #999",
        ".history 0": "usage",
        ".settings nope 1": "no setting 'nope'",
        ".settings max_concurrent 0": "bad value for max_concurrent",
    }
    for text, expected in cases.items():
        command = await bot.type(text)
        answer = await bot.answer(command)
        assert expected in answer.text, (text, answer.text)
    assert await bot.running.store.recent_jobs() == []
    assert child_pids() == set()


async def test_queue_history_settings_stats_help(bot: BotRig, site: MediaServer) -> None:
    done = await bot.type(f".dl {site.url('/photo.jpg')}")
    await bot.final_status(done)
    waiting = await bot.type(f".dl {site.url('/hang.mp4')}")
    await site.wait_for_request("/hang.mp4")
    queue = await bot.answer(await bot.type(".queue"))
    assert "downloading" in queue.text and "hang.mp4" in queue.text
    history = await bot.answer(await bot.type(".history"))
    assert "photo.jpg" in history.text and "hang.mp4" in history.text
    changed = await bot.answer(await bot.type(".settings max_concurrent 2"))
    assert "max_concurrent" in changed.text and "2" in changed.text
    assert bot.running.engine.settings.max_concurrent == 2
    settings = await bot.answer(await bot.type(".settings"))
    assert "max_concurrent</code> = 2" in settings.text or "max_concurrent = 2" in settings.text
    stats = await bot.answer(await bot.type(".stats"))
    assert "delivered: 1 files" in stats.text
    help_text = await bot.answer(await bot.type(".help"))
    assert ".dl" in help_text.text and ".allow" in help_text.text
    one = await bot.answer(await bot.type(".help cancel"))
    assert "reply to a status" in one.text
    await bot.answer(await bot.type(".cancel all"))
    assert (await bot.final_status(waiting)).text.startswith("🚫")


async def test_files_over_the_upload_limit_are_cut_into_parts(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    from storyflow.testing._httpserver import generated_bytes
    from storyflow.testing._media import make_video

    video = make_video(tmp_path / "long.mp4", seconds=8.0, width=320, height=240, keyframe_every=10)
    limit = video.stat().st_size // 3 + 1
    site.add_file("/long.mp4", video)
    site.add_generated("/blob.bin", 2 * limit + 1000, content_type="application/octet-stream")
    config = userbot_config(tmp_path, telegram, telegram={"max_upload_size": limit})
    async with running_userbot(telegram, config) as bot:
        command = await bot.type(f".dl {site.url('/long.mp4')} {site.url('/blob.bin')}")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        posted = bot.media_replies(command)
    videos = [m for m in posted if m.media and m.media.kind == "video"]
    documents = [m for m in posted if m.media and m.media.kind == "document"]
    assert len(videos) >= 3
    assert all(m.media and m.media.size <= limit for m in videos)
    assert [f"part {i}/{len(videos)}" in m.text for i, m in enumerate(videos, start=1)] == [True] * len(videos)
    durations = [m.media.duration or 0 for m in videos if m.media]
    assert 7.0 <= sum(durations) <= 9.0
    assert [m.media.file_name for m in documents if m.media] == ["blob.bin.001", "blob.bin.002", "blob.bin.003"]
    joined = b"".join(m.media.file.data or b"" for m in documents if m.media)
    assert hashlib.sha256(joined).hexdigest() == hashlib.sha256(generated_bytes(2 * limit + 1000)).hexdigest()


async def test_a_link_alone_in_saved_messages_downloads(bot: BotRig, site: MediaServer, media: MediaFiles) -> None:
    message = await bot.type(site.url("/photo.jpg"))
    status = await bot.final_status(message)
    assert status.text.startswith("✅"), status.text
    [posted] = bot.media_replies(message)
    assert posted.media is not None and posted.media.sha256 == sha256(media.image)
    # Elsewhere, or mixed with words, a link is just chat.
    chatter = await bot.type(f"look at this {site.url('/photo.jpg')}")
    await bot.answer(await bot.type(".ping"))
    assert [m for m in bot.server.all_messages() if m.reply_to == chatter] == []


async def test_uploads_start_while_the_job_still_downloads(bot: BotRig, site: MediaServer) -> None:
    command = await bot.type(f".dl {site.url('/clip.mp4')} {site.url('/hang.mp4')}")
    await site.wait_for_request("/hang.mp4")
    with trio.fail_after(30):
        # The first file's parts reach Telegram while the second link is still downloading.
        await bot.server.wait_until(lambda: bot.server.api.calls.get("messages.uploadMedia") or None)
    [job] = await bot.running.store.unfinished_jobs()
    assert job.state.value == "downloading"
    await bot.answer(await bot.type(f".cancel {job.id}"))
    assert (await bot.final_status(command)).text.startswith("🚫")


async def test_refused_cached_copy_falls_back_to_a_fresh_download(
    bot: BotRig, site: MediaServer, media: MediaFiles
) -> None:
    first = await bot.type(f".dl {site.url('/photo.jpg')}")
    await bot.final_status(first)
    [original] = bot.media_replies(first)
    await aio_as_trio(bot.phone.delete_messages)("me", [original.id])
    bot.server.expire_file_references()
    again = await bot.type(f".dl {site.url('/photo.jpg')}")
    status = await bot.final_status(again)
    assert status.text.startswith("✅"), status.text
    [fresh] = bot.media_replies(again)
    assert fresh.media is not None and fresh.media.sha256 == sha256(media.image)
    assert site.request_count("/photo.jpg") == 2


async def test_premium_flood_wait_on_parts_reduces_parts_in_flight(
    bot: BotRig, site: MediaServer, media: MediaFiles
) -> None:
    site.add_generated("/three-mb.bin", 3_000_000, content_type="application/octet-stream")
    bot.server.inject_flood_wait("upload.saveFilePart", 1, count=2, premium=True)
    command = await bot.type(f".dl {site.url('/three-mb.bin')}")
    status = await bot.final_status(command)
    assert status.text.startswith("✅"), status.text
    in_flight = bot.running.userbot.in_flight
    assert in_flight.current < in_flight.maximum
    [posted] = bot.media_replies(command)
    assert posted.media is not None and posted.media.size == 3_000_000
