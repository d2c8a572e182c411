"""What a media file is, read from the header dump ``ffmpeg -i FILE`` writes to stderr.

There is no ffprobe next to the imageio-ffmpeg binary, so we parse the human-readable dump. Its layout
has been stable for a decade, but a few details moved between versions and are all accepted here:

* rotation: ``Display Matrix: rotation of -90.00 degrees`` (ffmpeg 7+), ``displaymatrix: rotation of
  -90.00 degrees`` (4-6) under ``Side data:``, or a ``rotate : 90`` stream tag (before 4);
* stream headers: ``Stream #0:0[0x1](und): Video: ...`` or ``Stream #0:0(und): Video: ...``.

The dump is read by indentation: global tags at four spaces, stream lines at two, a stream's tags and
side data at six. ``ffmpeg -i`` without an output always exits 1, so success is "it printed the
``Input #0, …, from '<our path>':`` line", never the exit status.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import attrs

from ._run import ffmpeg_path_argument, run_ffmpeg

StrPath = str | os.PathLike[str]

_DURATION = re.compile(r"^  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^  Stream #\d+:\d+\S*: (\w+): (.*)$")
# ", 1920x1080" after the pixel format; the codec tag "(avc1 / 0x31637661)" never follows ", ".
_SIZE = re.compile(r", (\d+)x(\d+)(?=[ ,\[]|$)")
_SAR = re.compile(r"\[SAR (\d+):(\d+) DAR")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
# "    title           : value" (key padded to 16), continuation lines have an empty key.
_TAG = re.compile(r"^\s*(.*?)\s*: (.*)$")

# One still picture per file: these demuxers (image2 for names with an image extension, ``*_pipe`` for
# pictures recognised by content). GIF and APNG are left to probe_video: Telegram plays them as animations.
_IMAGE_DEMUXER = "image2"
_IMAGE_PIPE_SUFFIX = "_pipe"


@attrs.frozen
class VideoInfo:
    """What Telegram's video attribute needs. Width and height are as displayed: sample aspect ratio
    applied, swapped for a 90/270 degree rotation. ``duration`` is 0.0 when the container does not say."""

    duration: float
    width: int
    height: int
    has_audio: bool


@attrs.frozen
class AudioInfo:
    """What Telegram's audio attribute needs; ``title``/``performer`` are None when the file has no such tag."""

    duration: float
    title: str | None
    performer: str | None


@attrs.frozen
class ImageInfo:
    width: int
    height: int


@attrs.define
class _Stream:
    kind: str
    """``Video``, ``Audio``, ``Subtitle``, ``Data`` or ``Attachment``."""
    description: str
    tags: dict[str, str] = attrs.Factory(dict)
    side_data_rotation: float | None = None

    @property
    def is_moving_picture(self) -> bool:
        # A cover picture in an mp3 or m4a is a one-frame "video" stream.
        return self.kind == "Video" and "(attached pic)" not in self.description

    @property
    def rotation(self) -> float:
        if self.side_data_rotation is not None:
            return self.side_data_rotation
        try:
            return float(self.tags.get("rotate", "0"))
        except ValueError:
            return 0.0

    def size(self) -> tuple[int, int] | None:
        found = _SIZE.search(self.description)
        if found is None:
            return None
        width, height = int(found[1]), int(found[2])
        if width <= 0 or height <= 0:
            return None
        return width, height

    def displayed_size(self) -> tuple[int, int] | None:
        size = self.size()
        if size is None:
            return None
        width, height = size
        sar = _SAR.search(self.description)
        if sar is not None and int(sar[1]) > 0 and int(sar[2]) > 0:
            width = max(1, round(width * int(sar[1]) / int(sar[2])))
        if round(self.rotation / 90) % 2 == 1:
            width, height = height, width
        return width, height


@attrs.define
class _Dump:
    demuxers: tuple[str, ...]
    duration: float | None = None
    tags: dict[str, str] = attrs.Factory(dict)
    streams: list[_Stream] = attrs.Factory(list)

    @property
    def is_still_image(self) -> bool:
        return any(name == _IMAGE_DEMUXER or name.endswith(_IMAGE_PIPE_SUFFIX) for name in self.demuxers)


@attrs.define
class _TagReader:
    """Collects ``key : value`` lines into one dict; a line with an empty key continues the last value."""

    tags: dict[str, str]
    last_key: str | None = None

    def feed(self, line: str) -> None:
        found = _TAG.match(line)
        if found is None:
            return
        key, value = found[1].lower(), found[2].rstrip()
        if not key:
            if self.last_key is not None:
                self.tags[self.last_key] += "\n" + value
            return
        self.tags[key] = value
        self.last_key = key


