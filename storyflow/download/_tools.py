"""How gallery-dl and yt-dlp are asked to download, and how their output is read.

Both tools are always started with ``--ignore-config`` (a user's config could add ``--exec``), with ``--``
before the URL, with machine-readable output we parse line by line, and with file names restricted to the job
folder. The extractor is chosen once in this process (:func:`route`) and passed to the child, so the child skips
matching the URL against every extractor it has — that matching, not the download, dominates their start-up.
"""

from __future__ import annotations

import datetime
import enum
import functools
import json
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import attrs

from .._ffmpeg import ffmpeg_executable
from ..jobs import JobOptions

# Markers that start every line we asked the tools to print; anything else is human chatter.
PROGRESS_MARK = "@@SF-PROGRESS "
FILE_MARK = "@@SF-FILE "
SKIP_MARK = "@@SF-SKIP "

# Sites whose URLs gallery-dl may claim but that yt-dlp handles better (video-first sites).
_YTDLP_FIRST_HOSTS = frozenset(
    {"youtube.com", "youtu.be", "vimeo.com", "twitch.tv", "dailymotion.com", "rumble.com", "streamable.com"}
)


class Tool(enum.StrEnum):
    GALLERY_DL = "gallery-dl"
    YT_DLP = "yt-dlp"


@attrs.frozen
class Attempt:
    """One run of one tool. ``extractors`` restricts the child to what the parent matched (empty: all of them)."""

    tool: Tool
    extractors: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.extractors)


@attrs.frozen
class Route:
    """The runs to try for one URL, in order, until one delivers.

    A restricted run comes first because it skips most of the tool's start-up; an unrestricted run of the same tool
    follows it, taken only when the restricted one found nothing it could handle — the site's extractor handed the
    URL on to another one (an embedded player, a link to another site) that the restriction left out.
    """

    attempts: tuple[Attempt, ...]

    @property
    def tools(self) -> tuple[Tool, ...]:
        return tuple(dict.fromkeys(attempt.tool for attempt in self.attempts))

@functools.cache
def _gallery_dl_extractors() -> object:
    from gallery_dl import extractor

    return extractor


