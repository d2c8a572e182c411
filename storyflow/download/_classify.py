"""The one place where a tool's exit code and stderr become a typed :mod:`storyflow._errors` error."""

from __future__ import annotations

import re

from .._errors import (
    DiskFull,
    DownloadError,
    LoginRequired,
    NetworkError,
    NoMedia,
    NotFound,
    RateLimited,
    TooLarge,
    ToolCrashed,
    UnsupportedURL,
)
from ._tools import Tool

# Checked in order; the first pattern that matches a line of stderr decides. Login beats not-found because
# sites answer 404 to anonymous requests for private content.
_RULES: tuple[tuple[re.Pattern[str], type[DownloadError], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), cls, message)
    for pattern, cls, message in (
        (r"login required|requires? (?:a )?login|account credentials required|use --cookies|"
         r"authenticat|sign in to confirm|log ?in to|cookies? (?:are|is) (?:needed|required)|"
         r"\b401\b|insufficient privileges|private (?:video|account|profile)|this account is private",
         LoginRequired, "login required"),
        (r"no space left on device|disk quota exceeded|errno 28\b|\benospc\b", DiskFull, "the disk is full"),
        (r"larger than (?:the )?max|file ?size larger than|exceeds? (?:the )?max|"
         r"file is larger than max-filesize", TooLarge, "file over the size limit"),
        (r"\b429\b|too many requests|rate.?limit", RateLimited, "rate limited by the site"),
        (r"unsupported url|no suitable extractor|no extractor|is not a valid url", UnsupportedURL,
         "unsupported link"),
        (r"\b404\b|\b410\b|not found|could not be found|does not exist|has been removed|"
         r"no longer available|video unavailable|deleted", NotFound, "not found"),
        (r"\b403\b|forbidden", NotFound, "access denied by the site"),
        (r"name or service not known|temporary failure in name resolution|connection refused|"
         r"connection reset|timed out|network is unreachable|ssl|certificate|remote end closed|"
         r"connection aborted|incompleteread|\b50[0-4]\b", NetworkError, "network error"),
        (r"no video formats found|no media|nothing to download|there's no video|no formats", NoMedia,
         "no media found"),
    )
)

_ERROR_LINE = re.compile(r"^(?:ERROR:|\[[\w.-]+\]\[error\])\s*(.*)$")
_MAX_DETAIL = 200


def _detail(stderr: str) -> str:
    """The tool's own error line, short and without paths or URLs' query strings."""
    lines = [m.group(1) for line in stderr.splitlines() if (m := _ERROR_LINE.match(line.strip()))]
    text = lines[-1] if lines else ""
    text = re.sub(r"(https?://[^\s?#'\"]+)[?#][^\s'\"]*", r"\1", text)
    text = re.sub(r"\s*\(caused by .*\)\s*$", "", text).strip()
    # Local paths (the job folder, the data dir) are ours, not the user's business.
    text = re.sub(r"(?<![\w:/.])/[^\s'\"]+", "…", text)
    return text[:_MAX_DETAIL]


def classify(tool: Tool, returncode: int, stderr: str) -> DownloadError:
    """Turn a failed run into the most specific error we can read from it."""
    relevant = "\n".join(
        line for line in stderr.splitlines() if "error" in line.lower() or "warning" in line.lower()
    ) or stderr
    detail = _detail(stderr)
    for pattern, cls, summary in _RULES:
        if pattern.search(relevant):
            return cls(f"{tool}: {summary}" + (f" ({detail})" if detail else ""))
    if returncode < 0:
        # Killed by a signal: negative, so never to be read as gallery-dl's bit flags (-9 & 16 is 16).
        return ToolCrashed(f"{tool} was killed by signal {-returncode}")
    if tool is Tool.GALLERY_DL:
        # gallery-dl's exit status is a set of bit flags.
        if returncode & 16:
            return LoginRequired(f"{tool}: login required" + (f" ({detail})" if detail else ""))
        if returncode & 64:
            return UnsupportedURL(f"{tool}: unsupported link")
        if returncode & 8:
            return RateLimited(f"{tool}: the site asked for a challenge (bot check)")
        if returncode & 4:
            return NetworkError(f"{tool}: download failed" + (f" ({detail})" if detail else ""))
    return ToolCrashed(f"{tool} failed with exit status {returncode}" + (f" ({detail})" if detail else ""))


def more_informative(first: DownloadError, second: DownloadError) -> DownloadError:
    """Of two tools' failures on the same URL, the one that tells the user more (ties: the first)."""
    return second if second.informativeness > first.informativeness else first
