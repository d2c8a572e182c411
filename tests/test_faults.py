"""Faults a months-long run meets: flood limits everywhere, dropped connections, tools that crash, a full disk,
kill -9 in the middle of a job — against the loopback Telegram and the local media server."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio
from trio_asyncio import aio_as_trio

from storyflow.testing._httpserver import MediaServer, generated_sha256
from storyflow.testing._processes import storyflow_env
from storyflow.testing.telegram import LoopbackTelegram, open_client

from .conftest import MediaFiles, child_pids, running_userbot, userbot_config
from .test_run import until_it_answers


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


async def test_a_status_message_whose_answer_was_lost_is_found_again(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    """Telegram posts the status message, the link dies before its answer arrives, and Telethon sends the same
    request again after reconnecting: RANDOM_ID_DUPLICATE. The job still runs, on the message that exists."""
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        await bot.answer(await bot.type(".ping"))
        # The first sendMessage is the phone's `.dl`; the second is the userbot's status message.
        telegram.lose_answers("messages.sendMessage", after=1)
        command = await bot.type(f".dl {site.url('/photo.jpg')}")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        assert telegram.faults.connections_dropped == 1
        [photo] = bot.media_replies(command)
        texts = [m for m in telegram.all_messages() if m.reply_to == command and m.media is None]
    assert texts == [status]  # one status message, moved to its end: none lost, none doubled
    assert photo.media is not None and photo.media.sha256 == hashlib.sha256(media.image.read_bytes()).hexdigest()


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


def run_config(tmp_path: Path, telegram: LoopbackTelegram) -> Path:
    config = tmp_path / "storyflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        "[download]\nallow_private_addresses = true\n"
        '[telegram]\napi_id = 1\napi_hash = "loopback-hash"\n'
        f'session_string = "{telegram.session_string(telegram.owner)}"\n'
        "stream_uploads = false\n"
    )
    return config


@asynccontextmanager
async def storyflow_run(config: Path, log: Path) -> AsyncIterator[trio.Process]:
    env = storyflow_env(config)
    async with trio.open_nursery() as nursery:
        with log.open("ab") as output:
            process: trio.Process = await nursery.start(partial(
                trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=env, stdout=output,
                stderr=subprocess.STDOUT, check=False, start_new_session=True,
            ))
            try:
                yield process
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


async def test_kill_9_during_a_download_and_during_a_send_still_delivers_each_file_once(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    config, log = run_config(tmp_path, telegram), tmp_path / "run.log"
    site.add_generated("/first.pdf", 40_000, content_type="application/pdf")
    site.add_hang("/second.bin")
    site.add_file("/third.jpg", media.image)
    async with open_client(telegram, telegram.owner, new_device=True) as phone:

        def media_for(command_id: int) -> list[str]:
            return [m.media.sha256 for m in telegram.all_messages() if m.reply_to == command_id and m.media]

        async with storyflow_run(config, log) as process:
            await until_it_answers(telegram, phone)
            command = await aio_as_trio(phone.send_message)(
                "me", f".dl {site.url('/first.pdf')} {site.url('/second.bin')} {site.url('/third.jpg')}"
            )
            with trio.fail_after(60):
                await telegram.wait_until(lambda: media_for(command.id) or None)  # the document went out at once
                await site.wait_for_request("/second.bin")
            os.killpg(process.pid, signal.SIGKILL)  # 1: in the middle of a download
        assert media_for(command.id) == [generated_sha256(40_000)]

        site.add_generated("/second.bin", 3_000_000, content_type="application/octet-stream")
        async with storyflow_run(config, log) as process:
            with trio.fail_after(60):
                # 2: the moment Telegram has the second file, before StoryFlow can write down that it was sent.
                await telegram.wait_until(lambda: len(media_for(command.id)) == 2 or None)
            os.killpg(process.pid, signal.SIGKILL)

        async with storyflow_run(config, log) as process:
            with trio.fail_after(60):
                status = await telegram.wait_for_message(
                    lambda m: m.reply_to == command.id and m.media is None and m.text.startswith(("✅", "❌"))
                )
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(5):
                await process.wait()
    assert status.text.startswith("✅"), (status.text, log.read_text()[-3000:])
    delivered = media_for(command.id)
    assert sorted(delivered) == sorted([generated_sha256(40_000), generated_sha256(3_000_000), sha256(media.image)])
    assert len(delivered) == len(set(delivered)) == 3  # each exactly once
