"""One configuration: a TOML file plus ``STORYFLOW_<SECTION>_<KEY>`` environment variables.

The file lives in the platform's config dir (``storyflow.toml``) unless ``--config`` or ``STORYFLOW_CONFIG`` names
another. Environment variables win over the file. Every bad key or value is reported by name.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from .._errors import ConfigError

APP_NAME = "storyflow"
CONFIG_ENV = "STORYFLOW_CONFIG"
# Variables that are ours but not config keys.
_NON_KEY_ENV = frozenset({CONFIG_ENV, "STORYFLOW_FFMPEG"})

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from ``123``, ``"500MB"``, ``"2GiB"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str) and (match := _SIZE_RE.match(value)):
        unit = match.group(2).lower()
        if unit in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[unit])
    raise ValueError(f"expected a size such as 500MB or 2GiB, got {value!r}")


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"must be more than 0, got {value!r}")
    return number


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: object) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"expected text, got {value!r}")
    return str(value)


def _optional_text(value: object) -> str | None:
    text = _text(value)
    return text or None


def _path(value: object) -> Path:
    return Path(_text(value)).expanduser()


def _optional_path(value: object) -> Path | None:
    text = _text(value)
    return Path(text).expanduser() if text else None


def _int_list(value: object) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of ids, got {value!r}")
    try:
        return tuple(int(str(item).strip()) for item in items if str(item).strip())
    except ValueError:
        raise ValueError(f"expected a list of numeric ids, got {value!r}") from None


def _field(default: Any, convert: Callable[[object], Any], doc: str, *, secret: bool = False) -> Any:
    return attrs.field(default=default, metadata={"convert": convert, "doc": doc, "secret": secret},
                       repr=not secret)


@attrs.frozen
class DownloadConfig:
    max_concurrent: int = _field(3, _positive_int, "download processes running at once")
    max_jobs_per_owner: int = _field(5, _positive_int, "unfinished jobs one user may have")
    job_timeout: float = _field(1800.0, _seconds, "wall-clock limit of one job's download, seconds")
    max_file_size: int = _field(4 * 1000**3, parse_size, "largest single file downloaded")
    max_items: int = _field(50, _positive_int, "most files one job downloads")
    min_free_space: int = _field(500 * 1000**2, parse_size, "downloads stop before the disk has less free than this")
    max_job_disk: int = _field(0, parse_size, "most disk one job's folder may use (0: no limit but the disk)")
    max_urls_per_message: int = _field(10, _positive_int, "most links taken from one command")
    allow_private_addresses: bool = _field(
        False, _boolean, "allow links to loopback/private addresses (tests, home servers)"
    )
    prefer_ytdlp_for: tuple[str, ...] = _field(
        (), lambda v: tuple(_text(x) for x in (v if isinstance(v, list) else str(v).split(",")) if x),
        "extra host names sent straight to yt-dlp",
    )


@attrs.frozen
class PathsConfig:
    data_dir: Path = _field(Path(platformdirs.user_data_dir(APP_NAME)), _path, "database, sessions, cookies")
    work_dir: Path | None = _field(None, _optional_path, "job folders (default: <data_dir>/jobs)")

    @property
    def jobs_dir(self) -> Path:
        return self.work_dir if self.work_dir is not None else self.data_dir / "jobs"

    @property
    def database(self) -> Path:
        return self.data_dir / "storyflow.sqlite3"


@attrs.frozen
class TelegramConfig:
    api_id: int | None = _field(None, lambda v: _positive_int(v), "from my.telegram.org")
    api_hash: str | None = _field(None, _optional_text, "from my.telegram.org (secret)", secret=True)
    session: Path | None = _field(None, _optional_path, "session file (default: <data_dir>/storyflow.session)")
    session_string: str | None = _field(
        None, _optional_text, "a StringSession instead of a file (secret)", secret=True
    )
    dc_address: str | None = _field(None, _optional_text, "custom DC as host:port (test servers)")
    dc_id: int | None = _field(None, _positive_int, "DC id for dc_address")
    connect_timeout: float = _field(60.0, _seconds, "how long login and run try to reach Telegram, seconds")
    parts_in_flight: int = _field(8, _positive_int, "upload parts on their way at once")
    stream_uploads: bool = _field(True, _boolean, "big files start uploading while they still download")
    max_upload_size: int | None = _field(
        None, lambda v: parse_size(v) or None, "cut files above this size (default: the account's limit)"
    )


@attrs.frozen
class CommandsConfig:
    prefix: str = _field(".", _text, "what starts a command")
    allowed_users: tuple[int, ...] = _field((), _int_list, "user ids allowed besides the owner")
    allowed_chats: tuple[int, ...] = _field((), _int_list, "chat ids where anyone may use commands")
    saved_messages_autodownload: bool = _field(True, _boolean, "a bare link in Saved Messages downloads")


def _fraction(value: object, highest: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number from 0 to {highest}, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number from 0 to {highest}, got {value!r}") from None
    if not 0 <= number <= highest:
        raise ValueError(f"must be from 0 to {highest}, got {value!r}")
    return number


def _http_base(value: object) -> str:
    text = _text(value).strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) address, got {value!r}")
    return text


@attrs.frozen
class StoriesConfig:
    snapchat_base_url: str = _field("https://story.snapchat.com", _http_base, "where Snapchat's public story pages are")
    watch_interval: float = _field(900.0, _seconds, "seconds between checks of a watched account")
    watch_jitter: float = _field(0.2, lambda v: _fraction(v, 0.9), "random spread of check times (0 to 0.9)")


@attrs.frozen
class Config:
    download: DownloadConfig = DownloadConfig()
    paths: PathsConfig = PathsConfig()
    telegram: TelegramConfig = TelegramConfig()
    commands: CommandsConfig = CommandsConfig()
    stories: StoriesConfig = StoriesConfig()
    source: Path | None = None  # the file it came from, if any


_SECTIONS: dict[str, type[Any]] = {
    "download": DownloadConfig,
    "paths": PathsConfig,
    "telegram": TelegramConfig,
    "commands": CommandsConfig,
    "stories": StoriesConfig,
}


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "storyflow.toml"


def _build_section(section: str, values: Mapping[str, object], origin: Mapping[str, str]) -> Any:
    cls = _SECTIONS[section]
    fields = {f.name: f for f in attrs.fields(cls)}
    converted: dict[str, object] = {}
    for key, raw in values.items():
        field = fields.get(key)
        where = origin.get(key, f"[{section}] {key}")
        if field is None:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting {where}", hint=f"known settings in [{section}]: {known}")
        try:
            converted[key] = field.metadata["convert"](raw)
        except ValueError as exc:
            if field.metadata["secret"]:
                raise ConfigError(f"bad value for {where} (not shown: it is a secret); expected text") from None
            raise ConfigError(f"bad value for {where}: {exc}") from None
    return cls(**converted)


def _env_settings(environ: Mapping[str, str]) -> dict[str, dict[str, tuple[str, str]]]:
    """``{section: {key: (value, variable name)}}`` for every STORYFLOW_* variable."""
    by_name: dict[str, tuple[str, str]] = {}
    for section, cls in _SECTIONS.items():
        for field in attrs.fields(cls):
            by_name[f"STORYFLOW_{section}_{field.name}".upper()] = (section, field.name)
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for name, value in environ.items():
        if not name.startswith("STORYFLOW_") or name in _NON_KEY_ENV:
            continue
        if name not in by_name:
            raise ConfigError(
                f"unknown environment variable {name}",
                hint="variables are STORYFLOW_<SECTION>_<KEY>, e.g. STORYFLOW_DOWNLOAD_MAX_CONCURRENT",
            )
        section, key = by_name[name]
        found.setdefault(section, {})[key] = (value, name)
    return found


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file (if it exists) and the environment into a validated :class:`Config`."""
    environ = os.environ if environ is None else environ
    explicit = path is not None or CONFIG_ENV in environ
    if path is None:
        path = Path(environ[CONFIG_ENV]).expanduser() if CONFIG_ENV in environ else default_config_path()
    data: dict[str, Any] = {}
    source: Path | None = None
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        source = path
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")

    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section [{section}] in {path}", hint=f"sections: {', '.join(_SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")

    env = _env_settings(environ)
    sections: dict[str, Any] = {}
    for section in _SECTIONS:
        values: dict[str, object] = dict(data.get(section, {}))
        origin = {key: f"[{section}] {key} in {path}" for key in values}
        for key, (value, name) in env.get(section, {}).items():
            values[key] = value
            origin[key] = name
        sections[section] = _build_section(section, values, origin)
    return Config(**sections, source=source)


def describe_settings() -> list[tuple[str, str, str]]:
    """``(section.key, default, doc)`` for every setting, for ``--help`` and the README."""
    rows = []
    for section, cls in _SECTIONS.items():
        for field in attrs.fields(cls):
            rows.append((f"{section}.{field.name}", repr(field.default), field.metadata["doc"]))
    return rows
