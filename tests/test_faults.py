"""Faults a months-long run meets: flood limits everywhere, dropped connections, tools that crash, a full disk,
kill -9 in the middle of a job — against the loopback Telegram and the local media server."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import trio
from trio_asyncio import aio_as_trio

from storyflow.testing._httpserver import MediaServer, generated_sha256
from storyflow.testing.telegram import LoopbackTelegram, open_client

from .conftest import MediaFiles, child_pids, running_userbot, userbot_config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_flood_waits_on_sends_are_waited_out_and_other_chats_still_answered(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    config = userbot_config(tmp_path, telegram, commands={"allowed_users": (telegram.friend.user_id,)})
    telegram.inject_flood_wait("messages.sendMultiMedia", 3, count=1)
    telegram.inject_flood_wait("messages.sendMedia", 2, count=1)
    telegram.inject_flood_wait("messages.editMessage", 2, count=3)
    async with running_userbot(telegram, config) as bot:
        album = await bot.type(f".dl {site.url('/photo.jpg')} {site.url('/picture.png')}")
        single = await bot.type(f".dl {site.url('/song.mp3')}")
        async with open_client(telegram, telegram.friend) as friend:
            ping = await aio_as_trio(friend.send_message)("storyflow_owner", ".ping")
            with trio.fail_after(30):
                answer = await telegram.wait_for_message(lambda m: m.reply_to == ping.id)
        assert answer.text.startswith("🏓")
        assert (await bot.final_status(album)).text.startswith("✅")
        assert (await bot.final_status(single)).text.startswith("✅")
        album_media = bot.media_replies(album)
        single_media = bot.media_replies(single)
    assert sorted(m.media.sha256 for m in album_media if m.media) == sorted([sha256(media.image), sha256(media.png)])
    assert [m.media.sha256 for m in single_media if m.media] == [sha256(media.audio)]


async def test_five_dropped_connections_during_one_upload(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    size = 12_000_000
    site.add_generated("/big.bin", size, content_type="application/octet-stream")
    telegram.set_bandwidth(3_000_000)  # the upload takes a few seconds: room for five cuts
    async with running_userbot(telegram, userbot_config(tmp_path, telegram, telegram={"stream_uploads": False})) as bot:
        command = await bot.type(f".dl {site.url('/big.bin')}")
        drops = 0
        with trio.fail_after(60):
            while drops < 5:
                seen = telegram.uploads.parts_received
                await telegram.wait_until(lambda seen=seen: telegram.uploads.parts_received >= seen + 2 or None)
                telegram.drop_connections(telegram.owner)
                drops += 1
        telegram.set_bandwidth(None)
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        [posted] = bot.media_replies(command)
    assert posted.media is not None and posted.media.sha256 == generated_sha256(size)


async def test_a_tool_that_crashes_fails_its_job_cleanly_and_the_next_job_is_fine(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        command = await bot.type(f".dl {site.url('/hang.mp4')}")
        for attempt in (1, 2):  # gallery-dl dies under the job, then yt-dlp, its fallback
            await site.wait_for_request("/hang.mp4", count=attempt)
            for pid in child_pids():
                os.kill(pid, signal.SIGKILL)
        final = await bot.final_status(command)
        assert final.text.startswith("❌") and "killed by signal 9" in final.text, final.text
        [job] = await bot.running.store.recent_jobs(limit=1)
        assert not (bot.config.paths.jobs_dir / str(job.id)).exists()
        after = await bot.type(f".dl {site.url('/photo.jpg')}")
        assert (await bot.final_status(after)).text.startswith("✅")
    assert child_pids() == set()
