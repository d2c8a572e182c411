"""`.story`: Telegram stories over MTProto end to end, and the web story pages handed to the download tools."""

from __future__ import annotations

import datetime
import hashlib
import time
from pathlib import Path

import pytest
import trio

from storyflow.bot._parse import UsageError
from storyflow.bot._stories import StoryTarget, parse_story_target
from storyflow.bot._watch import Found, Watcher
from storyflow.jobs import FileState, Job, JobRequest, JobState, JobStore, MediaKind, StoryLabel, Watch
from storyflow.testing._httpserver import MediaServer
from storyflow.testing.telegram import LoopbackTelegram

from .conftest import BotRig, MediaFiles, running_userbot, userbot_config


async def test_telegram_stories_are_posted_as_media_with_story_captions(
    bot: BotRig, telegram: LoopbackTelegram, media: MediaFiles
) -> None:
    posted_at = datetime.datetime(2026, 12, 3, 18, 30, tzinfo=datetime.UTC)
    photo = telegram.post_story(telegram.friend, media.image.read_bytes(), date=posted_at)
    video_bytes = media.video.read_bytes()
    telegram.post_story(telegram.friend, video_bytes, kind="video", duration=1.0, width=160, height=120)
    command = await bot.type(".story @storyflow_friend")
    status = await bot.final_status(command)
    assert status.text.startswith("✅"), status.text
    posted = bot.media_replies(command)
    assert [m.media.sha256 for m in posted if m.media] == [
        hashlib.sha256(media.image.read_bytes()).hexdigest(), hashlib.sha256(video_bytes).hexdigest()
    ]
    assert [m.media.kind for m in posted if m.media] == ["photo", "video"]
    first, second = (m.text for m in posted)
    assert "📖 Friend · story 1/2 · posted 2026-12-03 18:30 UTC" in first
    assert "story 2/2" in second
    assert f"t.me/storyflow_friend/s/{photo.id}" not in first  # the link is an entity, its label is the host
    assert any(getattr(e, "url", "") == f"https://t.me/storyflow_friend/s/{photo.id}" for e in posted[0].entities)


async def test_no_stories_is_a_clear_answer(bot: BotRig) -> None:
    command = await bot.type(".story @storyflow_stranger")
    answer = await bot.answer(command)
    assert "📭" in answer.text and "no active stories" in answer.text
    assert await bot.running.store.recent_jobs() == []


async def test_pinned_stories_are_the_telegram_highlights(
    bot: BotRig, telegram: LoopbackTelegram, media: MediaFiles
) -> None:
    telegram.post_story(telegram.friend, media.image.read_bytes())
    telegram.post_story(telegram.friend, media.png.read_bytes(), pinned=True)
    command = await bot.type(".story tg storyflow_friend highlights")
    assert (await bot.final_status(command)).text.startswith("✅")
    [posted] = bot.media_replies(command)
    assert posted.media is not None
    assert posted.media.sha256 == hashlib.sha256(media.png.read_bytes()).hexdigest()
    assert "highlight “pinned” 1/1" in posted.text


