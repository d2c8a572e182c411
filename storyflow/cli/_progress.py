"""Live terminal progress for `storyflow get`: one bar per job, fed by engine events."""

from __future__ import annotations

import attrs
import trio
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..download import DownloadProgress, EngineEvent, FileReady, JobUpdated, Notice
from ..jobs import Job, JobState


@attrs.define(eq=False)
class TerminalProgress:
    """Engine observer that draws bars and remembers when each job finishes."""

    console: Console
    progress: Progress = attrs.field(init=False)
    _tasks: dict[int, TaskID] = attrs.field(init=False, factory=dict)
    _finished: dict[int, trio.Event] = attrs.field(init=False, factory=dict)
    results: dict[int, Job] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[label]}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        )

    def track(self, job: Job) -> None:
        label = job.urls[0] if len(job.urls[0]) <= 40 else job.urls[0][:39] + "…"
        self._tasks[job.id] = self.progress.add_task("", total=None, label=f"#{job.id} {label}", status="queued")
        self._finished.setdefault(job.id, trio.Event())

    async def wait(self, job_id: int) -> Job:
        await self._finished.setdefault(job_id, trio.Event()).wait()
        return self.results[job_id]

    def __call__(self, event: EngineEvent) -> None:
        match event:
            case DownloadProgress(job_id=job_id) if job_id in self._tasks:
                status = f"file {event.files_done + 1}" + (f" {event.filename}" if event.filename else "")
                self.progress.update(
                    self._tasks[job_id], completed=event.downloaded, total=event.total, status=status[:40]
                )
            case FileReady(file=file) if file.job_id in self._tasks:
                self.progress.console.print(f"  [green]✓[/] #{file.job_id} {file.name} ({file.size} bytes)")
            case Notice(job_id=job_id, text=text) if job_id in self._tasks:
                self.progress.console.print(f"  [yellow]![/] #{job_id} {text}")
            case JobUpdated(job=job) if job.id in self._tasks:
                self.progress.update(self._tasks[job.id], status=str(job.state))
                if job.state.finished:
                    self.results[job.id] = job
                    self._finished.setdefault(job.id, trio.Event()).set()
                    if job.state is JobState.DONE:
                        self.progress.update(self._tasks[job.id], total=1, completed=1)
            case _:
                pass
