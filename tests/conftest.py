"""Fixtures shared by the suite: generated media, the loopback media server, a store, an engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from trio_asyncio import aio_as_trio

from storyflow.bot import Running, run_userbot
from storyflow.config import CommandsConfig, Config, DownloadConfig, PathsConfig, StoriesConfig, TelegramConfig
from storyflow.download import DeliveryHandle, Engine, EngineEvent, open_engine
from storyflow.jobs import JobFile, JobStore, open_store
from storyflow.testing._httpserver import MediaServer, open_media_server
from storyflow.testing._media import make_audio, make_image, make_video, video_page_html
from storyflow.testing._processes import alive as alive
from storyflow.testing._processes import descendants as descendants
from storyflow.testing._processes import live_processes
from storyflow.testing.telegram import LoopbackTelegram, MessageRecord, open_client, open_loopback_telegram

# No test may touch the user's real config or data.
os.environ.pop("STORYFLOW_CONFIG", None)


@attrs.frozen
class MediaFiles:
    video: Path
    video2: Path
    image: Path
    png: Path
    audio: Path
    images: tuple[Path, ...]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFiles:
    folder = tmp_path_factory.mktemp("media")
    return MediaFiles(
        video=make_video(folder / "clip.mp4", seconds=1.0),
        video2=make_video(folder / "clip2.mp4", seconds=2.0, variant=1),
        image=make_image(folder / "photo.jpg"),
        png=make_image(folder / "picture.png", fmt="png", variant=1),
        audio=make_audio(folder / "song.mp3", seconds=1.0, title="Song", artist="Band"),
        images=tuple(make_image(folder / f"gallery{i:02d}.jpg", variant=i) for i in range(12)),
    )


@pytest.fixture
async def media_server() -> AsyncIterator[MediaServer]:
    async with open_media_server() as server:
        yield server


@pytest.fixture
def site(media_server: MediaServer, media: MediaFiles) -> MediaServer:
    """The media server with the standard routes every engine test uses."""
    server = media_server
    server.add_file("/clip.mp4", media.video)
    server.add_file("/clip2.mp4", media.video2)
    server.add_file("/photo.jpg", media.image)
    server.add_file("/picture.png", media.png)
    server.add_file("/song.mp3", media.audio)
    server.add_file("/media/video.mp4", media.video)
    server.add_html("/watch/video-page.html", video_page_html(server.url("/media/video.mp4"), title="A page"))
    server.add_status("/missing.mp4", 404)
    server.add_status("/gone", 404)
    server.add_status("/private.mp4", 403)
    server.add_status("/busy.mp4", 429)
    server.add_slow("/slow.mp4", media.video2, bytes_per_second=20_000)
    server.add_hang("/hang.mp4")
    server.add_redirect("/redirect.mp4", server.url("/clip.mp4"))
    return server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    async with open_store(tmp_path / "jobs.sqlite3") as opened:
        yield opened


@attrs.define(eq=False)
class CollectingDelivery:
    """A delivery that keeps what it got, in order, and can be held closed to test overlap."""

    received: list[JobFile] = attrs.field(factory=list)
    bytes_seen: dict[str, bytes] = attrs.field(factory=dict)
    gate: trio.Event | None = None

    async def deliver(self, handle: DeliveryHandle) -> None:
        async for file in handle.files:
            if self.gate is not None:
                await self.gate.wait()
            path = handle.folder / file.path
            self.bytes_seen[file.name] = await trio.Path(path).read_bytes()
            self.received.append(file)
            await handle.delivered(file)


def engine_settings(**overrides: object) -> DownloadConfig:
    base = DownloadConfig(allow_private_addresses=True, job_timeout=60.0)
    return attrs.evolve(base, **overrides)  # type: ignore[arg-type]


@attrs.define(eq=False)
class EngineRig:
    engine: Engine
    delivery: CollectingDelivery
    events: list[EngineEvent]
    jobs_dir: Path


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
async def rig(store: JobStore, jobs_dir: Path) -> AsyncIterator[EngineRig]:
    delivery = CollectingDelivery()
    events: list[EngineEvent] = []
    async with open_engine(store, engine_settings(), jobs_dir=jobs_dir, delivery=delivery) as engine:
        engine.subscribe(events.append)
        yield EngineRig(engine, delivery, events, jobs_dir)


def child_pids() -> set[int]:
    """Live processes whose parent is this test process."""
    me = os.getpid()
    return {pid for pid, (parent, _) in live_processes().items() if parent == me}


def processes_in_group(pgid: int) -> set[int]:
    return {pid for pid, (_, group) in live_processes().items() if group == pgid}


# -- the userbot against the loopback Telegram --------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[LoopbackTelegram]:
    async with open_loopback_telegram() as server:
        yield server
        assert server.internal_errors == []


def userbot_config(tmp_path: Path, server: LoopbackTelegram, **sections: object) -> Config:
    """What a user's storyflow.toml would say to run against the loopback server."""
    download = attrs.evolve(engine_settings(), **sections.pop("download", {}))  # type: ignore[arg-type]
    telegram = TelegramConfig(
        api_id=1, api_hash="loopback-hash", session_string=server.session_string(server.owner),
        **sections.pop("telegram", {}),  # type: ignore[arg-type]
    )
    commands = CommandsConfig(**sections.pop("commands", {}))  # type: ignore[arg-type]
    stories = StoriesConfig(**sections.pop("stories", {}))  # type: ignore[arg-type]
    assert not sections, sections
    return Config(download=download, paths=PathsConfig(data_dir=tmp_path / "data"), telegram=telegram,
                  commands=commands, stories=stories)


@attrs.define(eq=False)
class BotRig:
    """A running userbot, and the owner's phone (another device of the same account) to type commands on."""

    server: LoopbackTelegram
    running: Running
    phone: Any  # telethon.TelegramClient
    config: Config

    async def type(self, text: str, chat: Any = "me") -> int:
        """The owner types ``text`` in ``chat`` (default Saved Messages); returns the message id."""
        sent = await aio_as_trio(self.phone.send_message)(chat, text)
        return int(sent.id)

    async def answer(self, command_id: int, predicate: Any = None, *, seconds: float = 60) -> MessageRecord:
        """The first message replying to ``command_id`` that matches ``predicate``."""
        with trio.fail_after(seconds):
            return await self.server.wait_for_message(
                lambda m: m.reply_to == command_id and (predicate is None or predicate(m))
            )

    async def final_status(self, command_id: int, *, seconds: float = 60) -> MessageRecord:
        """The command's status message once it shows an end state (done, failed, cancelled)."""
        return await self.answer(command_id, lambda m: m.media is None and m.text[:1] in "✅❌🚫♻", seconds=seconds)

    def media_replies(self, command_id: int) -> list[MessageRecord]:
        return [m for m in self.server.all_messages() if m.reply_to == command_id and m.media is not None]


@asynccontextmanager
async def running_userbot(server: LoopbackTelegram, config: Config) -> AsyncIterator[BotRig]:
    async with trio.open_nursery() as nursery, open_client(server, server.owner, new_device=True) as phone:
        running = await nursery.start(partial(run_userbot, config))
        try:
            yield BotRig(server, running, phone, config)
        finally:
            nursery.cancel_scope.cancel()


@pytest.fixture
async def bot(telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer) -> AsyncIterator[BotRig]:
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as rig:
        yield rig
