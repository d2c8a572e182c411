"""A video's thumbnail as Telegram wants it: a JPEG at most 320 px on its longest side, under 200 kB."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import trio

from ._probe import probe_video
from ._run import ffmpeg_path_argument, run_ffmpeg

THUMBNAIL_MAX_SIDE = 320
# Telegram says "200 kB"; decimal kilobytes is the stricter reading.
THUMBNAIL_MAX_BYTES = 200_000
# The first frame is often a fade-in or a black title card; a tenth of the way in is usually the picture.
_REPRESENTATIVE_POINT = 0.1
# Shorter than this, seeking buys nothing and can land past the last frame.
_SHORTEST_SEEKABLE_SECONDS = 1.0
# JPEG qscale to try in turn (2 is best, 31 worst); the first is plenty for a 320 px frame, the others are for
# pathological noise.
_QUALITIES = (3, 8, 16, 31)


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the video's shape that fits Telegram's box; smaller videos keep their size."""
    scale = min(1.0, THUMBNAIL_MAX_SIDE / max(width, height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


async def _grab_frame(video: Path, output: Path, *, at: float, size: tuple[int, int], quality: int) -> bool:
    seek = ["-ss", f"{at:.3f}"] if at > 0 else []
    # ffmpeg rotates the decoded frame upright before our filter runs, so ``size`` is the displayed size.
    scale = f"scale={size[0]}:{size[1]},setsar=1"
    run = await run_ffmpeg(
        [
            *seek,
            "-i", ffmpeg_path_argument(video),
            "-map", "0:V:0", "-frames:v", "1", "-vf", scale,
            "-c:v", "mjpeg", "-q:v", str(quality),
            # -update 1: one picture, written under exactly this name (no %d pattern).
            "-f", "image2", "-update", "1", "-y", ffmpeg_path_argument(output),
        ]
    )  # fmt: skip
    if run.returncode != 0:
        return False
    try:
        return (await trio.Path(output).stat()).st_size > 0
    except FileNotFoundError:
        return False  # a seek past the last frame "succeeds" without writing anything


async def make_thumbnail(video: Path, destination: Path) -> Path | None:
    """Write a thumbnail of ``video`` to ``destination`` and return it; None if ffmpeg cannot make one.

    The frame is taken a tenth of the way in (the first frame for clips under a second, or when the
    seek finds nothing). ``destination`` appears whole or not at all.
    """
    info = await probe_video(video)
    if info is None:
        return None
    size = thumbnail_size(info.width, info.height)
    at = info.duration * _REPRESENTATIVE_POINT if info.duration >= _SHORTEST_SEEKABLE_SECONDS else 0.0
    partial_output = destination.with_name(destination.name + ".part")
    try:
        for quality in _QUALITIES:
            made = await _grab_frame(video, partial_output, at=at, size=size, quality=quality)
            if not made and at > 0:
                at = 0.0
                made = await _grab_frame(video, partial_output, at=at, size=size, quality=quality)
            if not made:
                return None
            if (await trio.Path(partial_output).stat()).st_size < THUMBNAIL_MAX_BYTES:
                await trio.Path(partial_output).replace(destination)
                return destination
        return None
    finally:
        with trio.CancelScope(shield=True), contextlib.suppress(FileNotFoundError):
            await trio.to_thread.run_sync(os.unlink, partial_output)
