"""Cookies users send: sites, parsing and refusing cookies.txt files, the private store, and the two tools' loaders."""

from __future__ import annotations

import http.cookiejar
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gallery_dl import util as gallery_dl_util
from yt_dlp.cookies import YoutubeDLCookieJar

from storyflow import InputError
from storyflow.cookies import (
    MAX_COOKIES_FILE_BYTES,
    SITES,
    CookiesInvalid,
    CookieStore,
    CookieSummary,
    Site,
    UnknownSite,
    UnsafeCookiePath,
    describe,
    parse_cookies_file,
    site_by_name,
    site_for_url,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SOON = int(datetime(2027, 3, 1, tzinfo=UTC).timestamp())
LATER = int(datetime(2027, 9, 1, tzinfo=UTC).timestamp())
PAST = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
# For the loaders, which compare against the real clock.
FAR = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp())
HEADER = "# Netscape HTTP Cookie File"

INSTAGRAM, TIKTOK, X, FACEBOOK, SNAPCHAT, YOUTUBE = SITES


def cookie(
    domain: str,
    name: str,
    value: str,
    expires: int | str = SOON,
    *,
    subdomains: str | None = None,
    http_only: bool = False,
    secure: str = "TRUE",
    path: str = "/",
) -> str:
    flag = subdomains if subdomains is not None else ("TRUE" if domain.startswith(".") else "FALSE")
    prefix = "#HttpOnly_" if http_only else ""
    return "\t".join((prefix + domain, flag, path, secure, str(expires), name, value))


def cookies_file(*lines: str, newline: str = "\n", bom: bool = False, header: bool = True) -> bytes:
    text = newline.join(([HEADER, "# exported by a browser extension", ""] if header else []) + list(lines))
    return ("\ufeff" if bom else "").encode() + (text + newline).encode()


def parse(data: bytes, site: Site) -> CookieSummary:
    return parse_cookies_file(data, site, now=NOW)


def cookie_lines(summary: CookieSummary) -> list[str]:
    return [line for line in summary.text.splitlines() if line and not line.startswith("# ")]


# -- sites -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://www.instagram.com/stories/jane/", "instagram"),
        ("https://i.instagram.com/api/v1/x", "instagram"),
        ("https://WWW.Instagram.COM/p/abc/", "instagram"),
        ("https://vm.tiktok.com/ZM123/", "tiktok"),
        ("https://x.com/jane/status/1", "x"),
        ("https://mobile.twitter.com/jane/status/1", "x"),
        ("https://m.facebook.com/stories/1", "facebook"),
        ("https://fb.watch/abc/", "facebook"),
        ("https://story.snapchat.com/p/1", "snapchat"),
        ("https://music.youtube.com/watch?v=1", "youtube"),
        ("https://youtu.be/abc", "youtube"),
        ("instagram.com/jane", "instagram"),
    ],
)
def test_site_for_url_goes_by_host_including_subdomains(url: str, key: str) -> None:
    site = site_for_url(url)
    assert site is not None and site.key == key


@pytest.mark.parametrize(
    "url",
    [
        "https://www.google.com/search?q=youtube",  # .google.com holds YouTube cookies but is not YouTube
        "https://evilinstagram.com/",
        "https://instagram.com.evil.example/",
        "https://example.com/?u=instagram.com",
        "http://[::1",
        "",
    ],
)
def test_site_for_url_knows_no_other_hosts(url: str) -> None:
    assert site_for_url(url) is None


@pytest.mark.parametrize(
    ("name", "key"),
    [("ig", "instagram"), ("IG", "instagram"), (" Instagram ", "instagram"), ("Twitter", "x"), ("x.com", "x"),
     ("fb", "facebook"), ("YT", "youtube"), ("snapchat", "snapchat"), ("www.tiktok.com", "tiktok")],
)
def test_site_by_name_takes_keys_aliases_and_domains(name: str, key: str) -> None:
    assert site_by_name(name).key == key


