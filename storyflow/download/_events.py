"""What the engine tells its observers. Plain values; observers must not block."""

from __future__ import annotations

import attrs

from ..jobs import Job, JobFile


@attrs.frozen
class JobUpdated:
    """A job changed state (or was accepted). ``position`` is its place in the queue while queued."""

    job: Job
    position: int | None = None


@attrs.frozen
class DownloadProgress:
    job_id: int
    url_index: int  # 1-based, of url_count
    url_count: int
    files_done: int
    filename: str | None
    downloaded: int
    total: int | None
    speed: float | None  # bytes per second
    eta: float | None  # seconds


@attrs.frozen
class FileReady:
    """A file finished downloading and is on its way to delivery."""

    file: JobFile


@attrs.frozen
class Notice:
    """Something the user should know that is not an error (e.g. a cap was applied)."""

    job_id: int
    text: str


@attrs.frozen
class QueueMoved:
    """Queue places changed: ``{job_id: 1-based position}`` of every job still waiting."""

    positions: dict[int, int]


EngineEvent = JobUpdated | DownloadProgress | FileReady | Notice | QueueMoved
