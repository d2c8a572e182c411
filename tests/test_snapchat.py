"""Snapchat public stories: the parser on a stored page and its variants, then fetches from a loopback server.

``fixtures/snapchat_story.html`` is shaped like a real story page: the field names, the ``{"value": …}``
wrappers, ``$case`` and the empty ``snapId`` of highlight snaps follow pages stored with snapchat-dl's tests
(skyme5/snapchat-dl, tests/mock_data/*.html) and the field reads of gallery-dl's snapchat extractor.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio

from storyflow._errors import DownloadError, InputError, NetworkError, NotFound, RateLimited, UnsafeURL
from storyflow.stories import (
    MAX_PAGE_BYTES,
    BadSnapchatUsername,
    Snap,
    SnapchatLayoutChanged,
    SnapchatStory,
    check_snapchat_username,
    fetch_snapchat_stories,
    parse_story_page,
)
from storyflow.stories._snapchat import MAX_REDIRECTS, _check_redirect, _same_site
from storyflow.testing._httpserver import Delivery, MediaServer, RequestRecord, open_media_server

FIXTURE = Path(__file__).parent / "fixtures" / "snapchat_story.html"
USER = "alice.example"
CDN = "https://cf-st.sc-cdn.net/d"
BOLT = "https://bolt-gcdn.sc-cdn.net/3"
MO = "?mo=GlQaEhoAGgAyAX06AX1CBgiF8sCzBkgCUDRgAQ%3D%3D&uc=52"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# What the stored page holds, spelled out by hand so a wrong field read shows up as a diff.
CURRENT_STORY = (
    Snap(
        snap_id="W7_EDlXWTBiXAEEniNoMPwAAYc3RvcnlwaG90bzEBjzpTc0gBjzpTbV0AAAAA",
        media_url=f"{CDN}/Q1x5mRDeZJ8vU7OJtpH2a.1322.IRZXSOY{MO}",
        kind="photo",
        posted_at=at("2024-05-31T16:08:37"),
        position=1,
        total=3,
        highlight=None,
        preview_url=f"{CDN}/Q1x5mRDeZJ8vU7OJtpH2a.256.IRZXSOY{MO}",
    ),
    Snap(
        snap_id="W7_EDlXWTBiXAEEniNoMPwAAYc3Rvcnl2aWRlbzEBjzpTc0gBjzpTbV0AAAAA",
        media_url=f"{BOLT}/sFbv4kCTM3Rz9L0xWq7Yd.27.IRZXSOY{MO}",
        kind="video",
        posted_at=at("2024-05-31T17:08:37"),
        position=2,
        total=3,
        highlight=None,
        preview_url=f"{CDN}/sFbv4kCTM3Rz9L0xWq7Yd.256.IRZXSOY{MO}",
    ),
    Snap(
        snap_id="W7_EDlXWTBiXAEEniNoMPwAAYc3Rvcnl2aWRlbzIBjzpTc0gBjzpTbV0AAAAA",
        media_url=f"{BOLT}/pL2cN8hV0yQmT6sXe4RkU.27.IRZXSOY{MO}",
        kind="video",
        posted_at=at("2024-05-31T18:08:37"),
        position=3,
        total=3,
        highlight=None,
        preview_url=None,
    ),
)
HIGHLIGHTS = (
    # Highlight snaps have an empty snapId on real pages: the media file name stands in.
    Snap(
        snap_id="hL1aPhotoZx3Wq9Rt5Ym2N.400.IRZXSOY",
        media_url=f"{CDN}/hL1aPhotoZx3Wq9Rt5Ym2N.400.IRZXSOY?uc=12",
        kind="photo",
        posted_at=at("2023-07-01T12:00:00"),
        position=1,
        total=2,
        highlight="Summer 2023",
        preview_url=f"{CDN}/hL1aPhotoZx3Wq9Rt5Ym2N.410.IRZXSOY?uc=12",
    ),
    Snap(
        snap_id="hL1bVideoKk7Pq2Lm8Sd4F.27.IRZXSOY",
        media_url=f"{BOLT}/hL1bVideoKk7Pq2Lm8Sd4F.27.IRZXSOY?uc=12",
        kind="video",
        posted_at=at("2023-07-01T13:00:00"),
        position=2,
        total=2,
        highlight="Summer 2023",
        preview_url=f"{CDN}/hL1bVideoKk7Pq2Lm8Sd4F.410.IRZXSOY?uc=12",
    ),
    # An untitled highlight still says it is one.
    Snap(
        snap_id="hL2aPhotoTt6Yb1Ne3Vc9Q.400.IRZXSOY",
        media_url=f"{CDN}/hL2aPhotoTt6Yb1Ne3Vc9Q.400.IRZXSOY?uc=12",
        kind="photo",
        posted_at=at("2023-11-14T22:13:20"),
        position=1,
        total=1,
        highlight="Highlight 2",
        preview_url=None,
    ),
)


def stored_page() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def page(next_data: object) -> str:
    """A page around ``next_data``, escaped the way Next.js writes it."""
    text = json.dumps(next_data).replace("<", "\\u003c")
    return f'<html><body><div id="__next"></div><script id="__NEXT_DATA__" type="application/json">{text}</script>'


def props(**page_props: object) -> dict[str, object]:
    return {"props": {"pageProps": page_props}, "page": "/@/[username]"}


def profile(title: object = "Alice Example", username: object = USER) -> dict[str, object]:
    return {"$case": "publicProfileInfo", "publicProfileInfo": {"username": username, "title": title}}


def snap_entry(index: int, name: str, **fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "snapIndex": index,
        "snapMediaType": 1,
        "snapId": {"value": f"snap{name}"},
        "snapUrls": {"mediaUrl": f"{BOLT}/{name}.27.IRZXSOY?uc=1"},
        "timestampInSec": {"value": "1717171717"},
    }
    entry.update(fields)
    return entry


def story_page(*entries: object) -> str:
    return page(props(userProfile=profile(), story={"storyType": 5, "snapList": list(entries)}))


# ---------------------------------------------------------------------------------------------------------
# The stored page


def test_stored_page_current_story() -> None:
    story = parse_story_page(stored_page(), USER, highlights=False)
    assert story == SnapchatStory(username=USER, display_name="Alice Example ✨", snaps=CURRENT_STORY)


def test_stored_page_highlights() -> None:
    story = parse_story_page(stored_page(), USER, highlights=True)
    assert story == SnapchatStory(username=USER, display_name="Alice Example ✨", snaps=HIGHLIGHTS)


def test_snap_index_orders_a_shuffled_list() -> None:
    story = parse_story_page(
        story_page(snap_entry(2, "c"), snap_entry(0, "a"), snap_entry(1, "b")), USER, highlights=False
    )
    assert [(s.snap_id, s.position, s.total) for s in story.snaps] == [
        ("snapa", 1, 3),
        ("snapb", 2, 3),
        ("snapc", 3, 3),
    ]


def test_duplicate_snap_indexes_keep_the_page_order() -> None:
    story = parse_story_page(story_page(snap_entry(0, "b"), snap_entry(0, "a")), USER, highlights=False)
    assert [s.snap_id for s in story.snaps] == ["snapb", "snapa"]


# ---------------------------------------------------------------------------------------------------------
# Accounts without stories


@pytest.mark.parametrize("highlights", [False, True])
@pytest.mark.parametrize(
    "page_props",
    [
        # Real pages leave "story" out when there is none; "curatedHighlights" may be there or empty.
        {"userProfile": profile(), "curatedHighlights": []},
        {"userProfile": profile(), "story": None},
        {"userProfile": profile(), "story": {"storyType": 5, "snapList": []}, "curatedHighlights": None},
    ],
)
def test_no_stories_is_an_empty_result(page_props: dict[str, object], highlights: bool) -> None:
    story = parse_story_page(page(props(**page_props)), USER, highlights=highlights)
    assert story == SnapchatStory(username=USER, display_name="Alice Example", snaps=())


def test_stories_without_highlights_and_highlights_without_stories() -> None:
    only_story = page(props(userProfile=profile(), story={"snapList": [snap_entry(0, "a")]}))
    assert parse_story_page(only_story, USER, highlights=True).snaps == ()
    only_highlights = page(props(userProfile=profile(), curatedHighlights=[{"snapList": [snap_entry(0, "a")]}]))
    assert parse_story_page(only_highlights, USER, highlights=False).snaps == ()
    assert [s.highlight for s in parse_story_page(only_highlights, USER, highlights=True).snaps] == ["Highlight 1"]


# ---------------------------------------------------------------------------------------------------------
# Snaps that cannot be read


def test_unreadable_snaps_are_skipped_and_the_rest_keep_their_places() -> None:
    entries = [
        snap_entry(0, "good1"),
        snap_entry(1, "nourl", snapUrls={"mediaPreviewUrl": {"value": f"{CDN}/p.jpg"}}),
        snap_entry(2, "ftp", snapUrls={"mediaUrl": "ftp://cf-st.sc-cdn.net/x.mp4"}),
        "not a snap",
        snap_entry(4, "js", snapUrls={"mediaUrl": "javascript:alert(1)"}),
        snap_entry(5, "number", snapUrls={"mediaUrl": 12345}),
        snap_entry(6, "creds", snapUrls={"mediaUrl": "https://user:pw@cf-st.sc-cdn.net/x.mp4"}),
        snap_entry(7, "spaces", snapUrls={"mediaUrl": "https://cf-st.sc-cdn.net/a b.mp4"}),
        snap_entry(8, "relative", snapUrls={"mediaUrl": "/d/x.mp4"}),
        snap_entry(9, "badv6", snapUrls={"mediaUrl": "https://[::1/x.mp4"}),
        snap_entry(10, "urls_not_dict", snapUrls=["https://cf-st.sc-cdn.net/x.mp4"]),
        snap_entry(11, "good2", snapUrls={"mediaUrl": {"value": f"{BOLT}/good2.mp4"}, "mediaPreviewUrl": "data:x"}),
    ]
    snaps = parse_story_page(story_page(*entries), USER, highlights=False).snaps
    assert [(s.snap_id, s.media_url, s.position, s.total, s.preview_url) for s in snaps] == [
        ("snapgood1", f"{BOLT}/good1.27.IRZXSOY?uc=1", 1, 12, None),
        ("snapgood2", f"{BOLT}/good2.mp4", 12, 12, None),
    ]


def test_an_unreadable_highlight_is_skipped() -> None:
    highlights = [
        "junk",
        {"storyTitle": {"value": "No list"}, "snapList": {"0": snap_entry(0, "x")}},
        {"storyTitle": {"value": "All bad"}, "snapList": [{"snapUrls": {}}]},
        {"storyTitle": "Old style title", "snapList": [snap_entry(0, "ok")]},
    ]
    snaps = parse_story_page(page(props(userProfile=profile(), curatedHighlights=highlights)), USER, highlights=True)
    assert [(s.snap_id, s.highlight) for s in snaps.snaps] == [("snapok", "Old style title")]


@pytest.mark.parametrize(
    ("fields", "kind", "posted_at"),
    [
        # The older page shape: bare strings and numbers, snapMediaType (empty) inside snapUrls.
        (
            {
                "snapId": "PbbfUkHxRL2",
                "timestampInSec": 1615609595,
                "snapUrls": {"mediaUrl": "https://s.sc-cdn.net/1d/abc=/default/media.mp4", "snapMediaType": ""},
                "snapMediaType": None,
            },
            "video",
            at("2021-03-13T04:26:35"),
        ),
        (
            {"snapMediaType": None, "snapUrls": {"mediaUrl": "https://s.sc-cdn.net/1d/x=/default/media.jpg?Expires=1"}},
            "photo",
            at("2024-05-31T16:08:37"),
        ),
        ({"snapMediaType": {"value": 0}}, "photo", at("2024-05-31T16:08:37")),
        ({"snapMediaType": "0"}, "photo", at("2024-05-31T16:08:37")),
        ({"snapMediaType": None, "mediaType": "IMAGE"}, "photo", at("2024-05-31T16:08:37")),
        ({"snapMediaType": "SNAP_MEDIA_TYPE_VIDEO"}, "video", at("2024-05-31T16:08:37")),
        # Unknown type and no telling extension: a video (the downloader probes the file anyway).
        ({"snapMediaType": 7}, "video", at("2024-05-31T16:08:37")),
        ({"timestampInSec": {"value": "1717171717000"}}, "video", at("2024-05-31T16:08:37")),
        ({"timestampInSec": {"value": 1717171717.0}}, "video", at("2024-05-31T16:08:37")),
        ({"timestampInSec": None, "createTime": "2024-10-16T19:01:13.000Z"}, "video", at("2024-10-16T19:01:13")),
        ({"timestampInSec": {"value": "0"}}, "video", None),
        ({"timestampInSec": {"value": "yesterday"}}, "video", None),
        ({"timestampInSec": True}, "video", None),
        ({"timestampInSec": {"value": "9" * 14}}, "video", None),
        ({"timestampInSec": "9" * 400}, "video", None),
        ({"timestampInSec": None, "createTime": "0001-01-01T00:00:00+01:00"}, "video", None),
        ({"timestampInSec": None, "createTime": "not a time"}, "video", None),
    ],
)
def test_field_variants(fields: dict[str, object], kind: str, posted_at: datetime | None) -> None:
    (snap,) = parse_story_page(story_page(snap_entry(0, "a", **fields)), USER, highlights=False).snaps
    assert (snap.kind, snap.posted_at) == (kind, posted_at)
    assert snap.posted_at is None or snap.posted_at.tzinfo is UTC


def test_snap_ids_are_safe_to_name_files_by() -> None:
    entries = [
        snap_entry(0, "a", snapId={"value": "../../etc/passwd"}),
        snap_entry(1, "b", snapId={"value": ""}, snapUrls={"mediaUrl": "https://cf-st.sc-cdn.net/d/?x=../y"}),
    ]
    first, second = parse_story_page(story_page(*entries), USER, highlights=False).snaps
    assert first.snap_id == "a.27.IRZXSOY"  # from the media URL, not the hostile id
    assert len(second.snap_id) == 32 and second.snap_id.isalnum()


# ---------------------------------------------------------------------------------------------------------
# The account


def test_display_name_is_cleaned_and_username_spelled_as_the_page_does() -> None:
    hostile = "\u202eAlice\n\tExample\x00\u2066 " + "x" * 200
    story = parse_story_page(page(props(userProfile=profile(hostile, "Alice.Example"))), USER, highlights=False)
    assert story.username == "Alice.Example"
    assert story.display_name == ("Alice Example " + "x" * 200)[:64]


@pytest.mark.parametrize(
    ("page_props", "username", "display_name"),
    [
        # Another account's name on the page is not taken for the one we asked for.
        ({"userProfile": profile("Bob", "bob.other")}, USER, "Bob"),
        ({"userProfile": {"$case": "userInfo", "userInfo": {"username": USER, "displayName": "Ali"}}}, USER, "Ali"),
        ({"userProfile": {"publicProfileInfo": {"title": {"value": "Wrapped"}}}}, USER, "Wrapped"),
        ({"userProfile": {"$case": "publicProfileInfo"}, "userInfo": {"displayName": "Side"}}, USER, "Side"),
        ({"userProfile": profile(title="", username=["x"])}, USER, None),
        ({"userProfile": profile(title="\u202e\u200f")}, USER, None),
    ],
)
def test_account_fields(page_props: dict[str, object], username: str, display_name: str | None) -> None:
    story = parse_story_page(page(props(**page_props)), "@" + USER, highlights=False)
    assert (story.username, story.display_name, story.snaps) == (username, display_name, ())


def test_next_js_not_found_page_is_not_found() -> None:
    with pytest.raises(NotFound):
        parse_story_page(page({"props": {"pageProps": {"statusCode": 404}}, "page": "/_error"}), USER, highlights=False)


# ---------------------------------------------------------------------------------------------------------
# Pages we do not know


LAYOUT_CHANGES = {
    "garbage": "<html><body>\x00\xff<<<>>> not a page</body></html>",
    "empty": "",
    "no next data": "<html><script>var x = 1;</script><script src='/a.js'></script></html>",
    "other id": '<script id="__NEXT_DATA__x" type="application/json">{"props": {}}</script>',
    "unclosed script": '<script id="__NEXT_DATA__">{"props": {"pageProps": {}}}',
    "unclosed tag": '<script id="__NEXT_DATA__"',
    "invalid json": '<script id="__NEXT_DATA__" type="application/json">{"props": {"pageProps": </script>',
    "json list": page([1, 2, 3]),
    "no props": page({"page": "/"}),
    "props not dict": page({"props": "x"}),
    "page props list": page({"props": {"pageProps": []}}),
    "different shape": page(props(feed=[{"items": []}], viewerInfo={"country": "US"})),
    "story not dict": page(props(userProfile=profile(), story=["x"])),
    "snap list not list": page(props(userProfile=profile(), story={"snapList": {"0": snap_entry(0, "a")}})),
    "snap list missing": page(props(userProfile=profile(), story={"storyType": 5})),
    "all snaps bad": story_page({"snapIndex": 0}, snap_entry(1, "x", snapUrls={"mediaUrl": "file:///etc/passwd"})),
    "story but no profile and junk": page(props(story=7)),
    "deep nesting": page(props()).replace('{"pageProps": {}}', "[" * 100_000 + "]" * 100_000),
    "huge number": '<script id="__NEXT_DATA__">{"props": ' + "9" * 5000 + "}</script>",
}


@pytest.mark.parametrize("html", LAYOUT_CHANGES.values(), ids=LAYOUT_CHANGES.keys())
def test_pages_we_do_not_know_are_a_layout_change(html: str) -> None:
    with pytest.raises(SnapchatLayoutChanged) as caught:
        parse_story_page(html, USER, highlights=False)
    assert isinstance(caught.value, DownloadError)
    assert caught.value.hint == "Snapchat changed its page; update StoryFlow"


HIGHLIGHT_LAYOUT_CHANGES = {
    "highlights not list": page(props(userProfile=profile(), curatedHighlights={"a": 1})),
    "all highlights bad": page(props(userProfile=profile(), curatedHighlights=["x", {"snapList": "y"}])),
    "no profile no highlights": page(props(story={"snapList": [snap_entry(0, "a")]})),
}


@pytest.mark.parametrize("html", HIGHLIGHT_LAYOUT_CHANGES.values(), ids=HIGHLIGHT_LAYOUT_CHANGES.keys())
def test_highlights_we_do_not_know_are_a_layout_change(html: str) -> None:
    with pytest.raises(SnapchatLayoutChanged):
        parse_story_page(html, USER, highlights=True)


def test_next_data_tag_variants_are_found() -> None:
    data = json.dumps(props(userProfile=profile(), story={"snapList": [snap_entry(0, "a")]}))
    for tag in ("<SCRIPT type='application/json' id='__NEXT_DATA__' crossorigin>", "<script id=__NEXT_DATA__>"):
        html = f'<script>if (a > b) {{}}</script><script src="x.js"></script>{tag}{data}</SCRIPT >'
        assert [s.snap_id for s in parse_story_page(html, USER, highlights=False).snaps] == ["snapa"]


def test_finding_the_data_is_linear_on_hostile_markup() -> None:
    # Half a million unclosed tags before one '>': a scan that restarted at each would take hours.
    hostile = "<script " * 500_000 + ">" + "<script" * 300_000
    started = time.perf_counter()
    with pytest.raises(SnapchatLayoutChanged):
        parse_story_page(hostile, USER, highlights=False)
    assert time.perf_counter() - started < 3


# ---------------------------------------------------------------------------------------------------------
# Usernames


HOSTILE_USERNAMES = [
    "../x",
    "a b",
    "-x",
    "a" * 100,
    "ålice",
    "аlice",
    "ａlice",
    "alice\n",
    "",
    "ab",
    "a" * 16,
    "1alice",
    "_alice",
    "alice/../x",
    "alice?x=1",
    "alice#x",
    "alice%2f",
    "@@alice",
    "alice@",
    "al\x00ice",
    "ali\u202ece",
    "alice.é",
]


@pytest.mark.parametrize("username", HOSTILE_USERNAMES)
def test_hostile_usernames_are_refused(username: str) -> None:
    with pytest.raises(BadSnapchatUsername) as caught:
        check_snapchat_username(username)
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(("username", "checked"), [("abc", "abc"), ("@a.b-c_d", "a.b-c_d"), ("A" * 15, "A" * 15)])
def test_usernames_snapchat_allows(username: str, checked: str) -> None:
    assert check_snapchat_username(username) == checked


# ---------------------------------------------------------------------------------------------------------
# Fetching from a loopback server


class Sent:
    """Every request the client sent, as httpx built it (the server logs only method, path and status)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def record(self, request: httpx.Request) -> None:
        self.requests.append(request)


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    async with open_media_server() as media_server:
        yield media_server


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
async def client(sent: Sent) -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: no proxy from the environment may see loopback test traffic.
    async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [sent.record]}) as http_client:
        yield http_client
    assert {request.url.host for request in sent.requests} <= {"127.0.0.1"}


