"""Settings the owner can change from the chat (``.settings key value``), saved in the store over the config."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import attrs

from .._errors import ConfigError
from .._util import whole_number
from ..config import Config

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def _number(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        number = whole_number(text, lowest=low, highest=high)
        if number is None:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return number

    return convert


def _switch(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError("expected on or off")


_KEYS: dict[str, tuple[Callable[[str], object], str]] = {
    "autodownload": (_switch, "a bare link in Saved Messages downloads"),
    "max_concurrent": (_number(1, 16), "download processes at once"),
    "max_jobs_per_owner": (_number(1, 100), "unfinished jobs one user may have"),
    "max_urls": (_number(1, 50), "most links taken from one message"),
    "parts_in_flight": (_number(1, 32), "upload parts on their way at once"),
}


@attrs.define
class RuntimeSettings:
    autodownload: bool
    max_concurrent: int
    max_jobs_per_owner: int
    max_urls: int
    parts_in_flight: int

    @classmethod
    def from_config(cls, config: Config, saved: dict[str, str]) -> RuntimeSettings:
        settings = cls(
            autodownload=config.commands.saved_messages_autodownload,
            max_concurrent=config.download.max_concurrent,
            max_jobs_per_owner=config.download.max_jobs_per_owner,
            max_urls=config.download.max_urls_per_message,
            parts_in_flight=config.telegram.parts_in_flight,
        )
        for key, value in saved.items():
            if key in _KEYS:
                # A value saved by an older version that no longer fits: the config's stands.
                with contextlib.suppress(ConfigError):
                    settings.set(key, value)
        return settings

    def keys(self) -> list[str]:
        return list(_KEYS)

    def set(self, key: str, text: str) -> str:
        """Change one setting from chat text; returns the value as it will be shown and saved."""
        if key not in _KEYS:
            shown = key if len(key) <= 40 else key[:39] + "…"
            raise ConfigError(f"no setting {shown!r}", hint="settings: " + ", ".join(_KEYS))
        convert, _ = _KEYS[key]
        try:
            value = convert(text.strip())
        except ValueError as exc:
            raise ConfigError(f"bad value for {key}: {exc}") from None
        setattr(self, key, value)
        return self.shown(key)

    def shown(self, key: str) -> str:
        value = getattr(self, key)
        return ("on" if value else "off") if isinstance(value, bool) else str(value)

    def rows(self) -> list[tuple[str, str, str]]:
        return [(key, self.shown(key), doc) for key, (_, doc) in _KEYS.items()]