@functools.cache
def _ytdlp_extractor_classes() -> tuple[type, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(gen_extractor_classes())


def _host_matches(host: str, hosts: frozenset[str] | Sequence[str]) -> bool:
    return any(host == h or host.endswith("." + h) for h in hosts)


def gallery_dl_module_for(url: str) -> str | None:
    """The gallery-dl extractor module that claims ``url``, or None."""
    extractor = _gallery_dl_extractors()
    try:
        found = extractor.find(url)  # type: ignore[attr-defined]
    except Exception:  # an extractor's __init__ choking on a URL means it is not ours to take
        return None
    if found is None:
        return None
    module = type(found).__module__.rsplit(".", 1)[-1]
    return None if module in {"generic", "ytdl", "recursive"} else module


def ytdlp_extractors_for(url: str) -> tuple[str, ...]:
    """The yt-dlp extractors to restrict the child to: the one that claims ``url``, with the embed extractors a
    generic page needs (``<video>`` tags are found by ``html5``, not ``generic``)."""
    for ie in _ytdlp_extractor_classes():
        if ie.suitable(url):  # type: ignore[attr-defined]
            name = str(ie.IE_NAME)  # type: ignore[attr-defined]
            return ("generic", "html5") if name == "generic" else (name,)
    return ()


def _widening(tool: Tool, extractors: tuple[str, ...]) -> tuple[Attempt, ...]:
    return (Attempt(tool, extractors), Attempt(tool)) if extractors else (Attempt(tool),)


_route_lock = threading.Lock()


def route(url: str, *, ytdlp_first_hosts: Sequence[str] = ()) -> Route:
    """Choose the runs for ``url``. CPU-bound (the first call imports both tools' extractor tables):
    run it in a worker thread."""
    # gallery-dl fills its extractor cache lazily and not thread-safely: concurrent first calls saw no match.
    with _route_lock:
        return _route(url, ytdlp_first_hosts)


def _route(url: str, ytdlp_first_hosts: Sequence[str]) -> Route:
    host = (urlsplit(url).hostname or "").lower()
    ytdlp = _widening(Tool.YT_DLP, ytdlp_extractors_for(url))
    if _host_matches(host, _YTDLP_FIRST_HOSTS) or _host_matches(host, ytdlp_first_hosts):
        return Route(ytdlp)
    module = gallery_dl_module_for(url)
    if module is None:
        return Route(ytdlp)
    return Route((*_widening(Tool.GALLERY_DL, (module,)), *ytdlp))


@attrs.frozen
class ToolLimits:
    max_file_size: int
    max_items: int


def _python_module_command(module: str) -> list[str]:
    # The same interpreter that runs StoryFlow, so the tools are the versions installed with it.
    return [sys.executable, "-m", module]


def gallery_dl_command(
    url: str,
    folder: Path,
    *,
    modules: tuple[str, ...],
    limits: ToolLimits,
    cookies: Path | None = None,
    cache_file: Path | None = None,
    archive: Path | None = None,
    proxy: str | None = None,
) -> list[str]:
    output_mode = {
        "start": "",
        "success": "",
        "skip": "",
        "progress": f"\n{PROGRESS_MARK}{{0}} {{1}}\n",
        "progress-total": f"\n{PROGRESS_MARK}{{0}} {{1}} {{2}} {{3}}\n",
    }
    command = [
        *_python_module_command("gallery_dl"),
        "--ignore-config",
        "--directory", str(folder),
        "--filesize-max", str(limits.max_file_size),
        "--range", f"1-{limits.max_items}",
        # gallery-dl reports progress once per chunk: its own default size keeps slow links visibly moving.
        "--chunk-size", "32k",
        "--no-mtime",
        "-o", "output.mode=" + json.dumps(output_mode),
        "-o", "output.shorten=false",
        "-o", "downloader.progress=0.5",
        "-o", "path-restrict=auto",
        "-o", "cache.file=" + json.dumps(str(cache_file) if cache_file is not None else None),
        # One JSON object per file: where it is, and what a caption may say about it (null where unknown).
        "--Print", f"after:{FILE_MARK}{{{{\"path\":{{_path!j}},\"user\":{{username!j}},\"date\":{{date!j}}}}}}",
        "--Print", f"skip:{SKIP_MARK}{{_path!j}}",
    ]
    if modules:
        command += ["-o", "extractor.modules=" + json.dumps(list(modules))]
    if cookies is not None:
        command += ["--cookies", str(cookies)]
    if archive is not None:
        command += ["--download-archive", str(archive)]
    if proxy is not None:
        command += ["--proxy", proxy]
    return [*command, "--", url]


# Formats served over protocols that rtmpdump or ffmpeg fetch themselves, past yt-dlp's --proxy (and so past the
# destination guard); left out when the guard is on.
_UNPROXIED_PROTOCOLS = "[protocol!*=rtmp][protocol!*=rtsp][protocol!*=mms][protocol!^=ftp]"


def _format_for(options: JobOptions, *, guarded: bool) -> list[str]:
    only = _UNPROXIED_PROTOCOLS if guarded else ""
    if options.audio_only:
        return ["-f", f"bestaudio{only}/best{only}", "--extract-audio", "--audio-format", "m4a"]
    height = f"[height<={options.max_height}]" if options.max_height else ""
    return [
        "-f", f"bv*{height}{only}+ba{only}/b{height}{only}/bv*{only}+ba{only}/b{only}",
        "--format-sort", "vcodec:h264,ext:mp4:m4a",
        "--merge-output-format", "mp4",
    ]


def ytdlp_command(
    url: str,
    folder: Path,
    *,
    extractors: tuple[str, ...],
    options: JobOptions,
    limits: ToolLimits,
    cookies: Path | None = None,
    cache_dir: Path | None = None,
    archive: Path | None = None,
    proxy: str | None = None,
) -> list[str]:
    final = "{filepath,title,uploader,webpage_url,id,ext,duration,width,height,timestamp}"
    command = [
        *_python_module_command("yt_dlp"),
        "--ignore-config",
        "--no-playlist",
        "--newline",
        "--progress",
        "--progress-delta", "0.5",
        "--progress-template", f"download:{PROGRESS_MARK}%(progress)j",
        "--print", f"after_move:{FILE_MARK}%(.{final})j",
        "--paths", str(folder),
        "--paths", f"temp:{folder}",
        "--output", "%(id).60B-%(autonumber)03d.%(ext)s",
        "--restrict-filenames",
        "--no-mtime",
        "--no-colors",
        "--socket-timeout", "30",
        "--retries", "3",
        "--max-filesize", str(limits.max_file_size),
        "--playlist-items", f"1:{limits.max_items}",
        "--max-downloads", str(limits.max_items),
        "--ffmpeg-location", ffmpeg_executable(),
        *_format_for(options, guarded=proxy is not None),
    ]
    command += ["--cache-dir", str(cache_dir)] if cache_dir is not None else ["--no-cache-dir"]
    if extractors:
        # yt-dlp reads each name as a regex (full match, any case).
        command += ["--use-extractors", ",".join(re.escape(name) for name in extractors)]
    command += ["--cookies", str(cookies)] if cookies is not None else ["--no-cookies"]
    if archive is not None:
        command += ["--download-archive", str(archive)]
    if proxy is not None:
        command += ["--proxy", proxy]
    return [*command, "--", url]


# -- reading what they print -----------------------------------------------------------------------------


@attrs.frozen
class ProgressLine:
    downloaded: int
    total: int | None
    speed: float | None
    eta: float | None
    filename: str | None = None


@attrs.frozen
class FileLine:
    path: str
    skipped: bool = False
    title: str = ""
    uploader: str = ""
    source_url: str = ""
    posted_at: float | None = None


_DECIMAL_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def _gallery_dl_bytes(text: str) -> int:
    # gallery-dl prints sizes with decimal suffixes (util.format_bytes_decimal): "1.04M", "402.56K", "912".
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKMGTP]?)", text)
    if match is None:
        raise ValueError(text)
    return int(float(match.group(1)) * _DECIMAL_SUFFIX[match.group(2).upper()])


