"""What ``.story`` was asked for: a site and an account (or a link), and whether the highlights are wanted."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from .._errors import UnsafeURL
from .._util import whole_number
from ..download import validate_url
from ._parse import UsageError

SITES = {
    "telegram": "telegram", "tg": "telegram", "t.me": "telegram",
    "instagram": "instagram", "ig": "instagram", "insta": "instagram",
    "snapchat": "snapchat", "snap": "snapchat", "sc": "snapchat",
    "tiktok": "tiktok", "tt": "tiktok",
    "x": "x", "twitter": "x",
    "facebook": "facebook", "fb": "facebook",
}
_USERNAMES = {
    "telegram": re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}|-?\d{1,16}|me"),
    "instagram": re.compile(r"[A-Za-z0-9._]{1,30}"),
    "snapchat": re.compile(r"[A-Za-z][A-Za-z0-9._-]{2,14}"),
    "tiktok": re.compile(r"[A-Za-z0-9._]{2,24}"),
    "x": re.compile(r"[A-Za-z0-9_]{1,15}"),
    "facebook": re.compile(r"[A-Za-z0-9.]{5,50}"),
}
# The gallery-dl / yt-dlp pages for a user's stories (and highlights), where those tools reach them.
_WEB_PAGES = {
    "instagram": ("https://www.instagram.com/stories/{user}/", "https://www.instagram.com/{user}/highlights/"),
    "tiktok": ("https://www.tiktok.com/@{user}/stories", None),
    "x": ("https://x.com/{user}/media", "https://x.com/{user}/highlights"),
}
USAGE = ".story <link> | .story <site> <user> [highlights] | .story @telegram_user [highlights]"
_HIGHLIGHT_WORDS = frozenset({"highlights", "highlight", "hl", "pinned"})


@attrs.frozen
class StoryTarget:
    site: str
    user: str = ""
    url: str = ""  # a web page for the download tools (instagram, tiktok, x, any link)
    highlights: bool = False
    story_id: int | None = None  # one Telegram story (t.me/<user>/s/<id>)


def parse_story_target(args: tuple[str, ...]) -> StoryTarget:
    words = list(args)
    highlights = bool(words) and words[-1].lower() in _HIGHLIGHT_WORDS
    if highlights:
        words.pop()
    if len(words) == 1 and words[0].startswith("@"):
        return _account("telegram", words[0][1:], highlights)
    if len(words) == 1 and "://" in words[0]:
        return _from_link(words[0], highlights)
    if len(words) == 2 and words[0].lower() in SITES:
        return _account(SITES[words[0].lower()], words[1].lstrip("@"), highlights)
    if len(words) == 2:
        raise UsageError(f"no site called {words[0][:30]!r}", hint="sites: telegram, instagram, snapchat, tiktok, x")
    raise UsageError("which stories?", hint=f"usage: {USAGE}")


def _account(site: str, user: str, highlights: bool) -> StoryTarget:
    if not _USERNAMES[site].fullmatch(user) or ".." in user or not user.strip("."):
        raise UsageError(f"{user[:40]!r} is not a {site} username")
    if site == "facebook":
        raise UsageError(
            "gallery-dl and yt-dlp cannot list Facebook stories",
            hint="send the link of a Facebook story or video with .story <link> or .dl <link>",
        )
    if site in _WEB_PAGES:
        stories, highlight_page = _WEB_PAGES[site]
        if highlights and highlight_page is None:
            raise UsageError(f"{site} has no highlights StoryFlow can reach")
        page = highlight_page if highlights else stories
        assert page is not None
        return StoryTarget(site, user, page.format(user=user), highlights)
    return StoryTarget(site, user, highlights=highlights)


def _from_link(link: str, highlights: bool) -> StoryTarget:
    try:
        url = validate_url(link)
    except UnsafeURL as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    path = [piece for piece in parts.path.split("/") if piece]
    if host in ("t.me", "telegram.me") and path:
        if len(path) == 3 and path[1] == "s":
            story_id = whole_number(path[2], lowest=1, highest=2**31 - 1)
            if story_id is None:
                raise UsageError(f"{path[2][:20]!r} is not a story number", hint="links look like t.me/<user>/s/12")
            target = _account("telegram", path[0], highlights)
            return attrs.evolve(target, story_id=story_id)
        if len(path) == 1:
            return _account("telegram", path[0], highlights)
    if host in ("story.snapchat.com", "snapchat.com") and path:
        user = path[1] if path[0] in ("s", "add") and len(path) > 1 else path[0].lstrip("@")
        return _account("snapchat", user, highlights)
    return StoryTarget("web", url=url, highlights=highlights)
