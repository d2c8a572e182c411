"""Story watching: accounts checked on an interval (with jitter), each new story posted once into a chosen chat.

Telegram and Snapchat list their stories with ids, so a check takes the ids it has not seen (saved in the store in
the same step) and queues one job for them; if that job fails, its ids are released and a later check tries again.
Sites reached through gallery-dl / yt-dlp (Instagram, TikTok, X) are checked by a job of their own whose tool keeps
a download archive per watch, so it fetches only what it has not fetched before. Seen ids and archives persist: a
restart neither re-posts nor skips a story. Flood waits and rate limits push the next check back (doubling, up to
six hours); other failures are recorded and shown by ``.watch``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import attrs
import trio

from .._errors import DownloadError, FloodWait, JobRefused, RateLimited, StoryFlowError
from ..download import JobUpdated
from ..jobs import FileState, Job, JobOptions, JobRequest, JobState, JobStore, Origin, StoryLabel, Watch
from ..telegram._stories import story_url

log = logging.getLogger("storyflow.watch")

MAX_BACKOFF_SECONDS = 6 * 3600.0
WATCHABLE = ("telegram", "snapchat", "instagram", "tiktok", "x")
# Checked by a job of their own on the account's page (gallery-dl / yt-dlp with a per-watch archive).
PAGE_SITES = ("instagram", "tiktok", "x")


@attrs.frozen
class Found:
    """What one check found: stories by id (with their labels), or a web page for the download tools."""

    labels: dict[str, StoryLabel] = attrs.field(factory=dict)  # internal or media URL -> label
    ids: dict[str, str] = attrs.field(factory=dict)  # URL -> the id that makes it "seen"
    page: str | None = None
    internal: bool = False


Lister = Callable[[Watch], Awaitable[Found]]
Submit = Callable[[JobRequest, bool], Awaitable[Job]]


@attrs.define(eq=False)
class Watcher:
    """Runs the checks. ``lister`` says what a watch's account has now; ``submit`` queues a job."""

    store: JobStore
    lister: Lister
    submit: Submit
    interval: float
    jitter: float
    checks: int = attrs.field(init=False, default=0)
    _wake: trio.Event = attrs.field(init=False, factory=trio.Event)
    _checked: trio.Event = attrs.field(init=False, factory=trio.Event)

    def next_time(self, *, after: float, failures: int = 0) -> float:
        if failures:
            return after + min(MAX_BACKOFF_SECONDS, self.interval * 2.0**failures)
        spread = self.interval * self.jitter
        return after + self.interval + random.uniform(-spread, spread)

    def wake(self) -> None:
        """A watch was added or changed: look at the schedule again."""
        self._wake.set()

    async def wait_for_checks(self, count: int) -> None:
        """Until ``count`` checks have finished since the start (for tests and benchmarks)."""
        while self.checks < count:
            await self._checked.wait()

    async def run(self) -> None:
        if released := await self.store.release_unassigned_stories():
            log.info("%d stories taken by a check that never queued them will be taken again", released)
        while True:
            watches = await self.store.watches()
            now = time.time()
            due = [w for w in watches if w.next_check <= now]
            for listed in due:
                # Checks run one after another: a watch may have been removed, or put off by its job's failure
                # (job_ended), since the list was read.
                watch = await self.store.get_watch(listed.id)
                if watch is not None and watch.next_check <= time.time():
                    await self.check(watch)
            if due:
                continue
            soonest = min((w.next_check for w in watches), default=now + 3600)
            self._wake = trio.Event()
            with trio.move_on_after(max(0.0, soonest - time.time())):
                await self._wake.wait()

    async def check(self, watch: Watch) -> None:
        found_new = False
        error: str | None = None
        failures = 0
        try:
            found_new = await self._check(watch)
            if watch.site in PAGE_SITES:
                # The check only queued a job; its outcome (job_ended) decides about errors and backoff, and may
                # already have been recorded meanwhile.
                current = await self.store.get_watch(watch.id)
                if current is not None:
                    failures, error = current.failures, current.last_error
        except (FloodWait, RateLimited) as exc:
            failures = watch.failures + 1
            error = exc.user_text()
            log.info("watch %d: %s; next check in %s", watch.id, exc.message, "backoff")
        except StoryFlowError as exc:
            error = exc.user_text()
            log.info("watch %d failed: %s", watch.id, exc.message)
        except Exception:
            # A bug in one site's check must not stop every other watch (or the userbot).
            failures = watch.failures + 1
            error = "internal error while checking (see the log)"
            log.exception("watch %d: the check failed unexpectedly", watch.id)
        next_check = self.next_time(after=time.time(), failures=failures)
        await self.store.watch_checked(watch.id, next_check=next_check, found_new=found_new, error=error,
                                       failures=failures)
        self.checks += 1
        self._checked.set()
        self._checked = trio.Event()

    async def _check(self, watch: Watch) -> bool:
        found = await self.lister(watch)
        options = JobOptions(story=True, watch=watch.id)
        origin = Origin(chat_id=watch.chat_id)
        if found.page is not None:
            if any(job.options.watch == watch.id for job in await self.store.unfinished_jobs()):
                log.info("watch %d: the previous check's job is still running; not queueing another", watch.id)
                return False
            # The tool's archive for this watch decides what is new; a job that finds nothing ends quietly.
            options = attrs.evolve(options, archive=True)
            job = await self.submit(JobRequest((found.page,), watch.owner, options, origin), False)
            log.info("watch %d: job %d looks for new stories", watch.id, job.id)
            return False
        new_ids = await self.store.take_new_stories(watch.id, list(found.ids.values()))
        if not new_ids:
            return False
        wanted = set(new_ids)
        labels = {url: label for url, label in found.labels.items() if found.ids[url] in wanted}
        try:
            job = await self.submit(JobRequest(tuple(labels), watch.owner, options, origin, labels=labels),
                                    found.internal)
        except (JobRefused, DownloadError, StoryFlowError):
            await self.store.release_stories(watch_id=watch.id, stories=new_ids)
            raise
        await self.store.assign_stories(watch.id, {found.ids[url]: url for url in labels}, job.id)
        log.info("watch %d: %d new stories, job %d", watch.id, len(new_ids), job.id)
        return True

    async def job_ended(self, jobs: trio.MemoryReceiveChannel[Job]) -> None:
        """What a watch job's end means for its watch: stories that did not arrive are taken again by a later
        check; a web watch's job records whether it found something new, or its error (and backs off)."""
        async for job in jobs:
            watch_id = job.options.watch
            if watch_id is None:
                continue
            if job.state is JobState.DONE:
                delivered = {f.source_url for f in job.files if f.state is FileState.DELIVERED}
                released = await self.store.release_undelivered_stories(job.id, delivered)
            else:
                released = await self.store.release_stories(job_id=job.id)
            if released:
                log.info("watch %d: job %d %s; %d stories will be tried again", watch_id, job.id, job.state, released)
            watch = await self.store.get_watch(watch_id)
            if watch is not None and watch.site in PAGE_SITES:
                await self._page_job_ended(watch, job)

    async def _page_job_ended(self, watch: Watch, job: Job) -> None:
        found_new = any(f.state is FileState.DELIVERED for f in job.files)
        if job.state is JobState.FAILED:
            failures = watch.failures + 1
            next_check = max(watch.next_check, self.next_time(after=time.time(), failures=failures))
            log.info("watch %d: job %d failed (%s); backing off", watch.id, job.id, job.error)
        else:
            failures, next_check = 0, watch.next_check
        await self.store.watch_checked(watch.id, next_check=next_check, found_new=found_new, error=job.error,
                                       failures=failures, checked_at=watch.last_check)


def finished_watch_jobs(send: trio.MemorySendChannel[Job]) -> Callable[[object], None]:
    """An engine observer feeding :meth:`Watcher.release_failed`."""

    def observe(event: object) -> None:
        if isinstance(event, JobUpdated) and event.job.finished and event.job.options.watch is not None:
            try:
                send.send_nowait(event.job)
            except trio.WouldBlock:
                log.warning("job %d of watch %s: could not note its end", event.job.id, event.job.options.watch)

    return observe


def telegram_found(
    owner_id: int, owner_name: str, username: str | None, stories: list[tuple[int, float | None]]
) -> Found:
    labels, ids = {}, {}
    for number, (story_id, posted_at) in enumerate(stories, start=1):
        url = story_url(owner_id, story_id)
        link = f"https://t.me/{username}/s/{story_id}" if username else None
        labels[url] = StoryLabel(owner_name, posted_at, number, len(stories), None, link)
        ids[url] = str(story_id)
    return Found(labels, ids, internal=True)
