"""Reading a Netscape cookies.txt, keeping one site's cookies, and writing them back so both tools load them.

What the loaders accept decides what is written (checked against the installed versions):

* Python's ``MozillaCookieJar`` (which yt-dlp's ``YoutubeDLCookieJar`` builds on) refuses the whole file
  unless its first line is the ``# Netscape HTTP Cookie File`` header, and asserts that the include-subdomains
  flag matches a leading dot on the domain; so the header is always written and the flag and the dot are made
  to agree.
* gallery-dl's ``cookiestxt_load`` drops every cookie in the file (with only a warning) when one line does not
  have 7 fields, and neither tool strips a UTF-8 BOM (it breaks the header); so only clean lines are written.
* ``0`` as expiry is a browser-session cookie for yt-dlp and gallery-dl (plain ``MozillaCookieJar`` reads it
  as expired in 1970); it is written as ``0``, as both tools write it themselves.
* yt-dlp warns with the whole offending line (value included) on stderr; clean lines keep values out of logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import attrs

from ._errors import CookiesInvalid
from ._sites import SITES, Site
from ._summary import CookieSummary, utc_now

MAX_COOKIES_FILE_BYTES = 512 * 1024

NETSCAPE_HEADER = "# Netscape HTTP Cookie File"
_HTTPONLY_PREFIX = "#HttpOnly_"
_FIELDS = 7
# Unix seconds, with the fraction some exporters add; 18 digits keeps int() far from its digit limit.
_EXPIRY = re.compile(r"([0-9]{1,18})(?:\.[0-9]+)?")
# Past year 9999 a datetime cannot show it; such a cookie is as good as never expiring.
_LAST_SHOWABLE_SECOND = 253402300799
# C0 controls but TAB, CR and LF, and DEL: never in a cookie, and the loaders would split or choke on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Universal newlines, as the tools open the file; str.splitlines would also split on \x1c, \u2028, ….
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

_EXPORT_HINT = (
    "export the cookies in Netscape/cookies.txt format (7 tab-separated fields a line); "
    "JSON exports are not accepted"
)


@attrs.frozen
class _Cookie:
    line: int
    http_only: bool
    domain: str
    path: str
    secure: bool
    expires: int  # 0: a browser-session cookie
    name: str
    value: str = attrs.field(repr=False)

    def to_line(self) -> str:
        flag = "TRUE" if self.domain.startswith(".") else "FALSE"
        domain = _HTTPONLY_PREFIX + self.domain if self.http_only else self.domain
        secure = "TRUE" if self.secure else "FALSE"
        return "\t".join((domain, flag, self.path, secure, str(self.expires), self.name, self.value))


def parse_cookies_file(data: bytes, site: Site, *, now: datetime | None = None) -> CookieSummary:
    """Check an uploaded cookies.txt for ``site`` and keep only that site's cookies.

    Raises ``CookiesInvalid`` (with the line number where there is one, never a cookie value) when the file is
    too big, not UTF-8 text, not in Netscape format, has no cookies for the site, no login cookie, or a login
    that has already expired.
    """
    summary = read_cookies(data, site, now=now)
    if summary.expired and summary.session_expires is not None:
        raise CookiesInvalid(
            f"the {site.name} login in this file expired on {summary.session_expires:%Y-%m-%d}",
            hint=f"log in to {site.hosts[0]} again in the browser and re-export the cookies",
        )
    return summary


def read_cookies(data: bytes, site: Site, *, now: datetime | None = None) -> CookieSummary:
    """``parse_cookies_file`` that reports an expired login in the summary instead of refusing it."""
    now = now or utc_now()
    cookies = _keep_last(_site_cookies(_cookie_lines(_decode(data, site)), site))
    login = _login_cookies(cookies, site)
    expires = _login_expiry(login, site, now)
    return CookieSummary(
        site=site,
        account=site.account({c.name: c.value for c in cookies}),
        cookie_count=len(cookies),
        session_expires=None if expires == 0 else datetime.fromtimestamp(expires, UTC),
        expired=expires != 0 and expires <= now.timestamp(),
        text=_file_text(cookies, site),
    )


# -- bytes to lines -------------------------------------------------------------------------------------------


def _decode(data: bytes, site: Site) -> str:
    if len(data) > MAX_COOKIES_FILE_BYTES:
        raise CookiesInvalid(
            f"the cookies file is {-(-len(data) // 1024)} KB; the limit is {MAX_COOKIES_FILE_BYTES // 1024} KB",
            hint=f"export only the cookies for {site.hosts[0]} (most exporters can limit it to the current site)",
        )
    if not data.strip():
        raise CookiesInvalid("the cookies file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CookiesInvalid("the cookies file is UTF-16 text", hint="save it as UTF-8 and send it again")
    if data.startswith(b"SQLite format 3\x00"):
        raise CookiesInvalid(
            "this is a browser's cookie database, not a cookies.txt export",
            hint="use a cookies.txt exporter extension in the browser and send the file it saves",
        )
    if (nul := data.find(b"\x00")) >= 0:
        raise CookiesInvalid(
            f"the file is binary, not text (a NUL byte on line {_line_of(data, nul)})",
            hint=_EXPORT_HINT,
            line=_line_of(data, nul),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = _line_of(data, error.start)
        raise CookiesInvalid(
            f"line {line} is not UTF-8 text", hint="save the file as UTF-8 and send it again", line=line
        ) from None
    return text.removeprefix("\ufeff")


def _line_of(data: bytes, offset: int) -> int:
    return len(_LINE_BREAK.findall(data[:offset].decode("latin-1"))) + 1


def _cookie_lines(text: str) -> Iterator[_Cookie]:
    any_cookie = False
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if _CONTROL.search(line):
            raise CookiesInvalid(f"line {number} has a control character", hint=_EXPORT_HINT, line=number)
        http_only = line.startswith(_HTTPONLY_PREFIX)
        if http_only:
            line = line.removeprefix(_HTTPONLY_PREFIX)
        stripped = line.strip()
        # The loaders treat "$" lines as comments too.
        if not stripped or (stripped.startswith(("#", "$")) and not http_only):
            continue
        any_cookie = True
        yield _parse_line(number, line, http_only=http_only)
    if not any_cookie:
        raise CookiesInvalid("the file has no cookies in it", hint=_EXPORT_HINT)


def _parse_line(number: int, line: str, *, http_only: bool) -> _Cookie:
    fields = [field.strip(" ") for field in line.split("\t")]
    if len(fields) != _FIELDS:
        raise _field_count_error(number, line, len(fields))
    domain, subdomains, path, secure, expiry, name, value = fields
    if not domain or any(c.isspace() for c in domain):
        raise _field_error(number, "field 1 (domain) is not a domain name")
    include_subdomains = _true_or_false(subdomains, number, "field 2 (include subdomains)")
    if not path.startswith("/"):
        raise _field_error(number, "field 3 (path) does not start with /")
    is_secure = _true_or_false(secure, number, "field 4 (secure)")
    expires = _EXPIRY.fullmatch(expiry or "0")
    if expires is None:
        raise _field_error(number, "field 5 (expiry) is not a Unix time in seconds (or 0 for a session cookie)")
    # The flag says whether subdomains get the cookie; the loaders insist the leading dot says the same.
    bare = domain.lower().lstrip(".")
    return _Cookie(
        line=number,
        http_only=http_only,
        domain="." + bare if include_subdomains else bare,
        path=path,
        secure=is_secure,
        expires=int(expires.group(1)),
        name=name,
        value=value,
    )


def _true_or_false(field: str, number: int, what: str) -> bool:
    if field.upper() not in ("TRUE", "FALSE"):
        raise _field_error(number, f"{what} is neither TRUE nor FALSE")
    return field.upper() == "TRUE"


def _field_error(number: int, problem: str) -> CookiesInvalid:
    return CookiesInvalid(f"line {number}: {problem}", hint=_EXPORT_HINT, line=number)


def _field_count_error(number: int, line: str, count: int) -> CookiesInvalid:
    stripped = line.strip()
    if stripped[:1] in ("[", "{", '"'):
        return CookiesInvalid(
            f"line {number}: this looks like a JSON cookie export, not a cookies.txt",
            hint="JSON exports are not accepted: export the cookies in Netscape/cookies.txt format",
            line=number,
        )
    words = stripped.split()
    if count == 1 and len(words) >= _FIELDS and words[1].upper() in ("TRUE", "FALSE"):
        return CookiesInvalid(
            f"line {number} has its fields separated by spaces, not tabs",
            hint="send the exported file itself: copying its text turns the tabs into spaces",
            line=number,
        )
    fields = "field" if count == 1 else "fields"
    return CookiesInvalid(
        f"line {number} has {count} tab-separated {fields}; a cookies.txt line has {_FIELDS}",
        hint=_EXPORT_HINT,
        line=number,
    )


# -- lines to one site's cookies ------------------------------------------------------------------------------


def _site_cookies(cookies: Iterator[_Cookie], site: Site) -> list[_Cookie]:
    kept: list[_Cookie] = []
    others: set[str] = set()
    for cookie in cookies:
        if site.owns_cookie_domain(cookie.domain):
            kept.append(cookie)
        else:
            others.update(other.name for other in SITES if other.owns_cookie_domain(cookie.domain))
    if not kept:
        domains = ", ".join(d.lstrip(".") for d in site.cookie_domains)
        found = f"; this file has cookies for {', '.join(sorted(others))}" if others else ""
        raise CookiesInvalid(
            f"the file has no cookies for {site.name} ({domains})",
            hint=f"export the cookies while logged in on {site.hosts[0]}{found}",
        )
    return kept


def _keep_last(cookies: list[_Cookie]) -> list[_Cookie]:
    # As a cookie jar does: the same domain, path and name again replaces the earlier cookie.
    by_identity = {(c.domain, c.path, c.name): c for c in cookies}
    return sorted(by_identity.values(), key=lambda c: c.line)


def _login_cookies(cookies: list[_Cookie], site: Site) -> dict[str, list[_Cookie]]:
    login = {name: [c for c in cookies if c.name == name and c.value] for name in site.session_cookies}
    present = {name: found for name, found in login.items() if found}
    if not present or (site.session_rule == "all" and len(present) < len(login)):
        missing = [name for name, found in login.items() if not found]
        needed = site.describe_session_cookies() if site.session_rule == "any" else " and ".join(missing)
        public = f" (public {site.name} stories need no cookies at all)" if site.login_optional else ""
        raise CookiesInvalid(
            f"the {site.name} cookies have no login cookie ({needed})",
            hint=f"log in to {site.hosts[0]} in the browser, then export the cookies again{public}",
        )
    return present


def _login_expiry(login: dict[str, list[_Cookie]], site: Site, now: datetime) -> int:
    """When the login runs out, in Unix seconds; 0 for a browser-session login."""
    # Each session cookie name lasts as long as its longest-lived copy.
    lasts = [_longest(found, now) for found in login.values()]
    if site.session_rule == "all":
        # The login ends with the first of its cookies to end.
        dated = [expires for expires in lasts if expires != 0]
        return min(dated, default=0)
    return _longest_of(lasts, now)


def _longest(cookies: list[_Cookie], now: datetime) -> int:
    return _longest_of([c.expires for c in cookies], now)


def _longest_of(expiries: list[int], now: datetime) -> int:
    live_dated = [e for e in expiries if e > now.timestamp()]
    if live_dated:
        return min(max(live_dated), _LAST_SHOWABLE_SECOND)
    if 0 in expiries:
        return 0
    return max(expiries)


def _file_text(cookies: list[_Cookie], site: Site) -> str:
    lines = [
        NETSCAPE_HEADER,
        f"# {site.name} cookies kept by StoryFlow (only {', '.join(site.cookie_domains)}).",
        "",
        *(c.to_line() for c in cookies),
    ]
    return "\n".join(lines) + "\n"
