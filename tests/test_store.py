"""The SQLite job store: persistence, the state machine, reopening after a stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyflow.jobs import (
    FileState,
    InvalidTransition,
    JobOptions,
    JobRequest,
    JobState,
    MediaKind,
    Origin,
    open_store,
)


async def test_jobs_survive_reopening(tmp_path: Path) -> None:
    database = tmp_path / "jobs.sqlite3"
    request = JobRequest(
        ("https://example.com/a", "https://example.com/b"),
        owner=42,
        options=JobOptions(audio_only=True, max_height=720),
        origin=Origin(chat_id=-100, message_id=7),
    )
    async with open_store(database) as store:
        job = await store.add_job(request)
        await store.set_state(job.id, JobState.DOWNLOADING)
        await store.add_file(job.id, path="a.mp4", name="a.mp4", size=3, sha256="ab", kind=MediaKind.VIDEO)
        await store.set_status_message(job.id, 99)
    async with open_store(database) as store:
        (again,) = await store.unfinished_jobs()
    assert again.id == job.id
    assert again.urls == request.urls
    assert again.options == request.options
    assert again.origin == Origin(chat_id=-100, message_id=7, status_message_id=99)
    assert again.state is JobState.DOWNLOADING
    assert again.attempts == 1
    assert [(f.path, f.state) for f in again.files] == [("a.mp4", FileState.COMPLETE)]


async def test_state_machine_refuses_impossible_moves(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.sqlite3") as store:
        job = await store.add_job(JobRequest(("https://example.com/",), owner=1))
        with pytest.raises(InvalidTransition, match="queued to done"):
            await store.set_state(job.id, JobState.DONE)
        await store.set_state(job.id, JobState.DOWNLOADING)
        await store.set_state(job.id, JobState.DELIVERING)
        done = await store.set_state(job.id, JobState.DONE)
        assert done.finished
        with pytest.raises(InvalidTransition):
            await store.set_state(job.id, JobState.QUEUED)


async def test_files_are_recorded_once_per_path_and_counted_per_owner(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.sqlite3") as store:
        job = await store.add_job(JobRequest(("https://example.com/",), owner=1))
        await store.add_job(JobRequest(("https://example.com/",), owner=2))
        first = await store.add_file(job.id, path="x.jpg", name="x.jpg", size=1, sha256="a", kind=MediaKind.PHOTO)
        same = await store.add_file(job.id, path="x.jpg", name="other", size=9, sha256="b", kind=MediaKind.PHOTO)
        second = await store.add_file(job.id, path="y.jpg", name="y.jpg", size=1, sha256="c", kind=MediaKind.PHOTO)
        assert same == first
        assert (first.index, second.index) == (0, 1)
        await store.set_file_state(job.id, 1, FileState.DELIVERED)
        assert [f.state for f in await store.files(job.id)] == [FileState.COMPLETE, FileState.DELIVERED]
        assert await store.unfinished_count(1) == 1
        assert await store.unfinished_count(3) == 0
        await store.set_state(job.id, JobState.CANCELLED)
        assert await store.unfinished_count(1) == 0
        assert (await store.counts_by_state()) == {JobState.CANCELLED: 1, JobState.QUEUED: 1}


async def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    async with open_store(tmp_path / "jobs.sqlite3"):
        pass
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_stories_seen_by_a_watch_removed_during_its_check_are_dropped(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.sqlite3") as store:
        watch = await store.add_watch(owner=1, site="snapchat", account="jane", chat_id=1, next_check=0.0)
        assert await store.take_new_stories(watch.id, ["a", "b"]) == ["a", "b"]
        assert await store.take_new_stories(watch.id, ["a", "b", "c"]) == ["c"]
        # `.unwatch` lands while a check is still listing the account: its result is dropped, without an error.
        assert await store.remove_watch(watch.id)
        assert await store.take_new_stories(watch.id, ["d"]) == []
