"""The CLI's delivery: finished files move from the job folder into the output folder.

A file appears in the output folder whole or not at all, and never in place of one already there: it takes the
first free name by a hard link, which fails rather than replace anything; from another disk it is first copied to
a hidden temporary in the output folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import trio

from .._errors import StoryFlowError
from ..download import DeliveryHandle
from ..jobs import JobFile

PARTIAL_SUFFIX = ".storyflow-partial"


def _candidates(folder: Path, name: str) -> Iterator[Path]:
    yield folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 1
    while True:
        yield folder / f"{stem} ({counter}){suffix}"
        counter += 1


def _claim_name(path: Path, folder: Path, name: str) -> Path:
    """Give the file at ``path`` the first free name of ``name``, ``name (1)``, … in ``folder``, then drop
    ``path``'s own name. Raises OSError EXDEV when ``path`` is on another disk."""
    for candidate in _candidates(folder, name):
        try:
            os.link(path, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # A disk without hard links (FAT, some network mounts): check, then rename. Only another program
            # creating this very name in between could lose its file.
            if candidate.exists():
                continue
            os.replace(path, candidate)
            return candidate
        path.unlink()
        return candidate
    raise AssertionError("unreachable")


def _place(source: Path, folder: Path, name: str) -> Path:
    """Blocking: move ``source`` into ``folder`` under a free name; on any error, nothing new is left there."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _claim_name(source, folder, name)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Another disk: copy to a hidden temporary first, so a full disk or a crash never leaves half a file named
    # like a finished one. The job folder's copy goes with the job folder.
    fd, temporary_name = tempfile.mkstemp(prefix=f".{name}.", suffix=PARTIAL_SUFFIX, dir=folder)
    os.close(fd)
    temporary = Path(temporary_name)
    try:
        shutil.copy2(source, temporary)
        return _claim_name(temporary, folder, name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@attrs.define(eq=False)
class FolderDelivery:
    """Moves each file into ``output_dir`` under its safe display name, never overwriting."""

    output_dir: Path
    placed: dict[int, list[Path]] = attrs.field(factory=dict)  # job id -> where its files went

    async def deliver(self, handle: DeliveryHandle) -> None:
        async for file in handle.files:
            await self._place(handle, file)

    async def _place(self, handle: DeliveryHandle, file: JobFile) -> None:
        try:
            destination = await trio.to_thread.run_sync(
                _place, handle.folder / file.path, self.output_dir, file.name
            )
        except OSError as exc:
            # The job fails with this (the folder is the same for every file): nothing is lost unannounced.
            raise StoryFlowError(
                f"cannot save {file.name} into {self.output_dir}: {exc.strerror or exc}",
                hint="check that the output folder exists, is a folder, is writable and has room",
            ) from exc
        self.placed.setdefault(file.job_id, []).append(destination)
        await handle.delivered(file)
