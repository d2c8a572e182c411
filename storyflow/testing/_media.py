"""Real, small media files made with ffmpeg, and the HTML pages that point at them.

Everything here is synchronous: call it at fixture setup or through ``trio.to_thread.run_sync``.
Outputs are byte-for-byte reproducible for a given ffmpeg build (bitexact flags, one encoder thread,
no metadata copied from the synthetic inputs), so a test may compare hashes between runs, but should
compare a download against the file it served rather than against a hash written into the test.
"""

from __future__ import annotations

import functools
import hashlib
import html
import struct
import subprocess
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Literal

from storyflow._ffmpeg import ffmpeg_executable

__all__ = [
    "MediaGenerationError",
    "make_audio",
    "make_image",
    "make_padded_video",
    "make_video",
    "og_video_page_html",
    "padded_mp4_head",
    "sha256_file",
    "video_page_html",
]

StrPath = str | PathLike[str]

# Flags that keep ffmpeg from writing its version, timestamps or the lavfi sources' metadata into
# the file, which would otherwise make two runs (or two ffmpeg builds of one version) differ.
_REPRODUCIBLE = ["-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1"]

# An mp4 box header: 32-bit size + type (boxes over 4 GiB use size=1 and a 64-bit size after it).
_BOX_HEADER = 8


class MediaGenerationError(RuntimeError):
    """ffmpeg refused to make the requested file; the message carries its stderr."""


def make_video(
    path: StrPath,
    *,
    seconds: float = 1.0,
    width: int = 160,
    height: int = 120,
    fps: int = 10,
    audio: bool = True,
    faststart: bool = True,
    variant: int = 0,
    keyframe_every: int | None = None,
) -> Path:
    """Write an H.264 (else MPEG-4 part 2) + AAC mp4 of a moving test pattern and a sine tone.

    ``keyframe_every`` frames forces a keyframe at that interval (else the encoder decides: for short clips, one),
    which is what a video needs to be cut into playable parts.

    ``variant`` shifts the colours and the tone so tests can make several distinct files.
    ``faststart=False`` leaves the moov box after mdat, as many CDNs serve it.
    Width and height must be even (4:2:0 chroma).
    """
    out = Path(path)
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        tone = 440 + 110 * variant
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=44100:duration={seconds}"]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-ac", "1"]
    if variant:
        args += ["-vf", f"hue=h={(variant * 67) % 360}"]
    args += _video_codec_args()
    if keyframe_every is not None:
        args += ["-g", str(keyframe_every), "-keyint_min", str(keyframe_every), "-sc_threshold", "0"]
    if faststart:
        args += ["-movflags", "+faststart"]
    args += [*_REPRODUCIBLE, "-f", "mp4", str(out)]
    _run_ffmpeg(args)
    return out


def make_image(
    path: StrPath,
    *,
    width: int = 320,
    height: int = 240,
    fmt: Literal["jpg", "png", "webp"] = "jpg",
    variant: int = 0,
) -> Path:
    """Write one frame of the test pattern as a JPEG, PNG or WebP image."""
    out = Path(path)
    codec = {"jpg": ["-c:v", "mjpeg", "-q:v", "4"], "png": ["-c:v", "png"], "webp": ["-c:v", "libwebp"]}
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1", "-frames:v", "1"]
    if variant:
        args += ["-vf", f"hue=h={(variant * 67) % 360}"]
    # -update 1: the image2 muxer otherwise wants a %d pattern in the output name.
    args += [*codec[fmt], *_REPRODUCIBLE, "-f", "image2", "-update", "1", str(out)]
    _run_ffmpeg(args)
    return out


