"""Delivery time with uploads overlapping downloads, against doing one after the other, in one run.

    .venv/bin/python scripts/bench_stream.py [--rate-mb 10] [--video-mb 200] [--items 30] [--item-mb 4]

The media server serves at ``--rate-mb`` MB/s (all responses together) and the loopback Telegram's link is limited
to the same rate, each in its own process; `storyflow run` is a process too, driven by `.dl` typed on the owner's
phone (this process), as a user types it (videos are probed and get thumbnails). Delivered time runs from sending
`.dl` until the last media message answering it arrives.

1. One ``--video-mb`` video: `storyflow run` with streamed uploads against the same with ``stream_uploads = false``
   (download, then upload). Goal: <= 0.6x.
2. A gallery of ``--items`` videos of ``--item-mb`` MB on one page (one link, as a post with many items is; yt-dlp
   takes it as a playlist): delivered time against the sum of downloading them all (the same engine in this
   process, routing warmed up, no Telegram) and uploading them all (StoryFlow's uploader, no download), under the
   same limits.
   Goal: <= 0.6x.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from telethon import TelegramClient, events
from telethon.sessions import StringSession

from storyflow.config import DownloadConfig
from storyflow.download import open_engine, route
from storyflow.jobs import JobState, open_store
from storyflow.testing._engine import MarkDelivered, run_jobs
from storyflow.testing._media import make_padded_video
from storyflow.testing._processes import start_media_process, start_telegram_process, storyflow_env


def config_text(work: Path, session: str, *, streaming: bool, items: int) -> str:
    return (
        f'[paths]\ndata_dir = "{work / "data"}"\n'
        f"[download]\nallow_private_addresses = true\nmax_urls_per_message = {items}\nmax_items = {items + 10}\n"
        f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\nsession_string = "{session}"\n'
        f"stream_uploads = {'true' if streaming else 'false'}\n"
    )


def env_for(config: Path) -> dict[str, str]:
    env = storyflow_env(config)
    return env


class Phone:
    """The owner's phone: types a command, notices when the status message answering it says done."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        self.finished: dict[int, trio.Event] = {}
        self.texts: dict[int, str] = {}
        self.last_media: dict[int, float] = {}  # when the last media message answering a command arrived
        client.add_event_handler(self._on_status, events.MessageEdited(outgoing=True))
        client.add_event_handler(self._on_status, events.NewMessage(outgoing=True))

    async def _on_status(self, event: Any) -> None:
        reply_to = event.message.reply_to_msg_id
        text = event.message.message or ""
        if reply_to in self.finished and event.message.media is not None:
            self.last_media[reply_to] = time.perf_counter()
        if reply_to in self.finished and (text[:1] in "✅❌🚫" or text.startswith("🏓")):
            self.texts[reply_to] = text
            await trio_asyncio.trio_as_aio(self._set)(reply_to)

    async def _set(self, message_id: int) -> None:
        self.finished[message_id].set()

    async def deliver(self, text: str) -> tuple[float, str]:
        """Seconds from sending ``text`` until the last media message answering it arrived; the final status."""
        started = time.perf_counter()
        sent = await trio_asyncio.aio_as_trio(self.client.send_message)("me", text)
        self.finished.setdefault(sent.id, trio.Event())
        await self.finished[sent.id].wait()
        return self.last_media.get(sent.id, time.perf_counter()) - started, self.texts[sent.id]