def parse_line(tool: Tool, line: str) -> ProgressLine | FileLine | None:
    """Read one output line; None for anything that is not one of ours (or is mangled)."""
    line = line.rstrip("\r\n")
    try:
        if line.startswith(FILE_MARK):
            payload = json.loads(line[len(FILE_MARK) :])
            if tool is Tool.GALLERY_DL:
                return FileLine(
                    path=_text(payload["path"]),
                    uploader=str(payload.get("user") or ""),
                    posted_at=_gallery_dl_date(payload.get("date")),
                )
            timestamp = payload.get("timestamp")
            return FileLine(
                path=_text(payload["filepath"]),
                title=str(payload.get("title") or ""),
                uploader=str(payload.get("uploader") or ""),
                source_url=str(payload.get("webpage_url") or ""),
                posted_at=float(timestamp) if isinstance(timestamp, int | float) and timestamp > 0 else None,
            )
        if line.startswith(SKIP_MARK):
            return FileLine(path=_text(json.loads(line[len(SKIP_MARK) :])), skipped=True)
        if line.startswith(PROGRESS_MARK):
            return _parse_progress(tool, line[len(PROGRESS_MARK) :])
    except (ValueError, KeyError, TypeError):
        return None
    return None


def _gallery_dl_date(value: object) -> float | None:
    """gallery-dl's ``date`` (a UTC datetime, printed as ``2024-05-01 12:30:00``) as unix time."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a path, got {type(value).__name__}")
    return value


def _parse_progress(tool: Tool, text: str) -> ProgressLine | None:
    if tool is Tool.YT_DLP:
        data = json.loads(text)
        if data.get("status") not in ("downloading", "finished"):
            return None
        total = data.get("total_bytes") or data.get("total_bytes_estimate")
        return ProgressLine(
            downloaded=int(data.get("downloaded_bytes") or 0),
            total=int(total) if total else None,
            speed=float(data["speed"]) if data.get("speed") else None,
            eta=float(data["eta"]) if data.get("eta") is not None else None,
            filename=PurePosixPath(str(data.get("filename") or "")).name or None,
        )
    fields = text.split()
    downloaded = _gallery_dl_bytes(fields[0])
    speed = float(_gallery_dl_bytes(fields[1]))
    total = _gallery_dl_bytes(fields[2]) if len(fields) >= 4 else None
    eta = (total - downloaded) / speed if total and speed else None
    return ProgressLine(downloaded=downloaded, total=total, speed=speed or None, eta=eta)
