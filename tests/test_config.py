"""Configuration: TOML + environment, every bad key and value reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyflow import ConfigError
from storyflow.config import load_config, parse_size


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "storyflow.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(environ={"STORYFLOW_PATHS_DATA_DIR": str(tmp_path)})
    assert config.download.max_concurrent == 3
    assert config.download.max_jobs_per_owner == 5
    assert config.paths.jobs_dir == tmp_path / "jobs"
    assert config.commands.prefix == "."


def test_file_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[download]\nmax_concurrent = 2\nmax_file_size = "500MB"\n[commands]\nprefix = "!"\n')
    config = load_config(path, environ={"STORYFLOW_DOWNLOAD_MAX_CONCURRENT": "6"})
    assert config.download.max_concurrent == 6  # the environment wins
    assert config.download.max_file_size == 500_000_000
    assert config.commands.prefix == "!"
    assert config.source == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[download]\nmax_concurrent = 0\n", r"\[download\] max_concurrent in .*: must be at least 1"),
        ("[download]\nmax_concurrent = 'many'\n", "expected a whole number, got 'many'"),
        ("[download]\nmax_file_size = '12 parsecs'\n", "expected a size"),
        ("[download]\nallow_private_addresses = 'maybe'\n", "expected true or false"),
        ("[download]\nspeed = 1\n", r"unknown setting \[download\] speed"),
        ("[dowload]\n", r"unknown section \[dowload\]"),
        ("download = 3\n", "must be a table"),
        ("[download\n", "not valid TOML"),
        ("[download]\njob_timeout = -5\n", "must be more than 0"),
    ],
)
def test_bad_file_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STORYFLOW_DOWNLOAD_MAX_ITEMS", "lots", "STORYFLOW_DOWNLOAD_MAX_ITEMS: expected a whole number"),
        ("STORYFLOW_DOWNLOAD_MAXITEMS", "3", "unknown environment variable STORYFLOW_DOWNLOAD_MAXITEMS"),
        ("STORYFLOW_COMMANDS_ALLOWED_USERS", "1,two", "numeric ids"),
    ],
)
def test_bad_environment_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ={name: value})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"STORYFLOW_CONFIG": str(tmp_path / "nope.toml")})


def test_lists_from_environment() -> None:
    config = load_config(environ={"STORYFLOW_COMMANDS_ALLOWED_USERS": "5, 6,7"})
    assert config.commands.allowed_users == (5, 6, 7)


@pytest.mark.parametrize(
    ("text", "size"),
    [(10, 10), ("10", 10), ("1kb", 1000), ("1KiB", 1024), ("2GB", 2_000_000_000), ("1.5M", 1_500_000)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size
