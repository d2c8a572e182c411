"""Delivery end to end: what Telegram takes only as a document never spoils an album (Telegram refuses albums that
mix documents with photos and videos, and so does the loopback server)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import pytest

from storyflow.testing._httpserver import MediaServer
from storyflow.testing.telegram import LoopbackTelegram

from .conftest import MediaFiles, running_userbot, userbot_config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("refused", "error", "paths"),
    [
        ("photo", "IMAGE_PROCESS_FAILED", ["/photo.jpg", "/picture.png", "/gallery/02.jpg"]),
        ("video", "VIDEO_FILE_INVALID", ["/photo.jpg", "/clip.mp4", "/clip2.mp4"]),
    ],
)
async def test_a_file_telegram_takes_only_as_a_document_goes_out_on_its_own(
    telegram: LoopbackTelegram,
    tmp_path: Path,
    site: MediaServer,
    media: MediaFiles,
    refused: Literal["photo", "video"],
    error: str,
    paths: list[str],
) -> None:
    site.add_file("/gallery/02.jpg", media.images[2])
    served = {"/photo.jpg": media.image, "/picture.png": media.png, "/gallery/02.jpg": media.images[2],
              "/clip.mp4": media.video, "/clip2.mp4": media.video2}
    telegram.refuse_uploaded_media(refused, error)
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        command = await bot.type(".dl " + " ".join(site.url(path) for path in paths))
        status = await bot.final_status(command)
        assert status.text.startswith("✅"), status.text
        posted = bot.media_replies(command)
    assert all(m.media is not None for m in posted)
    [alone] = [m for m in posted if m.media is not None and m.media.kind == "document"]
    album = [m for m in posted if m is not alone]
    assert alone.grouped_id is None and alone.media is not None and alone.media.force_file
    assert len(album) == 2 and album[0].grouped_id is not None and album[0].grouped_id == album[1].grouped_id
    # Every file arrived once, with its bytes.
    assert sorted(m.media.sha256 for m in posted if m.media) == sorted(sha256(served[path]) for path in paths)