def make_audio(
    path: StrPath,
    *,
    seconds: float = 1.0,
    fmt: Literal["mp3", "m4a"] = "mp3",
    title: str | None = None,
    artist: str | None = None,
    variant: int = 0,
) -> Path:
    """Write a sine tone as MP3 (LAME, ID3v2.3 tags) or M4A (AAC in the iPod flavour of mp4)."""
    out = Path(path)
    tone = 440 + 110 * variant
    args = ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=44100:duration={seconds}"]
    if fmt == "mp3":
        args += ["-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "3"]
    else:
        args += ["-c:a", "aac", "-b:a", "64k"]
    # After -map_metadata -1, so the tags we ask for survive and the lavfi ones do not.
    args += _REPRODUCIBLE
    if title is not None:
        args += ["-metadata", f"title={title}"]
    if artist is not None:
        args += ["-metadata", f"artist={artist}"]
    args += ["-f", "mp3" if fmt == "mp3" else "ipod", str(out)]
    _run_ffmpeg(args)
    return out


def padded_mp4_head(video: bytes, size_bytes: int) -> bytes:
    """``video`` followed by the header of a ``free`` box that fills the file up to ``size_bytes``.

    Whatever bytes follow the returned head (zeros, a generated pattern) lie inside the ``free`` box,
    so the whole is still a playable mp4 of exactly ``size_bytes``. Pair it with
    ``MediaServer.add_generated(..., head=...)`` to serve a huge valid video without a file.
    """
    padding = size_bytes - len(video)
    if padding > 0xFFFFFFFF:
        return video + struct.pack(">I4sQ", 1, b"free", padding)
    if padding >= _BOX_HEADER:
        return video + struct.pack(">I4s", padding, b"free")
    raise ValueError(f"{size_bytes} bytes leaves no room for a free box after a {len(video)}-byte video")


def make_padded_video(path: StrPath, size_bytes: int, *, variant: int = 0) -> Path:
    """Write a short real mp4 padded with a ``free`` box to exactly ``size_bytes``.

    The padding is a sparse hole (``truncate``), so a multi-GiB file costs one tiny ffmpeg run and
    no disk writes proportional to its size; its bytes read back as zeros.
    """
    out = Path(path)
    make_video(out, seconds=1.0, audio=True, variant=variant)
    head = padded_mp4_head(out.read_bytes(), size_bytes)
    with out.open("wb") as f:
        f.write(head)
        f.truncate(size_bytes)
    return out


def sha256_file(path: StrPath) -> str:
    """Hex sha256 of a file, read in chunks so large fixtures don't land in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def video_page_html(video_url: str, *, title: str = "StoryFlow test video", poster_url: str | None = None) -> str:
    """A page with one ``<video><source>`` element, which yt-dlp reads as one entry.

    yt-dlp finds it through its ``html5`` embed extractor: ``--ies generic`` alone says Unsupported URL,
    ``--ies generic,html5`` (or no ``--ies``) downloads it.
    """
    poster = f' poster="{html.escape(poster_url)}"' if poster_url else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f'<video controls{poster}><source src="{html.escape(video_url)}" type="video/mp4"></video>\n'
        "</body></html>\n"
    )


def og_video_page_html(
    video_url: str,
    *,
    title: str = "StoryFlow test video",
    description: str = "A generated test video",
    image_url: str | None = None,
    width: int = 160,
    height: int = 120,
    content_type: str = "video/mp4",
) -> str:
    """A page that names its video only through Open Graph tags, as social sites' share pages do."""
    meta = {
        "og:type": "video.other",
        "og:title": title,
        "og:description": description,
        "og:video": video_url,
        "og:video:url": video_url,
        "og:video:type": content_type,
        "og:video:width": str(width),
        "og:video:height": str(height),
    }
    if image_url:
        meta["og:image"] = image_url
    tags = "".join(f'<meta property="{name}" content="{html.escape(value)}">\n' for name, value in meta.items())
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n{tags}</head>\n"
        f"<body><p>{html.escape(description)}</p></body></html>\n"
    )


def _video_codec_args() -> list[str]:
    ffmpeg = ffmpeg_executable()
    if _has_encoder(ffmpeg, "libx264"):
        # One thread: x264's output then depends on nothing but the input.
        return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]
    return ["-c:v", "mpeg4", "-q:v", "5", "-pix_fmt", "yuv420p"]


@functools.cache
def _has_encoder(ffmpeg: str, name: str) -> bool:
    # Keyed by the binary: a property of the ffmpeg build, not of any media we made.
    listing = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines())


def _run_ffmpeg(args: Sequence[str]) -> None:
    cmd = [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MediaGenerationError(f"ffmpeg exited {result.returncode}: {result.stderr.strip()}")
