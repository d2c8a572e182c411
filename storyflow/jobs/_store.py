"""Jobs and their files in SQLite (WAL), from the moment a job is accepted.

SQLite calls are blocking, so each runs in a worker thread; one connection, one thread at a time (a
``CapacityLimiter(1)``), which is also what keeps the writes ordered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from .._errors import JobRefused
from ._models import (
    FileState,
    Job,
    JobFile,
    JobOptions,
    JobRequest,
    JobState,
    MediaKind,
    Origin,
    StoryLabel,
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
    error TEXT,
    labels TEXT NOT NULL DEFAULT '{}'
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
    posted_at REAL,
    PRIMARY KEY (job_id, idx),
    UNIQUE (job_id, path)
);
-- The userbot's memory besides jobs.
CREATE TABLE IF NOT EXISTS peers (
    chat_id INTEGER PRIMARY KEY,
    peer BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS access (
    kind TEXT NOT NULL,            -- 'user' or 'chat'
    id INTEGER NOT NULL,
    allowed INTEGER NOT NULL,      -- 0: denied, overriding the config's allow-list
    name TEXT NOT NULL DEFAULT '',
    changed_at REAL NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One random_id per message StoryFlow sends for a job, chosen and saved before the send: a send repeated after a
-- crash reuses it, and Telegram answers RANDOM_ID_DUPLICATE instead of posting twice.
CREATE TABLE IF NOT EXISTS sends (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    slot TEXT NOT NULL,
    random_id INTEGER NOT NULL,
    message_id INTEGER,
    PRIMARY KEY (job_id, slot)
);
CREATE TABLE IF NOT EXISTS watches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner INTEGER NOT NULL,
    site TEXT NOT NULL,
    account TEXT NOT NULL,
    chat_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    next_check REAL NOT NULL,       -- unix time
    last_check REAL,
    last_new REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (site, account, chat_id)
);
-- Stories a watch has taken (job_id: the job posting them, url: the link that job fetches it from; released if
-- the story did not arrive, so a later check retries).
CREATE TABLE IF NOT EXISTS seen_stories (
    watch_id INTEGER NOT NULL REFERENCES watches(id) ON DELETE CASCADE,
    story TEXT NOT NULL,
    job_id INTEGER,
    seen_at REAL NOT NULL,
    url TEXT,
    PRIMARY KEY (watch_id, story)
);
CREATE TABLE IF NOT EXISTS sent_cache (
    key TEXT PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    items TEXT NOT NULL,           -- JSON: [{"message_id": …, "media": SentMedia, "caption": html}]
    created_at REAL NOT NULL
);
"""
_SCHEMA_VERSION = 4
# Columns later versions added to tables that CREATE TABLE IF NOT EXISTS leaves as they were.
_ADDED_COLUMNS = (
    ("jobs", "labels", "TEXT NOT NULL DEFAULT '{}'"), ("files", "posted_at", "REAL"), ("seen_stories", "url", "TEXT"),
)
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
                    " created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        json.dumps({url: label.to_json() for url, label in request.labels.items()}),
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

    async def job_for_message(self, chat_id: int, message_id: int) -> Job | None:
        """The job whose command or status message this is."""

        def load() -> Job | None:
            jobs = self._select(
                "chat_id = ? AND (status_message_id = ? OR message_id = ?) ORDER BY id DESC LIMIT 1",
                (chat_id, message_id, message_id),
            )
            return jobs[0] if jobs else None

        return await self._run(load)

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
        posted_at: float | None = None,
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
                    " uploader, posted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, next_index, path, name, size, sha256, kind.value, FileState.COMPLETE.value,
                     source_url, title, uploader, posted_at),
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

    async def set_files_state(self, job_id: int, indices: list[int], state: FileState) -> None:
        """Several files at once, in one transaction."""

        def update() -> None:
            with self._db:
                self._db.executemany(
                    "UPDATE files SET state = ? WHERE job_id = ? AND idx = ?",
                    [(state.value, job_id, index) for index in indices],
                )

        await self._run(update)

    async def files(self, job_id: int) -> list[JobFile]:
        return await self._run(lambda: self._files(job_id))

    # -- the userbot's memory -----------------------------------------------------------------------------

    async def remember_peer(self, chat_id: int, peer: bytes) -> None:
        def upsert() -> None:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO peers (chat_id, peer) VALUES (?, ?)", (chat_id, peer))

        await self._run(upsert)

    async def peers(self) -> dict[int, bytes]:
        def load() -> dict[int, bytes]:
            return {int(r["chat_id"]): bytes(r["peer"]) for r in self._db.execute("SELECT * FROM peers")}

        return await self._run(load)

    async def set_access(self, kind: str, entity_id: int, *, allowed: bool, name: str = "") -> None:
        def upsert() -> None:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO access (kind, id, allowed, name, changed_at) VALUES (?, ?, ?, ?, ?)",
                    (kind, entity_id, int(allowed), name, time.time()),
                )

        await self._run(upsert)

    async def access_rules(self) -> list[tuple[str, int, bool, str]]:
        """``(kind, id, allowed, name)`` for every user or chat the owner allowed or denied from the chat."""

        def load() -> list[tuple[str, int, bool, str]]:
            rows = self._db.execute("SELECT kind, id, allowed, name FROM access ORDER BY changed_at")
            return [(r["kind"], int(r["id"]), bool(r["allowed"]), r["name"]) for r in rows]

        return await self._run(load)

    async def set_setting(self, key: str, value: str | None) -> None:
        def upsert() -> None:
            with self._db:
                if value is None:
                    self._db.execute("DELETE FROM settings WHERE key = ?", (key,))
                else:
                    self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

        await self._run(upsert)

    async def settings(self) -> dict[str, str]:
        def load() -> dict[str, str]:
            return {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM settings")}

        return await self._run(load)

    async def send_id(self, job_id: int, slot: str, new_id: int) -> int:
        """The random_id of one planned send of a job: ``new_id`` the first time, the saved one ever after."""

        def get_or_insert() -> int:
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO sends (job_id, slot, random_id) VALUES (?, ?, ?)", (job_id, slot, new_id)
                )
                (saved,) = self._db.execute(
                    "SELECT random_id FROM sends WHERE job_id = ? AND slot = ?", (job_id, slot)
                ).fetchone()
            return int(saved)

        return await self._run(get_or_insert)

    async def cached_send(self, key: str) -> tuple[int, list[dict[str, object]]] | None:
        def load() -> tuple[int, list[dict[str, object]]] | None:
            row = self._db.execute("SELECT chat_id, items FROM sent_cache WHERE key = ?", (key,)).fetchone()
            return None if row is None else (int(row["chat_id"]), json.loads(row["items"]))

        return await self._run(load)

    async def cache_send(self, key: str, chat_id: int, items: list[dict[str, object]]) -> None:
        def upsert() -> None:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO sent_cache (key, chat_id, items, created_at) VALUES (?, ?, ?, ?)",
                    (key, chat_id, json.dumps(items), time.time()),
                )

        await self._run(upsert)

    async def forget_cached_send(self, key: str) -> None:
        def delete() -> None:
            with self._db:
                self._db.execute("DELETE FROM sent_cache WHERE key = ?", (key,))

        await self._run(delete)

    async def add_watch(self, owner: int, site: str, account: str, chat_id: int, next_check: float) -> Watch:
        def insert() -> Watch:
            with self._db:
                cursor = self._db.execute(
                    "INSERT INTO watches (owner, site, account, chat_id, created_at, next_check)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (owner, site, account, chat_id, time.time(), next_check),
                )
            assert cursor.lastrowid is not None
            return self._watch(cursor.lastrowid)

        try:
            return await self._run(insert)
        except sqlite3.IntegrityError:
            raise JobRefused(f"{site} {account} is already watched for that chat") from None

    async def watches(self) -> list[Watch]:
        def load() -> list[Watch]:
            return [_watch_from_row(r) for r in self._db.execute("SELECT * FROM watches ORDER BY id")]

        return await self._run(load)

    async def get_watch(self, watch_id: int) -> Watch | None:
        def load() -> Watch | None:
            row = self._db.execute("SELECT * FROM watches WHERE id = ?", (watch_id,)).fetchone()
            return None if row is None else _watch_from_row(row)

        return await self._run(load)

    async def remove_watch(self, watch_id: int) -> bool:
        def delete() -> bool:
            with self._db:
                return self._db.execute("DELETE FROM watches WHERE id = ?", (watch_id,)).rowcount > 0

        return await self._run(delete)

    async def watch_checked(
        self, watch_id: int, *, next_check: float, found_new: bool, error: str | None, failures: int,
        checked_at: float | None = None,
    ) -> None:
        """Record a check (``checked_at``: when, default now) and what it found."""

        def update() -> None:
            now = time.time()
            with self._db:
                self._db.execute(
                    "UPDATE watches SET last_check = ?, next_check = ?, failures = ?, last_error = ?,"
                    " last_new = CASE WHEN ? THEN ? ELSE last_new END WHERE id = ?",
                    (now if checked_at is None else checked_at, next_check, failures, error, found_new, now, watch_id),
                )

        await self._run(update)

    async def take_new_stories(self, watch_id: int, stories: list[str]) -> list[str]:
        """Which of ``stories`` this watch has not taken yet; those are taken now (one transaction). Nothing for a
        watch removed meanwhile (`.unwatch` during its check)."""

        def take() -> list[str]:
            now = time.time()
            with self._db:
                if self._db.execute("SELECT 1 FROM watches WHERE id = ?", (watch_id,)).fetchone() is None:
                    return []
                seen = {
                    r["story"] for r in self._db.execute("SELECT story FROM seen_stories WHERE watch_id = ?",
                                                         (watch_id,))
                }
                new = [s for s in dict.fromkeys(stories) if s not in seen]
                self._db.executemany(
                    "INSERT INTO seen_stories (watch_id, story, seen_at) VALUES (?, ?, ?)",
                    [(watch_id, story, now) for story in new],
                )
            return new

        return await self._run(take)

    async def assign_stories(self, watch_id: int, urls: dict[str, str], job_id: int) -> None:
        """The job that posts these stories, and the link (``urls``: story id → URL) it fetches each from."""

        def update() -> None:
            with self._db:
                self._db.executemany(
                    "UPDATE seen_stories SET job_id = ?, url = ? WHERE watch_id = ? AND story = ?",
                    [(job_id, url, watch_id, story) for story, url in urls.items()],
                )

        await self._run(update)

    async def release_stories(
        self, *, watch_id: int | None = None, stories: Sequence[str] = (), job_id: int | None = None
    ) -> int:
        """Forget taken stories (their job failed or was never created), so a later check takes them again."""

        def delete() -> int:
            with self._db:
                if job_id is not None:
                    return self._db.execute("DELETE FROM seen_stories WHERE job_id = ?", (job_id,)).rowcount
                return self._db.executemany(
                    "DELETE FROM seen_stories WHERE watch_id = ? AND story = ?", [(watch_id, s) for s in stories]
                ).rowcount

        return await self._run(delete)

    async def release_undelivered_stories(self, job_id: int, delivered_urls: set[str]) -> int:
        """After a watch job ended done: forget the stories whose link delivered nothing (a download or an upload
        that failed), so a later check takes them again. Rows from before links were recorded are kept."""

        def delete() -> int:
            with self._db:
                rows = self._db.execute(
                    "SELECT watch_id, story, url FROM seen_stories WHERE job_id = ? AND url IS NOT NULL", (job_id,)
                ).fetchall()
                missing = [(r["watch_id"], r["story"]) for r in rows if r["url"] not in delivered_urls]
                self._db.executemany("DELETE FROM seen_stories WHERE watch_id = ? AND story = ?", missing)
                return len(missing)

        return await self._run(delete)

    async def release_unassigned_stories(self) -> int:
        """Stories taken by a check that never got to queue their job (the process died in between)."""

        def delete() -> int:
            with self._db:
                return self._db.execute("DELETE FROM seen_stories WHERE job_id IS NULL").rowcount

        return await self._run(delete)

    def _watch(self, watch_id: int) -> Watch:
        return _watch_from_row(self._db.execute("SELECT * FROM watches WHERE id = ?", (watch_id,)).fetchone())

    async def delivered_totals(self) -> tuple[int, int]:
        """(files delivered, bytes delivered) over all jobs."""

        def count() -> tuple[int, int]:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE state = ?", (FileState.DELIVERED.value,)
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self._run(count)

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
        labels={url: StoryLabel.from_json(label) for url, label in json.loads(row["labels"] or "{}").items()},
    )


@attrs.frozen
class Watch:
    id: int
    owner: int
    site: str
    account: str
    chat_id: int
    created_at: float
    next_check: float
    last_check: float | None
    last_new: float | None
    failures: int
    last_error: str | None


def _watch_from_row(row: sqlite3.Row) -> Watch:
    return Watch(
        int(row["id"]), int(row["owner"]), row["site"], row["account"], int(row["chat_id"]), float(row["created_at"]),
        float(row["next_check"]), row["last_check"], row["last_new"], int(row["failures"]), row["last_error"],
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
        posted_at=row["posted_at"],
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
    for table, column, declaration in _ADDED_COLUMNS:
        existing = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in existing:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
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
