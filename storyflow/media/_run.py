"""Running ffmpeg from Trio: no shell, no stdin, its own session, killed when the caller cancels."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import attrs
import trio

from .._ffmpeg import ffmpeg_executable
from .._util import child_environment

# ffmpeg prints a file's whole tag set (lyrics included), and a broken file can make it log an error per
# packet; we keep this much and drain the rest, so a hostile file cannot make us buffer without bound.
STDERR_LIMIT_BYTES = 1 << 20


@attrs.frozen
class FfmpegRun:
    returncode: int
    stderr: bytes
    """The first ``STDERR_LIMIT_BYTES`` of what ffmpeg wrote to stderr."""

    def error_text(self) -> str:
        """The last lines of stderr, which name what went wrong."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:]) or f"ffmpeg exited {self.returncode}"


def ffmpeg_path_argument(path: str | os.PathLike[str]) -> str:
    """``path`` as an ffmpeg input or output name that cannot be read as an option or a protocol.

    An absolute path starts with ``/``: never ``-option``, and ffmpeg only looks for ``proto:`` before the
    first ``/``. (A ``file:`` prefix would do the same for inputs, but the segment muxer's pattern handling
    is easier to reason about without one.)
    """
    return str(Path(path).absolute())


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _kill_on_cancel(process: trio.Process) -> None:
    # ffmpeg holds nothing worth a graceful exit here: a half-written part or thumbnail is thrown away anyway.
    _kill_group(process.pid)


async def run_ffmpeg(args: Sequence[str], *, loglevel: str = "error") -> FfmpegRun:
    """Run ffmpeg with ``args`` to completion and return its exit status and (bounded) stderr.

    Raises ``storyflow._ffmpeg.FfmpegMissing`` when there is no ffmpeg at all: that is an installation
    problem, not a property of the file being looked at.
    """
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", loglevel, *args]
    env = child_environment()
    kept = bytearray()
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                check=False,
                deliver_cancel=_kill_on_cancel,
            )
        )
        assert process.stderr is not None
        async for chunk in process.stderr:
            kept += chunk[: max(0, STDERR_LIMIT_BYTES - len(kept))]
        await process.wait()
    assert process.returncode is not None
    return FfmpegRun(process.returncode, bytes(kept))
