"""Cutting a file that is over the upload limit into parts that are not.

``split_video`` makes parts that each play on their own (stream copy, cut on keyframes), for videos
Telegram should show in its player; ``split_file`` makes plain byte parts for anything else.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import attrs
import trio

from ._probe import probe_video
from ._run import ffmpeg_path_argument, run_ffmpeg

# Aim this far under the limit: ffmpeg can only cut on a keyframe at or after the time we ask for, and each
# part carries its own index (moov), so parts come out somewhat larger than the time share suggests.
_PLAN_MARGIN = 0.9
# Each round re-plans only the parts that came out too large; real videos settle in one or two.
_MAX_ROUNDS = 8
# Cut times we pass back are the keyframe times ffmpeg reported, printed to the microsecond; without this
# slack a time rounded up past its keyframe would move the cut to the next one.
_CUT_SLACK_SECONDS = "0.001"
_COPY_CHUNK_BYTES = 1 << 20


class SplitError(Exception):
    """The file could not be cut into parts under the limit (or could not be cut at all)."""


@attrs.frozen
class _Segment:
    path: Path
    start: float
    end: float
    size: int


def _pieces(size: int, max_bytes: int) -> int:
    return max(2, math.ceil(size / (max_bytes * _PLAN_MARGIN)))


def _even_cuts(start: float, end: float, pieces: int) -> list[float]:
    return [start + (end - start) * index / pieces for index in range(1, pieces)]


def _clear(folder: Path) -> None:
    for entry in folder.iterdir():
        entry.unlink()


def _read_segments(work: Path, listing: Path) -> list[_Segment]:
    with listing.open(newline="") as rows:
        return [
            _Segment(work / name, float(start), float(end), (work / name).stat().st_size)
            for name, start, end in csv.reader(rows)
        ]


async def _cut(video: Path, cuts: Sequence[float], work: Path) -> list[_Segment]:
    """One stream-copy pass that cuts ``video`` at the first keyframe at or after each time in ``cuts``."""
    await trio.to_thread.run_sync(_clear, work)
    listing = work / "parts.csv"
    # The segment muxer reads its output name as a %d pattern, so a % in our folder must be doubled.
    pattern = ffmpeg_path_argument(work).replace("%", "%%") + "/part%05d.mp4"
    run = await run_ffmpeg(
        [
            "-i", ffmpeg_path_argument(video),
            # The main picture and every audio track; cover art, subtitles and data streams may not fit in mp4.
            "-map", "0:V:0", "-map", "0:a?", "-c", "copy",
            "-f", "segment", "-segment_format", "mp4",
            # Each part starts at 0 and has its index up front, so it plays (and streams) on its own.
            "-reset_timestamps", "1", "-segment_format_options", "movflags=+faststart",
            "-segment_times", ",".join(f"{cut:.6f}" for cut in cuts),
            "-segment_time_delta", _CUT_SLACK_SECONDS,
            "-segment_list", ffmpeg_path_argument(listing), "-segment_list_type", "csv",
            "-y", pattern,
        ]
    )  # fmt: skip
    if run.returncode != 0:
        raise SplitError(f"ffmpeg could not cut {video.name}: {run.error_text()}")
    segments = await trio.to_thread.run_sync(_read_segments, work, listing)
    if not segments:
        raise SplitError(f"ffmpeg wrote no parts for {video.name}")
    return segments


def _next_cuts(segments: Sequence[_Segment], max_bytes: int) -> list[float]:
    """Keep every cut that ffmpeg made and add cuts inside each part that came out too large."""
    kept = {segment.start for segment in segments[1:]}
    added = {
        cut
        for segment in segments
        if segment.size > max_bytes
        for cut in _even_cuts(segment.start, segment.end, _pieces(segment.size, max_bytes))
    }
    return sorted(kept | added)


def _publish(segments: Sequence[_Segment], stem: str, out_dir: Path) -> list[Path]:
    width = max(2, len(str(len(segments))))
    parts = []
    for number, segment in enumerate(segments, start=1):
        part = out_dir / f"{stem}.part{number:0{width}d}.mp4"
        os.replace(segment.path, part)
        parts.append(part)
    return parts


async def _remove_tree(folder: Path) -> None:
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))


async def split_video(path: Path, max_bytes: int, out_dir: Path) -> list[Path]:
    """Cut ``path`` into independently playable mp4 parts of at most ``max_bytes`` each, in order.

    Parts are ``<stem>.part01.mp4``, ``<stem>.part02.mp4``, … in ``out_dir`` (created if missing). A video
    already within the limit is returned as ``[path]``, uncopied. Parts are cut on keyframes, so the
    first plan can overshoot; parts that do are cut again finer, and SplitError says so when a stretch
    between two keyframes is itself over the limit. Nothing is left in ``out_dir`` on failure.
    """
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    size = (await trio.Path(path).stat()).st_size
    if size <= max_bytes:
        return [path]
    info = await probe_video(path)
    if info is None or info.duration <= 0:
        raise SplitError(f"{path.name} is not a video with a known duration, so it cannot be cut by time")
    await trio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    # A private folder beside the parts: the final rename stays on one filesystem and never clobbers
    # the parts of an earlier round or a half-written set.
    work = Path(await trio.to_thread.run_sync(partial(tempfile.mkdtemp, prefix=".split-", dir=out_dir)))
    try:
        cuts = _even_cuts(0.0, info.duration, _pieces(size, max_bytes))
        too_large_before: set[tuple[float, float]] = set()
        for _ in range(_MAX_ROUNDS):
            segments = await _cut(path, cuts, work)
            too_large = {(s.start, s.end): s for s in segments if s.size > max_bytes}
            if not too_large:
                return await trio.to_thread.run_sync(_publish, segments, path.stem, out_dir)
            # We asked for cuts inside it last round and ffmpeg found no keyframe to make them on.
            for stuck in too_large.keys() & too_large_before:
                segment = too_large[stuck]
                raise SplitError(
                    f"{path.name} cannot be cut into parts of at most {max_bytes} bytes: the stretch between "
                    f"keyframes at {segment.start:.2f}s and {segment.end:.2f}s alone is {segment.size} bytes"
                )
            too_large_before = set(too_large)
            cuts = _next_cuts(segments, max_bytes)
        raise SplitError(f"{path.name} still had parts over {max_bytes} bytes after {_MAX_ROUNDS} cutting rounds")
    finally:
        await _remove_tree(work)


async def split_file(path: Path, max_bytes: int, out_dir: Path) -> list[Path]:
    """Cut ``path`` into byte parts ``<name>.001``, ``<name>.002``, … of at most ``max_bytes`` each.

    Concatenating the parts in order gives the original bytes. A file already within the limit is
    returned as ``[path]``, uncopied. The copy streams through a worker thread one chunk at a time, so
    it never holds more than a chunk in memory and a cancel takes effect between chunks; parts already
    written are removed when it fails or is cancelled.
    """
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    size = (await trio.Path(path).stat()).st_size
    if size <= max_bytes:
        return [path]
    count = math.ceil(size / max_bytes)
    width = max(3, len(str(count)))
    parts = [out_dir / f"{path.name}.{number:0{width}d}" for number in range(1, count + 1)]
    await trio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        async with await trio.open_file(path, "rb") as source:
            for part in parts:
                async with await trio.open_file(part, "wb") as sink:
                    written.append(part)
                    remaining = max_bytes
                    while remaining and (chunk := await source.read(min(_COPY_CHUNK_BYTES, remaining))):
                        await sink.write(chunk)
                        remaining -= len(chunk)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_unlink_all, written)
        raise
    return parts


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
