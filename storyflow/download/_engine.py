"""The download engine: jobs in, files and progress out, never blocking the event loop.

One task per job. A job waits for the shared :class:`trio.CapacityLimiter` only while its download
processes run; its delivery (upload, copy, …) runs beside the download, fed file by file through a memory
channel, and finishes after the limiter is released.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import shutil
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

import attrs
import trio

from .._errors import (
    DiskFull,
    DownloadError,
    DownloadTimeout,
    LoginRequired,
    NoMedia,
    OwnerLimitReached,
    PrivateAddress,
    PrivateDestination,
    StoryFlowError,
    TooLarge,
    UnknownJob,
    UnsafeURL,
    UnsupportedURL,
)
from .._util import single_error
from ..config import DownloadConfig
from ..jobs import FileState, Job, JobFile, JobRequest, JobState, JobStore, kind_for_name
from ._classify import classify, more_informative
from ._events import DownloadProgress, EngineEvent, FileReady, JobUpdated, Notice, QueueMoved
from ._process import run_tool
from ._proxy import GuardProxy, open_guard_proxy
from ._tools import (
    Attempt,
    FileLine,
    ProgressLine,
    Route,
    Tool,
    ToolLimits,
    gallery_dl_command,
    parse_line,
    route,
    ytdlp_command,
)
from ._urls import check_destination, is_public_address, validate_url

log = logging.getLogger("storyflow.engine")

HASH_CHUNK = 1024 * 1024
DISK_CHECK_SECONDS = 0.5


class Fetcher(Protocol):
    """A source that is not a web page for the download tools (e.g. Telegram stories, fetched over MTProto).

    Jobs name it by an internal URL ``<scheme>:<rest>``; such URLs only ever come from StoryFlow's own code
    (:meth:`Engine.submit` with ``internal=True``), never from a chat message.
    """

    @property
    def scheme(self) -> str: ...

    async def fetch(self, url: str, folder: Path, found: Callable[[FileLine], Awaitable[None]]) -> None:
        """Download what ``url`` names into ``folder``, awaiting ``found`` for each file as it lands; raise a
        :class:`DownloadError` subclass when it cannot."""


class CookieSource(Protocol):
    async def cookies_for_job(self, owner: int, url: str, folder: Path) -> Path | None:
        """A private copy of ``owner``'s cookies for the site of ``url``, inside ``folder``; None if none."""


class Delivery(Protocol):
    """Where finished files go: Telegram for the userbot, a folder for the CLI."""

    async def deliver(self, handle: DeliveryHandle) -> None:
        """Consume ``handle.files`` until it ends, marking each file delivered or failed."""


@attrs.define(eq=False)
class DeliveryHandle:
    """One job's delivery: the files as they land, and the way to report what became of them."""

    job: Job
    folder: Path
    files: trio.MemoryReceiveChannel[JobFile]
    _store: JobStore
    _emit: Callable[[EngineEvent], None]

    async def delivered(self, file: JobFile) -> None:
        await self._store.set_file_state(file.job_id, file.index, FileState.DELIVERED)

    async def delivered_all(self, files: list[JobFile]) -> None:
        """Several files delivered by one message (an album): recorded together or not at all."""
        await self._store.set_files_state(self.job.id, [f.index for f in files], FileState.DELIVERED)

    async def failed(self, file: JobFile, error: StoryFlowError) -> None:
        log.info("job %d: file %d not delivered: %s", file.job_id, file.index, error.message)
        await self._store.set_file_state(file.job_id, file.index, FileState.FAILED)
        self._emit(Notice(file.job_id, f"{file.name}: {error.user_text()}"))


@attrs.frozen
class _Found:
    """A file a tool reported, checked to be a regular file inside the job folder."""

    relative: str
    size: int
    sha256: str