async def delivered_time(work: Path, telegram_session: str, command: str, *, streaming: bool, items: int) -> float:
    """Start `storyflow run`, type ``command``, return the seconds until its status says done."""
    run_dir = work / ("streaming" if streaming else "sequential") / str(time.monotonic_ns())
    run_dir.mkdir(parents=True)
    config = run_dir / "storyflow.toml"
    config.write_text(config_text(run_dir, telegram_session, streaming=streaming, items=items))
    async with trio.open_nursery() as nursery:
        userbot: trio.Process = await nursery.start(partial(
            trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=env_for(config), check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        async with trio_asyncio.open_loop():
            TelegramClient._config = None
            client = TelegramClient(StringSession(telegram_session), 1, "loopback-hash")
            await trio_asyncio.aio_as_trio(client.connect)()
            try:
                phone = Phone(client)
                with trio.fail_after(60):  # ready means it answers
                    while True:
                        sent = await trio_asyncio.aio_as_trio(client.send_message)("me", ".ping")
                        phone.finished[sent.id] = trio.Event()
                        with trio.move_on_after(1):
                            await phone.finished[sent.id].wait()
                            break
                with trio.fail_after(900):
                    took, text = await phone.deliver(command)
                if not text.startswith("✅"):
                    raise SystemExit(f"the job did not succeed: {text}")
            finally:
                with trio.CancelScope(shield=True):
                    await trio_asyncio.aio_as_trio(client.disconnect)()
        userbot.send_signal(signal.SIGTERM)
        await userbot.wait()
    return took


async def download_alone(work: Path, urls: list[str]) -> float:
    """The same downloads through the same engine in this process (routing warmed up first, as in a running
    userbot), timed from submitting until every job ended; interpreter start-up is not counted."""
    settings = DownloadConfig(allow_private_addresses=True, max_concurrent=1, max_jobs_per_owner=len(urls),
                              max_items=1000)
    async with open_store(work / "alone.sqlite3") as store, open_engine(
        store, settings, jobs_dir=work / "alone-jobs", delivery=MarkDelivered()
    ) as engine:
        await trio.to_thread.run_sync(route, urls[0])
        started = time.perf_counter()
        states = await run_jobs(engine, urls)
        took = time.perf_counter() - started
    if any(state is not JobState.DONE for state in states.values()):
        raise SystemExit(f"the downloads alone did not all succeed: {states}")
    return took


async def upload_alone(session: str, files: list[Path]) -> float:
    from storyflow.telegram import PartsInFlight, upload_file
    from storyflow.telegram._gateway import GatewaySettings, open_gateway

    async with open_gateway(GatewaySettings(1, "loopback-hash", session)) as gateway:
        in_flight = PartsInFlight(8)
        started = time.perf_counter()
        for path in files:
            await upload_file(gateway, path, name=path.name, in_flight=in_flight)
        return time.perf_counter() - started


async def main(rate_mb: float, video_mb: float, items: int, item_mb: float) -> None:
    rate = rate_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="storyflow-bench-") as temp:
        work = Path(temp)
        media = work / "media"
        media.mkdir()
        make_padded_video(media / "big.mp4", int(video_mb * 1_000_000))
        gallery = [make_padded_video(media / f"item{i:02d}.mp4", int(item_mb * 1_000_000), variant=i % 5)
                   for i in range(items)]
        async with trio.open_nursery() as nursery:
            telegram = await start_telegram_process(nursery, "--keep-file-bytes", "0", "--bandwidth", str(rate))
            base = await start_media_process(nursery, media, rate=rate)
            session = telegram.sessions["owner"]
            print(f"link: {rate_mb:g} MB/s for downloads (media server) and for Telegram (loopback server)")

            video_command = f".dl {base}/big.mp4"  # as a user types it: a video, probed, with a thumbnail
            streamed = await delivered_time(work, session, video_command, streaming=True, items=items)
            sequential = await delivered_time(work, session, video_command, streaming=False, items=items)
            print(f"\n1. one {video_mb:g} MB video")
            print(f"   download, then upload      {sequential:7.1f} s")
            print(f"   upload following download  {streamed:7.1f} s")
            print(f"   ratio {streamed / sequential:.2f}x (goal <= 0.6x)")

            (media / "gallery.html").write_text("<html><body>" + "".join(
                f'<video><source src="{base}/{path.name}" type="video/mp4"></video>' for path in gallery
            ) + "</body></html>")
            page = f"{base}/gallery.html"
            together = await delivered_time(work, session, f".dl {page}", streaming=True, items=items)
            downloads = await download_alone(work, [page])
            uploads = await upload_alone(session, gallery)
            print(f"\n2. a gallery of {items} files of {item_mb:g} MB")
            print(f"   all downloads alone {downloads:6.1f} s + all uploads alone {uploads:6.1f} s"
                  f" = {downloads + uploads:6.1f} s")
            print(f"   delivered by StoryFlow     {together:6.1f} s")
            print(f"   ratio {together / (downloads + uploads):.2f}x (goal <= 0.6x)")
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate-mb", type=float, default=10.0)
    parser.add_argument("--video-mb", type=float, default=200.0)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--item-mb", type=float, default=4.0)
    arguments = parser.parse_args()
    trio.run(main, arguments.rate_mb, arguments.video_mb, arguments.items, arguments.item_mb)
