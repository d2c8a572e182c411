"""storyflow.media against real files made by ffmpeg: probing, thumbnails, video and byte splitting."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import pytest
import trio

from storyflow._ffmpeg import ffmpeg_executable
from storyflow.media import (
    THUMBNAIL_MAX_BYTES,
    THUMBNAIL_MAX_SIDE,
    AudioInfo,
    ImageInfo,
    SplitError,
    VideoInfo,
    make_thumbnail,
    probe_audio,
    probe_image,
    probe_video,
    split_file,
    split_video,
)
from storyflow.testing._media import make_audio, make_image, make_padded_video, make_video, sha256_file

from .conftest import alive, child_pids

# The dump prints durations to the centisecond; muxing adds at most a frame or an audio packet.
DURATION_TOLERANCE = 0.1

# ---------------------------------------------------------------------------------------------------------
# Media the generators in storyflow.testing do not make


def ffmpeg(*args: str) -> None:
    command = [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    subprocess.run(command, check=True, capture_output=True)


def lavfi_video(
    path: Path,
    *,
    seconds: float,
    size: str = "160x120",
    gop: int,
    video_filter: str | None = None,
    source: str = "testsrc2",
    source_options: str = "",
    audio: bool = True,
) -> Path:
    """An H.264 mp4 with a keyframe every ``gop`` frames (make_video leaves that to x264: one per 25 s)."""
    args = ["-f", "lavfi", "-i", f"{source}=size={size}:rate=10:duration={seconds}{source_options}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
        args += ["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "32k", "-ac", "1"]
    if video_filter:
        args += ["-vf", video_filter]
    # keyint_min and no scenecut: keyframes exactly every ``gop`` frames, whatever the picture does.
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p"]
    args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    args += ["-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart"]
    ffmpeg(*args, str(path))
    return path


def rotated_copy(source: Path, path: Path, degrees: int) -> Path:
    """``source`` with a display matrix rotating it by ``degrees``, stream-copied."""
    try:
        # ffmpeg 6+: -display_rotation (the old rotate tag is silently ignored by ffmpeg 7+ muxers).
        ffmpeg("-display_rotation", str(degrees), "-i", str(source), "-c", "copy", str(path))
    except subprocess.CalledProcessError:
        ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v", f"rotate={degrees % 360}", str(path))
    return path


@attrs.frozen
class Library:
    video: Path  # 2 s, 320x240, with audio
    silent_video: Path  # 1 s, 200x100, no audio
    anamorphic: Path  # 160x120 stored, pixels twice as wide as tall
    mp3: Path
    m4a: Path
    untagged_mp3: Path
    cover_mp3: Path  # an mp3 with a JPEG cover picture stream
    jpg: Path
    png: Path
    webp: Path
    wide: Path  # 640x360, 2 s
    tall: Path  # 640x480 rotated by 90 degrees: shown as 480x640
    small: Path  # 160x120, must not be scaled up
    one_frame: Path  # 0.1 s
    noise: Path  # 1280x720 random pixels: the worst case for JPEG size
    dark_start: Path  # black for its first 0.2 s, then white
    noisy_then_calm: Path  # 6 s, keyframe every 0.5 s, most of the bytes in the first half
    one_gop: Path  # 3 s with a single keyframe


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    folder = tmp_path_factory.mktemp("library")
    mp3 = make_audio(folder / "song.mp3", seconds=2.0, title="Ünïcode Title", artist="The Band")
    jpg = make_image(folder / "photo.jpg", width=300, height=200)
    cover_mp3 = folder / "cover.mp3"
    ffmpeg(
        "-i", str(mp3), "-i", str(jpg), "-map", "0", "-map", "1", "-c", "copy",
        "-id3v2_version", "3", "-disposition:v", "attached_pic", str(cover_mp3),
    )  # fmt: skip
    anamorphic = folder / "anamorphic.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1",
        "-vf", "setsar=2", "-c:v", "mpeg4", "-q:v", "5", str(anamorphic),
    )  # fmt: skip
    return Library(
        video=make_video(folder / "clip.mp4", seconds=2.0, width=320, height=240),
        silent_video=make_video(folder / "silent.mp4", width=200, height=100, audio=False),
        anamorphic=anamorphic,
        mp3=mp3,
        m4a=make_audio(folder / "song.m4a", fmt="m4a", title="M4A Title", artist="M4A Artist"),
        untagged_mp3=make_audio(folder / "untagged.mp3"),
        cover_mp3=cover_mp3,
        jpg=jpg,
        png=make_image(folder / "picture.png", width=64, height=48, fmt="png"),
        webp=make_image(folder / "picture.webp", width=50, height=70, fmt="webp"),
        wide=make_video(folder / "wide.mp4", seconds=2.0, width=640, height=360),
        tall=rotated_copy(make_video(folder / "landscape.mp4", width=640, height=480), folder / "tall.mp4", 90),
        small=make_video(folder / "small.mp4", seconds=2.0, width=160, height=120),
        one_frame=make_video(folder / "one_frame.mp4", seconds=0.1, audio=False),
        noise=lavfi_video(
            folder / "noise.mp4",
            seconds=1,
            size="1280x720",
            gop=10,
            audio=False,
            video_filter="noise=alls=100:allf=t+u",
        ),
        dark_start=lavfi_video(
            folder / "dark_start.mp4",
            seconds=3,
            gop=5,
            source="color",
            source_options=":c=white",
            video_filter="drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='lt(t,0.2)'",
        ),
        noisy_then_calm=lavfi_video(
            folder / "noisy_then_calm.mp4", seconds=6, gop=5, video_filter="noise=alls=60:allf=t+u:enable='lt(t,3)'"
        ),
        one_gop=lavfi_video(folder / "one_gop.mp4", seconds=3, gop=1000),
    )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pseudo_random_bytes(size: int) -> bytes:
    """Deterministic bytes with no structure any demuxer could mistake for media."""
    blocks = (hashlib.sha256(str(i).encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


async def ffmpeg_dump(path: Path) -> str:
    result = await trio.run_process(
        [ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)], capture_stderr=True, check=False
    )
    return result.stderr.decode("utf-8", "replace")


async def names_in(folder: Path) -> list[str]:
    return sorted(entry.name for entry in await trio.Path(folder).iterdir())


def top_level_boxes(path: Path, count: int) -> list[bytes]:
    kinds = []
    with path.open("rb") as f:
        for _ in range(count):
            header = f.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            kinds.append(kind)
            f.seek(size - 8, os.SEEK_CUR)
    return kinds


async def mean_brightness(jpeg: Path) -> float:
    command = [ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(jpeg)]
    result = await trio.run_process([*command, "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_stdout=True)
    return sum(result.stdout) / len(result.stdout)


# ---------------------------------------------------------------------------------------------------------
# Probing


async def test_probe_video_reads_duration_size_and_audio(library: Library) -> None:
    info = await probe_video(library.video)
    assert info is not None
    assert info.duration == pytest.approx(2.0, abs=DURATION_TOLERANCE)
    assert (info.width, info.height, info.has_audio) == (320, 240, True)


async def test_probe_video_without_audio(library: Library) -> None:
    info = await probe_video(library.silent_video)
    assert info is not None
    assert info.duration == pytest.approx(1.0, abs=DURATION_TOLERANCE)
    assert (info.width, info.height, info.has_audio) == (200, 100, False)


@pytest.mark.parametrize(("degrees", "displayed"), [(90, (100, 200)), (180, (200, 100)), (-90, (100, 200))])
async def test_probe_video_reports_the_displayed_size_of_a_rotated_video(
    library: Library, tmp_path: Path, degrees: int, displayed: tuple[int, int]
) -> None:
    rotated = rotated_copy(library.silent_video, tmp_path / "rotated.mp4", degrees)
    info = await probe_video(rotated)
    assert info is not None
    assert (info.width, info.height) == displayed


async def test_probe_video_applies_the_sample_aspect_ratio(library: Library) -> None:
    info = await probe_video(library.anamorphic)
    assert info is not None
    assert (info.width, info.height) == (320, 120)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mp3", AudioInfo(duration=2.0, title="Ünïcode Title", performer="The Band")),
        ("m4a", AudioInfo(duration=1.0, title="M4A Title", performer="M4A Artist")),
        ("untagged_mp3", AudioInfo(duration=1.0, title=None, performer=None)),
    ],
)
async def test_probe_audio_reads_duration_and_tags(library: Library, name: str, expected: AudioInfo) -> None:
    info = await probe_audio(getattr(library, name))
    assert info is not None
    assert info.duration == pytest.approx(expected.duration, abs=DURATION_TOLERANCE)
    assert (info.title, info.performer) == (expected.title, expected.performer)


async def test_a_cover_picture_does_not_make_audio_a_video(library: Library) -> None:
    assert await probe_video(library.cover_mp3) is None
    info = await probe_audio(library.cover_mp3)
    assert info is not None
    assert info.title == "Ünïcode Title"


@pytest.mark.parametrize(("name", "size"), [("jpg", (300, 200)), ("png", (64, 48)), ("webp", (50, 70))])
async def test_probe_image_reads_the_pixel_size(library: Library, name: str, size: tuple[int, int]) -> None:
    assert await probe_image(getattr(library, name)) == ImageInfo(*size)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("video", "video"), ("silent_video", "video"), ("mp3", "audio"), ("m4a", "audio"), ("jpg", "image")],
)
async def test_each_probe_answers_only_for_its_own_kind(library: Library, name: str, kind: str) -> None:
    path = getattr(library, name)
    answers = {
        "video": await probe_video(path),
        "audio": await probe_audio(path),
        "image": await probe_image(path),
    }
    assert {found for found, info in answers.items() if info is not None} == {kind}
    assert isinstance(answers[kind], {"video": VideoInfo, "audio": AudioInfo, "image": ImageInfo}[kind])


def _write_unreadable(library: Library, folder: Path, kind: str) -> Path:
    path = folder / "broken.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(pseudo_random_bytes(64 * 1024))
    elif kind == "text":
        path.write_text("not a video\n" * 500)
    elif kind == "moov_lost":
        # moov after mdat (as CDNs serve it), and the download stopped halfway: no index at all.
        whole = make_video(folder / "late_moov.mp4", seconds=2.0, faststart=False).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "header_cut":
        path.write_bytes(library.video.read_bytes()[:400])
    elif kind == "missing":
        pass
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["empty", "garbage", "text", "moov_lost", "header_cut", "missing", "directory"])
async def test_unreadable_files_probe_as_none(library: Library, tmp_path: Path, kind: str) -> None:
    path = _write_unreadable(library, tmp_path, kind)
    assert await probe_video(path) is None
    assert await probe_audio(path) is None
    assert await probe_image(path) is None


@pytest.mark.parametrize("name", ["-i.mp4", "file:clip.mp4", "-", "100% done %d.mp4"])
async def test_names_that_ffmpeg_could_misread(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Relative names, as a caller in the download folder would pass them.
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(library.video.read_bytes())
    info = await probe_video(Path(name))
    assert info is not None
    assert (info.width, info.height) == (320, 240)


async def test_probe_of_a_huge_padded_video_reads_only_its_header(tmp_path: Path) -> None:
    # 3 GiB on paper (a sparse free box); probing must not read or hold it.
    padded = make_padded_video(tmp_path / "padded.mp4", 3 << 30)
    info = await probe_video(padded)
    assert info is not None
    assert info.duration == pytest.approx(1.0, abs=DURATION_TOLERANCE)


async def test_cancelling_a_probe_kills_ffmpeg(tmp_path: Path) -> None:
    # A FIFO that we open but never write to: ffmpeg waits for its header forever.
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)
    before = child_pids()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe_video, fifo)
        # Opening the write end returns once ffmpeg has opened the read end: it is running and stuck.
        writer = await trio.to_thread.run_sync(os.open, fifo, os.O_WRONLY)
        started = child_pids() - before
        nursery.cancel_scope.cancel()
    os.close(writer)
    assert len(started) == 1
    assert alive(started) == set()


# ---------------------------------------------------------------------------------------------------------
# Thumbnails


@pytest.mark.parametrize(("name", "size"), [("wide", (320, 180)), ("tall", (240, 320)), ("small", (160, 120))])
async def test_thumbnail_fits_telegram_rules(
    library: Library, tmp_path: Path, name: str, size: tuple[int, int]
) -> None:
    destination = tmp_path / "thumb.jpg"
    assert await make_thumbnail(getattr(library, name), destination) == destination
    assert await probe_image(destination) == ImageInfo(*size)
    assert destination.read_bytes()[:2] == b"\xff\xd8"  # a JPEG, whatever the name says
    assert destination.stat().st_size < THUMBNAIL_MAX_BYTES
    assert await names_in(tmp_path) == ["thumb.jpg"]  # no ".part" left behind


async def test_thumbnail_of_noise_stays_under_the_byte_limit(library: Library, tmp_path: Path) -> None:
    thumbnail = await make_thumbnail(library.noise, tmp_path / "noise.jpg")
    assert thumbnail is not None
    info = await probe_image(thumbnail)
    assert info is not None
    assert max(info.width, info.height) <= THUMBNAIL_MAX_SIDE
    assert thumbnail.stat().st_size < THUMBNAIL_MAX_BYTES


async def test_thumbnail_skips_a_dark_opening(library: Library, tmp_path: Path) -> None:
    # The first two frames are black, a tenth of the way in is white.
    thumbnail = await make_thumbnail(library.dark_start, tmp_path / "thumb.jpg")
    assert thumbnail is not None
    assert await mean_brightness(thumbnail) > 200


async def test_thumbnail_of_a_one_frame_clip(library: Library, tmp_path: Path) -> None:
    thumbnail = await make_thumbnail(library.one_frame, tmp_path / "thumb.jpg")
    assert thumbnail is not None
    assert await probe_image(thumbnail) == ImageInfo(160, 120)


@pytest.mark.parametrize("name", ["mp3", "jpg"])
async def test_no_thumbnail_for_what_is_not_a_video(library: Library, tmp_path: Path, name: str) -> None:
    assert await make_thumbnail(getattr(library, name), tmp_path / "thumb.jpg") is None
    assert await names_in(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------
# Splitting a video into playable parts


async def _probe_parts(parts: Sequence[Path]) -> list[VideoInfo]:
    infos = [await probe_video(part) for part in parts]
    assert None not in infos
    return [info for info in infos if info is not None]


async def test_split_video_parts_fit_play_and_add_up(library: Library, tmp_path: Path) -> None:
    source = library.noisy_then_calm
    size = source.stat().st_size
    # Cut evenly by time, the noisy first half would come out far over this: the re-cut has to happen.
    max_bytes = size * 3 // 10
    out_dir = tmp_path / "parts"
    parts = await split_video(source, max_bytes, out_dir)

    assert len(parts) >= 4
    assert [part.name for part in parts] == [f"noisy_then_calm.part{n:02d}.mp4" for n in range(1, len(parts) + 1)]
    assert await names_in(out_dir) == [part.name for part in parts]  # no work files left behind
    assert all(part.stat().st_size <= max_bytes for part in parts)
    infos = await _probe_parts(parts)
    assert all((info.width, info.height, info.has_audio) == (160, 120, True) for info in infos)
    assert all(info.duration > 0 for info in infos)
    assert sum(info.duration for info in infos) == pytest.approx(6.0, abs=0.1 * len(parts))
    for part in parts:
        assert top_level_boxes(part, 2) == [b"ftyp", b"moov"]  # faststart
        assert re.search(r"Duration: [\d:.]+, start: 0\.0+,", await ffmpeg_dump(part))  # starts at zero


async def test_split_video_keeps_parts_in_time_order(library: Library, tmp_path: Path) -> None:
    parts = await split_video(library.noisy_then_calm, library.noisy_then_calm.stat().st_size // 2, tmp_path)
    sizes = [part.stat().st_size for part in parts]
    # The noisy half holds most of the bytes, so the first part is the biggest one.
    assert sizes[0] == max(sizes)
    assert sizes[-1] < sizes[0]


async def test_split_video_within_the_limit_is_the_file_itself(library: Library, tmp_path: Path) -> None:
    out_dir = tmp_path / "parts"
    assert await split_video(library.video, library.video.stat().st_size, out_dir) == [library.video]
    assert not out_dir.exists()


async def test_split_video_drops_padding(tmp_path: Path) -> None:
    # Stream copy keeps only the streams: a video padded far past the limit fits in one part.
    padded = make_padded_video(tmp_path / "padded.mp4", 3 << 20)
    parts = await split_video(padded, 1 << 20, tmp_path / "parts")
    assert [part.name for part in parts] == ["padded.part01.mp4"]
    assert parts[0].stat().st_size < 1 << 20
    (info,) = await _probe_parts(parts)
    assert info.duration == pytest.approx(1.0, abs=DURATION_TOLERANCE)


async def test_split_video_refuses_a_keyframe_stretch_over_the_limit(library: Library, tmp_path: Path) -> None:
    out_dir = tmp_path / "parts"
    with pytest.raises(SplitError, match=r"between keyframes at 0\.00s and"):
        await split_video(library.one_gop, library.one_gop.stat().st_size // 3, out_dir)
    assert await names_in(out_dir) == []


async def test_split_video_of_something_that_is_not_a_video(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(pseudo_random_bytes(10_000))
    with pytest.raises(SplitError, match="not a video"):
        await split_video(garbage, 1_000, tmp_path / "parts")


# ---------------------------------------------------------------------------------------------------------
# Splitting any file into byte parts


@pytest.mark.parametrize(
    ("size", "max_bytes", "count"),
    [
        (3 * (1 << 20) + 123, 1_000_003, 4),  # parts not aligned with the copy chunks
        (2_000_000, 1_000_000, 2),  # an exact multiple leaves no empty last part
        (5, 1, 5),
    ],
)
async def test_split_file_round_trips(tmp_path: Path, size: int, max_bytes: int, count: int) -> None:
    original = pseudo_random_bytes(size)
    source = tmp_path / "archive.zip"
    source.write_bytes(original)
    parts = await split_file(source, max_bytes, tmp_path / "parts")
    assert [part.name for part in parts] == [f"archive.zip.{n:03d}" for n in range(1, count + 1)]
    assert [part.stat().st_size for part in parts[:-1]] == [max_bytes] * (count - 1)
    assert 0 < parts[-1].stat().st_size <= max_bytes
    assert sha256_bytes(b"".join(part.read_bytes() for part in parts)) == sha256_bytes(original)


async def test_split_file_of_a_sparse_video_concatenates_to_the_original(tmp_path: Path) -> None:
    padded = make_padded_video(tmp_path / "padded.mp4", 3 << 20)
    parts = await split_file(padded, 1 << 20, tmp_path / "parts")
    joined = tmp_path / "joined.mp4"
    with joined.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    assert len(parts) == 3
    assert sha256_file(joined) == sha256_file(padded)


async def test_split_file_within_the_limit_is_the_file_itself(tmp_path: Path) -> None:
    source = tmp_path / "small.bin"
    source.write_bytes(b"abc")
    assert await split_file(source, 3, tmp_path / "parts") == [source]


async def test_split_file_removes_its_parts_when_it_fails(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(pseudo_random_bytes(30))
    out_dir = tmp_path / "parts"
    (out_dir / "data.bin.002").mkdir(parents=True)  # the second part cannot be written
    with pytest.raises(IsADirectoryError):
        await split_file(source, 10, out_dir)
    assert await names_in(out_dir) == ["data.bin.002"]


@pytest.mark.parametrize("split", [split_file, split_video])
async def test_split_needs_a_positive_limit(
    library: Library, tmp_path: Path, split: Callable[[Path, int, Path], Awaitable[list[Path]]]
) -> None:
    with pytest.raises(ValueError, match="positive"):
        await split(library.video, 0, tmp_path)
