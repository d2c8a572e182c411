"""Telegram stories as a download source: the engine's fetcher for ``tg-story:<owner id>/<story id>`` jobs.

Stories are fetched over MTProto (stories.getStoriesByID, then upload.getFile) into the job folder and then posted
like any downloaded file, as media, so they outlive the original. Plain Trio: it reaches Telegram through
:class:`StorySource`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import attrs
import trio

from .._errors import FloodWait, MessageGone, NotFound, PeerNotFound, RateLimited, UnknownJob
from ..download import FileLine

SCHEME = "tg-story"
_URL = re.compile(rf"{SCHEME}:(-?\d+)/(\d+)")
# A flood wait this short is waited out inside the job; a longer one fails it as rate limited.
FLOOD_WAIT_IN_JOB_SECONDS = 60


def story_url(owner_id: int, story_id: int) -> str:
    return f"{SCHEME}:{owner_id}/{story_id}"


class StorySource(Protocol):
    async def download_story(self, owner_id: int, story_id: int, destination: Path) -> Path: ...


@attrs.frozen
class TelegramStoryFetcher:
    source: StorySource
    scheme: str = SCHEME

    async def fetch(self, url: str, folder: Path, found: Callable[[FileLine], Awaitable[None]]) -> None:
        match = _URL.fullmatch(url)
        if match is None:
            raise UnknownJob(f"not a Telegram story: {url}")
        owner_id, story_id = int(match.group(1)), int(match.group(2))
        destination = folder / f"story-{owner_id}-{story_id}"
        while True:
            try:
                path = await self.source.download_story(owner_id, story_id, destination)
                break
            except FloodWait as flood:
                if flood.seconds > FLOOD_WAIT_IN_JOB_SECONDS:
                    raise RateLimited(f"Telegram asked to wait {flood.seconds:g} s before fetching stories") from None
                await trio.sleep(flood.seconds)
            except MessageGone:
                raise NotFound("the story has expired or was deleted") from None
            except PeerNotFound as exc:
                raise NotFound(exc.message, hint="the account may be gone or private") from None
        await found(FileLine(path=str(path), source_url=url))
