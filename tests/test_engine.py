"""The engine with real gallery-dl and yt-dlp processes against the loopback media server."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from storyflow import (
    DownloadTimeout,
    NotFound,
    OwnerLimitReached,
    PrivateAddress,
    PrivateDestination,
    StoryFlowError,
    TooLarge,
    UnsafeURL,
)
from storyflow.download import (
    DeliveryHandle,
    DownloadProgress,
    FileReady,
    JobUpdated,
    Notice,
    QueueMoved,
    open_engine,
)
from storyflow.jobs import FileState, JobOptions, JobRequest, JobState, JobStore, MediaKind, open_store
from storyflow.testing._httpserver import MediaServer
from storyflow.testing._media import video_page_html

from .conftest import (
    CollectingDelivery,
    EngineRig,
    MediaFiles,
    child_pids,
    descendants,
    engine_settings,
    processes_in_group,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def finished(rig: EngineRig, job_id: int) -> JobUpdated:
    """Wait for the job's final JobUpdated (driven by events, no polling)."""
    done = trio.Event()
    result: list[JobUpdated] = []

    def watch(event: object) -> None:
        if isinstance(event, JobUpdated) and event.job.id == job_id and event.job.finished:
            result.append(event)
            done.set()

    unsubscribe = rig.engine.subscribe(watch)
    try:
        job = await rig.engine.store.get_job(job_id)
        assert job is not None
        if not job.finished or rig.engine.is_active(job_id):
            await done.wait()
        else:
            result.append(JobUpdated(job))
    finally:
        unsubscribe()
    return result[0]


