"""Locating ffmpeg: the one on PATH, else the binary the imageio-ffmpeg wheel ships."""

from __future__ import annotations

import functools
import os
import shutil


class FfmpegMissing(RuntimeError):
    """No ffmpeg on PATH and no imageio-ffmpeg binary."""


@functools.cache
def ffmpeg_executable() -> str:
    """Absolute path of an ffmpeg binary; ``STORYFLOW_FFMPEG`` overrides the search."""
    override = os.environ.get("STORYFLOW_FFMPEG")
    if override:
        return override
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise FfmpegMissing("ffmpeg is not on PATH and imageio-ffmpeg is not installed") from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise FfmpegMissing(f"imageio-ffmpeg has no usable ffmpeg binary: {exc}") from exc