def test_an_unknown_site_name_lists_the_known_sites() -> None:
    with pytest.raises(UnknownSite, match="no site called 'MySpace'") as caught:
        site_by_name("MySpace")
    assert isinstance(caught.value, InputError)
    assert "instagram (ig, insta)" in caught.value.hint and "x (twitter)" in caught.value.hint
    assert all(site.key in caught.value.hint for site in SITES)


def test_sites_say_what_the_brief_says() -> None:
    assert [site.key for site in SITES] == ["instagram", "tiktok", "x", "facebook", "snapchat", "youtube"]
    assert X.cookie_domains == (".x.com", ".twitter.com")
    assert FACEBOOK.session_rule == "all" and INSTAGRAM.session_rule == "any"
    assert [site.key for site in SITES if site.login_optional] == ["snapchat"]


# -- valid files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "data", "account", "count"),
    [
        pytest.param(
            INSTAGRAM,
            cookies_file(
                cookie(".instagram.com", "csrftoken", "csrf-ig"),
                cookie(".instagram.com", "sessionid", "sess-ig", http_only=True),
                cookie(".instagram.com", "ds_user_id", "1234567"),
                cookie("i.instagram.com", "mid", "mid-ig"),
            ),
            "id 1234567", 4, id="instagram-id",
        ),
        pytest.param(
            INSTAGRAM,
            cookies_file(
                cookie(".instagram.com", "sessionid", "sess-ig"),
                cookie(".instagram.com", "ds_user_id", "1234567"),
                cookie(".instagram.com", "ds_user", "jane.doe"),
            ),
            "jane.doe", 3, id="instagram-username",
        ),
        pytest.param(
            TIKTOK,
            cookies_file(cookie(".tiktok.com", "sessionid_ss", "sess-tt"), cookie(".tiktok.com", "ttwid", "tw"),
                         newline="\r\n"),
            None, 2, id="tiktok-crlf-second-session-name",
        ),
        pytest.param(
            X,
            cookies_file(
                cookie(".x.com", "auth_token", "sess-x", http_only=True),
                cookie(".x.com", "twid", "u%3D99887766"),
                cookie(".twitter.com", "ct0", "ct0-x"),
            ),
            "id 99887766", 3, id="x-both-domains",
        ),
        pytest.param(
            FACEBOOK,
            cookies_file(cookie(".facebook.com", "c_user", "100001"), cookie(".facebook.com", "xs", "xs-fb"),
                         bom=True),
            "id 100001", 2, id="facebook-bom",
        ),
        pytest.param(
            SNAPCHAT,
            cookies_file(cookie("accounts.snapchat.com", "__Host-sc-a-session", "sess-sc"), header=False),
            None, 1, id="snapchat-host-only-no-header",
        ),
        pytest.param(
            YOUTUBE,
            cookies_file(
                "",
                "   # an indented comment",
                cookie(".youtube.com", "__Secure-3PSID", "sess-yt", http_only=True),
                cookie(".google.com", "SID", "sid-google"),
                cookie("accounts.google.com", "LSID", "lsid"),
            ),
            None, 3, id="youtube-google-domain-comments",
        ),
    ],
)
def test_valid_files_per_site(site: Site, data: bytes, account: str | None, count: int) -> None:
    summary = parse(data, site)
    assert summary.site is site
    assert summary.account == account
    assert summary.cookie_count == count == len(cookie_lines(summary))
    assert summary.session_expires == datetime(2027, 3, 1, tzinfo=UTC)
    assert not summary.expired
    assert summary.text.startswith(HEADER + "\n")
    assert "\r" not in summary.text and "\ufeff" not in summary.text


