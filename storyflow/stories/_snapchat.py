"""Snapchat public stories, read from the story page itself (no download tool involved).

``<base_url>/s/<username>`` is a Next.js page; its ``<script id="__NEXT_DATA__">`` JSON holds the account under
``props.pageProps.userProfile``, the current story under ``props.pageProps.story.snapList`` and the curated
highlights under ``props.pageProps.curatedHighlights[*].snapList``. A snap looks like this on real pages::

    {"snapIndex": 0, "snapMediaType": 1, "snapId": {"value": "1PgHW…"},
     "snapUrls": {"mediaUrl": "https://…", "mediaPreviewUrl": {"value": "https://…"}},
     "timestampInSec": {"value": "1633810603"}}

Snapchat reshapes that page now and then (older pages had bare strings where these have ``{"value": …}``
wrappers, and ``snapMediaType`` inside ``snapUrls``), so every field is read defensively and a snap that
cannot be read is skipped rather than trusted.

What a fetch ends in, each outcome typed (nothing else escapes, in particular no KeyError/TypeError/ValueError)::

    SnapchatStory with snaps      the story (or the highlights) as found
    SnapchatStory, snaps == ()    the account exists but has no active story (or no highlights)
    BadSnapchatUsername           not a Snapchat username (InputError; refused before any request)
    UnsafeURL                     the configured base URL is not a plain http(s) URL
    NotFound                      HTTP 404 / 410, or the site's own "not found" page
    RateLimited                   HTTP 429
    NetworkError                  5xx and other unexpected statuses, connection errors, the client's timeouts,
                                  too many redirects, a redirect away from Snapchat
    SnapchatLayoutChanged         a page we cannot read: no __NEXT_DATA__, invalid JSON, a different shape,
                                  no readable snap at all, larger than MAX_PAGE_BYTES (DownloadError)

The HTTP client is the caller's (connection pooling, transport, timeouts), and so is the time limit:
wrap the call in ``trio.fail_after``. httpx runs on Trio through anyio.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import unicodedata
from collections.abc import AsyncGenerator, Iterator
from datetime import UTC, datetime
from typing import Final, Literal, cast
from urllib.parse import quote, urlsplit

import attrs
import httpx

from .._errors import DownloadError, InputError, NetworkError, NotFound, RateLimited, UnsafeURL

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_PAGE_BYTES",
    "BadSnapchatUsername",
    "Snap",
    "SnapchatLayoutChanged",
    "SnapchatStory",
    "check_snapchat_username",
    "fetch_snapchat_stories",
    "parse_story_page",
]

DEFAULT_BASE_URL: Final = "https://story.snapchat.com"
# Real story pages are a few hundred KB; anything this large is not the page we know.
MAX_PAGE_BYTES: Final = 5 * 1024 * 1024
# story.snapchat.com/s/<user> sends browsers on to www.snapchat.com; a few hops are normal, a loop is not.
MAX_REDIRECTS: Final = 5

# Snapchat's own rule: 3-15 characters, letters, digits, '-', '_', '.', starting with a letter (ASCII only).
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{2,14}")
# What we accept as an id to name files and dedupe by: the base64url-ish ids Snapchat uses.
_SAFE_ID = re.compile(r"[A-Za-z0-9._~:=-]{1,200}")
_MAX_URL_LENGTH = 4096
# 2100-01-01: a later post time is a misread field, not a post.
_LATEST_POST_TIME = 4_102_444_800
_MAX_DISPLAY_NAME = 64
_MAX_TITLE = 100
# The attributes of a <script> tag worth looking at; a longer run before '>' is not a tag we know.
_MAX_TAG_ATTRIBUTES = 2000

# A current desktop browser: the page is served differently (or not at all) to obvious bots.
_HEADERS: Final = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}

_SCRIPT_OPEN = re.compile(r"<script\b", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(r"</script\s*>", re.IGNORECASE)
_NEXT_DATA_ID = re.compile(r"""\bid\s*=\s*(["']?)__NEXT_DATA__\1(?![\w-])""", re.IGNORECASE)

# snapMediaType on current pages; gallery-dl and yt-dlp read it the same way (0 image, 1 video).
_MEDIA_TYPES: Final[dict[int, Literal["photo", "video"]]] = {0: "photo", 1: "video"}
_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".m3u8")
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic")
# Bidirectional overrides and isolates make a name read as something else; they go with control characters.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# ---------------------------------------------------------------------------------------------------------
# Values and errors


