"""SIGINT and SIGTERM during heavy load, over and over: `storyflow run` must exit within 5 s every time, kill its
download tools, and keep its queue intact for the next start.

    .venv/bin/python scripts/shutdown_soak.py [--rounds 20] [--jobs 12]

The loopback Telegram (with a slow link, so uploads are in flight) and the media server (slow, so downloads are
running) run in their own processes. The owner's phone (this process) queues ``--jobs`` jobs once; then each round
starts `storyflow run`, waits until it answers `.ping` and its downloads are moving again, sends SIGINT or SIGTERM
(alternating), and measures how long the process takes to exit. After each exit the job database must hold every
job, each either still waiting to resume or done — none failed, cancelled or lost — and no download tool may be
left alive.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
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
from storyflow.testing._processes import alive, descendants, start_media_process, start_telegram_process, storyflow_env

EXIT_GOAL_SECONDS = 5.0


def job_states(database: Path) -> dict[int, str]:
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT id, state FROM jobs ORDER BY id").fetchall())


async def until_tools_run(pid: int) -> None:
    """Another process's children can only be polled for."""
    while True:
        if descendants(pid):
            return
        await trio.sleep(0.1)


class Answers:
    """Which of the phone's messages have been answered (the userbot's replies arrive as outgoing messages)."""

    def __init__(self, client: TelegramClient) -> None:
        self.answered: set[int] = set()
        self.changed = trio.Event()
        client.add_event_handler(self._on_message, events.NewMessage(outgoing=True))

    async def _on_message(self, event: Any) -> None:
        if event.message.reply_to_msg_id is not None:
            await trio_asyncio.trio_as_aio(self._note)(event.message.reply_to_msg_id)

    async def _note(self, message_id: int) -> None:
        self.answered.add(message_id)
        self.changed.set()
        self.changed = trio.Event()


async def answered_ping(client: TelegramClient, answers: Answers) -> None:
    """Ready means it answers; a .ping sent before it listens is never seen, so ask until one is answered."""
    with trio.fail_after(60):
        while True:
            sent = await trio_asyncio.aio_as_trio(client.send_message)("me", ".ping")
            with trio.move_on_after(1):
                while sent.id not in answers.answered:
                    await answers.changed.wait()
                return


async def main(rounds: int, jobs: int) -> int:
    with tempfile.TemporaryDirectory(prefix="storyflow-shutdown-") as temp:
        work = Path(temp)
        media = work / "media"
        media.mkdir()
        for index in range(jobs):
            make_padded_video(media / f"video{index:02d}.mp4", 30_000_000, variant=index % 5)
        failures: list[str] = []
        exit_times: list[float] = []
        async with trio.open_nursery() as nursery:
            telegram = await start_telegram_process(nursery, "--keep-file-bytes", "0", "--bandwidth", "2000000")
            base = await start_media_process(nursery, media, rate=3_000_000)
            session = telegram.sessions["owner"]
            config = work / "storyflow.toml"
            config.write_text(
                f'[paths]\ndata_dir = "{work / "data"}"\n'
                f"[download]\nallow_private_addresses = true\nmax_jobs_per_owner = {jobs + 5}\n"
                f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\nsession_string = "{session}"\n'
            )
            env = storyflow_env(config)
            database = work / "data" / "storyflow.sqlite3"
            async with trio_asyncio.open_loop():
                TelegramClient._config = None
                phone = TelegramClient(StringSession(session), 1, "loopback-hash")
                await trio_asyncio.aio_as_trio(phone.connect)()
                answers = Answers(phone)
                try:
                    for number in range(1, rounds + 1):
                        signum = signal.SIGINT if number % 2 else signal.SIGTERM
                        async with trio.open_nursery() as run_nursery:
                            process: trio.Process = await run_nursery.start(partial(
                                trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=env, check=False,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            ))
                            await answered_ping(phone, answers)
                            if number == 1:
                                for index in range(jobs):
                                    await trio_asyncio.aio_as_trio(phone.send_message)(
                                        "me", f".dl {base}/video{index:02d}.mp4"
                                    )
                            # Under load: let the resumed downloads and uploads get going again.
                            with trio.fail_after(60):
                                await until_tools_run(process.pid)
                            await trio.sleep(1.5 + number % 4)  # some rounds long enough for uploads
                            tools = descendants(process.pid)
                            before = job_states(database)
                            started = time.perf_counter()
                            process.send_signal(signum)
                            with trio.move_on_after(30):
                                await process.wait()
                            took = time.perf_counter() - started
                            if process.returncode is None:
                                os.killpg(process.pid, signal.SIGKILL)
                                await process.wait()
                        exit_times.append(took)
                        after = job_states(database)
                        left = alive(tools)
                        lost = [j for j in before if j not in after]
                        bad = {j: s for j, s in after.items() if s in ("failed", "cancelled")}
                        verdict = "ok"
                        if took > EXIT_GOAL_SECONDS or process.returncode != 0 or left or lost or bad:
                            verdict = "FAILED"
                            failures.append(f"round {number}: exit {process.returncode} after {took:.2f} s,"
                                            f" tools alive {sorted(left)}, lost {lost}, failed/cancelled {bad}")
                        unfinished = sum(1 for s in after.values() if s in ("queued", "downloading", "delivering"))
                        print(f"round {number:2d} {signal.Signals(signum).name:7s} exit {process.returncode} in"
                              f" {took:5.2f} s · {len(tools)} tools stopped · jobs {len(after)} "
                              f"({unfinished} to resume, {sum(1 for s in after.values() if s == 'done')} done)"
                              f" · {verdict}", flush=True)
                finally:
                    with trio.CancelScope(shield=True):
                        await trio_asyncio.aio_as_trio(phone.disconnect)()
            nursery.cancel_scope.cancel()
    print(f"\nexit times: max {max(exit_times):.2f} s, mean {sum(exit_times) / len(exit_times):.2f} s "
          f"(goal <= {EXIT_GOAL_SECONDS:g} s each)")
    for line in failures:
        print(line)
    print("verdict:", "ok" if not failures else "FAILED")
    return 0 if not failures else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=12)
    arguments = parser.parse_args()
    raise SystemExit(trio.run(main, arguments.rounds, arguments.jobs))