def test_other_domains_are_dropped_and_the_file_is_normalised() -> None:
    data = cookies_file(
        cookie(".tiktok.com", "sessionid", "tiktok-secret"),
        cookie("instagram.com", "sessionid", "sess-ig", subdomains="TRUE", http_only=True),
        cookie(".instagram.com", "csrftoken", "csrf-ig", subdomains="FALSE", secure="false"),
        cookie(".evilinstagram.com", "sessionid", "lookalike-secret"),
        cookie("www.instagram.com.evil.example", "sessionid", "suffix-secret"),
        cookie(".google.com", "SID", "google-secret"),
        cookie(".instagram.com", "rur", "rur-old"),
        cookie(".instagram.com", "rur", "rur-new", "1780000000.75"),
        newline="\r\n",
    )
    summary = parse(data, INSTAGRAM)
    # The flag decides; the dot is made to agree (MozillaCookieJar asserts they match).
    assert cookie_lines(summary) == [
        f"#HttpOnly_.instagram.com\tTRUE\t/\tTRUE\t{SOON}\tsessionid\tsess-ig",
        f"instagram.com\tFALSE\t/\tFALSE\t{SOON}\tcsrftoken\tcsrf-ig",
        ".instagram.com\tTRUE\t/\tTRUE\t1780000000\trur\trur-new",
    ]
    assert summary.cookie_count == 3
    for dropped in ("tiktok-secret", "lookalike-secret", "suffix-secret", "google-secret", "rur-old"):
        assert dropped not in summary.text
    assert summary.text.splitlines()[:2] == [HEADER, "# Instagram cookies kept by StoryFlow (only .instagram.com)."]


def test_the_summary_repr_and_description_hold_no_cookie_value() -> None:
    summary = parse(cookies_file(cookie(".instagram.com", "sessionid", "very-secret-session")), INSTAGRAM)
    assert "very-secret-session" in summary.text
    assert "very-secret-session" not in repr(summary)
    assert "very-secret-session" not in describe(summary, now=NOW)


@pytest.mark.parametrize(
    ("cookies", "account"),
    [
        ({"ds_user": "<b>jane</b>", "ds_user_id": "42"}, "id 42"),
        ({"ds_user_id": "not-a-number"}, None),
        ({}, None),
    ],
)
def test_instagram_account_names_are_shown_only_when_they_look_like_one(
    cookies: dict[str, str], account: str | None
) -> None:
    lines = [cookie(".instagram.com", name, value) for name, value in cookies.items()]
    summary = parse(cookies_file(cookie(".instagram.com", "sessionid", "s"), *lines), INSTAGRAM)
    assert summary.account == account


@pytest.mark.parametrize(("twid", "account"), [('"u=123"', "id 123"), ("u=123", "id 123"), ("x%3D123", None)])
def test_x_account_from_twid(twid: str, account: str | None) -> None:
    data = cookies_file(cookie(".x.com", "auth_token", "t"), cookie(".x.com", "twid", twid))
    assert parse(data, X).account == account


# -- session cookies and their expiry --------------------------------------------------------------------------


@pytest.mark.parametrize("expires", ["0", ""])
def test_a_browser_session_cookie_has_no_expiry(expires: str) -> None:
    summary = parse(cookies_file(cookie(".instagram.com", "sessionid", "s", expires)), INSTAGRAM)
    assert summary.session_expires is None and not summary.expired
    assert cookie_lines(summary) == [".instagram.com\tTRUE\t/\tTRUE\t0\tsessionid\ts"]
    assert describe(summary, now=NOW) == "instagram: logged in · browser-session login (no expiry date)"


def test_one_live_session_cookie_is_enough_where_any_will_do() -> None:
    data = cookies_file(cookie(".tiktok.com", "sessionid", "old", PAST), cookie(".tiktok.com", "sessionid_ss", "s"))
    summary = parse(data, TIKTOK)
    assert not summary.expired and summary.session_expires == datetime(2027, 3, 1, tzinfo=UTC)


def test_a_dated_session_cookie_is_preferred_over_a_browser_session_one() -> None:
    data = cookies_file(cookie(".tiktok.com", "sessionid", "a", 0), cookie(".tiktok.com", "sessionid_ss", "b", LATER))
    assert parse(data, TIKTOK).session_expires == datetime(2027, 9, 1, tzinfo=UTC)


def test_where_all_session_cookies_are_needed_the_first_to_expire_ends_the_login() -> None:
    data = cookies_file(cookie(".facebook.com", "c_user", "1", LATER), cookie(".facebook.com", "xs", "x", SOON))
    assert parse(data, FACEBOOK).session_expires == datetime(2027, 3, 1, tzinfo=UTC)
    data = cookies_file(cookie(".facebook.com", "c_user", "1", 0), cookie(".facebook.com", "xs", "x", LATER))
    assert parse(data, FACEBOOK).session_expires == datetime(2027, 9, 1, tzinfo=UTC)