class BadSnapchatUsername(InputError):
    kind = "snapchat_username"
    default_hint = "a Snapchat username is 3-15 letters, digits, '-', '_' or '.', starting with a letter"


class SnapchatLayoutChanged(DownloadError):
    """The page was fetched but is not the page this parser knows."""

    kind = "snapchat_layout"
    default_hint = "Snapchat changed its page; update StoryFlow"


@attrs.frozen
class Snap:
    """One photo or video of a story or highlight.

    ``position`` and ``total`` count within its own story (or highlight), from 1, including snaps that
    could not be read, so a gap shows that one was skipped. ``highlight`` is the highlight's title, or
    None for the current story.
    """

    snap_id: str
    media_url: str
    kind: Literal["photo", "video"]
    posted_at: datetime | None
    position: int
    total: int
    highlight: str | None = None
    preview_url: str | None = None


@attrs.frozen
class SnapchatStory:
    """An account's current story, or its highlights; ``snaps == ()`` means there is none right now."""

    username: str
    display_name: str | None
    snaps: tuple[Snap, ...]


# ---------------------------------------------------------------------------------------------------------
# Fetching


def check_snapchat_username(username: str) -> str:
    """``username`` without a leading ``@``, or `BadSnapchatUsername` if it cannot be a Snapchat username."""
    name = username[1:] if username.startswith("@") else username
    if not _USERNAME.fullmatch(name):
        raise BadSnapchatUsername(f"not a Snapchat username: {username[:40]!r}")
    return name


async def fetch_snapchat_stories(
    client: httpx.AsyncClient,
    username: str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    highlights: bool = False,
) -> SnapchatStory:
    """The current story of ``username`` (or, with ``highlights``, its curated highlights).

    Trio-flavoured. Raises only StoryFlow errors (see the module docstring); the username and the base URL
    are checked before anything is sent.
    """
    name = check_snapchat_username(username)
    page_url = _story_page_url(base_url, name)
    html = await _fetch_page(client, page_url)
    return parse_story_page(html, name, highlights=highlights)


def _story_page_url(base_url: str, username: str) -> httpx.URL:
    try:
        base = httpx.URL(base_url.rstrip("/"))
    except (httpx.InvalidURL, TypeError):
        raise UnsafeURL(f"the Snapchat base URL is not a URL: {base_url[:80]!r}") from None
    plain = base.scheme in ("http", "https") and base.host and not (base.userinfo or base.query or base.fragment)
    if not plain or (base.port is not None and not 0 < base.port < 65536):
        raise UnsafeURL(f"the Snapchat base URL must be a plain http(s) URL, not {base_url[:80]!r}")
    # The username is already restricted to safe characters; quoting keeps it one path segment regardless.
    return base.join(f"{base.path.rstrip('/')}/s/{quote(username, safe='')}")


async def _fetch_page(client: httpx.AsyncClient, url: httpx.URL) -> str:
    request = client.build_request("GET", url, headers=_HEADERS)
    with _http_errors_translated():
        for _ in range(MAX_REDIRECTS + 1):
            # Redirects by hand: the caller's client may follow any number to anywhere; we check each hop.
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                next_request = response.next_request
                if next_request is None:
                    _raise_for_status(response)
                    return _decode(response, await _read_bounded(response))
            finally:
                await response.aclose()
            _check_redirect(request.url, next_request.url)
            request = next_request
    raise NetworkError(f"Snapchat redirected more than {MAX_REDIRECTS} times", hint="try again later")


