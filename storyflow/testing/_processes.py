"""The loopback servers as separate processes, for benchmarks and soak runs (so serving never loads the process
being measured). Trio-flavoured; each returns once the server is listening."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import attrs
import trio


def storyflow_env(config: Path, **extra: str) -> dict[str, str]:
    """The environment of a `storyflow` process run by a test or a benchmark: this one's, without STORYFLOW_*
    variables (a developer's own settings must not leak in), reading ``config``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STORYFLOW_")}
    env.update(STORYFLOW_CONFIG=str(config), **extra)
    return env


def live_processes() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, process group)} of every live (non-zombie) process, read from /proc (blocking, quick)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone between listing and reading
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (children, grandchildren, …)."""
    table = live_processes()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Which of ``pids`` still run (zombies do not count)."""
    return pids & set(live_processes())


@attrs.frozen
class TelegramProcess:
    process: trio.Process
    port: int
    sessions: dict[str, str] = attrs.field(repr=False)  # account name -> StringSession
    rsa_key: str = attrs.field(repr=False)


async def start_telegram_process(nursery: trio.Nursery, *arguments: str) -> TelegramProcess:
    """``python -m storyflow.testing.telegram`` with ``arguments``; returns when its accounts are printed."""
    process: trio.Process = await nursery.start(partial(
        trio.run_process, [sys.executable, "-m", "storyflow.testing.telegram", *arguments],
        stdout=subprocess.PIPE, check=False,
    ))
    assert process.stdout is not None
    values: dict[str, str] = {}
    buffer = b""
    # The accounts come last: owner, friend, stranger (each with a .phone line after it).
    while "stranger.phone" not in values:
        chunk = await process.stdout.receive_some(4096)
        if not chunk:
            raise RuntimeError("the loopback Telegram process ended before it was ready")
        buffer += chunk
        *complete, buffer_rest = buffer.split(b"\n")
        buffer = buffer_rest
        for line in complete:
            key, _, value = line.decode().partition("=")
            values[key] = value
    nursery.start_soon(_drain, process.stdout)
    sessions = {k: v for k, v in values.items() if "." not in k and k not in ("port", "rsa_key", "login_code")}
    return TelegramProcess(process, int(values["port"]), sessions, values["rsa_key"])


async def start_media_process(nursery: trio.Nursery, directory: Path, *, rate: float | None = None) -> str:
    """``python -m storyflow.testing._httpserver --dir DIR``; returns its base URL."""
    command: Sequence[str] = [sys.executable, "-m", "storyflow.testing._httpserver", "--dir", str(directory)]
    if rate is not None:
        command = [*command, "--rate", str(rate)]
    process: trio.Process = await nursery.start(partial(
        trio.run_process, list(command), stdout=subprocess.PIPE, check=False,
    ))
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await process.stdout.receive_some(1)
        if not chunk:
            raise RuntimeError("the media server process ended before it was ready")
        line += chunk
    nursery.start_soon(_drain, process.stdout)
    return line.decode().strip().rstrip("/")


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    async for _ in stream:
        pass
