"""Cookies through the chat and into the download tools: `.cookies set` as a reply to a cookies.txt, listing,
deleting, and the cookies reaching gallery-dl and yt-dlp as a private copy — never the chat or the log."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import attrs
import pytest
import trio
from trio_asyncio import aio_as_trio

from storyflow.cookies import JobCookies, login_hint, site_by_name
from storyflow.download import JobUpdated, open_engine
from storyflow.jobs import JobRequest, JobState, JobStore
from storyflow.testing._httpserver import MediaServer
from storyflow.testing.telegram import open_client

from .conftest import BotRig, CollectingDelivery, engine_settings

SESSION_VALUE = "8754321%3AsEcReTsEsSiOnVaLuE%3A12"
CSRF_VALUE = "csrfS3CR3Tvalue"


def cookies_txt(*, expires: int | None = None, session: bool = True) -> bytes:
    expiry = int(time.time()) + 86_400 * 90 if expires is None else expires
    lines = ["# Netscape HTTP Cookie File", f".instagram.com\tTRUE\t/\tTRUE\t{expiry}\tcsrftoken\t{CSRF_VALUE}",
             f".instagram.com\tTRUE\t/\tTRUE\t{expiry}\tds_user\tjane.doe",
             ".example.org\tTRUE\t/\tFALSE\t0\tother\tunrelated"]
    if session:
        lines.append(f"#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t{expiry}\tsessionid\t{SESSION_VALUE}")
    return ("\n".join(lines) + "\n").encode()


async def send_file(bot: BotRig, tmp_path: Path, data: bytes, name: str = "cookies.txt") -> int:
    path = tmp_path / name
    path.write_bytes(data)
    sent = await aio_as_trio(bot.phone.send_file)("me", str(path), force_document=True)
    return int(sent.id)


async def reply(bot: BotRig, to: int, text: str) -> int:
    sent = await aio_as_trio(bot.phone.send_message)("me", text, reply_to=to)
    return int(sent.id)


async def test_cookies_set_list_and_delete(bot: BotRig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    file_message = await send_file(bot, tmp_path, cookies_txt())
    answer = await bot.answer(await reply(bot, file_message, ".cookies set ig"))
    assert answer.text.startswith("🍪 saved"), answer.text
    assert "instagram: logged in as jane.doe" in answer.text and "was deleted" in answer.text
    assert bot.server.message(file_message).deleted  # the secret left the chat
    stored = bot.config.paths.data_dir / "cookies" / str(bot.server.owner.user_id) / "instagram.txt"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert SESSION_VALUE in stored.read_text() and "unrelated" not in stored.read_text()  # other sites dropped
    listing = await bot.answer(await bot.type(".cookies"))
    assert "instagram: logged in as jane.doe" in listing.text and "expires" in listing.text
    deleted = await bot.answer(await bot.type(".cookies del instagram"))
    assert "deleted" in deleted.text
    assert not stored.exists()
    everything = [m.text for m in bot.server.all_messages()] + [r.getMessage() for r in caplog.records]
    assert not [text for text in everything if SESSION_VALUE in text or CSRF_VALUE in text]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (cookies_txt(session=False), "sessionid"),
        (cookies_txt(expires=int(time.time()) - 3600), "expired"),
        (b'[{"domain": ".instagram.com", "name": "sessionid", "value": "x"}]', "Netscape"),
        (b"\x00\x01\x02binary", "binary"),
    ],
)
async def test_unusable_cookies_are_refused_and_still_removed(
    bot: BotRig, tmp_path: Path, data: bytes, expected: str
) -> None:
    file_message = await send_file(bot, tmp_path, data)
    answer = await bot.answer(await reply(bot, file_message, ".cookies set instagram"))
    assert answer.text.startswith("❌") and expected in answer.text, answer.text
    assert bot.server.message(file_message).deleted
    assert SESSION_VALUE not in answer.text
    assert not (bot.config.paths.data_dir / "cookies" / str(bot.server.owner.user_id) / "instagram.txt").exists()


async def test_oversize_and_misused_cookie_commands(bot: BotRig, tmp_path: Path) -> None:
    big = await send_file(bot, tmp_path, b"# Netscape HTTP Cookie File\n" + b"#" * 600_000)
    answer = await bot.answer(await reply(bot, big, ".cookies set instagram"))
    assert answer.text.startswith("❌") and "limit" in answer.text and "was deleted" in answer.text
    assert bot.server.message(big).deleted  # too big to read, still a secret
    note = await bot.type("not a file")
    answer = await bot.answer(await reply(bot, note, ".cookies set instagram"))
    assert "no file attached" in answer.text
    assert not bot.server.message(note).deleted  # nothing secret in it: left alone
    for text, expected in {".cookies set instagram": "reply with this", ".cookies set myspace": "myspace",
                           ".cookies frob": "usage"}.items():
        assert expected in (await bot.answer(await bot.type(text))).text


@attrs.define
class StoredCookies:
    """A cookie source for a local site: hands out a copy of one cookies file, and remembers the requests."""

    text: str
    asked: list[tuple[int, str]] = attrs.field(factory=list)

    async def cookies_for_job(self, owner: int, url: str, folder: Path) -> Path | None:
        self.asked.append((owner, url))
        path = folder / "site-cookies.txt"
        await trio.Path(path).write_text(self.text)
        return path


@pytest.mark.parametrize("route", ["/clip.mp4", "/watch/video-page.html"])  # gallery-dl, then yt-dlp
async def test_the_tools_get_the_owners_cookies(store: JobStore, jobs_dir: Path, site: MediaServer, route: str) -> None:
    text = f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\t{SESSION_VALUE}\n"
    cookies = StoredCookies(text)
    async with open_engine(
        store, engine_settings(), jobs_dir=jobs_dir, delivery=CollectingDelivery(), cookies=cookies
    ) as engine:
        done = trio.Event()
        engine.subscribe(lambda e: done.set() if isinstance(e, JobUpdated) and e.job.finished else None)
        job = await engine.submit(JobRequest((site.url(route),), owner=42))
        await done.wait()
    current = await store.get_job(job.id)
    assert current is not None
    assert current.state is JobState.DONE, current.error
    assert cookies.asked == [(42, site.url(route))]
    sent = [r.cookie for r in site.requests if r.path in ("/clip.mp4", "/media/video.mp4", route)]
    assert sent and all(c is not None and SESSION_VALUE in c for c in sent)
    assert not (jobs_dir / str(job.id)).exists()  # the copy went with the job folder


async def test_job_cookies_pick_the_site_of_the_url(tmp_path: Path) -> None:
    from storyflow.cookies import CookieStore, parse_cookies_file

    store = CookieStore(tmp_path / "cookies")
    await store.save(7, parse_cookies_file(cookies_txt(), site_by_name("instagram")))
    folder = tmp_path / "job"
    folder.mkdir()
    source = JobCookies(store)
    copy = await source.cookies_for_job(7, "https://www.instagram.com/stories/jane.doe/", folder)
    assert copy is not None and copy.parent == folder and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert await source.cookies_for_job(7, "https://www.tiktok.com/@x/stories", folder) is None
    assert await source.cookies_for_job(8, "https://www.instagram.com/stories/jane.doe/", folder) is None
    hint = login_hint(".")("https://www.instagram.com/stories/jane.doe/")
    assert hint is not None and ".cookies set instagram" in hint
    assert login_hint(".")("https://example.com/x") is None


async def test_an_allowed_user_sets_only_cookies_they_sent_themselves(bot: BotRig, tmp_path: Path) -> None:
    telegram = bot.server
    await bot.answer(await bot.type(".allow @storyflow_friend"))
    path = tmp_path / "cookies.txt"
    path.write_bytes(cookies_txt())
    # The owner's file in the chat with the friend: the friend cannot make the owner's account delete it, nor
    # adopt it as their own login.
    owners_file = await aio_as_trio(bot.phone.send_file)("storyflow_friend", str(path), force_document=True)
    attempt = telegram.send_message(telegram.friend, telegram.owner, ".cookies set instagram", reply_to=owners_file.id)
    answer = await bot.answer(attempt.id)
    assert answer.text.startswith("❌") and "you sent yourself" in answer.text, answer.text
    assert not telegram.message(owners_file.id).deleted
    cookies_dir = bot.config.paths.data_dir / "cookies"
    assert not (cookies_dir / str(telegram.friend.user_id)).exists()
    # A file of the friend's own: saved for the friend alone, and removed from the chat by the owner's account.
    async with open_client(telegram, telegram.friend) as friend_phone:
        friends_file = await aio_as_trio(friend_phone.send_file)("storyflow_owner", str(path), force_document=True)
    attempt = telegram.send_message(telegram.friend, telegram.owner, ".cookies set instagram",
                                    reply_to=friends_file.id)
    answer = await bot.answer(attempt.id)
    assert answer.text.startswith("🍪 saved"), answer.text
    assert telegram.message(friends_file.id).deleted
    assert (cookies_dir / str(telegram.friend.user_id) / "instagram.txt").exists()
    assert not (cookies_dir / str(telegram.owner.user_id)).exists()
