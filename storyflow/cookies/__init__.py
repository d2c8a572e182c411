"""Cookies users send for the sites that need a login: checked, cut down to the site, stored privately.

A user sends a Netscape cookies.txt and ``.cookies set <site>``; ``parse_cookies_file`` checks it and keeps only
that site's cookies, ``CookieStore`` keeps them per user (0600 files), and a download job gets its own copy from
``CookieStore.copy_for_job``.
"""

from ._errors import CookiesInvalid as CookiesInvalid
from ._errors import UnknownSite as UnknownSite
from ._errors import UnsafeCookiePath as UnsafeCookiePath
from ._jobs import JobCookies as JobCookies
from ._jobs import login_hint as login_hint
from ._parse import MAX_COOKIES_FILE_BYTES as MAX_COOKIES_FILE_BYTES
from ._parse import parse_cookies_file as parse_cookies_file
from ._sites import SITES as SITES
from ._sites import Site as Site
from ._sites import known_sites as known_sites
from ._sites import site_by_name as site_by_name
from ._sites import site_for_url as site_for_url
from ._store import CookieStore as CookieStore
from ._summary import CookieSummary as CookieSummary
from ._summary import describe as describe