def test_an_expiry_past_year_9999_is_shown_as_the_last_day() -> None:
    summary = parse(cookies_file(cookie(".instagram.com", "sessionid", "s", "999999999999999")), INSTAGRAM)
    assert summary.session_expires is not None and summary.session_expires.year == 9999
    assert "999999999999999" in summary.text


# -- refused files ---------------------------------------------------------------------------------------------

# Every cookie value in these files contains S3CRET: none may show in what the user is told.
REFUSED: list[tuple[str, Site, bytes, str, int | None]] = [
    ("expired", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_sess", PAST),
                  cookie(".instagram.com", "csrftoken", "S3CRET_csrf", LATER)),
     "the Instagram login in this file expired on 2025-01-01", None),
    ("all-expired", TIKTOK,
     cookies_file(cookie(".tiktok.com", "sessionid", "S3CRET_a", PAST),
                  cookie(".tiktok.com", "sessionid_ss", "S3CRET_b", PAST + 10)),
     "expired on 2025-01-01", None),
    ("facebook-one-expired", FACEBOOK,
     cookies_file(cookie(".facebook.com", "c_user", "S3CRET_1", LATER),
                  cookie(".facebook.com", "xs", "S3CRET_xs", PAST)),
     "expired on 2025-01-01", None),
    ("no-session", INSTAGRAM, cookies_file(cookie(".instagram.com", "csrftoken", "S3CRET_csrf")),
     r"no login cookie \(sessionid\)", None),
    ("empty-session", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", ""),
                                              cookie(".instagram.com", "mid", "S3CRET_mid")),
     r"no login cookie \(sessionid\)", None),
    ("facebook-half", FACEBOOK, cookies_file(cookie(".facebook.com", "c_user", "S3CRET_1")),
     r"no login cookie \(xs\)", None),
    ("snapchat-no-session", SNAPCHAT, cookies_file(cookie(".snapchat.com", "sc-a-nonce", "S3CRET_n")),
     r"no login cookie \(__Host-sc-a-session or sc-a-session\)", None),
    ("wrong-domain", INSTAGRAM, cookies_file(cookie(".tiktok.com", "sessionid", "S3CRET_tt")),
     r"no cookies for Instagram \(instagram.com\)", None),
    ("lookalike-domain", INSTAGRAM, cookies_file(cookie(".notinstagram.com", "sessionid", "S3CRET_x")),
     "no cookies for Instagram", None),
    ("six-fields", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_ok"),
                  "\t".join((".instagram.com", "TRUE", "/", "TRUE", str(SOON), "S3CRET_nameless"))),
     "line 5 has 6 tab-separated fields; a cookies.txt line has 7", 5),
    ("eight-fields", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_a\tS3CRET_b"), newline="\r\n"),
     "line 4 has 8 tab-separated fields", 4),
    ("spaces", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_sp").replace("\t", " ")),
     "line 4 has its fields separated by spaces, not tabs", 4),
    ("json", INSTAGRAM,
     b'[\n  {"domain": ".instagram.com", "name": "sessionid", "value": "S3CRET_json"}\n]\n',
     "line 1: this looks like a JSON cookie export", 1),
    ("json-object", INSTAGRAM, b'{"cookies": [{"name": "sessionid", "value": "S3CRET_json"}]}',
     "JSON cookie export", 1),
    ("bad-subdomain-flag", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_f", subdomains="yes")),
     r"line 4: field 2 \(include subdomains\) is neither TRUE nor FALSE", 4),
    ("bad-secure-flag", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_f", secure="S3CRET_shifted")),
     r"line 4: field 4 \(secure\) is neither TRUE nor FALSE", 4),
    ("bad-expiry", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_e", "tomorrow")),
     r"line 4: field 5 \(expiry\) is not a Unix time", 4),
    ("negative-expiry", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_e", "-1")),
     r"field 5 \(expiry\)", 4),
    ("bad-path", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_p", path="S3CRET_x")),
     r"line 4: field 3 \(path\) does not start with /", 4),
    ("bad-line-elsewhere", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_ok"),
                  cookie(".example.com", "id", "S3CRET_other", "soon")),
     "line 5: field 5", 5),
    ("nul", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_\x00bin")),
     r"binary, not text \(a NUL byte on line 4\)", 4),
    ("sqlite", INSTAGRAM, b"SQLite format 3\x00" + b"\x00" * 80 + b"S3CRET_db",
     "a browser's cookie database", None),
    ("utf16", INSTAGRAM, b"\xff\xfe" + cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_u")).decode()
     .encode("utf-16-le"), "UTF-16", None),
    ("not-utf8", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "mid", "S3CRET_m"), cookie(".instagram.com", "sessionid", "S3CRET_\xe9"))
     .replace("S3CRET_\xe9".encode(), b"S3CRET_\xe9"),
     "line 5 is not UTF-8 text", 5),
    ("control-char", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_\x01c")),
     "line 4 has a control character", 4),
    ("lone-cr-splits-lines", INSTAGRAM, cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_a\rS3CRET_b")),
     "line 5 has 1 tab-separated field;", 5),
    ("oversize", INSTAGRAM,
     cookies_file(cookie(".instagram.com", "sessionid", "S3CRET_big"), "#" * MAX_COOKIES_FILE_BYTES),
     "the cookies file is 513 KB; the limit is 512 KB", None),
    ("comments-only", INSTAGRAM, cookies_file("# S3CRET_not_a_cookie"), "the file has no cookies in it", None),
]