_SANE_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def safe_display_name(tool_path: str, title: str = "", source_url: str = "") -> str:
    """A file name built from nothing but safe characters; the remote side chooses none of it verbatim.

    The tools prefix names with hosts and ids (gallery-dl's ``127.0.0.1_8080__notes.pdf``); when the name ends with
    the last segment of the link, that segment is what the user knows the file by.
    """
    reported = Path(tool_path)
    link_name = PurePosixPath(unquote(urlsplit(source_url).path)).name if source_url else ""
    if not title and link_name and "." in link_name and reported.name.endswith(link_name):
        reported = Path(link_name)
    suffix = reported.suffix.lower()
    if not _SANE_SUFFIX.fullmatch(suffix):
        # yt-dlp says ".unknown_video" for a type it cannot name; the link may know better.
        link_suffix = PurePosixPath(link_name).suffix.lower()
        suffix = link_suffix if _SANE_SUFFIX.fullmatch(link_suffix) else ""
    stem = unicodedata.normalize("NFKC", title or reported.stem)
    stem = re.sub(r"[^\w\-. ]+", "_", stem, flags=re.UNICODE)
    stem = re.sub(r"[\s_]+", "_", stem).strip("._- ")[:60] or "file"
    return stem + suffix


def _inspect(folder: Path, reported: str, max_size: int) -> _Found | None:
    """Blocking: resolve, check and hash one reported file. None if it is not a file of this job."""
    path = Path(reported)
    if not path.is_absolute():
        path = folder / path
    if path.is_symlink():
        return None
    resolved = path.resolve()
    root = folder.resolve()
    if not resolved.is_relative_to(root) or resolved == root or not resolved.is_file():
        return None
    size = resolved.stat().st_size
    if size > max_size:
        resolved.unlink()
        raise TooLarge(f"{safe_display_name(reported)} is {size} bytes; the limit is {max_size}")
    digest = hashlib.sha256()
    with resolved.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return _Found(str(resolved.relative_to(root)), size, digest.hexdigest())


@attrs.frozen
class _DiskState:
    free: int  # bytes free on the folder's disk
    used: int  # bytes the folder holds
    largest: int  # bytes of its largest file (a tool's growing ``.part`` file too)


def _disk_state(folder: Path) -> _DiskState:
    """Blocking: how much the folder holds, and how much room its disk has left."""
    free = shutil.disk_usage(folder).free
    used = largest = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                size = os.lstat(os.path.join(root, name)).st_size
                used += size
                largest = max(largest, size)
    return _DiskState(free, used, largest)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@attrs.define(eq=False)
class _JobFiles:
    """One run of a job and its files: the records (from earlier runs too) and what this run did with them."""

    known: dict[str, JobFile]  # by path in the job folder
    seen: set[str] = attrs.field(factory=set)  # reported by a tool or fetcher in this run
    sent: set[str] = attrs.field(factory=set)  # handed to the delivery in this run

    def already_handled(self, previous: JobFile, sha256: str) -> bool:
        """Whether a reported file needs no delivery: the same bytes went out before, or are on their way."""
        if previous.sha256 != sha256:
            return False  # re-downloaded with other bytes: the new file replaces the old record
        return previous.state is FileState.DELIVERED or previous.path in self.sent


@attrs.define(eq=False)
class _Running:
    scope: trio.CancelScope
    cancelled: bool = False