def _parse_dump(dump: str, demuxers: tuple[str, ...]) -> _Dump:
    """Read the part of ``ffmpeg -i`` output after the ``Input #0`` line."""
    parsed = _Dump(demuxers)
    stream: _Stream | None = None  # the stream the deeper-indented lines belong to
    tags: _TagReader | None = None  # set while inside a "Metadata:" block
    in_side_data = False
    for line in dump.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            continue  # "[mov @ 0x…] warning", "At least one output file must be specified"
        if indent == 2:
            stream, tags, in_side_data = None, None, False
            if line == "  Metadata:":
                tags = _TagReader(parsed.tags)
            elif duration := _DURATION.match(line):
                hours, minutes, seconds = duration.groups()
                parsed.duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            elif header := _STREAM.match(line):
                stream = _Stream(header[1], header[2])
                parsed.streams.append(stream)
            # Anything else ("  Chapters:", "  Program 1") owns the lines below it, and we skip them.
        elif stream is not None and indent == 4:
            tags = _TagReader(stream.tags) if line == "    Metadata:" else None
            in_side_data = line == "    Side data:"
        elif tags is not None:
            tags.feed(line)
        elif in_side_data and stream is not None and (rotation := _ROTATION.search(line)):
            stream.side_data_rotation = float(rotation[1])
    return parsed


async def _probe(path: StrPath) -> _Dump | None:
    name = ffmpeg_path_argument(path)
    # -loglevel info: the header dump is printed at info level.
    run = await run_ffmpeg(["-i", name], loglevel="info")
    # Cut at our own path: no such line means ffmpeg could not open the file, and warnings printed before
    # it are not read as the dump. (Tag keys are printed raw, so a hostile file can still fake lines after
    # it; all that buys is wrong attributes on that file's own upload.)
    marker = b" from '" + os.fsencode(name) + b"':\n"
    head, found, dump = run.stderr.partition(marker)
    if not found:
        return None
    header = head.rpartition(b"\n")[2].decode("utf-8", "replace")
    if not header.startswith("Input #0, "):
        return None
    demuxers = tuple(header.removeprefix("Input #0, ").rstrip(", ").split(","))
    return _parse_dump(dump.decode("utf-8", "replace"), demuxers)


async def probe_video(path: StrPath) -> VideoInfo | None:
    """Duration, displayed size and audio presence of a video; None if it is not one ffmpeg can read.

    Still pictures and audio with a cover picture are not videos. Callers bound the time (a file on a
    stalled network mount can block ffmpeg indefinitely).
    """
    dump = await _probe(path)
    if dump is None or dump.is_still_image:
        return None
    video = next((stream for stream in dump.streams if stream.is_moving_picture), None)
    size = video.displayed_size() if video is not None else None
    if size is None:
        return None
    has_audio = any(stream.kind == "Audio" for stream in dump.streams)
    return VideoInfo(duration=dump.duration or 0.0, width=size[0], height=size[1], has_audio=has_audio)


def _first_tag(tag_sets: list[Mapping[str, str]], *keys: str) -> str | None:
    for tags in tag_sets:
        for key in keys:
            value = tags.get(key, "").strip()
            if value:
                return value
    return None


async def probe_audio(path: StrPath) -> AudioInfo | None:
    """Duration, title and performer of an audio file; None if it is not one (a video is not audio).

    Tags come from the file's own metadata, else from its first audio stream (Ogg and Opus keep their
    Vorbis comments there).
    """
    dump = await _probe(path)
    if dump is None or any(stream.is_moving_picture for stream in dump.streams):
        return None
    audio = next((stream for stream in dump.streams if stream.kind == "Audio"), None)
    if audio is None:
        return None
    tag_sets: list[Mapping[str, str]] = [dump.tags, audio.tags]
    return AudioInfo(
        duration=dump.duration or 0.0,
        title=_first_tag(tag_sets, "title"),
        performer=_first_tag(tag_sets, "artist", "album_artist", "performer"),
    )


async def probe_image(path: StrPath) -> ImageInfo | None:
    """Pixel size of a still picture (JPEG, PNG, WebP, …); None for anything else."""
    dump = await _probe(path)
    if dump is None or not dump.is_still_image:
        return None
    picture = next((stream for stream in dump.streams if stream.kind == "Video"), None)
    size = picture.size() if picture is not None else None
    if size is None:
        return None
    return ImageInfo(width=size[0], height=size[1])
