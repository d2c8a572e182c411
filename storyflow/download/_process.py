"""Running one download tool: its own process group, live output, and nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import attrs
import trio

from .._util import child_environment

# How long a tool gets to exit after SIGTERM before the whole group gets SIGKILL.
TERMINATE_GRACE_SECONDS = 3.0
# A line longer than this is cut (a hostile page cannot make us buffer without bound).
MAX_LINE_BYTES = 64 * 1024
STDERR_TAIL_BYTES = 16 * 1024


@attrs.frozen
class ToolResult:
    returncode: int
    stderr_tail: str


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _terminate_group(process: trio.Process) -> None:
    """deliver_cancel for trio.run_process: TERM the group, then KILL whatever is still there."""
    _signal_group(process.pid, signal.SIGTERM)
    with trio.move_on_after(TERMINATE_GRACE_SECONDS):
        await process.wait()
    _signal_group(process.pid, signal.SIGKILL)


async def _read_lines(stream: trio.abc.ReceiveStream, on_line: Callable[[str], None]) -> None:
    """Split on both \\n and \\r (progress bars use \\r) and hand each line over as text."""
    pending = bytearray()
    async for chunk in stream:
        pending += chunk
        while True:
            cut = min((i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                break
            on_line(bytes(pending[:cut]).decode("utf-8", "replace"))
            del pending[: cut + 1]
        if len(pending) > MAX_LINE_BYTES:
            on_line(bytes(pending[:MAX_LINE_BYTES]).decode("utf-8", "replace"))
            pending.clear()
    if pending:
        on_line(bytes(pending).decode("utf-8", "replace"))


async def run_tool(
    command: Sequence[str],
    *,
    cwd: Path,
    on_stdout_line: Callable[[str], None],
    on_stderr_line: Callable[[str], None] = lambda line: None,
    on_started: Callable[[trio.Process], None] = lambda process: None,
    env: Mapping[str, str] | None = None,
) -> ToolResult:
    """Run ``command`` (never through a shell) in a new session; cancelling kills its whole process group.
    ``env`` adds to the cleaned environment every child gets."""
    stderr_tail = bytearray()

    def keep_stderr(line: str) -> None:
        stderr_tail.extend(line.encode() + b"\n")
        del stderr_tail[:-STDERR_TAIL_BYTES]
        on_stderr_line(line)

    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                list(command),
                cwd=cwd,
                # Both tools are Python: unbuffered, or their --print lines sit in a pipe until exit.
                env=child_environment(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", **(env or {})),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                check=False,
                deliver_cancel=_terminate_group,
            )
        )
        on_started(process)
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            nursery.start_soon(_read_lines, process.stdout, on_stdout_line)
            nursery.start_soon(_read_lines, process.stderr, keep_stderr)
            await process.wait()
        finally:
            # ffmpeg and friends may outlive the tool that started them.
            _signal_group(process.pid, signal.SIGKILL)
    assert process.returncode is not None
    return ToolResult(process.returncode, bytes(stderr_tail).decode("utf-8", "replace"))
