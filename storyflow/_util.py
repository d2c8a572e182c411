"""Small Trio helpers shared by every stage."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

# Our secrets (session strings, api_hash, cookies paths) never reach a child's environment.
_SECRET_ENV_PREFIXES = ("STORYFLOW_", "TELEGRAM_", "TG_")


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child process (download tools, ffmpeg): ours, minus anything of StoryFlow's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_SECRET_ENV_PREFIXES)}
    env.update(extra)
    return env


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


@contextmanager
def single_error() -> Iterator[None]:
    """Let one child's error leave a nursery as itself, not wrapped in an ExceptionGroup.

    Our nurseries run one worker and its helpers; when exactly one of them fails, callers want to catch that
    error by type (``except DownloadError``). Groups of several real errors pass through unchanged.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


_INTEGER = re.compile(r"-?[0-9]{1,19}")
TELEGRAM_ID_MAX = 2**53  # every user, chat and channel id Telegram gives fits in 53 bits


def whole_number(text: str, *, lowest: int = -(2**63), highest: int = 2**63 - 1) -> int | None:
    """``text`` as an int if it is ASCII digits (one optional minus) within the bounds, else None.

    Not ``str.isdigit``: that accepts "²" and "١٢", which ``int`` then refuses or reads as something else.
    """
    if not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if lowest <= number <= highest else None
