"""What a job is: its request, its state machine and its files."""

from __future__ import annotations

import enum
from pathlib import PurePosixPath

import attrs


class JobState(enum.StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

# Every move a job may make; anything else is a bug in the caller, not a user error.
_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.DOWNLOADING, JobState.CANCELLED, JobState.FAILED}),
    JobState.DOWNLOADING: frozenset(
        {JobState.DELIVERING, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.DELIVERING: frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),  # .retry
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}


class InvalidTransition(RuntimeError):
    def __init__(self, job_id: int, old: JobState, new: JobState) -> None:
        super().__init__(f"job {job_id} cannot go from {old} to {new}")


def check_transition(job_id: int, old: JobState, new: JobState) -> None:
    if new not in _TRANSITIONS[old]:
        raise InvalidTransition(job_id, old, new)


class FileState(enum.StrEnum):
    COMPLETE = "complete"  # on disk, hashed, waiting for delivery
    DELIVERED = "delivered"
    FAILED = "failed"  # delivery of this one file failed; the job goes on


class MediaKind(enum.StrEnum):
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    ANIMATION = "animation"
    DOCUMENT = "document"


_KIND_BY_SUFFIX: dict[str, MediaKind] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "heic", "heif", "bmp"), MediaKind.PHOTO),
    **dict.fromkeys(("mp4", "m4v", "mov", "webm", "mkv", "avi", "3gp", "ts"), MediaKind.VIDEO),
    **dict.fromkeys(("mp3", "m4a", "aac", "ogg", "opus", "flac", "wav", "oga"), MediaKind.AUDIO),
    "gif": MediaKind.ANIMATION,
}


def kind_for_name(name: str) -> MediaKind:
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return _KIND_BY_SUFFIX.get(suffix, MediaKind.DOCUMENT)


@attrs.frozen
class JobOptions:
    """What the user asked for beyond the URLs."""

    audio_only: bool = False
    max_height: int | None = None
    as_file: bool = False  # send everything as documents, untouched
    story: bool = False  # captions say whose story, when it was posted and where it stands (3/7)
    watch: int | None = None  # the watch that made this job: nothing new is not a failure
    # The tools keep a download archive per watch and skip what it holds: for sites only the tools can list. Watches
    # that list stories themselves track them as seen_stories instead, released if a story never arrives; an
    # archive would then skip that story for good.
    archive: bool = False

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> JobOptions:
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


@attrs.frozen
class Origin:
    """Where a job came from, so results and status go back there. Empty for the CLI."""

    chat_id: int | None = None
    message_id: int | None = None
    status_message_id: int | None = None


@attrs.frozen
class StoryLabel:
    """What is known about one story before it is downloaded (from the site's story list)."""

    owner: str
    posted_at: float | None = None  # unix time
    position: int | None = None
    total: int | None = None
    highlight: str | None = None
    link: str | None = None  # where a person can see it (never an internal URL)

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StoryLabel:
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


@attrs.frozen
class JobRequest:
    urls: tuple[str, ...]
    owner: int
    options: JobOptions = JobOptions()
    origin: Origin = Origin()
    labels: dict[str, StoryLabel] = attrs.field(factory=dict, hash=False)  # by URL


@attrs.frozen
class JobFile:
    """One downloaded file. ``name`` is ours (sanitised), for showing and sending."""

    job_id: int
    index: int
    path: str  # relative to the job folder, as the tool wrote it (checked to stay inside)
    name: str
    size: int
    sha256: str
    kind: MediaKind
    state: FileState = FileState.COMPLETE
    source_url: str = ""
    title: str = ""
    uploader: str = ""
    posted_at: float | None = None  # unix time, when the site says it was posted


@attrs.frozen
class Job:
    id: int
    urls: tuple[str, ...]
    owner: int
    options: JobOptions
    origin: Origin
    state: JobState
    created_at: float
    updated_at: float
    attempts: int = 0
    error_kind: str | None = None
    error: str | None = None
    files: tuple[JobFile, ...] = ()
    labels: dict[str, StoryLabel] = attrs.field(factory=dict, hash=False)

    @property
    def finished(self) -> bool:
        return self.state.finished