@attrs.define(eq=False)
class Engine:
    """Accepts jobs and runs them. Obtain one from :func:`open_engine`."""

    store: JobStore
    settings: DownloadConfig
    jobs_dir: Path
    delivery: Delivery
    cache_dir: Path | None = None
    fetchers: Mapping[str, Fetcher] = attrs.field(factory=dict)
    cookies: CookieSource | None = None
    # The hint a login-required failure gets for a URL (e.g. which cookies to add and how); None: the default.
    login_hint: Callable[[str], str | None] = lambda url: None
    # Which resolved addresses a download may reach (unless settings.allow_private_addresses); tests widen it.
    is_public: Callable[[str], bool] = is_public_address
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _start: trio.MemorySendChannel[int] = attrs.field(init=False)
    _observers: list[Callable[[EngineEvent], None]] = attrs.field(init=False, factory=list)
    _running: dict[int, _Running] = attrs.field(init=False, factory=dict)
    _waiting: list[int] = attrs.field(init=False, factory=list)  # queued job ids in limiter order
    _owner_lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    live_processes: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.settings.max_concurrent)

    # -- public API ---------------------------------------------------------------------------------------

    def subscribe(self, observer: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``observer`` with every event from now on; returns the unsubscribe function."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    async def validate(self, urls: tuple[str, ...]) -> tuple[str, ...]:
        """Normalise and check every URL (including where it points); raises the first problem found."""
        if not urls:
            raise UnknownJob("no links given", hint="send one or more http(s) links")
        checked = tuple(validate_url(url) for url in urls)
        for url in checked:
            await check_destination(url, allow_private=self.settings.allow_private_addresses, is_public=self.is_public)
        return checked

    def _internal(self, url: str) -> Fetcher | None:
        scheme, sep, _ = url.partition(":")
        return self.fetchers.get(scheme) if sep else None

    async def submit(self, request: JobRequest, *, internal: bool = False) -> Job:
        """Validate, persist and queue a job. Raises an :class:`InputError` or :class:`JobRefused`.

        ``internal=True`` is for jobs StoryFlow itself composed from a fetcher's URLs (``tg-story:…``); every other
        URL is checked as user input.
        """
        if internal:
            if not request.urls or any(self._internal(url) is None for url in request.urls):
                raise UnknownJob("internal jobs take only URLs of a registered fetcher")
            urls = request.urls
        else:
            urls = await self.validate(request.urls)
        async with self._owner_lock:  # count-then-insert must not interleave for one owner
            unfinished = await self.store.unfinished_count(request.owner)
            if unfinished >= self.settings.max_jobs_per_owner:
                raise OwnerLimitReached(
                    f"you already have {unfinished} unfinished jobs (limit {self.settings.max_jobs_per_owner})"
                )
            job = await self.store.add_job(attrs.evolve(request, urls=urls))
        self._enqueue(job)
        return job

    def set_limits(self, *, max_concurrent: int, max_jobs_per_owner: int) -> None:
        """Change limits while running (``.settings``): the limiter grows or shrinks for the next downloads."""
        self.settings = attrs.evolve(
            self.settings, max_concurrent=max_concurrent, max_jobs_per_owner=max_jobs_per_owner
        )
        self._limiter.total_tokens = max_concurrent

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among jobs waiting for a download slot; None if not waiting."""
        try:
            return self._waiting.index(job_id) + 1
        except ValueError:
            return None

    def is_active(self, job_id: int) -> bool:
        return job_id in self._running

    async def cancel(self, job_id: int, *, owner: int | None = None) -> Job:
        """Cancel a queued or running job: its processes die, its partial files go."""
        job = await self.store.get_job(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise UnknownJob(f"no job #{job_id}")
        running = self._running.get(job_id)
        if running is not None:
            running.cancelled = True
            running.scope.cancel()
            return job
        if job.finished:
            return job
        # Unfinished in the store but not run by this engine (not resumed yet): finish it here.
        job = await self.store.set_state(job_id, JobState.CANCELLED)
        self._emit(JobUpdated(job))
        return job

    async def retry(self, job_id: int, *, owner: int | None = None) -> Job:
        job = await self.store.get_job(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise UnknownJob(f"no job #{job_id}")
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise UnknownJob(f"job #{job_id} is {job.state}; only failed or cancelled jobs can be retried")
        job = await self.store.set_state(job_id, JobState.QUEUED)
        self._enqueue(job)
        return job

    # -- internals ----------------------------------------------------------------------------------------

    def _emit(self, event: EngineEvent) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.exception("observer %r failed on %s", observer, type(event).__name__)

    def _enqueue(self, job: Job) -> None:
        self._waiting.append(job.id)
        self._running[job.id] = _Running(trio.CancelScope())
        self._emit(JobUpdated(job, position=self.queue_position(job.id)))
        self._start.send_nowait(job.id)

    def folder_for(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    async def _set_state(self, job_id: int, state: JobState, error: StoryFlowError | None = None) -> Job:
        job = await self.store.set_state(
            job_id,
            state,
            error_kind=error.kind if error else None,
            error=error.user_text() if error else None,
        )
        self._emit(JobUpdated(job))
        return job

    async def _run_job(self, job_id: int) -> None:
        running = self._running[job_id]
        folder = self.folder_for(job_id)
        outcome: StoryFlowError | None = None
        # False only when the engine itself is shutting down: the job then stays unfinished and resumes.
        settled = False
        try:
            with running.scope:
                outcome = await self._download_and_deliver(job_id, folder)
            settled = True
        except Exception as exc:  # a bug must fail its job, not the engine
            log.exception("job %d crashed", job_id)
            outcome = StoryFlowError(f"internal error: {type(exc).__name__}", hint="see the log")
            settled = True
        finally:
            with trio.CancelScope(shield=True):
                self._leave_queue(job_id)
                self._running.pop(job_id, None)
                if settled:
                    await self._finish(job_id, folder, outcome, cancelled=running.cancelled)

    async def _finish(self, job_id: int, folder: Path, outcome: StoryFlowError | None, *, cancelled: bool) -> None:
        job = await self.store.get_job(job_id)
        assert job is not None
        # The folder goes first, so whoever sees the final state sees a settled job.
        await trio.to_thread.run_sync(_remove_tree, folder)
        if cancelled:
            await self._set_state(job_id, JobState.CANCELLED)
            return
        delivered = any(f.state is FileState.DELIVERED for f in job.files)
        if isinstance(outcome, NoMedia) and job.options.watch is not None:
            outcome = None  # a watch's check that found nothing new
        if outcome is None or (delivered and isinstance(outcome, DownloadError)):
            # Partial success still counts as done; the error stays on the job for the summary.
            await self._set_state(job_id, JobState.DONE, outcome)
        else:
            await self._set_state(job_id, JobState.FAILED, outcome)

    def _leave_queue(self, job_id: int) -> None:
        if job_id in self._waiting:
            self._waiting.remove(job_id)
            self._emit(QueueMoved({j: i for i, j in enumerate(self._waiting, start=1)}))

    async def _download_and_deliver(self, job_id: int, folder: Path) -> StoryFlowError | None:
        job = await self.store.get_job(job_id)
        assert job is not None
        send, receive = trio.open_memory_channel[JobFile](math.inf)
        handle = DeliveryHandle(job, folder, receive, self.store, self._emit)
        download_error: StoryFlowError | None = None
        delivery_error: StoryFlowError | None = None

        async def deliver() -> None:
            nonlocal delivery_error
            try:
                await self.delivery.deliver(handle)
            except StoryFlowError as exc:
                # Nowhere left to deliver to: downloading more would be wasted.
                delivery_error = exc
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(deliver)
            with send:
                async with self._limiter:
                    self._leave_queue(job_id)
                    job = await self._set_state(job_id, JobState.DOWNLOADING)
                    try:
                        with trio.fail_after(self.settings.job_timeout):
                            await self._download(job, folder, send)
                    except trio.TooSlowError:
                        download_error = DownloadTimeout(
                            f"the download did not finish within {self.settings.job_timeout:g} s"
                        )
                    except DownloadError as exc:
                        download_error = exc
                await self._set_state(job_id, JobState.DELIVERING)
        return delivery_error or download_error

    async def _download(self, job: Job, folder: Path, send: trio.MemorySendChannel[JobFile]) -> None:
        await trio.to_thread.run_sync(lambda: folder.mkdir(mode=0o700, parents=True, exist_ok=True))
        files = _JobFiles({f.path: f for f in job.files})
        # Files downloaded before a restart but never delivered go out first.
        for file in job.files:
            if file.state is FileState.COMPLETE and await trio.Path(folder / file.path).is_file():
                files.sent.add(file.path)
                await send.send(file)
        errors: list[DownloadError] = []
        for url_index, url in enumerate(job.urls, start=1):
            try:
                await self._download_url(job, folder, url, url_index, files, send)
            except DownloadError as exc:
                log.info("job %d: %s failed: %s", job.id, url, exc.message)
                errors.append(exc)
            if len(files.seen) >= self.settings.max_items:
                self._emit(Notice(job.id, f"reached the limit of {self.settings.max_items} files per job;"
                                          " anything beyond it was not downloaded"))
                break
        if not errors:
            return
        worst = _most_informative(errors)
        if len(errors) == len(job.urls):
            raise worst
        # Some links worked: their files are already out; the job ends done, carrying this for the summary.
        raise type(worst)(f"{len(errors)} of {len(job.urls)} links failed: {worst.message}", hint=worst.hint)

    async def _download_url(
        self,
        job: Job,
        folder: Path,
        url: str,
        url_index: int,
        files: _JobFiles,
        send: trio.MemorySendChannel[JobFile],
    ) -> None:
        fetcher = self._internal(url)
        if fetcher is not None:
            await self._fetch(fetcher, job, folder, url, files, send)
            return
        # Check again at download time: a resumed job's host may point elsewhere now (that link fails, not the job).
        try:
            await check_destination(url, allow_private=self.settings.allow_private_addresses, is_public=self.is_public)
        except PrivateAddress as exc:
            raise PrivateDestination(exc.message) from None
        except UnsafeURL as exc:
            raise UnsupportedURL(exc.message, hint=exc.hint) from None
        if job.options.archive and self.cache_dir is not None:
            await trio.Path(self.cache_dir / "watches").mkdir(parents=True, exist_ok=True)
        chosen = await trio.to_thread.run_sync(
            lambda: route(url, ytdlp_first_hosts=self.settings.prefer_ytdlp_for)
        )
        # The job's item budget less what this run has taken from its earlier links. Not less what earlier runs
        # recorded: a resumed or retried link is fetched from its first item again (known files are not sent twice).
        limits = ToolLimits(self.settings.max_file_size, max(1, self.settings.max_items - len(files.seen)))
        cookies = await self._cookies(job, url, folder)
        failures: list[DownloadError] = []
        for attempt in chosen.attempts:
            if failures and not _worth_trying(attempt, failures[-1], chosen):
                continue
            before = len(files.seen)
            try:
                async with self._guard() as guard:
                    command = self._command(attempt, url, folder, job, limits, cookies, guard)
                    try:
                        await self._run_one_tool(attempt.tool, command, job, folder, url, url_index, files, send,
                                                 env=guard.tool_environment() if guard is not None else {})
                    except DownloadError:
                        if guard is not None and guard.refused:
                            raise PrivateDestination(
                                f"the link led to a local or private address ({guard.refused[0]})",
                                hint="StoryFlow does not fetch from this machine or private networks",
                            ) from None
                        raise
                return
            except DownloadError as exc:
                failures.append(exc)
                # Once a run has delivered part of a gallery, another run would send it all again.
                if len(files.seen) > before or isinstance(exc, TooLarge):
                    break
        worst = _most_informative(failures)
        if isinstance(worst, LoginRequired) and (hint := self.login_hint(url)) is not None:
            worst = LoginRequired(worst.message if cookies is None else f"{worst.message} (even with your cookies)",
                                  hint=hint)
        raise worst

    async def _cookies(self, job: Job, url: str, folder: Path) -> Path | None:
        if self.cookies is None:
            return None
        private = folder / ".private"
        await trio.Path(private).mkdir(mode=0o700, exist_ok=True)
        return await self.cookies.cookies_for_job(job.owner, url, private)

    async def _fetch(
        self,
        fetcher: Fetcher,
        job: Job,
        folder: Path,
        url: str,
        files: _JobFiles,
        send: trio.MemorySendChannel[JobFile],
    ) -> None:
        got_any = False

        async def found(line: FileLine) -> None:
            nonlocal got_any
            if await self._publish(job, folder, url, line, files, send):
                got_any = True

        await fetcher.fetch(url, folder, found)
        if not got_any:
            raise NoMedia(f"nothing was found at {url}")

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[GuardProxy | None]:
        """The destination guard every connection of a tool run goes through; none where private addresses are
        allowed. The check of the link itself cannot see the redirects and lookups the tools make on their own."""
        if self.settings.allow_private_addresses:
            yield None
            return
        async with open_guard_proxy(is_allowed=self.is_public) as guard:
            yield guard

    def _command(
        self, attempt: Attempt, url: str, folder: Path, job: Job, limits: ToolLimits, cookies: Path | None,
        guard: GuardProxy | None,
    ) -> list[str]:
        # A watch's archive remembers what the tool already fetched for it, so each check takes only new stories.
        archive = self.cache_dir / "watches" / f"{job.options.watch}-{attempt.tool}.archive" if (
            job.options.archive and job.options.watch is not None and self.cache_dir is not None
        ) else None
        if attempt.tool is Tool.GALLERY_DL:
            return gallery_dl_command(
                url, folder, modules=attempt.extractors, limits=limits,
                cache_file=self.cache_dir / "gallery-dl.sqlite3" if self.cache_dir else None, archive=archive,
                cookies=cookies, proxy=guard.url if guard is not None else None,
            )
        return ytdlp_command(
            url, folder, extractors=attempt.extractors, options=job.options, limits=limits,
            cache_dir=self.cache_dir / "yt-dlp" if self.cache_dir else None, archive=archive, cookies=cookies,
            proxy=guard.url if guard is not None else None,
        )

    async def _run_one_tool(
        self,
        tool: Tool,
        command: list[str],
        job: Job,
        folder: Path,
        url: str,
        url_index: int,
        files: _JobFiles,
        send: trio.MemorySendChannel[JobFile],
        *,
        env: Mapping[str, str],
    ) -> None:
        found_lines: trio.MemorySendChannel[FileLine]
        found_lines, found_receive = trio.open_memory_channel[FileLine](math.inf)
        got_any = False

        def on_stdout(line: str) -> None:
            parsed = parse_line(tool, line)
            if isinstance(parsed, FileLine):
                found_lines.send_nowait(parsed)
            elif isinstance(parsed, ProgressLine):
                self._emit(DownloadProgress(
                    job.id, url_index, len(job.urls), len(files.known), parsed.filename,
                    parsed.downloaded, parsed.total, parsed.speed, parsed.eta,
                ))

        def on_stderr(line: str) -> None:
            if tool is Tool.GALLERY_DL:  # gallery-dl's progress goes to stderr
                on_stdout(line)

        skipped_any = False

        async def publish_all() -> None:
            nonlocal got_any, skipped_any
            async for found in found_receive:
                if await self._publish(job, folder, url, found, files, send):
                    got_any = True
                elif found.skipped:
                    skipped_any = True  # in its archive (a watch): seen before, not missing

        started = False

        def counted(process: trio.Process) -> None:
            nonlocal started
            started = True
            self.live_processes += 1

        log.debug("job %d: %s %s", job.id, tool, url)
        with single_error():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_all)
                try:
                    with found_lines:
                        async with trio.open_nursery() as running:
                            running.start_soon(self._guard_disk, folder)
                            result = await run_tool(
                                command, cwd=folder, on_stdout_line=on_stdout, on_stderr_line=on_stderr,
                                on_started=counted, env=env,
                            )
                            running.cancel_scope.cancel()
                finally:
                    if started:
                        self.live_processes -= 1
        if result.returncode not in (0, 101):  # yt-dlp's 101: --max-downloads reached, not a failure
            raise classify(tool, result.returncode, result.stderr_tail)
        if not got_any:
            if skipped_any and job.options.watch is not None:
                return  # everything there was fetched by an earlier check: nothing new, and no other tool to try
            error = classify(tool, 1, result.stderr_tail)
            if isinstance(error, TooLarge):
                raise error
            raise NoMedia(f"{tool}: no media found at {url}")

    async def _guard_disk(self, folder: Path) -> None:
        """While a tool runs: stop it (by raising) before the disk fills, the job outgrows its quota or one file
        its size limit. The tools check sizes only as declared; a chunked or HLS download declares none."""
        while True:
            disk = await trio.to_thread.run_sync(_disk_state, folder)
            if disk.free < self.settings.min_free_space:
                raise DiskFull(f"only {disk.free // 1_000_000} MB of disk left; StoryFlow keeps "
                               f"{self.settings.min_free_space // 1_000_000} MB free")
            if self.settings.max_job_disk and disk.used > self.settings.max_job_disk:
                quota = self.settings.max_job_disk // 1_000_000
                raise DiskFull(f"the download outgrew the job's disk quota ({quota} MB)")
            if disk.largest > self.settings.max_file_size:
                raise TooLarge(f"a file grew past the size limit ({_megabytes(self.settings.max_file_size)}) "
                               "while downloading; it was stopped")
            await trio.sleep(DISK_CHECK_SECONDS)

    async def _publish(
        self,
        job: Job,
        folder: Path,
        url: str,
        found: FileLine,
        files: _JobFiles,
        send: trio.MemorySendChannel[JobFile],
    ) -> bool:
        """Record and send on one reported file; False if it is not a file of this job (skipped, outside)."""
        checked = await trio.to_thread.run_sync(_inspect, folder, found.path, self.settings.max_file_size)
        if checked is None:
            log.info("job %d: no file of this job at a reported path (skipped by the tool, or outside)", job.id)
            return False
        files.seen.add(checked.relative)
        previous = files.known.get(checked.relative)
        if previous is not None:
            if files.already_handled(previous, checked.sha256):
                return True  # a skip on resume, or a second print
            # Other bytes, or the same ones never delivered (a retry after a failed upload): they go out now.
            file = await self.store.update_file(job.id, previous.index, size=checked.size, sha256=checked.sha256)
        else:
            file = await self.store.add_file(
                job.id,
                path=checked.relative,
                name=safe_display_name(checked.relative, found.title, found.source_url or url),
                size=checked.size,
                sha256=checked.sha256,
                kind=kind_for_name(checked.relative),
                source_url=found.source_url or url,
                title=found.title,
                uploader=found.uploader,
                posted_at=found.posted_at,
            )
        files.known[checked.relative] = file
        files.sent.add(checked.relative)
        self._emit(FileReady(file))
        await send.send(file)
        return True

    async def _resume(self) -> None:
        for job in await self.store.unfinished_jobs():
            if job.state is not JobState.QUEUED:
                job = await self.store.set_state(job.id, JobState.QUEUED)
            log.info("resuming job %d", job.id)
            self._enqueue(job)

    async def _sweep(self) -> None:
        """Remove job folders no unfinished job owns (left by crashes)."""
        keep = {str(job.id) for job in await self.store.unfinished_jobs()}

        def sweep() -> None:
            self.jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for entry in self.jobs_dir.iterdir():
                if entry.name not in keep:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)

        await trio.to_thread.run_sync(sweep)

    async def _serve(self, receive: trio.MemoryReceiveChannel[int]) -> None:
        async with trio.open_nursery() as nursery:
            async for job_id in receive:
                nursery.start_soon(self._run_job, job_id)


def _worth_trying(attempt: Attempt, failure: DownloadError, chosen: Route) -> bool:
    """After a failed run, whether ``attempt`` could do better. An unrestricted rerun of the tool that just
    failed helps only when the restricted run found nothing it could handle; any other error would repeat."""
    previous = chosen.attempts[chosen.attempts.index(attempt) - 1]
    if previous.tool is attempt.tool and previous.restricted and not attempt.restricted:
        return isinstance(failure, UnsupportedURL | NoMedia)
    return True


def _most_informative(errors: list[DownloadError]) -> DownloadError:
    best = errors[0]
    for error in errors[1:]:
        best = more_informative(best, error)
    return best


@asynccontextmanager
async def open_engine(
    store: JobStore,
    settings: DownloadConfig,
    *,
    jobs_dir: Path,
    delivery: Delivery,
    cache_dir: Path | None = None,
    resume: bool = True,
    observers: Sequence[Callable[[EngineEvent], None]] = (),
    fetchers: Sequence[Fetcher] = (),
    cookies: CookieSource | None = None,
    login_hint: Callable[[str], str | None] | None = None,
    is_public: Callable[[str], bool] | None = None,
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the block: sweeps orphan folders, resumes unfinished jobs.

    Leaving the block cancels running jobs; they stay unfinished in the store and resume on the next start.
    """
    engine = Engine(store, settings, jobs_dir, delivery, cache_dir, {f.scheme: f for f in fetchers}, cookies)
    if login_hint is not None:
        engine.login_hint = login_hint
    if is_public is not None:
        engine.is_public = is_public
    for observer in observers:
        engine.subscribe(observer)
    send, receive = trio.open_memory_channel[int](math.inf)
    engine._start = send
    await engine._sweep()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine._serve, receive)
        # Both tools' extractor tables load on the first routing (about a second of CPU): not on a user's first link.
        nursery.start_soon(partial(trio.to_thread.run_sync, route, "https://example.com/warm-up.jpg"))
        if resume:
            await engine._resume()
        try:
            yield engine
        finally:
            nursery.cancel_scope.cancel()
