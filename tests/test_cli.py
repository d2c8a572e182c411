"""`storyflow get` and `storyflow doctor` as a user runs them: a real process against the loopback server."""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from storyflow.testing._httpserver import MediaServer
from storyflow.testing._processes import storyflow_env

from .conftest import MediaFiles, alive, descendants


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    config = tmp_path / "storyflow.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[download]\nallow_private_addresses = true\n')
    env = storyflow_env(config, COLUMNS="200", **extra)
    return env


async def storyflow(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "storyflow", *args], env=cli_env(tmp_path, **env), capture_stdout=True,
        capture_stderr=True, check=False,
    )


def run_folders(tmp_path: Path) -> list[Path]:
    """The per-run folders `storyflow get` left under the data dir (each removes its own when it ends)."""
    runs = tmp_path / "data" / "cli-runs"
    return sorted(runs.glob("run-*")) if runs.exists() else []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_get_downloads_into_the_output_folder(tmp_path: Path, site: MediaServer, media: MediaFiles) -> None:
    out = tmp_path / "out"
    result = await storyflow(tmp_path, "get", site.url("/clip.mp4"), site.url("/photo.jpg"), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    printed = result.stdout.decode().split()
    assert sorted(Path(p).name for p in printed) == sorted(p.name for p in out.iterdir())
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert hashes == {hashlib.sha256(media.video.read_bytes()).hexdigest(),
                      hashlib.sha256(media.image.read_bytes()).hexdigest()}
    assert run_folders(tmp_path) == []


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
    assert run_folders(tmp_path) == []


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


async def test_two_runs_at_once_never_touch_each_others_jobs(
    tmp_path: Path, site: MediaServer, media: MediaFiles
) -> None:
    """A second `storyflow get` starts and finishes while the first is frozen mid-download; both succeed."""
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    async with trio.open_nursery() as nursery:
        first: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-m", "storyflow", "get", site.url("/slow.mp4"), "-o", str(first_out)],
                env=cli_env(tmp_path), start_new_session=True, check=False,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        )
        await site.wait_for_request("/slow.mp4")
        # Frozen with its tool mid-download: its job is live and its folder holds a partial file.
        frozen = [first.pid, *descendants(first.pid)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert len(run_folders(tmp_path)) == 1
            second = await storyflow(tmp_path, "get", site.url("/clip.mp4"), "-o", str(second_out))
            assert not first_out.exists()  # the first run has not delivered anything yet
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        with trio.fail_after(60):
            await first.wait()
    assert second.returncode == 0, second.stderr.decode()
    assert [sha256(p) for p in second_out.iterdir()] == [sha256(media.video)]
    assert first.returncode == 0
    assert [sha256(p) for p in first_out.iterdir()] == [sha256(media.video2)]
    assert run_folders(tmp_path) == []


async def test_a_dead_runs_folder_is_removed_and_a_live_ones_kept(tmp_path: Path, site: MediaServer) -> None:
    runs = tmp_path / "data" / "cli-runs"
    dead, live = runs / "run-dead", runs / "run-live"
    for folder in (dead, live):
        (folder / "jobs" / "1").mkdir(parents=True)
        (folder / "jobs" / "1" / "clip.mp4.part").write_bytes(b"partial")
    with (live / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held, as a running `storyflow get` holds its own
        result = await storyflow(tmp_path, "get", site.url("/photo.jpg"), "-o", str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr.decode()
    assert run_folders(tmp_path) == [live]
    assert (live / "jobs" / "1" / "clip.mp4.part").read_bytes() == b"partial"


async def test_a_file_that_cannot_be_saved_fails_the_run_naming_the_link(tmp_path: Path, site: MediaServer) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = site.url("/photo.jpg")
    result = await storyflow(tmp_path, "get", url, "-o", str(blocker / "out"))
    assert result.returncode == 1
    assert result.stdout == b""
    failed = [line for line in result.stderr.decode().splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert url in failed[0] and "cannot save photo.jpg" in failed[0] and "Not a directory" in failed[0]
    assert blocker.read_text() == "not a folder"
    assert run_folders(tmp_path) == []


async def test_a_name_already_taken_is_never_overwritten(tmp_path: Path, site: MediaServer, media: MediaFiles) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"the user's own file")
    result = await storyflow(tmp_path, "get", site.url("/clip.mp4"), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert (out / "clip.mp4").read_bytes() == b"the user's own file"
    assert sha256(out / "clip (1).mp4") == sha256(media.video)
    assert result.stdout.decode().splitlines() == [str(out / "clip (1).mp4")]
    assert sorted(p.name for p in out.iterdir()) == ["clip (1).mp4", "clip.mp4"]


@pytest.fixture
def other_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than the data dir (tmpfs /dev/shm), removed afterwards."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the data dir")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


async def test_an_output_folder_on_another_disk_gets_whole_files_only(
    tmp_path: Path, other_disk: Path, site: MediaServer, media: MediaFiles
) -> None:
    out = other_disk / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"taken")
    result = await storyflow(tmp_path, "get", site.url("/clip.mp4"), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["clip (1).mp4", "clip.mp4"]  # no temporary left
    assert sha256(out / "clip (1).mp4") == sha256(media.video)
    assert (out / "clip.mp4").read_bytes() == b"taken"


async def test_ctrl_c_before_any_job_is_submitted_exits_130_without_a_traceback(
    tmp_path: Path, site: MediaServer
) -> None:
    runs = tmp_path / "data" / "cli-runs"
    runs.mkdir(parents=True)
    with (runs / ".start.lock").open("w") as start_lock:
        # Held, so the run cannot get past its start-up (to submitting its jobs) until the signal has been sent.
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    [sys.executable, "-m", "storyflow", "-v", "get", site.url("/photo.jpg"), "-o",
                     str(tmp_path / "out")],
                    env=cli_env(tmp_path), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )
            )
            assert process.stderr is not None
            stderr = b""
            async for chunk in process.stderr:  # the first log line comes once the signals are taken over
                stderr += chunk
                if b"getting 1 link(s)" in stderr:
                    break
            process.send_signal(signal.SIGINT)
            fcntl.flock(start_lock, fcntl.LOCK_UN)
            async for chunk in process.stderr:
                stderr += chunk
            with trio.fail_after(30):
                await process.wait()
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"cancelled" in stderr
    assert site.request_count("/photo.jpg") == 0
    assert run_folders(tmp_path) == []


def test_progress_bars_show_the_speed_and_time_left_the_tools_report() -> None:
    from rich.console import Console

    from storyflow.cli._progress import TerminalProgress
    from storyflow.download import DownloadProgress
    from storyflow.jobs import Job, JobOptions, JobState, Origin

    console = Console(record=True, width=160, force_terminal=False)
    bars = TerminalProgress(console)
    job = Job(7, ("https://example.com/clip.mp4",), 1, JobOptions(), Origin(), JobState.DOWNLOADING, 0.0, 0.0)
    bars.track(job)
    # The second file of the job: its bar starts again at 0, the tool's figures stay true.
    bars(DownloadProgress(7, 1, 1, 1, "clip.mp4", 2_500_000, 10_000_000, 1_250_000.0, 6.0))
    console.print(bars.progress.get_renderable())
    shown = console.export_text()
    assert "#7 https://example.com/clip.mp4" in shown
    assert "2.5/10.0 MB" in shown and "1.2 MB/s" in shown and "0:06" in shown and "file 2 clip.mp4" in shown
