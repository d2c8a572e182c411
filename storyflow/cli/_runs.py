"""A folder of its own for each `storyflow get`, so runs at the same time never see each other's jobs.

``<data dir>/cli-runs/run-XXXX/`` holds one run's job store and job folders and goes when the run ends. The run
holds an flock on its ``lock`` file for its whole life; a folder whose lock nobody holds belongs to a run that died
(kill -9, power loss), and the next run to start removes it. Start-ups take ``.start.lock`` in turn, so a sweeping
run never sees a new run's folder before that run holds its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

RUNS_DIR = "cli-runs"
_RUN_PREFIX = "run-"
_LOCK = "lock"
_START_LOCK = ".start.lock"


@attrs.frozen
class CliRun:
    folder: Path
    _lock_fd: int

    @property
    def database(self) -> Path:
        return self.folder / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.folder / "jobs"


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """Blocking: hold an exclusive flock on ``path`` for the block."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_if_dead(run_folder: Path) -> int | None:
    """The lock of a run that is gone, now ours; None while its run still holds it."""
    fd = _open_lock(run_folder / _LOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_dead_runs(runs_dir: Path) -> None:
    for entry in runs_dir.iterdir():
        if not entry.name.startswith(_RUN_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        fd = _lock_if_dead(entry)
        if fd is None:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(fd)


def _start(data_dir: Path) -> CliRun:
    """Blocking: remove what dead runs left, then make this run's folder and take its lock."""
    runs_dir = data_dir / RUNS_DIR
    runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _held(runs_dir / _START_LOCK):
        _remove_dead_runs(runs_dir)
        folder = Path(tempfile.mkdtemp(prefix=_RUN_PREFIX, dir=runs_dir))
        fd = _lock_if_dead(folder)
        assert fd is not None, "a folder made just now has no other holder"
    return CliRun(folder, fd)


def _end(run: CliRun) -> None:
    try:
        shutil.rmtree(run.folder, ignore_errors=True)
    finally:
        os.close(run._lock_fd)


@asynccontextmanager
async def open_cli_run(data_dir: Path) -> AsyncIterator[CliRun]:
    """This run's own folder for the block; removed at the end, whatever happens."""
    run = await trio.to_thread.run_sync(_start, data_dir)
    try:
        yield run
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_end, run)
