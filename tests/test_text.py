"""Captions and message text: escaped, and cut to Telegram's limits without breaking anything."""

from __future__ import annotations

import pytest
from telethon.extensions import html

from storyflow.download import safe_display_name
from storyflow.telegram import Caption
from storyflow.telegram._text import CAPTION_LIMIT, cut, fit_lines, utf16_len


def parsed_length(text_html: str) -> int:
    text, _ = html.parse(text_html)
    return utf16_len(text)


def test_caption_escapes_and_links() -> None:
    caption = Caption(title="<b>Tom & Jerry</b>", uploader="a\nb", source_url="https://www.example.com/x?a=1&b=<2>")
    rendered = caption.to_html()
    text, entities = html.parse(rendered)
    assert text.splitlines() == ["<b>Tom & Jerry</b>", "a b", "example.com"]
    [bold, link] = entities
    assert link.url == "https://www.example.com/x?a=1&b=<2>"
    assert bold.length == len("<b>Tom & Jerry</b>")


@pytest.mark.parametrize("title", ["&" * 5000, "😀" * 3000, "e\u0301" * 2000, "<i>" * 900, "a" * 10_000])
def test_long_captions_are_cut_within_the_limit_and_stay_valid(title: str) -> None:
    caption = Caption(title=title, uploader="Uploader", source_url="https://example.com/v", note="part 2/3")
    rendered = caption.to_html(CAPTION_LIMIT)
    text, _ = html.parse(rendered)
    assert utf16_len(text) <= CAPTION_LIMIT
    assert text.endswith("example.com · part 2/3")  # the link and the note survive the cut
    assert "…" in text
    assert "\ufffd" not in text


def test_cut_never_splits_a_character() -> None:
    assert cut("😀😀😀", 5) == "😀😀…"
    assert utf16_len(cut("😀😀😀", 4)) <= 4
    assert cut("short", 10) == "short"
    assert cut("e\u0301e\u0301", 3) == "e\u0301…"
    assert cut("ae\u0301b", 3) == "a…"  # the accent goes with its letter, never alone
    assert cut("x👍\U0001f3fdy", 4) == "x…"  # an emoji keeps its skin tone or goes


def test_fit_lines_says_how_many_were_left_out() -> None:
    lines = [f"line {i}" for i in range(2000)]
    text = fit_lines(lines, 200)
    assert utf16_len(text) <= 200
    assert text.splitlines()[-1].startswith("… and ")
    assert fit_lines(["a", "b"]) == "a\nb"


@pytest.mark.parametrize(
    ("tool_path", "title", "url", "name"),
    [
        ("127.0.0.1_8080__notes.pdf", "", "http://127.0.0.1:8080/notes.pdf", "notes.pdf"),
        ("blob-001.unknown_video", "blob", "http://e.com/blob.bin", "blob.bin"),
        ("abc-001.mp4", "A title", "http://e.com/watch?v=1", "A_title.mp4"),
        ("x__evil.sh", "", "http://e.com/%2e%2e%2fevil.sh", "evil.sh"),
    ],
)
def test_display_names_prefer_what_the_link_calls_the_file(tool_path: str, title: str, url: str, name: str) -> None:
    assert safe_display_name(tool_path, title, url) == name


@pytest.mark.parametrize(
    ("link", "uploader", "owner"),
    [
        ("https://www.instagram.com/stories/jane.doe/", "", "jane.doe"),
        ("https://www.instagram.com/stories/jane.doe/3141592653589793/", "", "jane.doe"),
        ("https://www.tiktok.com/@jane_doe/stories", "", "jane_doe"),
        ("https://x.com/janedoe/media", "", "janedoe"),
        ("https://x.com/janedoe/media", "Jane Doe", "Jane Doe"),  # what the tool says wins
        ("https://example.com/", "", "?"),
    ],
)
def test_a_tool_listed_story_says_whose_it_is(link: str, uploader: str, owner: str) -> None:
    from storyflow.jobs import FileState, Job, JobFile, JobOptions, JobState, MediaKind, Origin
    from storyflow.telegram._delivery import caption_for

    job = Job(1, (link,), 1, JobOptions(story=True), Origin(), JobState.DELIVERING, 0.0, 0.0)
    file = JobFile(1, 2, "a.jpg", "a.jpg", 1, "00", MediaKind.PHOTO, FileState.COMPLETE, source_url=link,
                   uploader=uploader)
    story = caption_for(job, file).story
    assert story is not None and story.owner == owner and story.position == 3