async def test_gallery_dl_direct_link_downloads_exact_bytes(
    rig: EngineRig, site: MediaServer, media: MediaFiles
) -> None:
    job = await rig.engine.submit(JobRequest((site.url("/clip.mp4"), site.url("/photo.jpg")), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert [f.kind for f in final.files] == [MediaKind.VIDEO, MediaKind.PHOTO]
    assert all(f.state is FileState.DELIVERED for f in final.files)
    assert rig.delivery.bytes_seen[final.files[0].name] == media.video.read_bytes()
    assert final.files[0].sha256 == sha256(media.video)
    assert final.files[1].sha256 == sha256(media.image)
    # gallery-dl took them (directlink), so yt-dlp was never needed: one GET each.
    assert site.request_count("/clip.mp4") == 1
    # Delivered jobs leave no folder behind.
    assert not (rig.jobs_dir / str(job.id)).exists()


@pytest.mark.parametrize("page", ["video-page", "og-page"])
async def test_ytdlp_finds_video_in_html_page(
    rig: EngineRig, site: MediaServer, media: MediaFiles, page: str
) -> None:
    from storyflow.testing._media import og_video_page_html

    if page == "og-page":
        site.add_html("/watch/og-page.html", og_video_page_html(site.url("/media/video.mp4"), title="OG clip"))
    job = await rig.engine.submit(JobRequest((site.url(f"/watch/{page}.html"),), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert len(final.files) == 1
    assert final.files[0].kind is MediaKind.VIDEO
    assert final.files[0].sha256 == sha256(media.video)


async def test_redirect_is_followed(rig: EngineRig, site: MediaServer, media: MediaFiles) -> None:
    job = await rig.engine.submit(JobRequest((site.url("/redirect.mp4"),), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert final.files[0].sha256 == sha256(media.video)


async def test_files_are_published_as_they_land(rig: EngineRig, site: MediaServer) -> None:
    """The first URL's file reaches delivery while the second URL is still downloading."""
    job = await rig.engine.submit(JobRequest((site.url("/clip.mp4"), site.url("/slow.mp4")), owner=1))
    order: list[str] = []

    def watch(event: object) -> None:
        if isinstance(event, FileReady) and event.file.job_id == job.id:
            order.append(f"file:{event.file.path}")
        if isinstance(event, JobUpdated) and event.job.id == job.id:
            order.append(f"state:{event.job.state}")

    rig.engine.subscribe(watch)
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert order.index("file:" + final.files[0].path) < order.index("state:delivering")
    assert rig.delivery.received[0].name == final.files[0].name


async def test_not_found_is_classified(rig: EngineRig, site: MediaServer) -> None:
    job = await rig.engine.submit(JobRequest((site.url("/missing.mp4"),), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.FAILED
    assert final.error_kind == NotFound.kind
    assert "private, deleted" in (final.error or "")


async def test_both_tools_fail_the_more_informative_error_wins(rig: EngineRig, site: MediaServer) -> None:
    # No gallery-dl module claims this URL (no media suffix), so yt-dlp alone runs and reaches a 404.
    job = await rig.engine.submit(JobRequest((site.url("/gone"),), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.FAILED
    assert final.error_kind == NotFound.kind, final.error
    # yt-dlp's restricted run got a 404, which an unrestricted run would only repeat: it is not made.
    assert site.request_count("/gone") == 1


async def test_partial_gallery_is_done_with_the_error_kept(rig: EngineRig, site: MediaServer) -> None:
    job = await rig.engine.submit(JobRequest((site.url("/photo.jpg"), site.url("/missing.mp4")), owner=1))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE
    assert len(final.files) == 1
    assert final.error_kind == NotFound.kind


async def test_limiter_is_never_exceeded(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    delivery = CollectingDelivery()
    peak = 0
    async with open_engine(store, engine_settings(max_concurrent=2), jobs_dir=jobs_dir, delivery=delivery) as engine:
        jobs = [await engine.submit(JobRequest((site.url("/slow.mp4"),), owner=i)) for i in range(5)]
        assert [engine.queue_position(j.id) for j in jobs][2:] != [None, None, None]
        while True:
            peak = max(peak, len(child_pids()), engine.live_processes)
            states = [await store.get_job(j.id) for j in jobs]
            if all(s is not None and s.finished for s in states):
                break
            await trio.sleep(0.05)  # sampling the process table, not waiting for readiness
    assert peak == 2
    assert all(s.state is JobState.DONE for s in [await store.get_job(j.id) for j in jobs] if s)


async def test_queue_positions(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    async with open_engine(
        store, engine_settings(max_concurrent=1), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        first = await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=1))
        second = await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=2))
        third = await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=3))
        await site.wait_for_request("/hang.mp4")
        assert engine.queue_position(first.id) is None  # running
        assert engine.queue_position(second.id) == 1
        assert engine.queue_position(third.id) == 2
        moved = trio.Event()
        second_ended = trio.Event()

        def watch(event: object) -> None:
            if isinstance(event, QueueMoved) and event.positions == {third.id: 1}:
                moved.set()
            if isinstance(event, JobUpdated) and event.job.id == second.id and event.job.finished:
                second_ended.set()

        engine.subscribe(watch)
        await engine.cancel(second.id)
        await moved.wait()
        assert engine.queue_position(third.id) == 1
        await second_ended.wait()
        assert (await store.get_job(second.id)).state is JobState.CANCELLED  # type: ignore[union-attr]


async def test_cancel_running_job_kills_process_group_and_removes_files(
    rig: EngineRig, site: MediaServer
) -> None:
    downloading = trio.Event()
    rig.engine.subscribe(lambda e: downloading.set() if isinstance(e, DownloadProgress) else None)
    job = await rig.engine.submit(JobRequest((site.url("/slow.mp4"),), owner=1))
    await downloading.wait()  # bytes are arriving: the tool is mid-download with a partial file
    folder = rig.jobs_dir / str(job.id)
    assert any(folder.iterdir())
    groups = sorted(child_pids())
    assert groups, "the download process should be running"
    await rig.engine.cancel(job.id)
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.CANCELLED
    assert not folder.exists()
    assert child_pids() == set()
    for pgid in groups:
        assert processes_in_group(pgid) == set()


async def test_timeout_kills_the_tool_and_says_so(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    delivery = CollectingDelivery()
    async with open_engine(store, engine_settings(job_timeout=1.5), jobs_dir=jobs_dir, delivery=delivery) as engine:
        job = await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=1))
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        await done.wait()
    final = await store.get_job(job.id)
    assert final is not None
    assert final.state is JobState.FAILED
    assert final.error_kind == DownloadTimeout.kind
    assert child_pids() == set()
    assert not (jobs_dir / str(job.id)).exists()


async def test_file_over_the_size_limit(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    site.add_generated("/big.mp4", 3_000_000, content_type="video/mp4")
    async with open_engine(
        store, engine_settings(max_file_size=1_000_000), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        job = await engine.submit(JobRequest((site.url("/big.mp4"),), owner=1))
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        await done.wait()
    final = await store.get_job(job.id)
    assert final is not None
    assert final.state is JobState.FAILED
    assert final.error_kind == TooLarge.kind, final.error


async def test_item_limit_caps_a_gallery_and_says_so(
    store: JobStore, jobs_dir: Path, site: MediaServer, media: MediaFiles
) -> None:
    videos = [site.add_file(f"/many/{i}.mp4", media.video if i % 2 else media.video2) for i in range(4)]
    site.add_html("/many.html", "<html><body>" + "".join(
        f'<video><source src="{url}" type="video/mp4"></video>' for url in videos) + "</body></html>")
    notices: list[str] = []
    async with open_engine(
        store, engine_settings(max_items=2), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        engine.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) else None)
        job = await engine.submit(JobRequest((site.url("/many.html"), site.url("/photo.jpg")), owner=1))
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        await done.wait()
    final = await store.get_job(job.id)
    assert final is not None
    assert final.state is JobState.DONE, final.error
    assert len(final.files) == 2
    assert site.request_count("/photo.jpg") == 0  # the limit was reached before the second link
    assert sum(site.request_count(f"/many/{i}.mp4") for i in range(2, 4)) == 0
    assert any("limit of 2 files" in text for text in notices)


async def test_owner_limit_is_refused_clearly(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    async with open_engine(
        store, engine_settings(max_jobs_per_owner=2, max_concurrent=1), jobs_dir=jobs_dir,
        delivery=CollectingDelivery(),
    ) as engine:
        for _ in range(2):
            await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=7))
        with pytest.raises(OwnerLimitReached, match="2 unfinished jobs"):
            await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=7))
        # Another owner is not affected.
        await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=8))
        for job in await store.unfinished_jobs():
            await engine.cancel(job.id)


HOSTILE = [
    "--exec=touch /tmp/pwned",
    "-o/tmp/x",
    "-a /etc/passwd",
    "ytdl:https://example.com/v",
    "generic:http://example.com/",
    "recursive:file:///etc/passwd",
    "r:https://example.com/",
    "file:///etc/passwd",
    "ftp://example.com/a.mp4",
    "javascript:alert(1)",
    "https://user:pass@example.com/",
    "https://exa\u202emple.com/",
    "ｈttps://example.com/",
    "https://example.com/a b",
    "",
]


@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_urls_are_refused_before_any_process(store: JobStore, jobs_dir: Path, url: str) -> None:
    async with open_engine(store, engine_settings(), jobs_dir=jobs_dir, delivery=CollectingDelivery()) as engine:
        with pytest.raises(UnsafeURL):
            await engine.submit(JobRequest((url,), owner=1))
        assert engine.live_processes == 0
    assert await store.recent_jobs() == []
    assert child_pids() == set()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1", "[::1]", "[::ffff:127.0.0.1]", "10.0.0.1",
             "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"],
)
async def test_private_destinations_refused_by_default(store: JobStore, jobs_dir: Path, host: str) -> None:
    settings = engine_settings(allow_private_addresses=False)
    async with open_engine(store, settings, jobs_dir=jobs_dir, delivery=CollectingDelivery()) as engine:
        with pytest.raises(PrivateAddress):
            await engine.submit(JobRequest((f"http://{host}/a.mp4",), owner=1))
    assert await store.recent_jobs() == []