@contextlib.contextmanager
def _http_errors_translated() -> Iterator[None]:
    """The one place httpx errors become StoryFlow errors (statuses are `_raise_for_status`)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise NetworkError(f"Snapchat did not answer in time ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise NetworkError(f"could not load the Snapchat page: {type(exc).__name__}: {exc}") from exc
    except httpx.InvalidURL as exc:
        # The request's own URL is built and checked before sending; only a redirect's Location gets here.
        raise NetworkError(f"Snapchat redirected to an invalid address: {exc}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise NotFound("no such Snapchat user (or the profile is not public)", hint="check the username")
    if status == 429:
        retry_after = response.headers.get("retry-after", "")
        when = f" (retry after {retry_after} s)" if retry_after.isdigit() else ""
        raise RateLimited(f"Snapchat is rate limiting requests{when}")
    if status >= 500:
        raise NetworkError(f"Snapchat had a server error (HTTP {status})")
    raise NetworkError(f"Snapchat refused the request (HTTP {status})", hint="try again later")


def _check_redirect(source: httpx.URL, target: httpx.URL) -> None:
    """Follow a redirect only to http(s), never from https down to http, and only within Snapchat's site."""
    if target.scheme not in ("http", "https"):
        raise NetworkError(f"Snapchat redirected to a non-web link ({target.scheme[:20]}:)")
    if source.scheme == "https" and target.scheme == "http":
        raise NetworkError("Snapchat redirected from https to plain http")
    if not _same_site(source.host, target.host):
        raise NetworkError(f"Snapchat redirected away from its site (to {target.host[:80]!r})")


def _same_site(source_host: str, target_host: str) -> bool:
    # story.snapchat.com may send us to www.snapchat.com or snapchat.com; an IP or a one-label host only to itself.
    source, target = source_host.lower().rstrip("."), target_host.lower().rstrip(".")
    if source == target:
        return True
    labels = source.split(".")
    if len(labels) < 3 or labels[-1].isdigit():
        return False
    parent = ".".join(labels[1:])
    return target == parent or target.endswith("." + parent)


