"""The `storyflow` command."""

from ._main import main as main
