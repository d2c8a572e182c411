"""Small Trio helpers shared by every stage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
