"""`storyflow run` as a user runs it: a real process on the loopback Telegram, stopped by signals."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_asyncio import aio_as_trio

from storyflow.testing._httpserver import MediaServer
from storyflow.testing._processes import storyflow_env
from storyflow.testing.telegram import LoopbackTelegram, open_client

from .conftest import MediaFiles, alive, descendants


def write_config(tmp_path: Path, server: LoopbackTelegram) -> Path:
    config = tmp_path / "storyflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        "[download]\nallow_private_addresses = true\n"
        f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\n'
        f'session_string = "{server.session_string(server.owner)}"\n'
    )
    config.chmod(0o600)
    return config


def run_env(config: Path) -> dict[str, str]:
    env = storyflow_env(config)
    return env


def job_states(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT state FROM jobs ORDER BY id")]


async def until_it_answers(telegram: LoopbackTelegram, phone: Any) -> None:
    """Ready means it answers: a .ping sent before it listens is never seen, so ask again until one is answered."""
    with trio.fail_after(60):
        while True:
            ping = await aio_as_trio(phone.send_message)("me", ".ping")
            with trio.move_on_after(1):
                await telegram.wait_for_message(lambda m, ping_id=ping.id: m.reply_to == ping_id)
                return


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_run_within_seconds_and_the_job_resumes(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles, signum: int
) -> None:
    config = write_config(tmp_path, telegram)
    output = tmp_path / "run.log"
    async with open_client(telegram, telegram.owner, new_device=True) as phone:
        with output.open("wb") as log:
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(partial(
                    trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=run_env(config),
                    stdout=log, stderr=subprocess.STDOUT, check=False, start_new_session=True,
                ))
                await until_it_answers(telegram, phone)
                command = await aio_as_trio(phone.send_message)("me", f".dl {site.url('/hang.mp4')}")
                await site.wait_for_request("/hang.mp4")
                tools = descendants(process.pid)
                assert tools
                process.send_signal(signum)
                with trio.fail_after(5):
                    await process.wait()
        assert process.returncode == 0, output.read_text()
        assert alive(tools) == set()
        database = tmp_path / "data" / "storyflow.sqlite3"
        assert job_states(database) == ["downloading"]  # persisted, to resume

        # The link works now; a new run picks the job up and finishes it in the same chat.
        site.add_file("/hang.mp4", media.video)
        async with trio.open_nursery() as nursery:
            process = await nursery.start(partial(
                trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=run_env(config),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, start_new_session=True,
            ))
            with trio.fail_after(60):
                posted = await telegram.wait_for_message(lambda m: m.reply_to == command.id and m.media is not None)
                await telegram.wait_for_message(lambda m: m.reply_to == command.id and m.text.startswith("✅"))
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(5):
                await process.wait()
        assert posted.media is not None
        assert job_states(database) == ["done"]


async def test_sigterm_stops_run_even_when_telegram_is_gone(tmp_path: Path) -> None:
    from storyflow.testing.telegram import open_loopback_telegram

    output = tmp_path / "run.log"
    with output.open("wb") as log:
        async with trio.open_nursery() as nursery:
            async with open_loopback_telegram() as telegram:
                config = write_config(tmp_path, telegram)
                process: trio.Process = await nursery.start(partial(
                    trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=run_env(config),
                    stdout=log, stderr=subprocess.STDOUT, check=False, start_new_session=True,
                ))
                async with open_client(telegram, telegram.owner, new_device=True) as phone:
                    await until_it_answers(telegram, phone)
            # The server is gone: Telethon is reconnecting for as long as it takes.
            await trio.sleep(3)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(5):
                await process.wait()
    assert process.returncode == 0, output.read_text()[-2000:]