async def test_audio_only_and_options_persist(rig: EngineRig, site: MediaServer) -> None:
    job = await rig.engine.submit(JobRequest((site.url("/song.mp3"),), owner=1, options=JobOptions(audio_only=True)))
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert final.options.audio_only
    assert final.files[0].kind is MediaKind.AUDIO


CHILD = Path(__file__).with_name("engine_child.py")


async def test_abrupt_stop_resumes_without_downloading_finished_files_again(
    tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    """kill -9 a process mid-job; a new engine on the same store finishes it."""
    database, jobs_dir = tmp_path / "jobs.sqlite3", tmp_path / "jobs"
    urls = [site.url("/clip.mp4"), site.url("/hang.mp4")]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(CHILD), str(database), str(jobs_dir), *urls],
                start_new_session=True,
                check=False,
            )
        )
        await site.wait_for_request("/hang.mp4")  # the first file is down, the second is stuck
        os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    site.add_file("/hang.mp4", media.video2)  # the link works now

    delivery = CollectingDelivery()
    async with open_store(database) as store:
        before = await store.unfinished_jobs()
        assert len(before) == 1
        assert before[0].state is JobState.DOWNLOADING
        assert [f.state for f in before[0].files] == [FileState.COMPLETE]
        async with open_engine(store, engine_settings(), jobs_dir=jobs_dir, delivery=delivery) as engine:
            done = trio.Event()
            engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
            await done.wait()
        final = await store.get_job(before[0].id)
    assert final is not None
    assert final.state is JobState.DONE, final.error
    assert sorted(f.sha256 for f in final.files) == sorted([sha256(media.video), sha256(media.video2)])
    assert site.request_count("/clip.mp4") == 1  # not downloaded again
    assert len(delivery.received) == 2


