"""StoryFlow's one error tree. Every failure a user can see is one of these, with a hint.

    StoryFlowError
     ├── InputError                  bad input, refused before anything runs
     │    ├── UnsafeURL              not http(s), option-like, tool prefixes, credentials, …
     │    ├── PrivateAddress         resolves to loopback/private/link-local/CGNAT
     │    └── ConfigError            a bad key or value in the config or environment
     ├── JobRefused                  the job was not accepted
     │    ├── OwnerLimitReached      too many unfinished jobs for this owner
     │    └── UnknownJob             no job with that id (for this owner)
     ├── DownloadError               a download failed (gallery-dl / yt-dlp)
     │    ├── LoginRequired          cookies or a login are needed
     │    ├── NotFound               private, deleted or never existed
     │    ├── UnsupportedURL         neither tool knows the site
     │    ├── RateLimited            the site said slow down
     │    ├── TooLarge               over the size or item limit
     │    ├── DiskFull               the disk (or the job's disk quota) ran out
     │    ├── PrivateDestination     the link points to a private address now (checked again at download time)
     │    ├── NetworkError           DNS, refused, reset, TLS
     │    ├── DownloadTimeout        the job ran out of wall-clock time
     │    ├── NoMedia                the tools ran fine but found nothing
     │    └── ToolCrashed            the tool died in a way we cannot read
     └── TelegramError               Telegram refused or failed a call
          ├── FloodWait              wait ``seconds`` (FLOOD_WAIT_X, FLOOD_PREMIUM_WAIT_X, SLOWMODE_WAIT_X)
          ├── MessageGone            the message to edit, reply to or fetch no longer exists
          ├── NotModified            an edit that changes nothing (harmless)
          ├── ChatUnavailable        no right to write there (banned, left, read-only, private)
          ├── MediaRejected          Telegram refused a file (size, parts, dimensions, caption)
          ├── ReferenceExpired       a stored file reference is no longer valid
          ├── DuplicateSend          a random_id was used before: that send already happened
          ├── NotAuthorized          the session is not (or no longer) logged in
          ├── PeerNotFound           no such user, chat or username
          └── TelegramUnavailable    network trouble or an internal Telegram error

Download errors from the tools are made in exactly one place, ``storyflow.download._classify``, and those of
StoryFlow's own Snapchat reader in ``storyflow.stories._snapchat`` (which adds ``SnapchatLayoutChanged``, a
DownloadError, and ``BadSnapchatUsername``, an InputError); Telegram errors in exactly one place,
``storyflow.telegram._gateway`` (the only module that imports Telethon). ``storyflow.cookies`` adds
``CookiesInvalid`` and ``UnknownSite`` (InputErrors) for files and site names it refuses.
"""

from __future__ import annotations

from typing import ClassVar


class StoryFlowError(Exception):
    """Base of all StoryFlow errors. ``str()`` is the user-facing message; ``hint`` says what to do."""

    kind: ClassVar[str] = "error"
    default_hint: ClassVar[str] = ""
    # How much a user learns from this error; when two tools fail, the higher one is shown.
    informativeness: ClassVar[int] = 0

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def user_text(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class InputError(StoryFlowError):
    kind = "input"


class UnsafeURL(InputError):
    kind = "unsafe_url"
    default_hint = "send a plain http:// or https:// link"


class PrivateAddress(InputError):
    kind = "private_address"
    default_hint = "links to local or private network addresses are refused"


class ConfigError(InputError):
    kind = "config"
    default_hint = "fix the config file or the STORYFLOW_* variable and try again"


class JobRefused(StoryFlowError):
    kind = "refused"


class OwnerLimitReached(JobRefused):
    kind = "owner_limit"
    default_hint = "wait for a job to finish or cancel one"


class UnknownJob(JobRefused):
    kind = "unknown_job"
    default_hint = "see the queue for job ids"


class DownloadError(StoryFlowError):
    kind = "download"
    informativeness = 1


class LoginRequired(DownloadError):
    kind = "login_required"
    default_hint = "this content needs a login: add cookies for the site"
    informativeness = 9


class NotFound(DownloadError):
    kind = "not_found"
    default_hint = "the post is private, deleted or the link is wrong"
    informativeness = 8


class TooLarge(DownloadError):
    kind = "too_large"
    default_hint = "the file or gallery is over the configured limit"
    informativeness = 8


class DiskFull(DownloadError):
    kind = "disk_full"
    default_hint = "free some disk space, or change download.min_free_space / download.max_job_disk"
    informativeness = 8


class PrivateDestination(DownloadError):
    kind = "private_destination"
    default_hint = "links to local or private network addresses are refused"
    informativeness = 8


class RateLimited(DownloadError):
    kind = "rate_limited"
    default_hint = "the site is rate limiting; try again later"
    informativeness = 7


class NoMedia(DownloadError):
    kind = "no_media"
    default_hint = "no downloadable media was found at that link"
    informativeness = 5


class DownloadTimeout(DownloadError):
    kind = "timeout"
    default_hint = "the download took longer than the job time limit"
    informativeness = 6


class NetworkError(DownloadError):
    kind = "network"
    default_hint = "the site could not be reached; try again later"
    informativeness = 4


class UnsupportedURL(DownloadError):
    kind = "unsupported"
    default_hint = "neither gallery-dl nor yt-dlp supports this site"
    informativeness = 3


class ToolCrashed(DownloadError):
    kind = "tool_crashed"
    default_hint = "the downloader failed unexpectedly; try again or report the link"
    informativeness = 2


class TelegramError(StoryFlowError):
    kind = "telegram"
    default_hint = "Telegram refused the request"


class FloodWait(TelegramError):
    kind = "flood_wait"
    default_hint = "Telegram asked to slow down; StoryFlow waits and goes on"

    def __init__(self, message: str, *, seconds: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.seconds = seconds


class MessageGone(TelegramError):
    kind = "message_gone"
    default_hint = "the message was deleted"


class NotModified(TelegramError):
    kind = "not_modified"
    default_hint = ""


class ChatUnavailable(TelegramError):
    kind = "chat_unavailable"
    default_hint = "StoryFlow cannot write in that chat"


class MediaRejected(TelegramError):
    kind = "media_rejected"
    default_hint = "Telegram did not accept this file"


class ReferenceExpired(TelegramError):
    kind = "reference_expired"
    default_hint = "the stored copy on Telegram expired"


class DuplicateSend(TelegramError):
    kind = "duplicate_send"
    default_hint = ""


class NotAuthorized(TelegramError):
    kind = "not_authorized"
    default_hint = "log in again with `storyflow login`"


class PeerNotFound(TelegramError):
    kind = "peer_not_found"
    default_hint = "check the @username or id"


class TelegramUnavailable(TelegramError):
    kind = "telegram_unavailable"
    default_hint = "Telegram could not be reached; StoryFlow retries"


def error_class_for_kind(kind: str) -> type[StoryFlowError]:
    """The class a persisted ``error_kind`` names (for rebuilding an error from the store)."""
    stack: list[type[StoryFlowError]] = [StoryFlowError]
    while stack:
        cls = stack.pop()
        if cls.kind == kind:
            return cls
        stack.extend(cls.__subclasses__())
    return StoryFlowError
