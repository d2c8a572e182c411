"""What StoryFlow knows about one site's cookies, and the line it shows in chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from ._sites import Site


@attrs.frozen
class CookieSummary:
    """One site's checked cookies.

    ``account`` is how the account shows in chat (a username, or ``id 123`` when only the numeric id is in the
    cookies), None when the cookies do not tell. ``session_expires`` is when the login cookie runs out (UTC),
    None for a browser-session cookie with no date. ``text`` is the file to store: only this site's cookies,
    behind the Netscape header; it holds the secrets, so it is left out of ``repr``.
    """

    site: Site
    account: str | None
    cookie_count: int
    session_expires: datetime | None
    expired: bool
    text: str = attrs.field(repr=False)


def utc_now() -> datetime:
    return datetime.now(UTC)


def describe(summary: CookieSummary, *, now: datetime | None = None) -> str:
    """``instagram: logged in as jane · session expires 2027-03-01 (in 87 days)``, or ``… EXPIRED on …``."""
    who = f"logged in as {summary.account}" if summary.account else "logged in"
    expires = summary.session_expires
    if expires is None:
        when = "browser-session login (no expiry date)"
    elif summary.expired:
        when = f"EXPIRED on {expires:%Y-%m-%d}"
    else:
        when = f"session expires {expires:%Y-%m-%d} ({_time_left(expires - (now or utc_now()))})"
    return f"{summary.site.key}: {who} · {when}"


def _time_left(left: timedelta) -> str:
    if left < timedelta(days=1):
        return "in less than a day"
    return "in 1 day" if left.days == 1 else f"in {left.days} days"
