"""Live terminal progress for `storyflow get`: one bar per job, fed by engine events."""

from __future__ import annotations

import attrs
import trio
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from ..download import DownloadProgress, EngineEvent, FileReady, JobUpdated, Notice
from ..jobs import Job, JobState


class _ToolSpeedColumn(ProgressColumn):
    """The speed the download tool reports. Rich's own estimate would start over with every file of a job, whose
    bar goes back to zero for each."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{decimal(int(speed))}/s" if speed else "", style="progress.data.speed")


class _ToolEtaColumn(ProgressColumn):
    """The time left that the download tool reports, for the file it is on."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is None or task.finished:
            return Text("")
        minutes, seconds = divmod(int(eta), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}",
                    style="progress.remaining")


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
            _ToolSpeedColumn(),
            _ToolEtaColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        )

    def track(self, job: Job) -> None:
        label = job.urls[0] if len(job.urls[0]) <= 40 else job.urls[0][:39] + "…"
        self._tasks[job.id] = self.progress.add_task(
            "", total=None, label=f"#{job.id} {label}", status="queued", speed=None, eta=None
        )
        self._finished.setdefault(job.id, trio.Event())

    async def wait(self, job_id: int) -> Job:
        await self._finished.setdefault(job_id, trio.Event()).wait()
        return self.results[job_id]

    def __call__(self, event: EngineEvent) -> None:
        match event:
            case DownloadProgress(job_id=job_id) if job_id in self._tasks:
                status = f"file {event.files_done + 1}" + (f" {event.filename}" if event.filename else "")
                self.progress.update(
                    self._tasks[job_id], completed=event.downloaded, total=event.total, status=status[:40],
                    speed=event.speed, eta=event.eta,
                )
            case FileReady(file=file) if file.job_id in self._tasks:
                self.progress.console.print(f"  [green]✓[/] #{file.job_id} {file.name} ({file.size} bytes)")
            case Notice(job_id=job_id, text=text) if job_id in self._tasks:
                self.progress.console.print(f"  [yellow]![/] #{job_id} {text}")
            case JobUpdated(job=job) if job.id in self._tasks:
                self.progress.update(self._tasks[job.id], status=str(job.state), speed=None, eta=None)
                if job.state.finished:
                    self.results[job.id] = job
                    self._finished.setdefault(job.id, trio.Event()).set()
                    if job.state is JobState.DONE:
                        self.progress.update(self._tasks[job.id], total=1, completed=1)
            case _:
                pass
