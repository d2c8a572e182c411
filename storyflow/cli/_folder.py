"""The CLI's delivery: finished files move from the job folder into the output folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import trio

from .._errors import StoryFlowError
from ..download import DeliveryHandle
from ..jobs import JobFile


def _unique_destination(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 1
    while candidate.exists():
        candidate = folder / f"{stem} ({counter}){suffix}"
        counter += 1
    return candidate


def _move(source: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    destination = _unique_destination(folder, name)
    shutil.move(source, destination)
    return destination


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
                _move, handle.folder / file.path, self.output_dir, file.name
            )
        except OSError as exc:
            await handle.failed(file, StoryFlowError(f"cannot write to {self.output_dir}: {exc.strerror}"))
            return
        self.placed.setdefault(file.job_id, []).append(destination)
        await handle.delivered(file)
