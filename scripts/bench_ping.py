"""`.ping` round trip with 20 jobs queued (3 downloading) against the same userbot idle, in one run.

    .venv/bin/python scripts/bench_ping.py [--pings 40] [--jobs 20]

Everything runs as a user would run it, each in its own process: the loopback Telegram, the media server (a slow
link, so downloads keep running and status messages keep moving), and `storyflow run`. This process is the
owner's phone: it types `.ping` and times how long until the answer arrives. Goal: p99 under load <= 50 ms.
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
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

from storyflow.testing._media import make_padded_video
from storyflow.testing._processes import start_media_process, start_telegram_process, storyflow_env


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


class Phone:
    """The owner's other device: sends messages, sees the userbot's answers as they arrive."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        self.answers: dict[int, trio.Event] = {}
        self.arrived: dict[int, float] = {}
        self.last_answer = ""
        client.add_event_handler(self._on_message, events.NewMessage(outgoing=True))

    async def _on_message(self, event: Any) -> None:
        reply_to = event.message.reply_to_msg_id
        if reply_to in self.answers and reply_to not in self.arrived:
            self.arrived[reply_to] = time.perf_counter()
            self.last_answer = event.message.message
            await trio_asyncio.trio_as_aio(self._wake)(reply_to)

    async def _wake(self, message_id: int) -> None:
        self.answers[message_id].set()

    async def send(self, text: str) -> int:
        sent = await trio_asyncio.aio_as_trio(self.client.send_message)("me", text)
        self.answers.setdefault(sent.id, trio.Event())
        return int(sent.id)

    async def ping(self) -> float | None:
        """Seconds from sending `.ping` to seeing the answer; None if none came within 10 s."""
        started = time.perf_counter()
        message_id = await self.send(".ping")
        with trio.move_on_after(10):
            await self.answers[message_id].wait()
            return self.arrived[message_id] - started
        return None


async def pings(phone: Phone, count: int) -> list[float]:
    """Round trips in ms; a ping with no answer within 10 s counts as infinitely slow, so it cannot flatter p99."""
    times = []
    for _ in range(count):
        took = await phone.ping()
        times.append(math.inf if took is None else took * 1000)
        await trio.sleep(0.1)
    return times


async def main(count: int, jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="storyflow-bench-") as temp:
        work = Path(temp)
        media = work / "media"
        media.mkdir()
        for index in range(jobs):
            make_padded_video(media / f"video{index:02d}.mp4", 4_000_000, variant=index % 5)
        async with trio.open_nursery() as nursery:
            telegram = await start_telegram_process(nursery)
            base_url = await start_media_process(nursery, media, rate=600_000)
            config = work / "storyflow.toml"
            config.write_text(
                f'[paths]\ndata_dir = "{work / "data"}"\n'
                f"[download]\nallow_private_addresses = true\nmax_concurrent = 3\nmax_jobs_per_owner = {jobs + 5}\n"
                f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\nsession_string = "{telegram.sessions["owner"]}"\n'
            )
            env = storyflow_env(config)
            userbot: trio.Process = await nursery.start(partial(
                trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=env, check=False,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            async with trio_asyncio.open_loop():
                TelegramClient._config = None
                client = TelegramClient(StringSession(telegram.sessions["owner"]), 1, "loopback-hash")
                await trio_asyncio.aio_as_trio(client.connect)()
                try:
                    phone = Phone(client)
                    with trio.fail_after(60):  # ready means it answers
                        while await phone.ping() is None:
                            pass
                    idle = await pings(phone, count)
                    for index in range(jobs):
                        await phone.send(f".dl {base_url}/video{index:02d}.mp4")
                    await trio.sleep(3)  # let the queue fill and the first downloads get going
                    loaded = await pings(phone, count)
                    under_load = phone.last_answer
                    await phone.send(".cancel all")
                finally:
                    with trio.CancelScope(shield=True):
                        await trio_asyncio.aio_as_trio(client.disconnect)()
            userbot.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                await userbot.wait()
            nursery.cancel_scope.cancel()

    def row(name: str, values: list[float]) -> str:
        return (f"{name:<28} p50 {statistics.median(values):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms"
                f"   ({sum(map(math.isfinite, values))} answered of {count})")

    print(".ping round trip, owner's phone → loopback Telegram → storyflow run → back")
    print(row("  idle", idle))
    print(row(f"  {jobs} jobs queued, 3 running", loaded))
    p99_idle, p99_loaded = percentile(idle, 0.99), percentile(loaded, 0.99)
    print(f"  p99 under load {p99_loaded:.1f} ms (goal <= 50 ms: {'ok' if p99_loaded <= 50 else 'OVER GOAL'}); "
          f"ratio load/idle p99 {p99_loaded / p99_idle:.2f}x")
    print(f"  the last .ping under load was answered: {under_load!r}")
    print(f"userbot exit status after SIGTERM: {userbot.returncode}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=20)
    arguments = parser.parse_args()
    trio.run(main, arguments.pings, arguments.jobs)
