"""Each user's cookies, one file per site: ``<root>/<user_id>/<site>.txt``, 0600 in a 0700 folder.

Every path below the root is opened relative to a folder descriptor with ``O_NOFOLLOW``, so a symlink planted
where a cookies file or a user's folder should be is refused instead of followed (a followed link would let a
write land elsewhere, or a read hand some other file to a download job). The root itself comes from the
owner's config and may be a link.

Trio-flavoured: the file work runs in a worker thread.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from ._errors import CookiesInvalid, UnsafeCookiePath
from ._parse import MAX_COOKIES_FILE_BYTES, read_cookies
from ._sites import SITES, Site
from ._summary import CookieSummary, utc_now

T = TypeVar("T")

_FILE_MODE = 0o600
_DIR_MODE = 0o700
_TEMP_SUFFIX = ".tmp"


@attrs.define(eq=False)
class CookieStore:
    """The cookies users sent, per user and site. ``clock`` is when "now" is, for the expired flag."""

    root: Path
    clock: Callable[[], datetime] = utc_now

    async def save(self, user_id: int, summary: CookieSummary) -> Path:
        """Store ``summary.text`` as the user's cookies for its site, replacing any before (atomically)."""
        return await self._run(partial(self._save, _checked_user(user_id), summary))

    async def load_summary(self, user_id: int, site: Site) -> CookieSummary | None:
        """The stored cookies for ``site``, re-read now (so ``expired`` is current); None if there are none."""
        return await self._run(partial(self._load_summary, _checked_user(user_id), site))

    async def path_for(self, user_id: int, site: Site) -> Path | None:
        """Where the stored cookies for ``site`` are; None if there are none.

        For reading only: hand a download tool ``copy_for_job`` instead, since both tools write their cookie
        jar back to the file they are given.
        """
        return await self._run(partial(self._path_for, _checked_user(user_id), site))

    async def copy_for_job(self, user_id: int, site: Site, folder: Path) -> Path | None:
        """A 0600 copy of the stored cookies in ``folder`` (which must exist and not be a link), for a tool's
        ``--cookies``; None if there are none.

        gallery-dl rewrites its cookies file through ``<file>.tmp`` created with the process umask, so after a run
        the copy (and that temp file) are only as private as ``folder`` is: delete the job folder afterwards.
        """
        return await self._run(partial(self._copy_for_job, _checked_user(user_id), site, folder))

    async def delete(self, user_id: int, site: Site) -> bool:
        """Forget the user's cookies for ``site``; False if there were none."""
        return await self._run(partial(self._delete, _checked_user(user_id), site))

    async def delete_all(self, user_id: int) -> int:
        """Forget all the user's cookies; how many sites had some."""
        return await self._run(partial(self._delete_all, _checked_user(user_id)))

    async def list(self, user_id: int) -> builtins.list[CookieSummary]:
        """Every site the user has cookies for, in the order of ``SITES``, with ``expired`` as of now."""
        return await self._run(partial(self._list, _checked_user(user_id)))

    async def _run(self, work: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(work)

    # -- in the worker thread ----------------------------------------------------------------------------------

    def _save(self, user_id: int, summary: CookieSummary) -> Path:
        with self._made_user_folder(user_id) as folder:
            _write_private(folder, _file_name(summary.site), summary.text.encode("utf-8"))
        return self._file_path(user_id, summary.site)

    def _load_summary(self, user_id: int, site: Site) -> CookieSummary | None:
        data = self._read(user_id, site)
        if data is None:
            return None
        try:
            return read_cookies(data, site, now=self.clock())
        except CookiesInvalid:
            raise CookiesInvalid(
                f"the stored {site.name} cookies are damaged",
                hint=f"send the cookies file again with .cookies set {site.key}",
            ) from None

    def _list(self, user_id: int) -> builtins.list[CookieSummary]:
        summaries = (self._load_summary(user_id, site) for site in SITES)
        return [summary for summary in summaries if summary is not None]

    def _path_for(self, user_id: int, site: Site) -> Path | None:
        with self._user_folder(user_id) as folder:
            if folder is None or _regular_file_mode(folder, _file_name(site)) is None:
                return None
        return self._file_path(user_id, site)

    def _copy_for_job(self, user_id: int, site: Site, job_folder: Path) -> Path | None:
        data = self._read(user_id, site)
        if data is None:
            return None
        name = f"{site.key}-cookies.txt"
        with _closing(_open_dir(job_folder)) as folder:
            _write_private(folder, name, data)
        return job_folder / name

    def _delete(self, user_id: int, site: Site) -> bool:
        with self._user_folder(user_id) as folder:
            return folder is not None and _unlink(folder, _file_name(site))

    def _delete_all(self, user_id: int) -> int:
        with self._user_folder(user_id) as folder:
            if folder is None:
                return 0
            deleted = sum(_unlink(folder, _file_name(site)) for site in SITES)
            # Temp files a crash left behind hold cookies too.
            for name in os.listdir(folder):
                if _is_our_temp_file(name):
                    _unlink(folder, name)
        with contextlib.suppress(OSError):  # not empty after all: someone else's file, kept
            os.rmdir(self.root / str(user_id))
        return deleted

    def _read(self, user_id: int, site: Site) -> bytes | None:
        with self._user_folder(user_id) as folder:
            return None if folder is None else _read_private(folder, _file_name(site))

    def _file_path(self, user_id: int, site: Site) -> Path:
        return self.root / str(user_id) / _file_name(site)

    @contextlib.contextmanager
    def _user_folder(self, user_id: int) -> Iterator[int | None]:
        """The user's folder, opened without following a link; None if there is none."""
        fd: int | None = None
        with contextlib.suppress(FileNotFoundError), _closing(_open_dir(self.root, follow=True)) as root:
            fd = _open_dir(str(user_id), dir_fd=root)
        if fd is None:
            yield None
        else:
            with _closing(fd):
                yield fd

    @contextlib.contextmanager
    def _made_user_folder(self, user_id: int) -> Iterator[int]:
        """The user's folder, made if need be, opened without following a link, and 0700."""
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        with _closing(_open_dir(self.root, follow=True)) as root:
            with contextlib.suppress(FileExistsError):
                os.mkdir(str(user_id), _DIR_MODE, dir_fd=root)
            fd = _open_dir(str(user_id), dir_fd=root)
        with _closing(fd):
            # A folder made by hand, or under a loose umask, is tightened before a file goes in.
            os.fchmod(fd, _DIR_MODE)
            yield fd


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _checked_user(user_id: int) -> int:
    # bool is an int; a Telegram user id is a positive one.
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise TypeError(f"a user id is an int, not {type(user_id).__name__}")
    if user_id <= 0:
        raise ValueError(f"a Telegram user id is positive, not {user_id}")
    return user_id


def _file_name(site: Site) -> str:
    return f"{site.key}.txt"


def _is_our_temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TEMP_SUFFIX)


