"""HTML for Telegram: escaping, and cutting text to a limit without breaking tags, entities or characters.

Telegram counts a message's length in UTF-16 code units of the text *after* the HTML is parsed, so limits are
applied to the plain pieces before they are escaped and wrapped in tags: a cut can never split ``&amp;`` or leave
a tag open.
"""

from __future__ import annotations

import datetime
import html
import unicodedata
from urllib.parse import urlsplit

import attrs

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CAPTION_LIMIT_PREMIUM = 2048
ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` UTF-16 units, else its longest prefix that does, plus an ellipsis.

    Never splits a character, and drops trailing combining marks whose base was cut away.
    """
    if utf16_len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - 1  # the ellipsis is one unit
    used = 0
    end = 0
    for index, char in enumerate(text):
        units = 2 if ord(char) > 0xFFFF else 1
        if used + units > budget:
            break
        used += units
        end = index + 1
    # A cut inside a cluster (the next character combines with or joins the last kept one) takes the whole
    # cluster away, so no letter loses its accent and no emoji sequence is left half-joined.
    while 0 < end < len(text) and (_joins(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    return text[:end].rstrip() + ELLIPSIS


def _joins(char: str) -> bool:
    return bool(unicodedata.combining(char)) or char in "\u200d\ufe0f" or "\U0001f3fb" <= char <= "\U0001f3ff"


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def link_label(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or url).removeprefix("www.")


@attrs.frozen
class StoryLine:
    """A story's caption line: whose it is, when it was posted, where it stands in the set (3/7)."""

    owner: str
    posted_at: float | None = None
    position: int | None = None
    total: int | None = None
    highlight: str | None = None

    def plain(self) -> str:
        where = f"highlight “{self.highlight}”" if self.highlight else "story"
        if self.position is not None:
            where += f" {self.position}/{self.total}" if self.total else f" {self.position}"
        text = f"📖 {self.owner} · {where}"
        if self.posted_at is not None:
            moment = datetime.datetime.fromtimestamp(self.posted_at, datetime.UTC)
            text += f" · posted {moment:%Y-%m-%d %H:%M} UTC"
        return text


@attrs.frozen
class Caption:
    """What a media caption says: the title, who posted it, where it came from, and a note (``part 2/3``);
    for a story, whose story it is and when it was posted instead of the uploader."""

    title: str = ""
    uploader: str = ""
    source_url: str = ""
    note: str = ""
    story: StoryLine | None = None

    def to_html(self, limit: int = CAPTION_LIMIT) -> str:
        web = self.source_url.lower().startswith(("http://", "https://"))
        label = link_label(self.source_url) if web else ""
        tail = " · ".join(piece for piece in (label, self.note) if piece)
        # The link and the note are what the reader needs most; the title gives way first, then the uploader.
        fixed = utf16_len(tail) + (1 if tail else 0)
        story = cut(_one_line(self.story.plain()), max(0, min(300, limit - fixed - 1))) if self.story else ""
        fixed += utf16_len(story) + (1 if story else 0)
        uploader = "" if self.story else cut(_one_line(self.uploader), max(0, min(200, limit - fixed - 1)))
        fixed += utf16_len(uploader) + (1 if uploader else 0)
        title = cut(_one_line(self.title), max(0, limit - fixed))
        lines = []
        if story:
            lines.append(escape(story))
        if title:
            lines.append(f"<b>{escape(title)}</b>")
        if uploader:
            lines.append(escape(uploader))
        if tail:
            link = f'<a href="{escape(self.source_url)}">{escape(label)}</a>' if label else ""
            lines.append(" · ".join(piece for piece in (link, escape(self.note)) if piece))
        return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def fit_lines(lines: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """Join plain lines (already escaped HTML is fine if it holds no tags that span lines) up to ``limit``, with a
    note of how many were left out."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        remaining = len(lines) - index
        more = f"… and {remaining} more"
        need = utf16_len(line) + (1 if kept else 0)
        if used + need > limit - (utf16_len(more) + 1 if remaining > 1 else 0):
            kept.append(more)
            break
        kept.append(line)
        used += need
    return "\n".join(kept)