async def test_fetch_current_story(server: MediaServer, client: httpx.AsyncClient, sent: Sent) -> None:
    server.add_file(f"/s/{USER}", FIXTURE)
    story = await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert story == SnapchatStory(username=USER, display_name="Alice Example ✨", snaps=CURRENT_STORY)
    assert server.requests == [RequestRecord("GET", f"/s/{USER}", None, 200)]
    assert sent.requests[0].headers["user-agent"].startswith("Mozilla/5.0 (")
    assert "text/html" in sent.requests[0].headers["accept"]


async def test_fetch_highlights(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_file(f"/s/{USER}", FIXTURE)
    story = await fetch_snapchat_stories(client, "@" + USER, base_url=server.base_url + "/", highlights=True)
    assert story.snaps == HIGHLIGHTS


async def test_fetch_under_a_base_path(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_file(f"/mirror/s/{USER}", FIXTURE)
    story = await fetch_snapchat_stories(client, USER, base_url=server.url("/mirror"))
    assert story.snaps == CURRENT_STORY


async def test_fetch_no_stories(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_html(f"/s/{USER}", page(props(userProfile=profile(), curatedHighlights=[])))
    story = await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert story == SnapchatStory(username=USER, display_name="Alice Example", snaps=())


async def test_redirects_within_the_site_are_followed(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_redirect(f"/s/{USER}", server.url(f"/add/{USER}"), status=301)
    server.add_redirect(f"/add/{USER}", f"/@{USER}", status=302)
    server.add_file(f"/@{USER}", FIXTURE)
    story = await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert story.snaps == CURRENT_STORY
    assert [r.path for r in server.requests] == [f"/s/{USER}", f"/add/{USER}", f"/@{USER}"]


async def test_a_redirect_loop_ends(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_redirect(f"/s/{USER}", f"/s/{USER}")
    with pytest.raises(NetworkError, match="redirected more than"):
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert server.request_count(f"/s/{USER}") == MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    # Targets that stay on this machine even if the check failed (the client fixture then sees the host).
    "target",
    ["http://localhost:{port}/s/alice", "ftp://127.0.0.1:{port}/s/alice", "file:///etc/passwd", "javascript:x"],
)
async def test_redirects_away_are_not_followed(
    server: MediaServer, client: httpx.AsyncClient, sent: Sent, target: str
) -> None:
    server.add_redirect(f"/s/{USER}", target.format(port=server.port))
    with pytest.raises(NetworkError, match="redirected"):
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert len(sent.requests) == 1 and len(server.requests) == 1


@pytest.mark.parametrize(
    ("source", "target", "followed"),
    [
        ("story.snapchat.com", "www.snapchat.com", True),
        ("story.snapchat.com", "snapchat.com", True),
        ("story.snapchat.com", "STORY.snapchat.com.", True),
        ("story.snapchat.com", "evilsnapchat.com", False),
        ("story.snapchat.com", "snapchat.com.evil.example", False),
        ("story.snapchat.com", "example.com", False),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.1", "0.0.1", False),
        ("localhost", "localhost", True),
    ],
)
def test_redirects_stay_on_the_site(source: str, target: str, followed: bool) -> None:
    assert _same_site(source, target) is followed


@pytest.mark.parametrize(
    ("source", "target"),
    [("https://story.snapchat.com/s/a", "http://www.snapchat.com/add/a"), ("https://story.snapchat.com/", "ws://x")],
)
def test_redirects_never_downgrade_or_leave_the_web(source: str, target: str) -> None:
    with pytest.raises(NetworkError, match="redirected"):
        _check_redirect(httpx.URL(source), httpx.URL(target))
    _check_redirect(httpx.URL(source), httpx.URL("https://www.snapchat.com/add/a"))  # the usual hop is fine


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFound),
        (410, NotFound),
        (429, RateLimited),
        (500, NetworkError),
        (502, NetworkError),
        (503, NetworkError),
        (403, NetworkError),
    ],
)
async def test_statuses(server: MediaServer, client: httpx.AsyncClient, status: int, error: type[Exception]) -> None:
    server.add_status(f"/s/{USER}", status, retry_after=30)
    with pytest.raises(error) as caught:
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert type(caught.value) is error
    if status == 429:
        assert "retry after 30 s" in str(caught.value)
    if status == 404:
        assert "no such Snapchat user" in str(caught.value)


async def test_a_dropped_connection_is_a_network_error(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_bytes(f"/s/{USER}", stored_page().encode(), content_type="text/html", delivery=Delivery(drop_after=100))
    with pytest.raises(NetworkError):
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)


async def test_a_refused_connection_is_a_network_error(client: httpx.AsyncClient) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with pytest.raises(NetworkError):
        await fetch_snapchat_stories(client, USER, base_url=f"http://127.0.0.1:{port}")


async def test_the_clients_timeout_is_a_network_error(server: MediaServer, sent: Sent) -> None:
    server.add_hang(f"/s/{USER}", send_headers=False)
    async with httpx.AsyncClient(trust_env=False, timeout=0.25) as impatient:
        with pytest.raises(NetworkError, match="did not answer in time"):
            await fetch_snapchat_stories(impatient, USER, base_url=server.base_url)


async def test_an_oversized_page_is_not_read(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_generated(f"/s/{USER}", MAX_PAGE_BYTES + 1, content_type="text/html")
    with pytest.raises(SnapchatLayoutChanged, match="larger than 5 MB"):
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)


class EndlessBody(httpx.AsyncByteStream):
    """A response body that never ends, and no Content-Length: an iterator object, so it leaves nothing suspended."""

    def __init__(self) -> None:
        self.chunks_sent = 0
        self.closed = False

    def __aiter__(self) -> EndlessBody:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        self.chunks_sent += 1
        return b"<p>" * 20_000

    async def aclose(self) -> None:
        self.closed = True


# Cutting a stream short leaves httpx's own nested stream generators suspended (encode/httpx#3686); only
# those warnings are let through here.
@pytest.mark.filterwarnings(r"ignore:Async generator 'httpx\.:ResourceWarning")
async def test_a_page_of_unknown_length_is_cut_off_while_streaming() -> None:
    body = EndlessBody()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/html"}, stream=body)

    # MockTransport: the loopback server always sends Content-Length, which is refused before reading.
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        with trio.fail_after(5), pytest.raises(SnapchatLayoutChanged, match="larger than"):
            await fetch_snapchat_stories(mocked, USER, base_url="http://snapchat.test")
    assert body.closed
    assert body.chunks_sent * 60_000 <= MAX_PAGE_BYTES + 60_000


async def test_a_layout_change_over_http(server: MediaServer, client: httpx.AsyncClient) -> None:
    server.add_html(f"/s/{USER}", "<html><body>We are updating Snapchat</body></html>")
    with pytest.raises(SnapchatLayoutChanged):
        await fetch_snapchat_stories(client, USER, base_url=server.base_url)


@pytest.mark.parametrize("charset", ["x-no-such-charset", "base64", "idna", "punycode", "rot13"])
async def test_an_unusable_charset_falls_back_to_utf8(
    server: MediaServer, client: httpx.AsyncClient, charset: str
) -> None:
    server.add_bytes(f"/s/{USER}", stored_page().encode(), content_type=f"text/html; charset={charset}")
    story = await fetch_snapchat_stories(client, USER, base_url=server.base_url)
    assert story.display_name == "Alice Example ✨"


@pytest.mark.parametrize("username", HOSTILE_USERNAMES)
async def test_hostile_usernames_send_nothing(
    server: MediaServer, client: httpx.AsyncClient, sent: Sent, username: str
) -> None:
    server.add_file(f"/s/{USER}", FIXTURE)
    with pytest.raises(BadSnapchatUsername):
        await fetch_snapchat_stories(client, username, base_url=server.base_url)
    assert server.requests == [] and sent.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://127.0.0.1:{port}",
        "http://user:pw@127.0.0.1:{port}",
        "http://127.0.0.1:{port}/?x=1",
        "http://127.0.0.1:{port}/#top",
        "127.0.0.1:{port}",
        "http://127.0.0.1:99999",
        "",
    ],
)
async def test_a_bad_base_url_sends_nothing(
    server: MediaServer, client: httpx.AsyncClient, sent: Sent, base_url: str
) -> None:
    server.add_file(f"/s/{USER}", FIXTURE)
    with pytest.raises(UnsafeURL):
        await fetch_snapchat_stories(client, USER, base_url=base_url.format(port=server.port))
    assert server.requests == [] and sent.requests == []