def _open_dir(path: Path | str, *, dir_fd: int | None = None, follow: bool = False) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeCookiePath(f"{path} is not a folder (a link or a file is in its place)") from None
        raise


def _regular_file_mode(dir_fd: int, name: str) -> int | None:
    """The mode of ``name`` in the folder, None if it is absent; a link or a non-file there is refused."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeCookiePath(f"{name} is not a plain file (a link or a folder is in its place)")
    return info.st_mode


def _read_private(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeCookiePath(f"{name} is a link, not a cookies file") from None
        raise
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise UnsafeCookiePath(f"{name} is not a plain file")
        return file.read(MAX_COOKIES_FILE_BYTES + 1)


def _write_private(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` in the folder as a 0600 file, all at once: a temp file, then a rename over the old one."""
    _regular_file_mode(dir_fd, name)  # refuses a link in its place
    temp = f".{name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, _FILE_MODE, dir_fd=dir_fd)
    try:
        with open(fd, "wb") as file:
            os.fchmod(file.fileno(), _FILE_MODE)  # whatever the umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # rename replaces a link at ``name`` rather than following it, so a link planted since the check above
        # is gone afterwards, not written through.
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink(dir_fd, temp)
        raise
    os.fsync(dir_fd)


def _unlink(dir_fd: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True
