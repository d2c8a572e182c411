"""The sites StoryFlow keeps cookies for: where their cookies live and which ones prove a login."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from ._errors import UnknownSite

# What an account name may look like before it is shown in chat; anything else is not shown at all.
_USERNAME = re.compile(r"[A-Za-z0-9._]{1,30}")
_NUMERIC_ID = re.compile(r"[0-9]{1,20}")

AccountReader = Callable[[Mapping[str, str]], "str | None"]


def _no_account(cookies: Mapping[str, str]) -> str | None:
    return None


def _numeric_id(value: str | None) -> str | None:
    return f"id {value}" if value is not None and _NUMERIC_ID.fullmatch(value) else None


def _instagram_account(cookies: Mapping[str, str]) -> str | None:
    username = cookies.get("ds_user")
    if username is not None and _USERNAME.fullmatch(username):
        return username
    return _numeric_id(cookies.get("ds_user_id"))


def _x_account(cookies: Mapping[str, str]) -> str | None:
    # twid is "u%3D<id>", sometimes quoted and sometimes already decoded.
    twid = urllib.parse.unquote(cookies.get("twid", "")).strip('"')
    return _numeric_id(twid.removeprefix("u=")) if twid.startswith("u=") else None


def _facebook_account(cookies: Mapping[str, str]) -> str | None:
    return _numeric_id(cookies.get("c_user"))


@attrs.frozen
class Site:
    """A site and its cookies.

    ``hosts`` are what links point at (subdomains included); ``cookie_domains`` are the domains whose cookies
    are kept from an uploaded file (subdomains included), which is not the same list: YouTube's login lives
    partly on ``.google.com``, but a google.com link is not a YouTube link.
    """

    key: str
    name: str
    hosts: tuple[str, ...]
    cookie_domains: tuple[str, ...]
    session_cookies: tuple[str, ...]
    # "any": one of the session cookies proves the login; "all": it takes every one of them.
    session_rule: Literal["any", "all"] = "any"
    # Public content needs no login (the download code may go on without cookies).
    login_optional: bool = False
    aliases: tuple[str, ...] = ()
    account: AccountReader = attrs.field(default=_no_account, repr=False)

    def owns_host(self, host: str) -> bool:
        return any(_within(host, domain) for domain in self.hosts)

    def owns_cookie_domain(self, domain: str) -> bool:
        return any(_within(domain, own.lstrip(".")) for own in self.cookie_domains)

    def describe_session_cookies(self) -> str:
        joiner = " and " if self.session_rule == "all" else " or "
        return joiner.join(self.session_cookies)


def _within(host: str, domain: str) -> bool:
    host = host.lower().strip(".")
    return host == domain or host.endswith("." + domain)


SITES: tuple[Site, ...] = (
    Site(
        "instagram", "Instagram",
        hosts=("instagram.com", "instagr.am"),
        cookie_domains=(".instagram.com",),
        session_cookies=("sessionid",),
        aliases=("ig", "insta"),
        account=_instagram_account,
    ),
    Site(
        "tiktok", "TikTok",
        hosts=("tiktok.com",),
        cookie_domains=(".tiktok.com",),
        session_cookies=("sessionid", "sessionid_ss"),
        aliases=("tt",),
    ),
    Site(
        "x", "X",
        hosts=("x.com", "twitter.com"),
        cookie_domains=(".x.com", ".twitter.com"),
        session_cookies=("auth_token",),
        aliases=("twitter",),
        account=_x_account,
    ),
    Site(
        "facebook", "Facebook",
        hosts=("facebook.com", "fb.com", "fb.watch"),
        cookie_domains=(".facebook.com",),
        session_cookies=("c_user", "xs"),
        session_rule="all",
        aliases=("fb",),
        account=_facebook_account,
    ),
    Site(
        "snapchat", "Snapchat",
        hosts=("snapchat.com",),
        cookie_domains=(".snapchat.com",),
        session_cookies=("__Host-sc-a-session", "sc-a-session"),
        login_optional=True,
        aliases=("snap",),
    ),
    Site(
        "youtube", "YouTube",
        hosts=("youtube.com", "youtu.be", "youtube-nocookie.com"),
        cookie_domains=(".youtube.com", ".google.com"),
        session_cookies=("SID", "__Secure-3PSID"),
        aliases=("yt",),
    ),
)

_BY_NAME: dict[str, Site] = {
    name: site for site in SITES for name in (site.key, *site.aliases, *site.hosts)
}


def site_for_url(url: str) -> Site | None:
    """The site a link belongs to, by its host (``i.instagram.com`` and ``mobile.twitter.com`` included)."""
    try:
        host = urllib.parse.urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    if not host:
        return None
    return next((site for site in SITES if site.owns_host(host)), None)


def site_by_name(name: str) -> Site:
    """The site a user names in ``.cookies set <name>``: its key, an alias (``ig``, ``twitter``, ``fb``, ``yt``)
    or its domain, in any case."""
    site = _BY_NAME.get(name.strip().lower().removeprefix("www."))
    if site is None:
        shown = name.strip()[:40] or "(nothing)"
        raise UnknownSite(f"no site called {shown!r}", hint="known sites: " + known_sites())
    return site


def known_sites() -> str:
    """``instagram (ig, insta), tiktok (tt), …`` for help texts."""
    return ", ".join(
        f"{site.key} ({', '.join(site.aliases)})" if site.aliases else site.key for site in SITES
    )