async def test_unknown_telegram_user(bot: BotRig) -> None:
    answer = await bot.answer(await bot.type(".story @nobody_is_called_this"))
    assert answer.text.startswith("❌") and "nobody_is_called_this" in answer.text


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("@durov",), StoryTarget("telegram", "durov")),
        (("instagram", "jane.doe"), StoryTarget("instagram", "jane.doe", "https://www.instagram.com/stories/jane.doe/")),
        (("ig", "jane.doe", "highlights"),
         StoryTarget("instagram", "jane.doe", "https://www.instagram.com/jane.doe/highlights/", True)),
        (("tiktok", "@someone"), StoryTarget("tiktok", "someone", "https://www.tiktok.com/@someone/stories")),
        (("snap", "team.snapchat"), StoryTarget("snapchat", "team.snapchat")),
        (("https://t.me/durov/s/42",), StoryTarget("telegram", "durov", story_id=42)),
        (("https://story.snapchat.com/s/team.snapchat",), StoryTarget("snapchat", "team.snapchat")),
        (("https://www.instagram.com/stories/jane.doe/123/",),
         StoryTarget("web", url="https://www.instagram.com/stories/jane.doe/123/")),
    ],
)
def test_story_targets(words: tuple[str, ...], expected: StoryTarget) -> None:
    assert parse_story_target(words) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ((), "which stories?"),
        (("myspace", "tom"), "no site called"),
        (("instagram", "../etc"), "not a instagram username"),
        (("instagram", "-o"), "not a instagram username"),
        (("facebook", "zuck.page"), "cannot list Facebook stories"),
        (("tiktok", "someone", "highlights"), "no highlights"),
        (("file:///etc/passwd",), "'file:' links are not allowed"),
        (("@a",), "not a telegram username"),
    ],
)
def test_bad_story_targets(words: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_story_target(words)


def saved_media(telegram: LoopbackTelegram) -> list[str]:
    """sha256 of every media message in the owner's Saved Messages, in order."""
    return [m.media.sha256 for m in telegram.messages(telegram.owner) if m.media is not None]


async def test_watch_posts_each_new_story_once_across_a_restart(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    config = userbot_config(tmp_path, telegram, stories={"watch_interval": 0.3, "watch_jitter": 0})
    digest = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in
              (("a", media.image), ("b", media.png), ("c", media.images[0]))}
    telegram.post_story(telegram.friend, media.image.read_bytes())
    async with running_userbot(telegram, config) as bot:
        answer = await bot.answer(await bot.type(".watch tg @storyflow_friend"))
        assert answer.text.startswith("👀"), answer.text
        watcher = bot.running.userbot.watcher
        assert watcher is not None
        with trio.fail_after(30):
            await telegram.wait_until(lambda: digest["a"] in saved_media(telegram) or None)
            await watcher.wait_for_checks(watcher.checks + 3)  # old stories: nothing more
        assert saved_media(telegram) == [digest["a"]]
        telegram.post_story(telegram.friend, media.png.read_bytes())
        with trio.fail_after(30):
            await telegram.wait_until(lambda: digest["b"] in saved_media(telegram) or None)
            await watcher.wait_for_checks(watcher.checks + 3)
        assert saved_media(telegram) == [digest["a"], digest["b"]]
        listing = await bot.answer(await bot.type(".watch"))
        assert "telegram storyflow_friend" in listing.text and "last new story" in listing.text
    telegram.post_story(telegram.friend, media.images[0].read_bytes())  # while StoryFlow is down
    async with running_userbot(telegram, config) as bot:
        watcher = bot.running.userbot.watcher
        assert watcher is not None
        with trio.fail_after(30):
            await telegram.wait_until(lambda: digest["c"] in saved_media(telegram) or None)
            await watcher.wait_for_checks(watcher.checks + 3)
        assert saved_media(telegram) == [digest["a"], digest["b"], digest["c"]]
        gone = await bot.answer(await bot.type(".unwatch tg storyflow_friend"))
        assert gone.text.startswith("🙈")
        assert await bot.running.store.watches() == []


async def test_watch_with_no_stories_and_bad_targets(bot: BotRig) -> None:
    answer = await bot.answer(await bot.type(".watch tg @storyflow_stranger -> here"))
    assert answer.text.startswith("👀")
    for text, expected in {
        ".watch facebook zuck.page": "cannot list Facebook stories",
        ".watch tg @storyflow_friend highlights": "only current stories",
        ".watch tg @storyflow_friend -> ": "after -> comes one chat",
        ".watch tg @nobody_is_called_this": "nobody_is_called_this",
        ".unwatch 99": "no such watch",
    }.items():
        reply = await bot.answer(await bot.type(text))
        assert expected in reply.text, (text, reply.text)
    duplicate = await bot.answer(await bot.type(".watch tg @storyflow_stranger -> here"))
    assert "already watched" in duplicate.text


async def test_snapchat_stories_end_to_end(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    from .test_snapchat import page, profile, props

    snaps = [
        {"snapIndex": 0, "snapMediaType": 0, "snapId": {"value": "snapA"},
         "snapUrls": {"mediaUrl": site.url("/photo.jpg")}, "timestampInSec": {"value": "1796322600"}},
        {"snapIndex": 1, "snapMediaType": 1, "snapId": {"value": "snapB"},
         "snapUrls": {"mediaUrl": site.url("/clip.mp4")}, "timestampInSec": {"value": "1796326200"}},
    ]
    site.add_html("/s/alice.snaps", page(props(userProfile=profile("Alice Example", "alice.snaps"),
                                             story={"storyType": 5, "snapList": snaps})))
    site.add_html("/s/bob.nostory", page(props(userProfile=profile("Bob", "bob.nostory"))))
    config = userbot_config(tmp_path, telegram, stories={"snapchat_base_url": site.url("/").rstrip("/")})
    async with running_userbot(telegram, config) as bot:
        command = await bot.type(".story snapchat alice.snaps")
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        posted = bot.media_replies(command)
        nothing = await bot.answer(await bot.type(".story sc bob.nostory"))
        missing = await bot.answer(await bot.type(".story snapchat nobody.here"))
    assert [m.media.sha256 for m in posted if m.media] == [
        hashlib.sha256(media.image.read_bytes()).hexdigest(), hashlib.sha256(media.video.read_bytes()).hexdigest()
    ]
    assert "📖 Alice Example · story 1/2 · posted 2026-12-03 18:30 UTC" in posted[0].text
    assert "story 2/2" in posted[1].text
    assert "📭" in nothing.text and "no active stories" in nothing.text
    assert missing.text.startswith("❌"), missing.text


async def test_rate_limited_checks_back_off_and_recover(store: JobStore) -> None:
    from storyflow import RateLimited
    from storyflow.bot._watch import Found, Watcher

    outcomes: list[Exception | None] = [RateLimited("slow down"), RateLimited("slow down"), None]
    submitted: list[JobRequest] = []

    async def lister(watch: Watch) -> Found:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return Found(labels={"https://cdn.example/a.jpg": StoryLabel("a")}, ids={"https://cdn.example/a.jpg": "a"})

    async def submit(request: JobRequest, internal: bool) -> Job:
        submitted.append(request)
        return await store.add_job(request)

    watcher = Watcher(store, lister, submit, interval=100.0, jitter=0.0)
    watch = await store.add_watch(1, "snapchat", "alice.snaps", 1, next_check=0)
    delays = []
    for _ in range(3):
        before = time.time()
        await watcher.check((await store.watches())[0])
        delays.append((await store.watches())[0].next_check - before)
    assert [round(d, -1) for d in delays] == [200, 400, 100]  # doubled twice, then back to the interval
    [current] = await store.watches()
    assert current.failures == 0 and current.last_error is None and current.last_new is not None
    assert [r.urls for r in submitted] == [("https://cdn.example/a.jpg",)]
    assert submitted[0].options.watch == watch.id


async def finish(store: JobStore, job: Job, state: JobState, files: dict[str, FileState], error: str | None = None
                 ) -> Job:
    """Play a job to its end: one file per link in ``files`` with that delivery state."""
    await store.set_state(job.id, JobState.DOWNLOADING)
    for index, (url, file_state) in enumerate(files.items()):
        added = await store.add_file(job.id, path=f"{index}.jpg", name=f"{index}.jpg", size=1, sha256=str(index),
                                     kind=MediaKind.PHOTO, source_url=url)
        await store.set_file_state(job.id, added.index, file_state)
    if state is JobState.DONE:
        await store.set_state(job.id, JobState.DELIVERING)
    await store.set_state(job.id, state, error=error)
    ended = await store.get_job(job.id)
    assert ended is not None
    return ended


async def end_jobs(watcher: Watcher, jobs: list[Job]) -> None:
    send, receive = trio.open_memory_channel[Job](len(jobs))
    with send:
        for job in jobs:
            send.send_nowait(job)
    await watcher.job_ended(receive)


async def test_a_story_that_did_not_arrive_is_taken_again_and_one_that_did_never(store: JobStore) -> None:
    urls = {"https://cdn.example/a.jpg": "a", "https://cdn.example/b.jpg": "b", "https://cdn.example/c.jpg": "c"}
    submitted: list[Job] = []

    async def lister(watch: Watch) -> Found:
        return Found(labels={url: StoryLabel("alice") for url in urls}, ids=dict(urls))

    async def submit(request: JobRequest, internal: bool) -> Job:
        submitted.append(await store.add_job(request))
        return submitted[-1]

    watcher = Watcher(store, lister, submit, interval=100.0, jitter=0.0)
    watch = await store.add_watch(1, "snapchat", "alice", 1, next_check=0)
    await watcher.check(watch)
    [first] = submitted
    assert first.urls == tuple(urls) and not first.options.archive  # tracked as seen stories, not by the tool
    # a arrived; b's upload failed; c's download failed (no file at all): the job still ends done.
    await end_jobs(watcher, [await finish(store, first, JobState.DONE, {
        "https://cdn.example/a.jpg": FileState.DELIVERED, "https://cdn.example/b.jpg": FileState.FAILED,
    }, error="1 of 3 links failed")])
    await watcher.check(watch)
    assert submitted[1].urls == ("https://cdn.example/b.jpg", "https://cdn.example/c.jpg")
    await end_jobs(watcher, [await finish(store, submitted[1], JobState.DONE, {
        "https://cdn.example/b.jpg": FileState.DELIVERED, "https://cdn.example/c.jpg": FileState.DELIVERED,
    })])
    await watcher.check(watch)
    assert len(submitted) == 2  # everything arrived once: nothing more


async def test_stories_taken_by_a_check_that_died_before_queueing_are_taken_again(store: JobStore) -> None:
    watch = await store.add_watch(1, "telegram", "alice", 1, next_check=0)
    assert await store.take_new_stories(watch.id, ["1", "2"]) == ["1", "2"]
    job = await store.add_job(JobRequest(("https://cdn.example/1.jpg",), 1))
    await store.assign_stories(watch.id, {"1": "https://cdn.example/1.jpg"}, job.id)
    # kill -9 here would leave "2" taken by no job; the next start releases exactly that one.
    assert await store.release_unassigned_stories() == 1
    assert await store.take_new_stories(watch.id, ["1", "2"]) == ["2"]


async def test_a_web_watch_learns_from_its_jobs(store: JobStore) -> None:
    page = "https://www.instagram.com/stories/alice/"
    submitted: list[Job] = []

    async def lister(watch: Watch) -> Found:
        return Found(page=page)

    async def submit(request: JobRequest, internal: bool) -> Job:
        submitted.append(await store.add_job(request))
        return submitted[-1]

    watcher = Watcher(store, lister, submit, interval=100.0, jitter=0.0)
    watch = await store.add_watch(1, "instagram", "alice", 1, next_check=0)
    await watcher.check(watch)
    await watcher.check((await store.watches())[0])
    assert len(submitted) == 1  # the first job has not ended: no second one piles up behind it
    assert submitted[0].options.archive  # the tool's archive knows what this watch has seen
    # It fails (say, the cookies expired): the error shows in `.watch`, and checks back off.
    before = time.time()
    await end_jobs(watcher, [await finish(store, submitted[0], JobState.FAILED, {}, error="login required")])
    [current] = await store.watches()
    assert current.failures == 1 and current.last_error == "login required"
    assert current.next_check - before >= 200 - 1  # doubled
    await watcher.check(current)
    [current] = await store.watches()
    assert current.failures == 1 and current.next_check - time.time() >= 200 - 1  # still backing off
    # The next job finds a new story and posts it: a new story, no error, no backoff.
    await end_jobs(watcher, [await finish(store, submitted[1], JobState.DONE, {page: FileState.DELIVERED})])
    [current] = await store.watches()
    assert current.failures == 0 and current.last_error is None and current.last_new is not None
    await watcher.check(current)
    [current] = await store.watches()
    assert len(submitted) == 3 and current.next_check - time.time() <= 100 + 1
