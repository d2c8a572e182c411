"""Jobs and their files in SQLite (WAL), from the moment a job is accepted.

SQLite calls are blocking, so each runs in a worker thread; one connection, one thread at a time (a
``CapacityLimiter(1)``), which is also what keeps the writes ordered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import trio

from ._models import (
    FileState,
    Job,
    JobFile,
    JobOptions,
    JobRequest,
    JobState,
    MediaKind,
    Origin,
    check_transition,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner INTEGER NOT NULL,
    urls TEXT NOT NULL,
    options TEXT NOT NULL,
    chat_id INTEGER,
    message_id INTEGER,
    status_message_id INTEGER,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_kind TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs(owner, state);
CREATE TABLE IF NOT EXISTS files (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    source_url TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    uploader TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, idx),
    UNIQUE (job_id, path)
);
"""
_SCHEMA_VERSION = 1
_UNFINISHED = (JobState.QUEUED.value, JobState.DOWNLOADING.value, JobState.DELIVERING.value)


class JobStore:
    """Persistent jobs. Open with :func:`open_store`; every method is Trio-flavoured and thread-backed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._one_thread = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, limiter=self._one_thread)

    # -- jobs ---------------------------------------------------------------------------------------------

    async def add_job(self, request: JobRequest) -> Job:
        def insert() -> Job:
            now = time.time()
            with self._db:
                cursor = self._db.execute(
                    "INSERT INTO jobs (owner, urls, options, chat_id, message_id, status_message_id, state,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        request.owner,
                        json.dumps(list(request.urls)),
                        json.dumps(request.options.to_json()),
                        request.origin.chat_id,
                        request.origin.message_id,
                        request.origin.status_message_id,
                        JobState.QUEUED.value,
                        now,
                        now,
                    ),
                )
            assert cursor.lastrowid is not None
            return self._load_job(cursor.lastrowid)

        return await self._run(insert)

    async def get_job(self, job_id: int) -> Job | None:
        def load() -> Job | None:
            try:
                return self._load_job(job_id)
            except KeyError:
                return None

        return await self._run(load)

    async def set_state(
        self,
        job_id: int,
        state: JobState,
        *,
        error_kind: str | None = None,
        error: str | None = None,
    ) -> Job:
        """Move a job along its state machine; an impossible move raises ``InvalidTransition``."""

        def update() -> Job:
            current = self._load_job(job_id)
            if current.state != state:
                check_transition(job_id, current.state, state)
            attempts = current.attempts + (1 if state == JobState.DOWNLOADING else 0)
            with self._db:
                self._db.execute(
                    "UPDATE jobs SET state = ?, updated_at = ?, attempts = ?, error_kind = ?, error = ?"
                    " WHERE id = ?",
                    (state.value, time.time(), attempts, error_kind, error, job_id),
                )
            return self._load_job(job_id)

        return await self._run(update)

    async def set_status_message(self, job_id: int, message_id: int | None) -> None:
        def update() -> None:
            with self._db:
                self._db.execute(
                    "UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id)
                )

        await self._run(update)

    async def unfinished_jobs(self) -> list[Job]:
        """Every job a crash may have interrupted, oldest first."""
        return await self._run(lambda: self._select("state IN (?, ?, ?) ORDER BY id", _UNFINISHED))

    async def unfinished_count(self, owner: int) -> int:
        def count() -> int:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN (?, ?, ?)", (owner, *_UNFINISHED)
            ).fetchone()
            return int(row[0])

        return await self._run(count)

    async def recent_jobs(self, *, owner: int | None = None, limit: int = 10) -> list[Job]:
        if owner is None:
            return await self._run(lambda: self._select("1 ORDER BY id DESC LIMIT ?", (limit,)))
        return await self._run(lambda: self._select("owner = ? ORDER BY id DESC LIMIT ?", (owner, limit)))

    async def counts_by_state(self) -> dict[JobState, int]:
        def count() -> dict[JobState, int]:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            return {JobState(state): int(n) for state, n in rows}

        return await self._run(count)

    # -- files --------------------------------------------------------------------------------------------

    async def add_file(
        self,
        job_id: int,
        *,
        path: str,
        name: str,
        size: int,
        sha256: str,
        kind: MediaKind,
        source_url: str = "",
        title: str = "",
        uploader: str = "",
    ) -> JobFile:
        """Record a finished download; the same ``path`` twice returns the first record unchanged."""

        def insert() -> JobFile:
            with self._db:
                existing = self._db.execute(
                    "SELECT * FROM files WHERE job_id = ? AND path = ?", (job_id, path)
                ).fetchone()
                if existing is not None:
                    return _file_from_row(existing)
                (next_index,) = self._db.execute(
                    "SELECT COALESCE(MAX(idx), -1) + 1 FROM files WHERE job_id = ?", (job_id,)
                ).fetchone()
                self._db.execute(
                    "INSERT INTO files (job_id, idx, path, name, size, sha256, kind, state, source_url, title,"
                    " uploader) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, next_index, path, name, size, sha256, kind.value, FileState.COMPLETE.value,
                     source_url, title, uploader),
                )
                row = self._db.execute(
                    "SELECT * FROM files WHERE job_id = ? AND idx = ?", (job_id, next_index)
                ).fetchone()
            return _file_from_row(row)

        return await self._run(insert)

    async def update_file(self, job_id: int, index: int, *, size: int, sha256: str) -> JobFile:
        """A file was replaced on disk (a tool re-downloaded it): record its new size and hash."""

        def update() -> JobFile:
            with self._db:
                self._db.execute(
                    "UPDATE files SET size = ?, sha256 = ?, state = ? WHERE job_id = ? AND idx = ?",
                    (size, sha256, FileState.COMPLETE.value, job_id, index),
                )
                row = self._db.execute(
                    "SELECT * FROM files WHERE job_id = ? AND idx = ?", (job_id, index)
                ).fetchone()
            return _file_from_row(row)

        return await self._run(update)

    async def set_file_state(self, job_id: int, index: int, state: FileState) -> None:
        def update() -> None:
            with self._db:
                self._db.execute(
                    "UPDATE files SET state = ? WHERE job_id = ? AND idx = ?", (state.value, job_id, index)
                )

        await self._run(update)

    async def files(self, job_id: int) -> list[JobFile]:
        return await self._run(lambda: self._files(job_id))

    # -- internals (worker thread) ------------------------------------------------------------------------

    def _files(self, job_id: int) -> list[JobFile]:
        rows = self._db.execute("SELECT * FROM files WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        return [_file_from_row(row) for row in rows]

    def _load_job(self, job_id: int) -> Job:
        jobs = self._select("id = ?", (job_id,))
        if not jobs:
            raise KeyError(job_id)
        return jobs[0]

    def _select(self, where: str, params: Iterable[object]) -> list[Job]:
        rows = self._db.execute(f"SELECT * FROM jobs WHERE {where}", tuple(params)).fetchall()
        return [_job_from_row(row, self._files(int(row["id"]))) for row in rows]

    def close(self) -> None:
        self._db.close()


def _job_from_row(row: sqlite3.Row, files: list[JobFile]) -> Job:
    return Job(
        id=int(row["id"]),
        urls=tuple(json.loads(row["urls"])),
        owner=int(row["owner"]),
        options=JobOptions.from_json(json.loads(row["options"])),
        origin=Origin(row["chat_id"], row["message_id"], row["status_message_id"]),
        state=JobState(row["state"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        attempts=int(row["attempts"]),
        error_kind=row["error_kind"],
        error=row["error"],
        files=tuple(files),
    )


def _file_from_row(row: sqlite3.Row) -> JobFile:
    return JobFile(
        job_id=int(row["job_id"]),
        index=int(row["idx"]),
        path=row["path"],
        name=row["name"],
        size=int(row["size"]),
        sha256=row["sha256"],
        kind=MediaKind(row["kind"]),
        state=FileState(row["state"]),
        source_url=row["source_url"],
        title=row["title"],
        uploader=row["uploader"],
    )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives a process crash; only power loss can lose
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > _SCHEMA_VERSION:
        db.close()
        raise RuntimeError(f"{path} was written by a newer StoryFlow (schema {version})")
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    return db


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[JobStore]:
    """Open (creating if needed) the job database at ``path``."""
    db = await trio.to_thread.run_sync(_connect, path)
    store = JobStore(db)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store._run(store.close)