async def _read_bounded(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_PAGE_BYTES:
        raise _too_large()
    body = bytearray()
    # Stopping early (no Content-Length, or a body that decompresses past the limit) closes the connection via
    # response.aclose(), but leaves httpx's inner stream generators suspended: they cannot be closed from out
    # here (encode/httpx#3686), so Trio finalises them and, with warnings on, reports a ResourceWarning.
    # httpx types aiter_bytes() as an AsyncIterator; it is an async generator, which is what aclosing needs.
    stream = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > MAX_PAGE_BYTES:
                raise _too_large()
    return bytes(body)


def _too_large() -> SnapchatLayoutChanged:
    return SnapchatLayoutChanged(f"the Snapchat page is larger than {MAX_PAGE_BYTES // (1024 * 1024)} MB")


def _decode(response: httpx.Response, body: bytes) -> str:
    # The declared charset if it really decodes the page; otherwise UTF-8, which is what Snapchat serves. Strict,
    # because a charset= that is unknown, not text ("base64") or wrong ("punycode") must not mangle the page.
    try:
        return body.decode(response.charset_encoding or "utf-8")
    except (LookupError, ValueError):
        return body.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------------------
# Parsing


def parse_story_page(html: str, username: str, *, highlights: bool) -> SnapchatStory:
    """The story (or highlights) in a story page's HTML; pure, for tests and for pages fetched elsewhere.

    Raises `SnapchatLayoutChanged` when nothing on the page is recognisable, `NotFound` for the site's
    own not-found page, `BadSnapchatUsername` for a bad ``username``.
    """
    name = check_snapchat_username(username)
    page_props = _page_props(html)
    if _unwrap(page_props.get("statusCode")) == 404:
        raise NotFound("no such Snapchat user (or the profile is not public)", hint="check the username")
    profile = _profile_info(page_props)
    has_profile = profile is not None or isinstance(page_props.get("userProfile"), dict)
    snaps = _highlight_snaps(page_props, has_profile) if highlights else _story_snaps(page_props, has_profile)
    return SnapchatStory(
        username=_page_username(profile, name),
        display_name=_display_name(profile, page_props),
        snaps=snaps,
    )


def _page_props(html: str) -> dict[str, object]:
    raw = _next_data_text(html)
    if raw is None:
        raise SnapchatLayoutChanged("the Snapchat page has no __NEXT_DATA__ script")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapchatLayoutChanged("the Snapchat page data is not valid JSON") from None
    props = data.get("props") if isinstance(data, dict) else None
    page_props = props.get("pageProps") if isinstance(props, dict) else None
    if not isinstance(page_props, dict):
        raise SnapchatLayoutChanged("the Snapchat page data has no props.pageProps")
    return page_props


def _next_data_text(html: str) -> str | None:
    """The text of ``<script id="__NEXT_DATA__" …>``; linear in the page size, whatever the page holds."""
    scanned_to = 0
    for opening in _SCRIPT_OPEN.finditer(html):
        if opening.start() < scanned_to:
            continue  # inside the attributes of a tag already looked at
        tag_end = html.find(">", opening.end())
        if tag_end < 0:
            return None
        scanned_to = tag_end
        attributes = html[opening.end() : tag_end]
        if len(attributes) > _MAX_TAG_ATTRIBUTES or not _NEXT_DATA_ID.search(attributes):
            continue
        closing = _SCRIPT_CLOSE.search(html, tag_end + 1)
        return None if closing is None else html[tag_end + 1 : closing.start()]
    return None


def _story_snaps(page_props: dict[str, object], has_profile: bool) -> tuple[Snap, ...]:
    story = page_props.get("story")
    if story is None:
        # Real pages leave "story" out while the account has no active story.
        if has_profile:
            return ()
        raise SnapchatLayoutChanged("the Snapchat page has neither a profile nor a story")
    if not isinstance(story, dict):
        raise SnapchatLayoutChanged("the Snapchat story is not in the expected form")
    snaps = _read_snap_list(story.get("snapList"), highlight=None)
    if snaps is None:
        raise SnapchatLayoutChanged("none of the snaps on the Snapchat page could be read")
    return snaps


def _highlight_snaps(page_props: dict[str, object], has_profile: bool) -> tuple[Snap, ...]:
    highlights = page_props.get("curatedHighlights")
    if highlights is None:
        if has_profile:
            return ()
        raise SnapchatLayoutChanged("the Snapchat page has neither a profile nor highlights")
    if not isinstance(highlights, list):
        raise SnapchatLayoutChanged("the Snapchat highlights are not in the expected form")
    if not highlights:
        return ()
    readable: list[tuple[Snap, ...]] = []
    for number, highlight in enumerate(highlights, start=1):
        if not isinstance(highlight, dict):
            continue
        title = _clean_text(highlight.get("storyTitle"), _MAX_TITLE) or _clean_text(highlight.get("title"), _MAX_TITLE)
        snaps = _read_snap_list(highlight.get("snapList"), highlight=title or f"Highlight {number}")
        if snaps is not None:
            readable.append(snaps)
    if not readable:
        raise SnapchatLayoutChanged("none of the Snapchat highlights could be read")
    return tuple(snap for snaps in readable for snap in snaps)


def _read_snap_list(raw: object, *, highlight: str | None) -> tuple[Snap, ...] | None:
    """The readable snaps of one story, ``()`` for an empty one, None if it cannot be read at all."""
    if not isinstance(raw, list):
        return None
    if not raw:
        return ()
    total = len(raw)
    snaps = [
        snap
        for position, entry in enumerate(_in_story_order(raw), start=1)
        if (snap := _read_snap(entry, position, total, highlight)) is not None
    ]
    return tuple(snaps) if snaps else None


def _in_story_order(entries: list[object]) -> list[object]:
    # Pages list snaps in order already; snapIndex decides only when every entry has a distinct one.
    by_index: dict[int, object] = {}
    for entry in entries:
        index = _as_int(entry.get("snapIndex")) if isinstance(entry, dict) else None
        if index is None or index in by_index:
            return entries
        by_index[index] = entry
    return [by_index[index] for index in sorted(by_index)]


def _read_snap(entry: object, position: int, total: int, highlight: str | None) -> Snap | None:
    if not isinstance(entry, dict):
        return None
    urls = entry.get("snapUrls")
    urls = urls if isinstance(urls, dict) else {}
    media_url = _web_url(urls.get("mediaUrl")) or _web_url(entry.get("mediaUrl"))
    if media_url is None:
        return None
    return Snap(
        snap_id=_snap_id(entry, media_url),
        media_url=media_url,
        kind=_media_kind(entry, urls, media_url),
        posted_at=_posted_at(entry),
        position=position,
        total=total,
        highlight=highlight,
        preview_url=_web_url(urls.get("mediaPreviewUrl")) or _web_url(entry.get("mediaPreviewUrl")),
    )


def _snap_id(entry: dict[str, object], media_url: str) -> str:
    # Highlight snaps carry an empty snapId; the media file name is stable (gallery-dl names files by it too).
    candidates = (_unwrap(entry.get("snapId")), urlsplit(media_url).path.rpartition("/")[2])
    for candidate in candidates:
        if isinstance(candidate, str) and _SAFE_ID.fullmatch(candidate):
            return candidate
    return hashlib.sha256(media_url.encode()).hexdigest()[:32]


def _media_kind(entry: dict[str, object], urls: dict[str, object], media_url: str) -> Literal["photo", "video"]:
    for raw in (entry.get("snapMediaType"), urls.get("snapMediaType"), entry.get("mediaType")):
        value = _unwrap(raw)
        number = _as_int(value)
        if number is not None and number in _MEDIA_TYPES:
            return _MEDIA_TYPES[number]
        if isinstance(value, str):
            word = value.upper()
            if "VIDEO" in word:
                return "video"
            if "IMAGE" in word or "PHOTO" in word:
                return "photo"
    path = urlsplit(media_url).path.lower()
    if path.endswith(_PHOTO_SUFFIXES):
        return "photo"
    # Most story snaps are videos, and the downloader probes the file it gets anyway.
    return "video"


def _posted_at(entry: dict[str, object]) -> datetime | None:
    seconds = _as_int(entry.get("timestampInSec"))
    if seconds is not None and seconds > 0:
        if seconds > 100_000_000_000:  # milliseconds after all (in seconds the year would be past 5000)
            seconds //= 1000
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds < _LATEST_POST_TIME else None
    # Some page versions give an ISO time instead ("2024-10-16T19:01:13.000Z").
    created = _unwrap(entry.get("createTime"))
    if not isinstance(created, str) or len(created) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(created)
        posted = parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        return None
    return posted if 0 < posted.timestamp() < _LATEST_POST_TIME else None


def _profile_info(page_props: dict[str, object]) -> dict[str, object] | None:
    """The account's own record: ``userProfile[userProfile["$case"]]`` on real pages, with older spellings."""
    profile = page_props.get("userProfile")
    if isinstance(profile, dict):
        case = profile.get("$case")
        for key in (case if isinstance(case, str) else "publicProfileInfo", "publicProfileInfo", "userInfo"):
            info = profile.get(key)
            if isinstance(info, dict):
                return info
    for key in ("publicUserProfile", "userInfo"):
        info = page_props.get(key)
        if isinstance(info, dict):
            return info
    return None


def _page_username(profile: dict[str, object] | None, requested: str) -> str:
    # The page's spelling (Snapchat usernames are case-insensitive), but only if it is the account we asked for.
    if profile is not None:
        spelled = _unwrap(profile.get("username"))
        if isinstance(spelled, str) and _USERNAME.fullmatch(spelled) and spelled.lower() == requested.lower():
            return spelled
    return requested


def _display_name(profile: dict[str, object] | None, page_props: dict[str, object]) -> str | None:
    sources = [profile] if profile is not None else []
    user_info = page_props.get("userInfo")
    if isinstance(user_info, dict):
        sources.append(user_info)
    for source in sources:
        for key in ("title", "displayName", "mutableName", "name"):
            if name := _clean_text(source.get(key), _MAX_DISPLAY_NAME):
                return name
    return None


# ---------------------------------------------------------------------------------------------------------
# Field readers: each takes whatever JSON gave and returns a clean value or None.


def _unwrap(value: object) -> object:
    """Snapchat's protobuf JSON wraps scalars as ``{"value": x}``; older pages had the bare value."""
    for _ in range(3):
        if not (isinstance(value, dict) and "value" in value):
            break
        value = value["value"]
    return value


def _as_int(value: object) -> int | None:
    value = _unwrap(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        return int(value)
    return None


def _web_url(value: object) -> str | None:
    value = _unwrap(value)
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > _MAX_URL_LENGTH:
        return None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return url


def _clean_text(value: object, limit: int) -> str | None:
    """A name or title fit to show: one line, no control or direction characters, at most ``limit`` long."""
    value = _unwrap(value)
    if not isinstance(value, str):
        return None
    visible = "".join(ch for ch in value if ch.isspace() or not _is_hidden(ch))
    text = " ".join(visible.split())[:limit].strip()
    return text or None


def _is_hidden(ch: str) -> bool:
    return ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs")
