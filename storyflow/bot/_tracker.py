"""What each job's status message says, kept up to date from the engine's and the delivery's events."""

from __future__ import annotations

import time

import attrs

from ..download import DownloadProgress, EngineEvent, FileReady, JobUpdated, Notice, QueueMoved
from ..jobs import Job, JobState
from ..telegram import DeliveryEvent, FilesSent, StatusBoard, UploadProgress
from ..telegram._text import cut, escape, fit_lines


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@attrs.define(eq=False)
class JobView:
    job: Job
    position: int | None = None
    download: DownloadProgress | None = None
    upload: UploadProgress | None = None
    files_found: int = 0
    files_sent: int = 0
    notices: list[str] = attrs.field(factory=list)
    started: float = attrs.field(factory=time.monotonic)
    from_cache: bool = False

    def render(self) -> str:
        job = self.job
        head = f"<b>#{job.id}</b>"
        lines: list[str]
        match job.state:
            case JobState.QUEUED:
                where = f" · position {self.position}" if self.position else ""
                lines = [f"⏳ {head} queued{where}"]
            case JobState.DOWNLOADING | JobState.DELIVERING:
                lines = [f"⬇️ {head} {self._download_line()}"]
                if self.upload is not None or self.files_sent:
                    lines.append(f"⬆️ {self._upload_line()}")
            case JobState.DONE:
                lines = [f"✅ {head} done · {self._sent_summary()} in {human_seconds(time.monotonic() - self.started)}"]
                if job.error:
                    lines.append(f"⚠️ {escape(job.error)}")
            case JobState.FAILED if job.options.story and job.error_kind == "no_media":
                lines = [f"📭 {head} no active stories there"]
            case JobState.FAILED:
                lines = [f"❌ {head} failed: {escape(job.error or 'unknown error')}"]
                if self.files_sent:
                    lines.append(self._sent_summary())
            case JobState.CANCELLED:
                lines = [f"🚫 {head} cancelled" + (f" · {self._sent_summary()}" if self.files_sent else "")]
        lines += [f"ℹ️ {escape(cut(text, 300))}" for text in self.notices]
        return fit_lines(lines)

    def _download_line(self) -> str:
        if self.job.state is JobState.DELIVERING:
            return f"downloaded {self.files_found} file{'s' if self.files_found != 1 else ''}"
        progress = self.download
        if progress is None:
            return "starting…"
        parts = ["downloading"]
        if progress.url_count > 1:
            parts.append(f"link {progress.url_index}/{progress.url_count}")
        parts.append(f"file {progress.files_done + 1}")
        if progress.total:
            parts.append(f"{min(100, progress.downloaded * 100 // progress.total)}% of {human_bytes(progress.total)}")
        else:
            parts.append(human_bytes(progress.downloaded))
        if progress.speed:
            parts.append(f"{human_bytes(progress.speed)}/s")
        if progress.eta is not None and progress.total:
            parts.append(f"ETA {human_seconds(progress.eta)}")
        return " · ".join(parts)

    def _upload_line(self) -> str:
        parts = []
        if self.upload is not None and self.upload.total == 0:
            # Streaming while it downloads: the final size is not known yet.
            parts.append(f"uploading {escape(cut(self.upload.file_name, 40))} {human_bytes(self.upload.sent)}")
        elif self.upload is not None and self.upload.sent < self.upload.total:
            name = escape(cut(self.upload.file_name, 40))
            parts.append(f"uploading {name} {self.upload.sent * 100 // max(1, self.upload.total)}%")
        parts.append(f"{self.files_sent} sent")
        return " · ".join(parts)

    def _sent_summary(self) -> str:
        sent = self.files_sent
        if self.from_cache:
            return f"sent {sent} file{'s' if sent != 1 else ''} again from Telegram's copy"
        return f"sent {sent} file{'s' if sent != 1 else ''}"


@attrs.define(eq=False)
class StatusTracker:
    """Engine and delivery observer: keeps a :class:`JobView` per job and shows it on its status message."""

    board: StatusBoard
    views: dict[int, JobView] = attrs.field(factory=dict)

    def view(self, job: Job) -> JobView:
        view = self.views.get(job.id)
        if view is None:
            view = self.views[job.id] = JobView(job)
        return view

    def show(self, view: JobView) -> None:
        origin = view.job.origin
        final = view.job.finished
        if final:
            # Every finished job's view goes, status message or not (watch jobs have none): months of watching
            # must not pile them up.
            self.views.pop(view.job.id, None)
        if origin.chat_id is None or origin.status_message_id is None:
            return
        self.board.show(origin.chat_id, origin.status_message_id, view.render(), final=final)

    def on_engine(self, event: EngineEvent) -> None:
        match event:
            case JobUpdated(job=job, position=position):
                view = self.view(job)
                view.job = job
                if position is not None:
                    view.position = position
                self.show(view)
            case QueueMoved(positions=positions):
                for job_id, place in positions.items():
                    if (moved := self.views.get(job_id)) is not None and moved.position != place:
                        view = moved
                        view.position = place
                        self.show(view)
            case DownloadProgress(job_id=job_id):
                if (downloading := self.views.get(job_id)) is not None:
                    downloading.download = event
                    self.show(downloading)
            case FileReady(file=file):
                if (found := self.views.get(file.job_id)) is not None:
                    found.files_found += 1
                    self.show(found)
            case Notice(job_id=job_id, text=text):
                if (noticed := self.views.get(job_id)) is not None:
                    noticed.notices.append(text)
                    self.show(noticed)

    def on_delivery(self, event: DeliveryEvent) -> None:
        view = self.views.get(event.job_id)
        if view is None:
            return
        match event:
            case UploadProgress():
                view.upload = event
            case FilesSent(files=files):
                view.files_sent += len(files)
        self.show(view)
