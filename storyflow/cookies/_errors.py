"""The errors of the cookies package, under StoryFlow's one tree.

    StoryFlowError
     ├── InputError
     │    ├── CookiesInvalid      the file is not a usable cookies.txt for the site (or a stored one is damaged)
     │    └── UnknownSite         ``.cookies set <name>`` with a name no site answers to
     └── UnsafeCookiePath        a symlink (or a non-file) where a cookies file or its folder should be

No message or hint ever quotes a cookie line: a line number and what is wrong with it is all a user sees.
"""

from __future__ import annotations

from .._errors import InputError, StoryFlowError


class CookiesInvalid(InputError):
    kind = "cookies_invalid"
    default_hint = "export the cookies again in Netscape/cookies.txt format"

    def __init__(self, message: str, *, hint: str | None = None, line: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.line = line


class UnknownSite(InputError):
    kind = "unknown_site"


class UnsafeCookiePath(StoryFlowError):
    kind = "unsafe_cookie_path"
    default_hint = "a cookies file or folder was replaced by a link; remove it and send the cookies again"
