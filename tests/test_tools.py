"""Command lines handed to the tools, their output parsed, their failures classified."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyflow import (
    LoginRequired,
    NetworkError,
    NotFound,
    RateLimited,
    TooLarge,
    ToolCrashed,
    UnsupportedURL,
)
from storyflow.download import Attempt, Tool, classify, route, safe_display_name
from storyflow.download._tools import (
    FileLine,
    ProgressLine,
    ToolLimits,
    gallery_dl_command,
    parse_line,
    ytdlp_command,
)
from storyflow.jobs import JobOptions

LIMITS = ToolLimits(max_file_size=10_000_000, max_items=20)


def test_gallery_dl_command_is_safe() -> None:
    command = gallery_dl_command(
        "https://example.com/a.jpg", Path("/jobs/1"), modules=("directlink",), limits=LIMITS
    )
    assert command[-2:] == ["--", "https://example.com/a.jpg"]
    assert "--ignore-config" in command
    assert "-i" not in command
    assert "--input-file" not in command
    assert command[command.index("--directory") + 1] == "/jobs/1"
    assert 'extractor.modules=["directlink"]' in command


def test_ytdlp_command_is_safe() -> None:
    command = ytdlp_command(
        "https://example.com/v", Path("/jobs/1"), extractors=("generic", "html5"),
        options=JobOptions(max_height=480), limits=LIMITS,
    )
    assert command[-2:] == ["--", "https://example.com/v"]
    assert "--ignore-config" in command
    assert "--enable-file-urls" not in command
    assert "--no-cookies" in command
    assert command[command.index("--use-extractors") + 1] == "generic,html5"
    assert any("[height<=480]" in part for part in command)
    assert command[command.index("--max-filesize") + 1] == "10000000"


@pytest.mark.parametrize("options", [JobOptions(max_height=720), JobOptions(audio_only=True)])
def test_behind_the_guard_the_tools_use_it_and_yt_dlp_takes_no_format_it_would_fetch_past_it(
    options: JobOptions,
) -> None:
    proxy = "http://127.0.0.1:4321"
    ytdlp = ytdlp_command("https://example.com/v", Path("/jobs/1"), extractors=(), options=options, limits=LIMITS,
                          proxy=proxy)
    gallery = gallery_dl_command("https://example.com/a.jpg", Path("/jobs/1"), modules=(), limits=LIMITS, proxy=proxy)
    for command in (ytdlp, gallery):
        assert command[command.index("--proxy") + 1] == proxy
        assert command.index("--proxy") < command.index("--")
    alternatives = ytdlp[ytdlp.index("-f") + 1].split("/")
    for alternative in alternatives:
        for selector in alternative.split("+"):
            assert "[protocol!*=rtmp]" in selector and "[protocol!*=rtsp]" in selector, selector
    unguarded = ytdlp_command("https://example.com/v", Path("/jobs/1"), extractors=(), options=options,
                              limits=LIMITS)
    assert "--proxy" not in unguarded and "protocol" not in unguarded[unguarded.index("-f") + 1]


def test_routing() -> None:
    photo = route("https://cdn.example.com/x/photo.jpg")
    assert photo.attempts == (
        Attempt(Tool.GALLERY_DL, ("directlink",)), Attempt(Tool.GALLERY_DL),
        Attempt(Tool.YT_DLP, ("generic", "html5")), Attempt(Tool.YT_DLP),
    )
    assert route("https://www.instagram.com/stories/someone/").attempts[0] == Attempt(Tool.GALLERY_DL, ("instagram",))
    youtube = route("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert youtube.attempts == (Attempt(Tool.YT_DLP, ("youtube",)), Attempt(Tool.YT_DLP))
    # A page nobody claims: yt-dlp's generic extractor with the <video> finder first, then every extractor
    # (the page may embed another site's player).
    page = route("https://example.com/some/page.html")
    assert page.attempts == (Attempt(Tool.YT_DLP, ("generic", "html5")), Attempt(Tool.YT_DLP))
    assert route("https://videos.example.net/v", ytdlp_first_hosts=["example.net"]).tools == (Tool.YT_DLP,)


def test_parse_ytdlp_lines() -> None:
    progress = parse_line(
        Tool.YT_DLP,
        '@@SF-PROGRESS {"status": "downloading", "downloaded_bytes": 1024, "total_bytes": 4096,'
        ' "speed": 512.0, "eta": 6, "filename": "/jobs/1/a.mp4"}',
    )
    assert progress == ProgressLine(downloaded=1024, total=4096, speed=512.0, eta=6.0, filename="a.mp4")
    final = parse_line(
        Tool.YT_DLP,
        '@@SF-FILE {"filepath": "/jobs/1/a.mp4", "title": "T", "uploader": "U", "webpage_url": "https://e/x"}',
    )
    assert final == FileLine(path="/jobs/1/a.mp4", title="T", uploader="U", source_url="https://e/x")


def test_parse_gallery_dl_lines() -> None:
    # The --Print format gallery_dl_command asks for: null where the extractor has no such field.
    assert parse_line(Tool.GALLERY_DL, '@@SF-FILE {"path":"/jobs/1/x.jpg","user":null,"date":null}') == FileLine(
        path="/jobs/1/x.jpg"
    )
    story = parse_line(
        Tool.GALLERY_DL, '@@SF-FILE {"path":"/jobs/1/s.mp4","user":"jane.doe","date":"2026-12-03 18:30:00"}'
    )
    assert story == FileLine(path="/jobs/1/s.mp4", uploader="jane.doe", posted_at=1796322600.0)
    assert parse_line(Tool.GALLERY_DL, '@@SF-SKIP "/jobs/1/x.jpg"') == FileLine(path="/jobs/1/x.jpg", skipped=True)
    line = parse_line(Tool.GALLERY_DL, "@@SF-PROGRESS 1.04M 402.56K 30.02M 3")
    assert isinstance(line, ProgressLine)
    assert (line.downloaded, line.total, line.speed) == (1_040_000, 30_020_000, 402_560.0)


@pytest.mark.parametrize(
    "line",
    ["", "random chatter", '@@SF-FILE {"nope": 1}', "@@SF-PROGRESS garbage", "@@SF-FILE not json", "@@SF-PROGRESS"],
)
def test_mangled_lines_are_ignored(line: str) -> None:
    assert parse_line(Tool.YT_DLP, line) is None
    assert parse_line(Tool.GALLERY_DL, line) is None


# Recorded stderr of real runs (trimmed), with the exit status each tool gave.
@pytest.mark.parametrize(
    ("tool", "code", "stderr", "expected"),
    [
        (Tool.GALLERY_DL, 16, "[instagram][error] AuthRequired: Account credentials required ('cookies')",
         LoginRequired),
        (Tool.GALLERY_DL, 4, "[instagram][error] HttpError: '401 Unauthorized' for 'https://www.instagram.com/api/v1/'",
         LoginRequired),
        (Tool.GALLERY_DL, 4, "[downloader.http][warning] '404 Not Found' for 'https://e.com/a.mp4'\n"
         "[download][error] Failed to download a.mp4", NotFound),
        (Tool.GALLERY_DL, 4, "[instagram][error] HttpError: '429 Too Many Requests' for 'https://i.instagram.com/'",
         RateLimited),
        (Tool.GALLERY_DL, 64, "[gallery-dl][error] Unsupported URL 'https://e.com/x'", UnsupportedURL),
        (Tool.GALLERY_DL, 0, "[downloader.http][warning] File size larger than allowed maximum (3000 > 1000)",
         TooLarge),
        (Tool.GALLERY_DL, 4, "[downloader.http][warning] HTTPSConnectionPool: Max retries exceeded "
         "(Caused by NameResolutionError: Temporary failure in name resolution)", NetworkError),
        (Tool.YT_DLP, 1, "ERROR: [Instagram] xyz: Requested content is not available, rate-limit reached or login "
         "required. Use --cookies", LoginRequired),
        (Tool.YT_DLP, 1, "ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found", NotFound),
        (Tool.YT_DLP, 1, "ERROR: Unsupported URL: https://example.com/page", UnsupportedURL),
        (Tool.YT_DLP, 1, "ERROR: [youtube] abc: Private video. Sign in if you've been granted access", LoginRequired),
        (Tool.YT_DLP, 1, "ERROR: [generic] Unable to download webpage: HTTP Error 429: Too Many Requests", RateLimited),
        (Tool.YT_DLP, -9, "", ToolCrashed),
        (Tool.YT_DLP, 1, "Traceback (most recent call last):\n  ...\nKeyError: 'x'", ToolCrashed),
    ],
)
def test_classification_of_recorded_failures(tool: Tool, code: int, stderr: str, expected: type) -> None:
    error = classify(tool, code, stderr)
    assert type(error) is expected
    assert error.hint
    assert str(tool) in error.message


def test_error_detail_drops_query_strings() -> None:
    error = classify(Tool.YT_DLP, 1, "ERROR: Unable to download: HTTP Error 404 for https://e.com/a.mp4?token=SECRET")
    assert "SECRET" not in error.user_text()


@pytest.mark.parametrize(
    ("path", "title", "name"),
    [
        ("/jobs/1/abc.mp4", "", "abc.mp4"),
        ("/jobs/1/x.MP4", "My Video: part 1", "My_Video_part_1.mp4"),
        ("/jobs/1/../../etc/passwd", "", "passwd"),
        ("/jobs/1/evil\u202egpj.exe", "", "evil_gpj.exe"),
        ("/jobs/1/.hidden", "", "hidden"),
        ("/jobs/1/a.verylongextension", "", "a"),
        ("/jobs/1/" + "x" * 300 + ".jpg", "", "x" * 60 + ".jpg"),
    ],
)
def test_safe_display_names(path: str, title: str, name: str) -> None:
    assert safe_display_name(path, title) == name


@pytest.mark.parametrize("gallery_dl_first", [True, False])
def test_when_both_tools_fail_the_more_informative_error_is_kept(gallery_dl_first: bool) -> None:
    from storyflow.download._classify import more_informative

    unsupported = classify(Tool.GALLERY_DL, 64, "[gallery-dl][error] Unsupported URL 'https://e.com/x'")
    crashed = classify(Tool.GALLERY_DL, 1, "Traceback (most recent call last):\n  KeyError: 'x'")
    not_found = classify(Tool.YT_DLP, 1, "ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found")
    login = classify(Tool.YT_DLP, 1, "ERROR: [Instagram] x: Requested content is not available. Use --cookies")
    pairs = [
        (unsupported, not_found, NotFound), (crashed, unsupported, UnsupportedURL), (not_found, login, LoginRequired)
    ]
    for first, second, expected in pairs:
        a, b = (first, second) if gallery_dl_first else (second, first)
        assert isinstance(more_informative(a, b), expected)


def test_instagram_stories_command_uses_the_cookies_and_ends_the_options() -> None:
    url = "https://www.instagram.com/stories/jane.doe/"
    first = route(url).attempts[0]
    assert first == Attempt(Tool.GALLERY_DL, ("instagram",))
    cookies = Path("/jobs/7/.private/instagram-cookies.txt")
    command = gallery_dl_command(url, Path("/jobs/7"), modules=first.extractors, limits=LIMITS, cookies=cookies)
    assert command[command.index("--cookies") + 1] == str(cookies)
    assert command[-2:] == ["--", url]
    assert command.index("--cookies") < command.index("--")
    assert 'extractor.modules=["instagram"]' in command
    assert "--ignore-config" in command and "-i" not in command


@pytest.mark.parametrize(
    ("code", "stderr", "expected"),
    [  # recorded from gallery-dl 1.32 runs against instagram.com (ids shortened)
        (16, "[instagram][error] AuthorizationError: Login required", LoginRequired),
        (4, "[instagram][error] HttpError: '401 Unauthorized' for 'https://www.instagram.com/api/v1/feed/reels_media/'",
         LoginRequired),
        (8, "[instagram][warning] HTTP redirect to login page (https://www.instagram.com/accounts/login/)\n"
            "[instagram][error] AuthRequired: Account credentials required ('cookies')", LoginRequired),
        (4, "[instagram][error] HttpError: '404 Not Found' for 'https://www.instagram.com/api/v1/users/web_profile_info/'",
         NotFound),
        (4, "[instagram][error] HttpError: '429 Too Many Requests' for 'https://www.instagram.com/api/v1/'",
         RateLimited),
        (4, "[instagram][warning] Retrying (1/2) ... Max retries exceeded (Caused by NameResolutionError)\n"
            "[instagram][error] HttpError: Temporary failure in name resolution", NetworkError),
    ],
)
def test_instagram_failures_are_mapped(code: int, stderr: str, expected: type) -> None:
    assert isinstance(classify(Tool.GALLERY_DL, code, stderr), expected)


@pytest.mark.parametrize("tool", [Tool.GALLERY_DL, Tool.YT_DLP])
def test_a_tool_killed_by_a_signal_is_a_crash_not_a_flag(tool: Tool) -> None:
    # gallery-dl's exit status is bit flags; -9 & 16 would read as "login required".
    error = classify(tool, -9, "")
    assert isinstance(error, ToolCrashed)
    assert "signal 9" in error.message


@pytest.mark.parametrize(
    ("tool", "stderr"),
    [(Tool.YT_DLP, "ERROR: unable to write data: [Errno 28] No space left on device"),
     (Tool.GALLERY_DL, "[download][error] OSError: [Errno 28] No space left on device: '/jobs/1/x.mp4.part'")],
)
def test_a_full_disk_is_said_so(tool: Tool, stderr: str) -> None:
    from storyflow import DiskFull

    error = classify(tool, 1 if tool is Tool.YT_DLP else 4, stderr)
    assert isinstance(error, DiskFull)
    assert "/jobs/1" not in error.user_text()  # no paths of ours in what the user sees
