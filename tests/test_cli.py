"""`storyflow get` and `storyflow doctor` as a user runs them: a real process against the loopback server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from storyflow.testing._httpserver import MediaServer

from .conftest import MediaFiles, alive, descendants


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYFLOW_")}
    config = tmp_path / "storyflow.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[download]\nallow_private_addresses = true\n')
    env.update(STORYFLOW_CONFIG=str(config), COLUMNS="200", **extra)
    return env


async def storyflow(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "storyflow", *args], env=cli_env(tmp_path, **env), capture_stdout=True,
        capture_stderr=True, check=False,
    )


async def test_get_downloads_into_the_output_folder(tmp_path: Path, site: MediaServer, media: MediaFiles) -> None:
    out = tmp_path / "out"
    result = await storyflow(tmp_path, "get", site.url("/clip.mp4"), site.url("/photo.jpg"), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    printed = result.stdout.decode().split()
    assert sorted(Path(p).name for p in printed) == sorted(p.name for p in out.iterdir())
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert hashes == {hashlib.sha256(media.video.read_bytes()).hexdigest(),
                      hashlib.sha256(media.image.read_bytes()).hexdigest()}
    assert list((tmp_path / "data" / "cli-jobs").iterdir()) == []


async def test_get_refuses_option_injection_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = await storyflow(tmp_path, "get", "-o", str(out), "--", "--exec=touch /tmp/pwned", "file:///etc/passwd")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "cannot start with '-'" in err
    assert "'file:' links are not allowed" in err
    assert not out.exists()
    assert not (tmp_path / "data").exists()  # not even a database was opened


async def test_get_failure_is_one_line_reason_and_nonzero(tmp_path: Path, site: MediaServer) -> None:
    result = await storyflow(tmp_path, "get", site.url("/missing.mp4"), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    failed = [line for line in result.stderr.decode().splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert "private, deleted or the link is wrong" in failed[0]


async def test_ctrl_c_cancels_cleanly(tmp_path: Path, site: MediaServer) -> None:
    out = tmp_path / "out"
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-m", "storyflow", "get", site.url("/slow.mp4"), "-o", str(out)],
                env=cli_env(tmp_path), start_new_session=True, check=False,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
        await site.wait_for_request("/slow.mp4")
        # The server saw the request, so the download tool (a child of the CLI) is running.
        tools = descendants(process.pid)
        assert tools
        process.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            await process.wait()
    assert process.returncode == 130
    assert alive(tools) == set()
    assert not out.exists() or list(out.iterdir()) == []
    assert list((tmp_path / "data" / "cli-jobs").iterdir()) == []


async def test_doctor(tmp_path: Path) -> None:
    result = await storyflow(tmp_path, "doctor")
    text = result.stdout.decode()
    assert result.returncode == 0, text
    for name in ("gallery-dl", "yt-dlp", "ffmpeg", "config file", "data dir"):
        assert name in text


@pytest.mark.parametrize(
    ("env", "message"),
    [({"STORYFLOW_DOWNLOAD_MAX_CONCURRENT": "zero"}, "STORYFLOW_DOWNLOAD_MAX_CONCURRENT"),
     ({"STORYFLOW_NOPE": "1"}, "unknown environment variable STORYFLOW_NOPE")],
)
async def test_bad_config_is_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = await storyflow(tmp_path, "doctor", **env)
    assert result.returncode == 2
    assert message in result.stderr.decode().replace("\n", " ")


async def test_usage_errors(tmp_path: Path) -> None:
    result = await storyflow(tmp_path, "get")
    assert result.returncode == 2
    assert "required" in result.stderr.decode()
    result = await storyflow(tmp_path, "get", "https://example.com/v", "--max-height", "-3")
    assert result.returncode == 2