@pytest.mark.parametrize(("site", "data", "message", "line"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_files_say_why_and_where(site: Site, data: bytes, message: str, line: int | None) -> None:
    with pytest.raises(CookiesInvalid, match=message) as caught:
        parse(data, site)
    assert isinstance(caught.value, InputError)
    assert caught.value.line == line
    assert caught.value.hint


@pytest.mark.parametrize(("site", "data"), [r[1:3] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_no_cookie_value_reaches_the_user(site: Site, data: bytes) -> None:
    values = {value.decode("latin-1") for value in re.findall(rb"S3CRET_[^\t\r\n\"\s]*", data.replace(b"\x00", b""))}
    assert values, "every refused file carries a secret to look for"
    with pytest.raises(CookiesInvalid) as caught:
        parse(data, site)
    error = caught.value
    told = "\n".join((str(error), error.message, error.hint, error.user_text(), repr(error)))
    assert "S3CRET" not in told
    assert not [value for value in values if value in told]


def test_refusal_hints_say_what_to_do() -> None:
    def hint(key: str) -> str:
        _, site, data, _, _ = next(r for r in REFUSED if r[0] == key)
        with pytest.raises(CookiesInvalid) as caught:
            parse(data, site)
        return caught.value.hint

    assert "log in to instagram.com again in the browser and re-export" in hint("expired")
    assert "Netscape/cookies.txt" in hint("six-fields") and "JSON exports are not accepted" in hint("six-fields")
    assert "JSON exports are not accepted" in hint("json")
    assert "public Snapchat stories need no cookies" in hint("snapchat-no-session")
    assert "this file has cookies for TikTok" in hint("wrong-domain")
    assert "turns the tabs into spaces" in hint("spaces")
    assert "export only the cookies for instagram.com" in hint("oversize")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(CookiesInvalid, match="the cookies file is empty"):
        parse(b" \n\n", INSTAGRAM)


def test_a_file_of_exactly_the_size_cap_is_read() -> None:
    start = cookies_file(cookie(".instagram.com", "sessionid", "s"))
    padding = MAX_COOKIES_FILE_BYTES - len(start) - 1
    data = start + b"#" * padding + b"\n"
    assert len(data) == MAX_COOKIES_FILE_BYTES
    assert parse(data, INSTAGRAM).cookie_count == 1


# -- describe --------------------------------------------------------------------------------------------------


def test_describe_says_who_and_until_when() -> None:
    data = cookies_file(cookie(".instagram.com", "sessionid", "s"), cookie(".instagram.com", "ds_user", "jane"))
    summary = parse(data, INSTAGRAM)
    assert describe(summary, now=NOW) == "instagram: logged in as jane · session expires 2027-03-01 (in 272 days)"
    almost = datetime(2027, 2, 28, 0, 0, tzinfo=UTC)
    assert describe(summary, now=almost).endswith("(in 1 day)")
    assert describe(summary, now=almost + timedelta(hours=12)).endswith("(in less than a day)")
    tiktok = parse(cookies_file(cookie(".tiktok.com", "sessionid", "s")), TIKTOK)
    assert describe(tiktok, now=NOW) == "tiktok: logged in · session expires 2027-03-01 (in 272 days)"


async def test_describe_marks_an_expired_login(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = CookieStore(tmp_path, clock=clock)
    data = cookies_file(cookie(".facebook.com", "c_user", "100001", LATER), cookie(".facebook.com", "xs", "x", SOON))
    await store.save(7, parse(data, FACEBOOK))
    clock.now = datetime(2027, 3, 2, tzinfo=UTC)
    (summary,) = await store.list(7)
    assert summary.expired
    assert describe(summary, now=clock.now) == "facebook: logged in as id 100001 · EXPIRED on 2027-03-01"


# -- the tools load what is written ----------------------------------------------------------------------------

AWKWARD_FILE = cookies_file(
    cookie("instagram.com", "sessionid", "sess-value", FAR, subdomains="TRUE", http_only=True),
    cookie(".instagram.com", "csrftoken", "csrf-value", FAR, subdomains="FALSE"),
    cookie("www.instagram.com", "mid", "browser-session-value", 0),
    cookie(".tiktok.com", "sessionid", "tiktok-value", FAR),
    newline="\r\n",
    bom=True,
)
EXPECTED_JAR = {
    (".instagram.com", "sessionid", "sess-value"),
    ("instagram.com", "csrftoken", "csrf-value"),
    ("www.instagram.com", "mid", "browser-session-value"),
}


def jar_contents(cookies: Iterator[http.cookiejar.Cookie] | list[http.cookiejar.Cookie]) -> set[tuple[str, ...]]:
    return {(c.domain, c.name, c.value or "") for c in cookies}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "cookies.txt"
    path.write_text(parse(AWKWARD_FILE, INSTAGRAM).text, encoding="utf-8")
    return path


def test_the_raw_file_would_not_load(tmp_path: Path) -> None:
    # What the next tests prove is ours: the upload itself (BOM, flags that contradict the dot) breaks the jar.
    raw = tmp_path / "raw.txt"
    raw.write_bytes(AWKWARD_FILE)
    with pytest.raises(http.cookiejar.LoadError):
        http.cookiejar.MozillaCookieJar().load(str(raw), ignore_discard=True, ignore_expires=True)


def test_mozilla_cookie_jar_loads_the_written_file(written: Path) -> None:
    jar = http.cookiejar.MozillaCookieJar()
    jar.load(str(written), ignore_discard=True, ignore_expires=True)
    assert jar_contents(list(jar)) == EXPECTED_JAR
    (session,) = [c for c in jar if c.name == "sessionid"]
    assert session.has_nonstandard_attr("HTTPOnly") and session.expires == FAR and session.secure


def test_yt_dlp_cookie_jar_loads_the_written_file(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jar = YoutubeDLCookieJar(written)
    jar.load()
    assert jar_contents(list(jar)) == EXPECTED_JAR
    (browser_session,) = [c for c in jar if c.name == "mid"]
    assert browser_session.expires is None and browser_session.discard
    # yt-dlp prints skipped lines, values and all, to stderr: none may be skipped.
    assert capsys.readouterr().err == ""
    header = jar.get_cookie_header("https://www.instagram.com/stories/jane/")
    assert header is not None and "sessionid=sess-value" in header


def test_gallery_dl_loads_the_written_file(written: Path) -> None:
    with written.open(encoding="utf-8") as file:
        assert jar_contents(gallery_dl_util.cookiestxt_load(file)) == EXPECTED_JAR


# -- the store -------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def loose_umask() -> Iterator[None]:
    # Modes must not depend on the umask the userbot happens to run with.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def store(tmp_path: Path) -> CookieStore:
    return CookieStore(tmp_path / "cookies", clock=Clock(NOW))


def ig_summary(value: str = "sess-ig") -> CookieSummary:
    return parse(cookies_file(cookie(".instagram.com", "sessionid", value), cookie(".instagram.com", "ds_user",
                                                                                   "jane")), INSTAGRAM)


def x_summary() -> CookieSummary:
    return parse(cookies_file(cookie(".x.com", "auth_token", "tok"), cookie(".x.com", "twid", "u%3D5")), X)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("loose_umask")
async def test_saved_cookies_are_private_and_read_back(store: CookieStore) -> None:
    path = await store.save(42, ig_summary())
    assert path == store.root / "42" / "instagram.txt"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert await store.path_for(42, INSTAGRAM) == path
    again = await store.load_summary(42, INSTAGRAM)
    assert again == ig_summary()
    assert await store.load_summary(42, X) is None and await store.path_for(42, X) is None
    assert await store.load_summary(43, INSTAGRAM) is None and await store.path_for(43, INSTAGRAM) is None


@pytest.mark.usefixtures("loose_umask")
async def test_a_loose_folder_and_file_are_tightened(store: CookieStore) -> None:
    folder = store.root / "42"
    folder.mkdir(parents=True, mode=0o777)
    (folder / "instagram.txt").write_text("old")
    (folder / "instagram.txt").chmod(0o666)
    path = await store.save(42, ig_summary())
    assert mode(folder) == 0o700 and mode(path) == 0o600


async def test_saving_replaces_the_file_atomically(store: CookieStore, tmp_path: Path) -> None:
    path = await store.save(42, ig_summary("first"))
    old = tmp_path / "old-link"
    os.link(path, old)  # still names the first file after a replace, unlike after a rewrite in place
    await store.save(42, ig_summary("second"))
    assert "first" in old.read_text() and "second" not in old.read_text()
    assert "second" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["instagram.txt"]


async def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    store: CookieStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = await store.save(42, ig_summary("first"))

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        await store.save(42, ig_summary("second"))
    assert "first" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["instagram.txt"]


async def test_list_delete_and_delete_all(store: CookieStore) -> None:
    assert await store.list(42) == []
    await store.save(42, x_summary())
    await store.save(42, ig_summary())
    await store.save(43, ig_summary())
    assert [(s.site.key, s.account) for s in await store.list(42)] == [("instagram", "jane"), ("x", "id 5")]
    assert await store.delete(42, INSTAGRAM)
    assert not await store.delete(42, INSTAGRAM)
    assert not await store.delete(44, INSTAGRAM)
    assert [s.site.key for s in await store.list(42)] == ["x"]
    (store.root / "42" / ".instagram.txt.0123abcd.tmp").write_text("left by a crash")
    assert await store.delete_all(42) == 1
    assert not (store.root / "42").exists()
    assert await store.delete_all(42) == 0
    assert [s.site.key for s in await store.list(43)] == ["instagram"]


async def test_list_recomputes_expired_against_the_clock(store: CookieStore) -> None:
    await store.save(42, ig_summary())
    (before,) = await store.list(42)
    assert not before.expired
    assert isinstance(store.clock, Clock)
    store.clock.now = datetime(2027, 3, 1, 0, 0, 1, tzinfo=UTC)
    (after,) = await store.list(42)
    assert after.expired and after.session_expires == before.session_expires
    summary = await store.load_summary(42, INSTAGRAM)
    assert summary is not None and summary.expired


@pytest.mark.usefixtures("loose_umask")
async def test_a_job_gets_its_own_copy(store: CookieStore, tmp_path: Path) -> None:
    stored = await store.save(42, ig_summary())
    job = tmp_path / "job"
    job.mkdir()
    assert await store.copy_for_job(42, X, job) is None
    copy = await store.copy_for_job(42, INSTAGRAM, job)
    assert copy is not None and copy.parent == job and copy != stored
    assert mode(copy) == 0o600 and copy.read_bytes() == stored.read_bytes()
    before = stored.read_bytes()
    # What yt-dlp does with its --cookies file at exit: write the jar back, new cookies and all.
    jar = YoutubeDLCookieJar(copy)
    jar.load()
    jar.set_cookie(http.cookiejar.Cookie(
        0, "fresh", "from-the-site", None, False, ".instagram.com", True, True, "/", True, True, FAR, False,
        None, None, {},
    ))
    jar.save()
    assert "from-the-site" in copy.read_text()
    assert stored.read_bytes() == before
    assert await store.copy_for_job(42, INSTAGRAM, job) == copy  # a second copy replaces the first
    assert "from-the-site" not in copy.read_text()


async def test_a_damaged_stored_file_is_reported(store: CookieStore) -> None:
    path = await store.save(42, ig_summary())
    path.write_text("garbage\n")
    with pytest.raises(CookiesInvalid, match="the stored Instagram cookies are damaged"):
        await store.load_summary(42, INSTAGRAM)


@pytest.mark.parametrize("user_id", [0, -5])
async def test_user_ids_are_positive(store: CookieStore, user_id: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        await store.save(user_id, ig_summary())
    with pytest.raises(ValueError, match="positive"):
        await store.list(user_id)
    assert not store.root.exists()


@pytest.mark.parametrize("user_id", [True, "42", 42.0])
async def test_user_ids_are_ints(store: CookieStore, user_id: object) -> None:
    with pytest.raises(TypeError):
        await store.path_for(user_id, INSTAGRAM)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.delete_all(user_id)  # type: ignore[arg-type]


async def test_a_linked_user_folder_is_refused(store: CookieStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store.root.mkdir()
    (store.root / "42").symlink_to(elsewhere)
    with pytest.raises(UnsafeCookiePath):
        await store.save(42, ig_summary())
    assert list(elsewhere.iterdir()) == []
    (elsewhere / "instagram.txt").write_text(ig_summary().text)
    with pytest.raises(UnsafeCookiePath):
        await store.load_summary(42, INSTAGRAM)
    with pytest.raises(UnsafeCookiePath):
        await store.delete_all(42)
    assert (elsewhere / "instagram.txt").exists()


async def test_a_linked_cookies_file_is_neither_written_nor_read(store: CookieStore, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    await store.save(42, x_summary())
    (store.root / "42" / "instagram.txt").symlink_to(victim)
    with pytest.raises(UnsafeCookiePath):
        await store.save(42, ig_summary())
    assert victim.read_text() == "not yours"
    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(UnsafeCookiePath):
        await store.load_summary(42, INSTAGRAM)
    with pytest.raises(UnsafeCookiePath):
        await store.path_for(42, INSTAGRAM)
    with pytest.raises(UnsafeCookiePath):
        await store.copy_for_job(42, INSTAGRAM, job)
    with pytest.raises(UnsafeCookiePath):
        await store.list(42)
    assert list(job.iterdir()) == []
    assert await store.delete(42, INSTAGRAM)  # removes the link, not what it points at
    assert victim.read_text() == "not yours"
    assert [s.site.key for s in await store.list(42)] == ["x"]


async def test_a_linked_job_folder_or_copy_is_refused(store: CookieStore, tmp_path: Path) -> None:
    await store.save(42, ig_summary())
    real_job = tmp_path / "real-job"
    real_job.mkdir()
    linked_job = tmp_path / "linked-job"
    linked_job.symlink_to(real_job)
    with pytest.raises(UnsafeCookiePath):
        await store.copy_for_job(42, INSTAGRAM, linked_job)
    assert list(real_job.iterdir()) == []
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (real_job / "instagram-cookies.txt").symlink_to(victim)
    with pytest.raises(UnsafeCookiePath):
        await store.copy_for_job(42, INSTAGRAM, real_job)
    assert victim.read_text() == "not yours"
