"""Reading chat commands: ``.dl URL… [audio] [file] [720p]``, ``.cancel 12``, … Nothing here runs anything.

Arguments are split on whitespace only; no quoting, no shell, no option syntax of the download tools: a word that
is neither a known option nor a valid link is refused with the link checker's own reason.
"""

from __future__ import annotations

import re

import attrs

from .._errors import InputError, UnsafeURL
from .._util import whole_number
from ..download import validate_url
from ..jobs import JobOptions

MAX_COMMAND_LENGTH = 4096  # Telegram's own message limit; anything longer did not come from a chat
_NAME = re.compile(r"[a-z][a-z0-9_]{0,19}")
_HEIGHT = re.compile(r"([0-9]{1,9})p")
MIN_HEIGHT, MAX_HEIGHT = 144, 4320


class UsageError(InputError):
    """A command with arguments it cannot take; the message says which and how to write it."""

    kind = "usage"


@attrs.frozen
class Command:
    name: str
    args: tuple[str, ...]


def parse_command(text: str, prefix: str) -> Command | None:
    """The command in ``text``, or None if the message is not one (ordinary chat)."""
    if not prefix or not text.startswith(prefix):
        return None
    body = text[len(prefix) :]
    words = body.split()
    if not words or body[0].isspace():
        return None
    name = words[0].lower()
    if not _NAME.fullmatch(name):
        return None
    if len(text) > MAX_COMMAND_LENGTH:
        raise UsageError(f"that message is {len(text)} characters long; commands are at most {MAX_COMMAND_LENGTH}")
    return Command(name, tuple(words[1:]))


def bare_links(text: str) -> tuple[str, ...] | None:
    """The links of a message that is nothing but links (for Saved Messages), else None."""
    words = text.split()
    if not words or len(text) > MAX_COMMAND_LENGTH:
        return None
    if all(re.match(r"https?://", word, re.IGNORECASE) for word in words):
        return tuple(words)
    return None


@attrs.frozen
class DownloadArgs:
    urls: tuple[str, ...]
    options: JobOptions
    dropped: int = 0  # links over the per-message cap


_OPTION_WORDS = {
    "audio": "audio_only", "mp3": "audio_only", "m4a": "audio_only",
    "file": "as_file", "doc": "as_file", "document": "as_file", "raw": "as_file",
}


def parse_download(args: tuple[str, ...], *, max_urls: int) -> DownloadArgs:
    """Split ``.dl`` arguments into links and options; the first bad word is refused with the reason."""
    urls: list[str] = []
    flags: dict[str, object] = {}
    for word in args:
        lowered = word.lower()
        if lowered in _OPTION_WORDS:
            flags[_OPTION_WORDS[lowered]] = True
            continue
        if height := _HEIGHT.fullmatch(lowered):
            value = int(height.group(1))
            if not MIN_HEIGHT <= value <= MAX_HEIGHT:
                raise UsageError(f"{word}: heights go from {MIN_HEIGHT}p to {MAX_HEIGHT}p")
            flags["max_height"] = value
            continue
        try:
            urls.append(validate_url(word))
        except UnsafeURL as exc:
            raise UnsafeURL(
                f"{_shorten(word)}: {exc.message}",
                hint="options are audio, file and a height such as 720p; links must be http(s)",
            ) from None
    if not urls:
        raise UsageError("no link given", hint="usage: .dl <link> [more links] [audio] [file] [720p]")
    unique = tuple(dict.fromkeys(urls))
    kept = unique[:max_urls]
    return DownloadArgs(kept, JobOptions(**flags), dropped=len(unique) - len(kept))  # type: ignore[arg-type]


def parse_job_id(word: str) -> int:
    number = whole_number(word.removeprefix("#"), lowest=1, highest=10**12)
    if number is None:
        raise UsageError(f"{_shorten(word)} is not a job number", hint="job numbers look like 12 or #12")
    return number


def _shorten(text: str, limit: int = 60) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"