async def test_shutdown_leaves_jobs_to_resume(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    async with open_engine(store, engine_settings(), jobs_dir=jobs_dir, delivery=CollectingDelivery()) as engine:
        job = await engine.submit(JobRequest((site.url("/hang.mp4"),), owner=1))
        await site.wait_for_request("/hang.mp4")
    assert child_pids() == set()
    left = await store.get_job(job.id)
    assert left is not None
    assert left.state is JobState.DOWNLOADING
    assert (jobs_dir / str(job.id)).exists()  # kept for the resume
    # The start-up sweep removes orphans but not this folder.
    (jobs_dir / "999").mkdir()
    async with open_engine(
        store, engine_settings(), jobs_dir=jobs_dir, delivery=CollectingDelivery(), resume=False
    ):
        assert (jobs_dir / str(job.id)).exists()
        assert not (jobs_dir / "999").exists()



@pytest.mark.parametrize("route", ["/photo.jpg", "/watch/video-page.html"])  # gallery-dl's archive, yt-dlp's
async def test_a_watch_job_takes_only_what_its_archive_has_not_seen(
    store: JobStore, tmp_path: Path, site: MediaServer, route: str
) -> None:
    delivery = CollectingDelivery()
    finals: list[JobUpdated] = []
    async with open_engine(
        store, engine_settings(), jobs_dir=tmp_path / "jobs", delivery=delivery, cache_dir=tmp_path / "cache"
    ) as engine:
        for _ in range(2):
            done = trio.Event()
            unsubscribe = engine.subscribe(
                lambda e, done=done: (finals.append(e), done.set()) if isinstance(e, JobUpdated) and e.job.finished
                else None
            )
            options = JobOptions(story=True, watch=5, archive=True)
            await engine.submit(JobRequest((site.url(route),), owner=1, options=options))
            await done.wait()
            unsubscribe()
    first, second = (event.job for event in finals)
    assert first.state is JobState.DONE and len(first.files) == 1
    # Nothing new is not a failure for a watch: done, quietly, with nothing sent.
    assert second.state is JobState.DONE and second.files == () and second.error is None
    assert len(delivery.received) == 1


async def test_a_download_that_outgrows_its_disk_quota_is_stopped(
    store: JobStore, jobs_dir: Path, site: MediaServer
) -> None:
    from storyflow import DiskFull
    from storyflow.testing._httpserver import Delivery

    # Throttled, so the tool is still writing when the folder passes the quota (the check runs twice a second).
    site.add_generated("/huge.bin", 40_000_000, content_type="application/octet-stream",
                       delivery=Delivery(bytes_per_second=4_000_000))
    async with open_engine(
        store, engine_settings(max_job_disk=2_000_000), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        job = await engine.submit(JobRequest((site.url("/huge.bin"),), owner=1))
        await done.wait()
        final = await store.get_job(job.id)
        assert final is not None and final.state is JobState.FAILED
        assert final.error_kind == DiskFull.kind and "quota" in (final.error or ""), final.error
        assert not (jobs_dir / str(job.id)).exists()
        assert child_pids() == set()
        done = trio.Event()
        after = await engine.submit(JobRequest((site.url("/photo.jpg"),), owner=1))
        await done.wait()
        assert (await store.get_job(after.id)).state is JobState.DONE  # type: ignore[union-attr]


async def test_too_little_free_disk_refuses_to_download(store: JobStore, jobs_dir: Path, site: MediaServer) -> None:
    async with open_engine(
        store, engine_settings(min_free_space=10**18), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        job = await engine.submit(JobRequest((site.url("/photo.jpg"),), owner=1))
        await done.wait()
    final = await store.get_job(job.id)
    assert final is not None and final.state is JobState.FAILED
    assert "of disk left" in (final.error or "") and "free some disk space" in (final.error or "")
    assert site.request_count("/photo.jpg") <= 1  # stopped at the first check


# -- retry and resume deliver what was never delivered -------------------------------------------------------


@attrs.define(eq=False)
class FailsFirstDelivery(CollectingDelivery):
    """The first job's delivery fails (an upload that broke); later ones deliver."""

    failures_left: int = 1

    async def deliver(self, handle: DeliveryHandle) -> None:
        if self.failures_left:
            self.failures_left -= 1
            async for file in handle.files:
                await handle.failed(file, StoryFlowError("upload failed"))
                raise StoryFlowError("the chat is gone")
        await super().deliver(handle)


async def test_retry_after_a_failed_delivery_sends_the_files(
    store: JobStore, jobs_dir: Path, site: MediaServer, media: MediaFiles
) -> None:
    delivery = FailsFirstDelivery()
    async with open_engine(store, engine_settings(), jobs_dir=jobs_dir, delivery=delivery) as engine:
        rig = EngineRig(engine, delivery, [], jobs_dir)
        job = await engine.submit(JobRequest((site.url("/photo.jpg"),), owner=1))
        failed = (await finished(rig, job.id)).job
        assert failed.state is JobState.FAILED
        assert [f.state for f in failed.files] == [FileState.FAILED]
        await engine.retry(job.id)
        final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert [f.state for f in final.files] == [FileState.DELIVERED]
    assert [f.sha256 for f in delivery.received] == [sha256(media.image)]
    assert site.request_count("/photo.jpg") == 2  # the failed run's folder went; the retry fetched it again


async def test_retry_of_a_job_cancelled_during_delivery_delivers(
    rig: EngineRig, site: MediaServer, media: MediaFiles
) -> None:
    rig.delivery.gate = trio.Event()  # delivery is held: the file is downloaded but never goes out
    ready = trio.Event()
    rig.engine.subscribe(lambda e: ready.set() if isinstance(e, FileReady) else None)
    job = await rig.engine.submit(JobRequest((site.url("/clip.mp4"),), owner=1))
    await ready.wait()
    await rig.engine.cancel(job.id)
    cancelled = (await finished(rig, job.id)).job
    assert cancelled.state is JobState.CANCELLED
    assert rig.delivery.received == []
    rig.delivery.gate.set()
    await rig.engine.retry(job.id)
    final = (await finished(rig, job.id)).job
    assert final.state is JobState.DONE, final.error
    assert [f.state for f in final.files] == [FileState.DELIVERED]
    assert [f.sha256 for f in rig.delivery.received] == [sha256(media.video)]


async def test_resume_near_the_item_limit_fetches_the_rest_of_the_gallery(
    tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    """kill -9 while the last item of a gallery is downloading; the resumed job still gets that item."""
    database, jobs_dir = tmp_path / "jobs.sqlite3", tmp_path / "jobs"
    items = [site.add_file(f"/many/{i}.mp4", media.video if i % 2 else media.video2) for i in range(3)]
    items.append(site.add_hang("/many/3.mp4"))
    site.add_html("/many.html", "<html><body>" + "".join(
        f'<video><source src="{url}" type="video/mp4"></video>' for url in items) + "</body></html>")
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(CHILD), "--max-items", "4", str(database), str(jobs_dir), site.url("/many.html")],
                start_new_session=True,
                check=False,
            )
        )
        await site.wait_for_request("/many/3.mp4")  # three items are down, the fourth is stuck
        # As a power cut would: the engine and its tool (in a process group of its own) die at once.
        for pid in descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        os.killpg(process.pid, signal.SIGKILL)
    site.add_file("/many/3.mp4", media.video)  # the link works now

    delivery = CollectingDelivery()
    async with open_store(database) as store:
        (before,) = await store.unfinished_jobs()
        async with open_engine(store, engine_settings(max_items=4), jobs_dir=jobs_dir, delivery=delivery) as engine:
            rig = EngineRig(engine, delivery, [], jobs_dir)
            final = (await finished(rig, before.id)).job
    assert final.state is JobState.DONE, final.error
    assert len(final.files) == 4
    assert all(f.state is FileState.DELIVERED for f in final.files)
    assert sorted(f.path for f in delivery.received) == sorted(f.path for f in final.files)  # each once
    assert site.request_count("/many/3.mp4") == 2


# -- a file that grows past the size limit ----------------------------------------------------------------


async def test_a_stream_growing_past_the_file_size_limit_is_stopped(
    store: JobStore, jobs_dir: Path, site: MediaServer
) -> None:
    """HLS declares no size, so the tool's own --max-filesize cannot see it; the engine's guard stops it."""
    from storyflow.testing._httpserver import Delivery

    segments = 40
    for i in range(segments):
        # Throttled, so the tool is still fetching segments when its file passes the limit.
        site.add_generated(f"/live/seg{i}.ts", 500_000, content_type="video/mp2t", seed=i,
                           delivery=Delivery(bytes_per_second=2_000_000))
    site.add_bytes("/live/index.m3u8", (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        + "".join(f"#EXTINF:2.0,\nseg{i}.ts\n" for i in range(segments))
        + "#EXT-X-ENDLIST\n"
    ).encode(), content_type="application/vnd.apple.mpegurl")
    async with open_engine(
        store, engine_settings(max_file_size=1_000_000), jobs_dir=jobs_dir, delivery=CollectingDelivery()
    ) as engine:
        rig = EngineRig(engine, CollectingDelivery(), [], jobs_dir)
        job = await engine.submit(JobRequest((site.url("/live/index.m3u8"),), owner=1))
        final = (await finished(rig, job.id)).job
    assert final.state is JobState.FAILED
    assert final.error_kind == TooLarge.kind
    assert "grew past the size limit (1 MB)" in (final.error or ""), final.error
    assert site.request_count(f"/live/seg{segments - 1}.ts") == 0  # stopped, not left to finish
    assert child_pids() == set()
    assert not (jobs_dir / str(job.id)).exists()


@pytest.mark.parametrize("link", ["/clip.mp4", "/watch/video-page.html"])  # gallery-dl first, then yt-dlp
async def test_redirects_to_private_addresses_are_stopped_by_the_guard(
    store: JobStore, jobs_dir: Path, site: MediaServer, media: MediaFiles, link: str
) -> None:
    """With private addresses refused, every connection the tools make goes through the guard proxy. Here
    127.0.0.1 plays the public internet and any other address is private, so a redirect to 127.0.0.2 stands for
    one to a router or a cloud's metadata service."""
    site.add_redirect("/away.mp4", "http://127.0.0.2:9/clip.mp4")
    site.add_html("/away.html", video_page_html("http://127.0.0.2:9/clip.mp4"))
    delivery = CollectingDelivery()
    async with open_engine(store, engine_settings(allow_private_addresses=False), jobs_dir=jobs_dir,
                           delivery=delivery, is_public=lambda address: address == "127.0.0.1") as engine:
        rig = EngineRig(engine, delivery, [], jobs_dir)
        fine = await engine.submit(JobRequest((site.url(link),), owner=1))
        assert (await finished(rig, fine.id)).job.state is JobState.DONE
        away = "/away.mp4" if link.endswith(".mp4") else "/away.html"
        refused = await engine.submit(JobRequest((site.url(away),), owner=1))
        final = (await finished(rig, refused.id)).job
    [received] = delivery.received
    assert received.sha256 == sha256(media.video)
    assert final.state is JobState.FAILED and final.error_kind == PrivateDestination.kind
    assert "127.0.0.2" in (final.error or "") and "private address" in (final.error or "")
    assert not await trio.Path(jobs_dir / str(refused.id)).exists()
