"""The status tracker's bookkeeping: a view per unfinished job, none left behind."""

from __future__ import annotations

from typing import Any

import attrs

from storyflow.bot._tracker import StatusTracker
from storyflow.download import JobUpdated
from storyflow.jobs import Job, JobOptions, JobState, Origin


@attrs.define
class RecordingBoard:
    shown: list[tuple[int, int, str, bool]] = attrs.field(factory=list)

    def show(self, chat_id: int, message_id: int, text: str, *, final: bool = False) -> None:
        self.shown.append((chat_id, message_id, text, final))


def job(job_id: int, state: JobState, origin: Origin) -> Job:
    return Job(job_id, ("https://example.com/a",), 1, JobOptions(), origin, state, 0.0, 0.0)


def test_finished_jobs_leave_no_view_with_or_without_a_status_message() -> None:
    board = RecordingBoard()
    tracker = StatusTracker(board)  # type: ignore[arg-type]
    quiet = Origin(chat_id=5)  # a watch job: no status message
    shown = Origin(chat_id=5, message_id=1, status_message_id=2)
    for job_id, origin in ((1, quiet), (2, shown)):
        for state in (JobState.QUEUED, JobState.DOWNLOADING, JobState.DELIVERING):
            tracker.on_engine(JobUpdated(job(job_id, state, origin)))
    assert set(tracker.views) == {1, 2}
    for job_id, origin in ((1, quiet), (2, shown)):
        tracker.on_engine(JobUpdated(job(job_id, JobState.DONE, origin)))
    assert tracker.views == {}
    finals: list[Any] = [entry for entry in board.shown if entry[3]]
    assert [(chat, message) for chat, message, _, _ in finals] == [(5, 2)]
    assert all(message == 2 for _, message, _, _ in board.shown)  # nothing shown for the job without one
