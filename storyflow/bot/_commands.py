"""The chat commands: what each one does, who may use it, and what it answers."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import attrs
import httpx
import trio

from .._errors import (
    InputError,
    JobRefused,
    MediaRejected,
    NetworkError,
    PeerNotFound,
    ReferenceExpired,
    StoryFlowError,
    TelegramError,
    UnknownJob,
)
from .._util import TELEGRAM_ID_MAX, whole_number
from ..cookies import (
    MAX_COOKIES_FILE_BYTES,
    CookiesInvalid,
    CookieStore,
    Site,
    describe,
    known_sites,
    parse_cookies_file,
    site_by_name,
)
from ..download import Engine, JobUpdated
from ..jobs import FileState, Job, JobOptions, JobRequest, JobState, JobStore, Origin, StoryLabel, Watch
from ..telegram import CachedItem, Incoming, Me, OutgoingMedia, PartsInFlight, SentMedia, TelegramDelivery
from ..telegram._stories import story_url
from ..telegram._text import cut, escape, fit_lines
from ..telegram._values import StoryList, random_id
from ._access import AccessList, Role
from ._parse import UsageError, bare_links, parse_command, parse_download, parse_job_id
from ._settings import RuntimeSettings
from ._stories import parse_story_target
from ._tracker import StatusTracker, human_bytes, human_seconds
from ._watch import WATCHABLE, Found, Watcher, finished_watch_jobs, telegram_found

log = logging.getLogger("storyflow.bot")

HISTORY_DEFAULT, HISTORY_MAX = 10, 50
SNAPCHAT_DEADLINE_SECONDS = 60.0


class ChatPort(Protocol):
    me: Me

    async def send_text(
        self, chat_id: int, text_html: str, *, reply_to: int | None = None, send_id: int | None = None
    ) -> int: ...

    async def send_media(
        self, chat_id: int, items: Sequence[OutgoingMedia], *, reply_to: int | None = None
    ) -> list[int]: ...

    async def refresh_media(self, chat_id: int, message_ids: Sequence[int]) -> list[SentMedia | None]: ...

    async def resolve_user(self, who: str) -> tuple[int, str]: ...

    async def message_sender(self, chat_id: int, message_id: int) -> tuple[int, str] | None: ...

    async def list_stories(self, who: str | int, *, pinned: bool = False) -> StoryList: ...

    async def download_document(self, chat_id: int, message_id: int, destination: Path, *, max_bytes: int) -> int: ...

    async def delete_messages(self, chat_id: int, message_ids: Sequence[int]) -> None: ...


Handler = Callable[["Userbot", Incoming, tuple[str, ...], Role], Awaitable[None]]


@attrs.frozen
class _Spec:
    handler: Handler
    usage: str
    summary: str
    owner_only: bool = False


def cache_key(urls: Sequence[str], options: JobOptions, requester: int) -> str:
    """Per requester: what one user fetched with their own cookies (a private post) is not another user's to get."""
    payload = json.dumps({"urls": list(urls), "options": options.to_json(), "requester": requester}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _split_arrow(args: tuple[str, ...]) -> tuple[list[str], bool, str]:
    """``site user -> chat`` → (["site", "user"], True, "chat"); also ``site user ->chat``."""
    words = list(args)
    for index, word in enumerate(words):
        if word.startswith("->"):
            rest = [word[2:], *words[index + 1 :]] if word != "->" else words[index + 1 :]
            rest = [piece for piece in rest if piece]
            if len(rest) != 1:
                raise UsageError("after -> comes one chat: here, me, or @name")
            return words[:index], True, rest[0]
    return words, False, ""


def album_groups(items: Sequence[CachedItem]) -> list[list[CachedItem]]:
    """Photos and videos in albums of up to ten, everything else alone, in the original order of the albums."""
    groups: list[list[CachedItem]] = []
    album: list[CachedItem] = []
    for item in items:
        if item.visual:
            album.append(item)
            if len(album) == 10:
                groups.append(album)
                album = []
        else:
            groups.append([item])
    if album:
        groups.append(album)
    return groups


@attrs.define(eq=False)
class Userbot:
    """Reads every message the account sees and answers the commands among them."""

    telegram: ChatPort
    engine: Engine
    store: JobStore
    tracker: StatusTracker
    delivery: TelegramDelivery
    access: AccessList
    settings: RuntimeSettings
    in_flight: PartsInFlight
    http: httpx.AsyncClient | None = None
    watcher: Watcher | None = None
    cookies: CookieStore | None = None
    private_dir: Path | None = None  # 0700, for files that must not linger (a cookies.txt being checked)
    snapchat_base_url: str = "https://story.snapchat.com"
    prefix: str = "."
    started: float = attrs.field(factory=time.monotonic)
    _peers_saved: set[int] = attrs.field(factory=set)

    async def serve(self, incoming: trio.MemoryReceiveChannel[Incoming]) -> None:
        """Handle messages until the channel ends; each in its own task, so a slow one never holds up `.ping`."""
        finished_send, finished_receive = trio.open_memory_channel[Job](256)

        def on_job(event: object) -> None:
            if isinstance(event, JobUpdated) and event.job.finished and event.job.origin.chat_id is not None:
                try:
                    finished_send.send_nowait(event.job)
                except trio.WouldBlock:
                    log.warning("job %d finished but its results were not cached (backlog)", event.job.id)

        unsubscribe = self.engine.subscribe(on_job)
        watch_send, watch_receive = trio.open_memory_channel[Job](256)
        unsubscribe_watch = self.engine.subscribe(finished_watch_jobs(watch_send))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._remember_results, finished_receive)
                if self.watcher is not None:
                    nursery.start_soon(self.watcher.run)
                    nursery.start_soon(self.watcher.job_ended, watch_receive)
                async with incoming:
                    async for message in incoming:
                        nursery.start_soon(self.handle, message)
                nursery.cancel_scope.cancel()
        finally:
            unsubscribe()
            unsubscribe_watch()

    async def _remember_results(self, finished: trio.MemoryReceiveChannel[Job]) -> None:
        async for job in finished:
            items = self.delivery.sent.pop(job.id, [])
            # Only a complete answer is worth repeating: a job with a file that never arrived is downloaded again.
            complete = all(f.state is FileState.DELIVERED for f in job.files)
            if job.state is JobState.DONE and not job.error and complete and items and job.origin.chat_id is not None:
                key = cache_key(job.urls, job.options, job.owner)
                await self.store.cache_send(key, job.origin.chat_id, [item.to_json() for item in items])

    # -- dispatch -----------------------------------------------------------------------------------------

    async def handle(self, message: Incoming) -> None:
        role = self.access.role(message)
        if role is Role.NOBODY:
            log.debug("ignoring a message from %s in chat %d", message.sender_id, message.chat_id)
            return
        try:
            command = parse_command(message.text, self.prefix)
            if command is None:
                links = bare_links(message.text)
                if role is Role.OWNER and message.saved_messages and self.settings.autodownload and links:
                    await self._download(message, links, role)
                return
            spec = COMMANDS.get(ALIASES.get(command.name, command.name))
            if spec is None:
                await self.reply(message, f"unknown command <code>{escape(self.prefix + command.name)}</code>"
                                          f" — see <code>{escape(self.prefix)}help</code>")
                return
            if spec.owner_only and role is not Role.OWNER:
                await self.reply(message, f"only the owner can use <code>{escape(self.prefix + command.name)}</code>")
                return
            await spec.handler(self, message, command.args, role)
        except StoryFlowError as exc:
            log.info("command in chat %d refused: %s", message.chat_id, exc.message)
            await self._answer_quietly(message, f"❌ {escape(exc.user_text())}")
        except Exception:
            # One command's bug must not take the userbot (and every other chat's jobs) down with it.
            log.exception("command in chat %d failed unexpectedly", message.chat_id)
            await self._answer_quietly(message, "❌ internal error: the command failed; the log has the details")

    async def _answer_quietly(self, message: Incoming, text_html: str) -> None:
        try:
            await self.reply(message, text_html)
        except StoryFlowError as reply_error:
            log.warning("could not answer in chat %d: %s", message.chat_id, reply_error.message)

    async def reply(self, message: Incoming, text_html: str) -> int:
        return await self.telegram.send_text(message.chat_id, text_html, reply_to=message.message_id)

    def requester(self, message: Incoming) -> int:
        if message.outgoing or message.sender_id is None:
            return self.telegram.me.user_id
        return message.sender_id

    def _owner_filter(self, message: Incoming, role: Role) -> int | None:
        """Whose jobs a command may see or touch: everyone's for the owner, one's own for others."""
        return None if role is Role.OWNER else self.requester(message)

    # -- downloading --------------------------------------------------------------------------------------

    async def _download(self, message: Incoming, words: tuple[str, ...], role: Role) -> None:
        args = parse_download(words, max_urls=self.settings.max_urls)
        urls = await self.engine.validate(args.urls)
        if await self._send_cached(message, urls, args.options, args.dropped):
            return
        job = await self._start_job(message, JobRequest(urls, self.requester(message), args.options))
        if job is not None and args.dropped:
            view = self.tracker.view(job)
            view.notices.append(f"only the first {len(urls)} links were taken ({args.dropped} more ignored)")
            self.tracker.show(view)

    async def _start_job(self, message: Incoming, request: JobRequest, *, internal: bool = False) -> Job | None:
        """Answer with a status message, then queue the job with it; a refusal becomes the status's final text."""
        if message.peer and message.chat_id not in self._peers_saved:
            await self.store.remember_peer(message.chat_id, message.peer)
            self._peers_saved.add(message.chat_id)
        status_text = "⏳ accepted"
        status_id = await self.reply(message, status_text)
        self.tracker.board.known(message.chat_id, status_id, status_text)
        request = attrs.evolve(request, origin=Origin(message.chat_id, message.message_id, status_id))
        try:
            return await self.engine.submit(request, internal=internal)
        except (JobRefused, InputError) as exc:
            self.tracker.board.show(message.chat_id, status_id, f"❌ {escape(exc.user_text())}", final=True)
            return None

    async def _send_cached(self, message: Incoming, urls: tuple[str, ...], options: JobOptions, dropped: int) -> bool:
        """Answer from Telegram's stored copies of an earlier identical job; False if a download is needed."""
        key = cache_key(urls, options, self.requester(message))
        cached = await self.store.cached_send(key)
        if cached is None:
            return False
        source_chat, raw_items = cached
        items = [CachedItem.from_json(raw) for raw in raw_items]
        try:
            try:
                await self._resend(message, items)
            except ReferenceExpired:
                items = await self._refreshed(source_chat, items)
                await self._resend(message, items)
        except (ReferenceExpired, TelegramError) as exc:
            log.info("cached copy refused (%s); downloading again", exc.message)
            await self.store.forget_cached_send(key)
            return False
        ignored = f"\nonly the first {len(urls)} links were taken ({dropped} more ignored)" if dropped else ""
        await self.reply(message, f"♻️ sent {len(items)} file{'s' if len(items) != 1 else ''} again"
                                  f" from Telegram's copy (no download){ignored}")
        return True

    async def _refreshed(self, chat_id: int, items: list[CachedItem]) -> list[CachedItem]:
        ids = [item.message_id for item in items]
        if any(i is None for i in ids):
            raise ReferenceExpired("some of the earlier messages are unknown")
        fresh = await self.telegram.refresh_media(chat_id, [i for i in ids if i is not None])
        if any(media is None for media in fresh):
            raise ReferenceExpired("some of the earlier messages were deleted")
        return [attrs.evolve(item, media=media) for item, media in zip(items, fresh, strict=True) if media is not None]

    async def _resend(self, message: Incoming, items: list[CachedItem]) -> None:
        for group in album_groups(items):
            outgoing = [OutgoingMedia(item.media, item.caption_html, random_id()) for item in group]
            await self.telegram.send_media(message.chat_id, outgoing, reply_to=message.message_id)

    # -- the commands -------------------------------------------------------------------------------------

    async def cmd_dl(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        await self._download(message, args, role)

    async def cmd_story(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        target = parse_story_target(args)
        options = JobOptions(story=True)
        requester = self.requester(message)
        if target.site == "telegram":
            listing = await self.telegram.list_stories(target.user, pinned=target.highlights)
            stories = [s for s in listing.stories if target.story_id in (None, s.story_id)]
            who = f"@{listing.username}" if listing.username else listing.owner_name
            if not stories:
                kind = "pinned stories" if target.highlights else "active stories"
                what = f"story {target.story_id}" if target.story_id else kind
                await self.reply(message, f"📭 {escape(who)} has no {what}" if not target.story_id
                                 else f"📭 {escape(who)}: {what} is gone or was never there")
                return
            await self.store.remember_peer(listing.owner_id, listing.peer)
            labels = {
                story_url(listing.owner_id, s.story_id): StoryLabel(
                    listing.owner_name, s.posted_at, number, len(stories), "pinned" if target.highlights else None,
                    f"https://t.me/{listing.username}/s/{s.story_id}" if listing.username else None,
                )
                for number, s in enumerate(stories, start=1)
            }
            await self._start_job(message, JobRequest(tuple(labels), requester, options, labels=labels),
                                  internal=True)
            return
        if target.site == "snapchat":
            await self._snapchat_story(message, target.user, highlights=target.highlights)
            return
        urls = await self.engine.validate((target.url,))
        await self._start_job(message, JobRequest(urls, requester, options))

    async def _snapchat_story(self, message: Incoming, user: str, *, highlights: bool) -> None:
        found, display = await self._snapchat_found(user, highlights=highlights)
        if not found.labels:
            await self.reply(message, f"📭 {escape(display)} has no "
                                      f"{'highlights' if highlights else 'active stories'} on Snapchat")
            return
        await self._start_job(message, JobRequest(tuple(found.labels), self.requester(message),
                                                  JobOptions(story=True), labels=found.labels))

    async def _snapchat_found(self, user: str, *, highlights: bool = False) -> tuple[Found, str]:
        """The snaps of a Snapchat account as story labels by media URL (checked like any link)."""
        from ..stories import fetch_snapchat_stories

        if self.http is None:
            raise StoryFlowError("Snapchat is not available in this run")
        # httpx's timeouts are per read; a page that trickles in forever would still hold the command (or every
        # watch, which are checked one after another) without an overall deadline.
        with trio.move_on_after(SNAPCHAT_DEADLINE_SECONDS) as too_slow:
            story = await fetch_snapchat_stories(self.http, user, base_url=self.snapchat_base_url,
                                                 highlights=highlights)
        if too_slow.cancelled_caught:
            raise NetworkError(f"Snapchat did not send the story page of {user} within "
                               f"{SNAPCHAT_DEADLINE_SECONDS:g} s")
        page = f"{self.snapchat_base_url.rstrip('/')}/s/{user}"
        display = story.display_name or user
        snaps = story.snaps[: self.engine.settings.max_items]
        urls = await self.engine.validate(tuple(snap.media_url for snap in snaps)) if snaps else ()
        labels = {
            url: StoryLabel(display, snap.posted_at.timestamp() if snap.posted_at else None, snap.position,
                            snap.total, snap.highlight, page)
            for url, snap in zip(urls, snaps, strict=True)
        }
        ids = {url: snap.snap_id for url, snap in zip(urls, snaps, strict=True)}
        return Found(labels, ids), display

    # -- watching -----------------------------------------------------------------------------------------

    async def list_for_watch(self, watch: Watch) -> Found:
        """What a watched account has now (the watcher's lister)."""
        if watch.site == "telegram":
            listing = await self.telegram.list_stories(watch.account)
            await self.store.remember_peer(listing.owner_id, listing.peer)
            return telegram_found(listing.owner_id, listing.owner_name, listing.username,
                                  [(s.story_id, s.posted_at) for s in listing.stories])
        if watch.site == "snapchat":
            found, _ = await self._snapchat_found(watch.account)
            return found
        target = parse_story_target((watch.site, watch.account))
        return Found(page=target.url)

    async def submit_for_watch(self, request: JobRequest, internal: bool) -> Job:
        return await self.engine.submit(request, internal=internal)

    async def cmd_watch(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        if self.watcher is None:
            raise StoryFlowError("watching is not available in this run")
        if not args:
            await self._list_watches(message)
            return
        words, arrow, destination = _split_arrow(args)
        target = parse_story_target(tuple(words))
        if target.site not in WATCHABLE or target.story_id is not None or target.highlights:
            raise UsageError("only current stories of an account can be watched",
                             hint=f"usage: {self.prefix}watch <site> <user> [-> here|me|@chat]; sites: "
                                  + ", ".join(WATCHABLE))
        chat_id, chat_name = await self._destination(message, destination if arrow else "me")
        account = target.user
        if target.site == "telegram":
            listing = await self.telegram.list_stories(account)  # fails now, not at the first check
            await self.store.remember_peer(listing.owner_id, listing.peer)
            account = listing.username or str(listing.owner_id)
        watch = await self.store.add_watch(self.requester(message), target.site, account, chat_id, time.time())
        self.watcher.wake()
        every = human_seconds(self.watcher.interval)
        await self.reply(message, f"👀 watch <b>#{watch.id}</b>: {escape(target.site)} {escape(account)} → "
                                  f"{escape(chat_name)}, checked about every {every}; each new story is posted once")

    async def _destination(self, message: Incoming, where: str) -> tuple[int, str]:
        if where in ("me", "saved"):
            return self.telegram.me.user_id, "Saved Messages"
        if where == "here":
            if message.peer and message.chat_id not in self._peers_saved:
                await self.store.remember_peer(message.chat_id, message.peer)
                self._peers_saved.add(message.chat_id)
            return message.chat_id, "this chat"
        chat_id, name = await self.telegram.resolve_user(where)
        return chat_id, name

    async def _list_watches(self, message: Incoming) -> None:
        watches = await self.store.watches()
        if not watches:
            await self.reply(message, f"nothing is watched — {escape(self.prefix)}watch &lt;site&gt; &lt;user&gt;")
            return
        now = time.time()
        lines = []
        for watch in watches:
            checked = f"checked {human_seconds(now - watch.last_check)} ago" if watch.last_check else "not checked yet"
            new = f"last new story {human_seconds(now - watch.last_new)} ago" if watch.last_new else "no new story yet"
            line = f"<b>#{watch.id}</b> {escape(watch.site)} {escape(watch.account)} · {checked} · {new}"
            if watch.last_error:
                line += f" · ⚠️ {escape(cut(watch.last_error, 120))}"
            lines.append(line)
        await self.reply(message, fit_lines(lines))

    async def cmd_unwatch(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        if len(args) == 1:
            watch_id = parse_job_id(args[0])
            removed = await self.store.remove_watch(watch_id)
        elif len(args) == 2:
            target = parse_story_target(args)
            matches = [w for w in await self.store.watches()
                       if w.site == target.site and w.account.lower() == target.user.lower()]
            for watch in matches:
                await self.store.remove_watch(watch.id)
            removed, watch_id = bool(matches), matches[0].id if matches else 0
        else:
            raise UsageError(f"usage: {self.prefix}unwatch <id> | <site> <user>")
        if not removed:
            raise UnknownJob("no such watch", hint=f"see {self.prefix}watch")
        if self.watcher is not None:
            self.watcher.wake()
        await self.reply(message, f"🙈 no longer watching (#{watch_id})")

    async def cmd_cookies(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        if self.cookies is None or self.private_dir is None:
            raise StoryFlowError("cookies are not available in this run")
        user = self.requester(message)
        if not args:
            summaries = await self.cookies.list(user)
            if not summaries:
                await self.reply(message, "🍪 no cookies stored. Send a cookies.txt and reply to it with "
                                          f"<code>{escape(self.prefix)}cookies set &lt;site&gt;</code> — sites: "
                                          f"{escape(known_sites())}")
                return
            await self.reply(message, "\n".join(f"🍪 {escape(describe(s))}" for s in summaries))
            return
        verb = args[0].lower()
        if verb == "set" and len(args) == 2:
            await self._set_cookies(message, user, site_by_name(args[1]), role)
            return
        if verb in ("del", "delete", "rm") and len(args) == 2:
            if args[1].lower() == "all":
                count = await self.cookies.delete_all(user)
                await self.reply(message, f"🍪 deleted the cookies of {count} site{'s' if count != 1 else ''}")
                return
            site = site_by_name(args[1])
            deleted = await self.cookies.delete(user, site)
            await self.reply(message, f"🍪 {site.key}: " + ("deleted" if deleted else "there were none"))
            return
        raise UsageError(
            f"usage: {self.prefix}cookies | {self.prefix}cookies set <site> (as a reply to a cookies.txt)"
            f" | {self.prefix}cookies del <site|all>"
        )

    async def _set_cookies(self, message: Incoming, user: int, site: Site, role: Role) -> None:
        assert self.cookies is not None and self.private_dir is not None
        if message.reply_to is None:
            raise UsageError("reply with this to the message that has the cookies.txt",
                             hint="export cookies in Netscape format, send the file, then reply to it")
        # Only the owner's account can delete the file for everyone; an allowed user must not be able to make it
        # delete (or adopt as their login) a file somebody else sent.
        sender = await self.telegram.message_sender(message.chat_id, message.reply_to)
        if sender is None:
            raise UsageError("the message you replied to is gone", hint="send the cookies.txt again and reply to it")
        if role is not Role.OWNER and sender[0] != user:
            raise UsageError("reply to a cookies.txt you sent yourself")
        temporary = self.private_dir / f"cookies-{random_id() & 0xFFFFFFFF:08x}.txt"
        try:
            await self.telegram.download_document(
                message.chat_id, message.reply_to, temporary, max_bytes=MAX_COOKIES_FILE_BYTES
            )
            data = await trio.Path(temporary).read_bytes()
        except MediaRejected as exc:
            # A file too large to read is still a secret in the chat.
            await self._reply_without_secret(message, f"❌ {escape(exc.user_text())}")
            return
        finally:
            with trio.CancelScope(shield=True):
                await trio.Path(temporary).unlink(missing_ok=True)
        try:
            summary = parse_cookies_file(data, site)
        except CookiesInvalid as exc:
            await self._reply_without_secret(message, f"❌ {escape(exc.user_text())}")
            return
        await self.cookies.save(user, summary)
        await self._reply_without_secret(message, f"🍪 saved — {escape(describe(summary))}")

    async def _reply_without_secret(self, message: Incoming, text_html: str) -> None:
        """Answer a `.cookies set`, deleting the message with the file first: usable or not, it is a secret."""
        assert message.reply_to is not None
        try:
            await self.telegram.delete_messages(message.chat_id, [message.reply_to])
            removed = "; the message with the file was deleted"
        except StoryFlowError as exc:
            log.warning("could not delete the cookies message in chat %d: %s", message.chat_id, exc.message)
            removed = "; ⚠️ delete the message with the file yourself, StoryFlow could not"
        await self.reply(message, text_html + removed)

    async def cmd_queue(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        mine = self._owner_filter(message, role)
        jobs = [j for j in await self.store.unfinished_jobs() if mine is None or j.owner == mine]
        if not jobs:
            await self.reply(message, "the queue is empty")
            return
        lines = []
        for job in jobs:
            place = self.engine.queue_position(job.id)
            state = f"queued #{place}" if place else str(job.state)
            lines.append(f"<b>#{job.id}</b> {state} · {escape(cut(job.urls[0], 60))}"
                         + (f" (+{len(job.urls) - 1})" if len(job.urls) > 1 else ""))
        await self.reply(message, fit_lines(lines))

    async def cmd_cancel(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        mine = self._owner_filter(message, role)
        if args == ("all",):
            jobs = [j for j in await self.store.unfinished_jobs() if mine is None or j.owner == mine]
            for job in jobs:
                await self.engine.cancel(job.id)
            await self.reply(message, f"cancelling {len(jobs)} job{'s' if len(jobs) != 1 else ''}")
            return
        if args:
            ids = [parse_job_id(word) for word in args]
        elif message.reply_to is not None:
            replied = await self.store.job_for_message(message.chat_id, message.reply_to)
            if replied is None:
                raise UsageError("that message is not a job's", hint="reply to a status message, or give the job id")
            ids = [replied.id]
        else:
            raise UsageError("which job?", hint=f"usage: {self.prefix}cancel <id> | all (or reply to a status)")
        answers = []
        for job_id in ids:
            job = await self.engine.cancel(job_id, owner=mine)
            answers.append(f"#{job_id} had already ended ({job.state})" if job.finished else f"cancelling #{job_id}")
        await self.reply(message, "\n".join(answers))

    async def cmd_retry(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        if len(args) != 1:
            raise UsageError("which job?", hint=f"usage: {self.prefix}retry <id>")
        job_id = parse_job_id(args[0])
        job = await self.store.get_job(job_id)
        mine = self._owner_filter(message, role)
        if job is None or (mine is not None and job.owner != mine):
            raise UnknownJob(f"no job #{job_id}")
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise UsageError(f"#{job_id} is {job.state}; only failed or cancelled jobs can be retried")
        status_text = f"⏳ <b>#{job_id}</b> retrying"
        # The results go where the job was asked for, so its new status message goes there too.
        chat_id = message.chat_id if job.origin.chat_id is None else job.origin.chat_id
        if chat_id == message.chat_id:
            status_id = await self.reply(message, status_text)
        else:
            status_id = await self.telegram.send_text(chat_id, status_text, reply_to=job.origin.message_id)
            await self.reply(message, f"🔁 <b>#{job_id}</b> is retried in the chat it came from")
        self.tracker.board.known(chat_id, status_id, status_text)
        await self.store.set_status_message(job_id, status_id)
        try:
            await self.engine.retry(job_id, owner=mine)
        except (JobRefused, InputError) as exc:
            self.tracker.board.show(chat_id, status_id, f"❌ <b>#{job_id}</b> {escape(exc.user_text())}", final=True)

    async def cmd_history(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        count = HISTORY_DEFAULT
        if args:
            number = whole_number(args[0], lowest=1, highest=HISTORY_MAX) if len(args) == 1 else None
            if number is None:
                raise UsageError(f"usage: {self.prefix}history [1–{HISTORY_MAX}]")
            count = number
        jobs = await self.store.recent_jobs(owner=self._owner_filter(message, role), limit=count)
        if not jobs:
            await self.reply(message, "no jobs yet")
            return
        icons = {JobState.DONE: "✅", JobState.FAILED: "❌", JobState.CANCELLED: "🚫"}
        lines = []
        for job in jobs:
            icon = icons.get(job.state, "⏳")
            files = len(job.files)
            line = f"{icon} <b>#{job.id}</b> {escape(cut(job.urls[0], 50))} · {files} file{'s' if files != 1 else ''}"
            if job.error:
                line += f" · {escape(cut(job.error, 80))}"
            lines.append(line)
        await self.reply(message, fit_lines(lines))

    async def _target(self, message: Incoming, args: tuple[str, ...]) -> tuple[str, int, str]:
        """``.allow`` / ``.deny`` target: (kind, id, name) from `chat [id]`, @name, an id, a reply or the chat."""
        if args and args[0].lower() == "chat":
            if len(args) > 2:
                raise UsageError(f"usage: {self.prefix}allow chat [id]")
            if len(args) == 1:
                return "chat", message.chat_id, ""
            chat_id = whole_number(args[1], lowest=-TELEGRAM_ID_MAX, highest=TELEGRAM_ID_MAX)
            if chat_id is None or chat_id == 0:
                raise UsageError(f"{cut(args[1], 40)} is not a chat id", hint="chat ids look like -1001234567890")
            return "chat", chat_id, ""
        if len(args) > 1:
            raise UsageError(f"usage: {self.prefix}allow @user | id | chat (or reply to their message)")
        if args:
            try:
                user_id, name = await self.telegram.resolve_user(args[0])
            except PeerNotFound:
                # Access needs only the id: a user this session has never met (its entity cache is empty after a
                # restart) is still allowed or denied by the id `.allowed` shows.
                user_id = whole_number(args[0], lowest=1, highest=TELEGRAM_ID_MAX) or 0
                if not user_id:
                    raise
                return "user", user_id, ""
            return "user", user_id, name
        if message.reply_to is not None:
            sender = await self.telegram.message_sender(message.chat_id, message.reply_to)
            if sender is None:
                raise PeerNotFound("cannot tell who wrote that message")
            return "user", sender[0], sender[1]
        if message.private and not message.saved_messages:
            return "user", message.chat_id, ""
        raise UsageError("whom?", hint=f"usage: {self.prefix}allow @user | id | chat (or reply to their message)")

    async def cmd_allow(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        kind, entity_id, name = await self._target(message, args)
        if kind == "user" and entity_id == self.telegram.me.user_id:
            raise UsageError("you are the owner; you need no permission")
        await self.access.allow(self.store, kind, entity_id, name)
        label = escape(name) if name else str(entity_id)
        await self.reply(message, f"✅ {kind} {label} may now use StoryFlow")

    async def cmd_deny(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        kind, entity_id, name = await self._target(message, args)
        was = await self.access.deny(self.store, kind, entity_id)
        label = escape(name) if name else str(entity_id)
        await self.reply(message, f"🚫 {kind} {label} " + ("may no longer use StoryFlow" if was else "was not allowed"))

    async def cmd_allowed(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        lines = [f"user {escape(name) + ' ' if name else ''}<code>{uid}</code>"
                 for uid, name in self.access.users.items()]
        lines += [f"chat {escape(name) + ' ' if name else ''}<code>{cid}</code>"
                  for cid, name in self.access.chats.items()]
        await self.reply(message, fit_lines(lines) if lines else "only you (nobody else is allowed)")

    async def cmd_settings(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        if not args:
            lines = [f"<code>{key}</code> = {escape(value)} — {escape(doc)}"
                     for key, value, doc in self.settings.rows()]
            await self.reply(message, fit_lines(lines))
            return
        if len(args) != 2:
            raise UsageError(
                f"usage: {self.prefix}settings [key value]", hint="keys: " + ", ".join(self.settings.keys())
            )
        key, value = args
        shown = self.settings.set(key, value)
        await self.store.set_setting(key, shown)
        self.apply_settings()
        await self.reply(message, f"✅ <code>{escape(key)}</code> = {escape(shown)}")

    def apply_settings(self) -> None:
        self.engine.set_limits(
            max_concurrent=self.settings.max_concurrent, max_jobs_per_owner=self.settings.max_jobs_per_owner
        )
        self.in_flight.maximum = self.settings.parts_in_flight
        self.in_flight.limiter.total_tokens = self.settings.parts_in_flight

    async def cmd_stats(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        counts = await self.store.counts_by_state()
        files, size = await self.store.delivered_totals()
        states = ", ".join(f"{state}: {counts[state]}" for state in JobState if counts.get(state))
        lines = [
            f"up {human_seconds(time.monotonic() - self.started)}",
            f"jobs: {states or 'none yet'}",
            f"delivered: {files} files, {human_bytes(size)}",
            f"downloads running: {self.engine.live_processes} (limit {self.settings.max_concurrent})",
            f"upload parts in flight: {self.in_flight.current} of {self.in_flight.maximum}",
        ]
        await self.reply(message, "\n".join(lines))

    async def cmd_ping(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        waiting = sum(1 for j in self.tracker.views.values() if j.job.state is JobState.QUEUED)
        await self.reply(message, f"🏓 pong · {self.engine.live_processes} downloading, {waiting} waiting")

    async def cmd_help(self, message: Incoming, args: tuple[str, ...], role: Role) -> None:
        prefix = escape(self.prefix)
        if args:
            name = ALIASES.get(args[0].lstrip(self.prefix).lower(), args[0].lstrip(self.prefix).lower())
            spec = COMMANDS.get(name)
            if spec is None:
                raise UsageError(f"no command {cut(args[0], 40)}", hint=f"see {self.prefix}help")
            await self.reply(message, f"<code>{prefix}{escape(spec.usage)}</code>\n{escape(spec.summary)}")
            return
        lines = [f"<code>{prefix}{escape(spec.usage)}</code> — {escape(spec.summary)}"
                 for spec in COMMANDS.values() if role is Role.OWNER or not spec.owner_only]
        await self.reply(message, "\n".join(lines))


COMMANDS: dict[str, _Spec] = {
    "dl": _Spec(Userbot.cmd_dl, "dl <link>… [audio] [file] [720p]",
                "download and post here (also .get); audio: sound only; file: as documents; 720p: max height"),
    "story": _Spec(Userbot.cmd_story, "story <link> | <site> <user> [highlights] | @user",
                   "current stories (or highlights) of an account: telegram, instagram, snapchat, tiktok, x"),
    "watch": _Spec(Userbot.cmd_watch, "watch [<site> <user> [-> here|me|@chat]]",
                   "check an account's stories regularly and post each new one once; alone: list", owner_only=True),
    "unwatch": _Spec(Userbot.cmd_unwatch, "unwatch <id> | <site> <user>", "stop watching", owner_only=True),
    "cookies": _Spec(Userbot.cmd_cookies, "cookies [set <site> | del <site|all>]",
                     "your logins for sites that need one (set: reply to a cookies.txt)"),
    "queue": _Spec(Userbot.cmd_queue, "queue", "unfinished jobs and their places"),
    "cancel": _Spec(Userbot.cmd_cancel, "cancel <id>|all", "stop jobs (or reply to a status message)"),
    "retry": _Spec(Userbot.cmd_retry, "retry <id>", "run a failed or cancelled job again"),
    "history": _Spec(Userbot.cmd_history, "history [n]", "the last jobs"),
    "allow": _Spec(Userbot.cmd_allow, "allow @user|id|chat", "let someone (or a whole chat) use StoryFlow",
                   owner_only=True),
    "deny": _Spec(Userbot.cmd_deny, "deny @user|id|chat", "take that back", owner_only=True),
    "allowed": _Spec(Userbot.cmd_allowed, "allowed", "who may use StoryFlow", owner_only=True),
    "settings": _Spec(Userbot.cmd_settings, "settings [key value]", "show or change settings", owner_only=True),
    "stats": _Spec(Userbot.cmd_stats, "stats", "what StoryFlow has done", owner_only=True),
    "ping": _Spec(Userbot.cmd_ping, "ping", "is StoryFlow there?"),
    "help": _Spec(Userbot.cmd_help, "help [command]", "this list"),
}
ALIASES = {"get": "dl", "download": "dl", "q": "queue", "stop": "cancel", "stories": "story", "s": "story"}
