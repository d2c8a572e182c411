"""The engine's view of the cookie store: the right site's cookies for a job's URL, as a private copy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from ._sites import site_for_url
from ._store import CookieStore


@attrs.frozen
class JobCookies:
    store: CookieStore

    async def cookies_for_job(self, owner: int, url: str, folder: Path) -> Path | None:
        site = site_for_url(url)
        if site is None or owner <= 0:
            return None
        return await self.store.copy_for_job(owner, site, folder)


def login_hint(prefix: str = ".") -> Callable[[str], str | None]:
    """For a login-required failure: which cookies to add, and how (None where the site is unknown)."""

    def hint(url: str) -> str | None:
        site = site_for_url(url)
        if site is None:
            return None
        return (f"this needs a {site.name} login: export your browser's cookies for {site.name} as cookies.txt "
                f"(Netscape format), send the file here and reply to it with {prefix}cookies set {site.key}")

    return hint
