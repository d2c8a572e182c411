"""`storyflow` command line: get, doctor (and, with Telegram, login and run)."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path

import attrs
import trio
from rich.console import Console

from .._errors import InputError, StoryFlowError
from .._ffmpeg import FfmpegMissing, ffmpeg_executable
from .._util import single_error
from ..config import Config, default_config_path, load_config
from ..download import Engine, open_engine, validate_url
from ..jobs import FileState, Job, JobOptions, JobRequest, JobState, open_store
from ._folder import FolderDelivery
from ._progress import TerminalProgress
from ._runs import open_cli_run

log = logging.getLogger("storyflow.cli")

CLI_OWNER = 0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# After Ctrl-C, `storyflow get` gives its jobs this long to kill their processes and end as cancelled.
SHUTDOWN_GRACE_SECONDS = 10.0


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="storyflow", description="Save stories, posts, reels and videos (gallery-dl + yt-dlp).")
    parser.add_argument("--config", type=Path, help=f"config file (default: {default_config_path()})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    get = commands.add_parser("get", help="download links into a folder, without Telegram")
    get.add_argument("urls", nargs="+", metavar="URL")
    get.add_argument("-o", "--output", type=Path, default=Path("."), help="where files go (default: here)")
    get.add_argument("--audio-only", action="store_true", help="extract audio from videos")
    get.add_argument("--max-height", type=int, metavar="PIXELS", help="best video no taller than this")

    commands.add_parser("doctor", help="show versions, paths and what is missing")

    run = commands.add_parser("run", help="run the userbot on your Telegram account until SIGINT/SIGTERM")
    del run
    login = commands.add_parser("login", help="log in to Telegram (phone, code, 2FA password) and save the session")
    login.add_argument(
        "--print", dest="print_session", action="store_true",
        help="print the session string (for telegram.session_string on a server) instead of saving it",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(stderr=True, highlight=False)
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except StoryFlowError as exc:
        console.print(f"[red]config error:[/] {exc.user_text()}")
        return EXIT_USAGE
    if args.command == "doctor":
        return _doctor(config, console)
    if args.command == "get":
        return _get(args, config, console)
    if args.command == "run":
        return _run(config, console, verbose=args.verbose)
    if args.command == "login":
        return _login(config, console, print_session=args.print_session)
    raise AssertionError(args.command)


# -- run and login ----------------------------------------------------------------------------------------


class _Shutdown(Exception):
    """A signal asked the userbot to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


async def _raise_on_signal(signals: AsyncIterator[int], notice: Callable[[int], None] = lambda signum: None) -> None:
    async for signum in signals:
        notice(signum)
        raise _Shutdown(signum)


def _stopping(console: Console, signum: int) -> None:
    console.print(f"[yellow]{signal.Signals(signum).name}: stopping (jobs are kept and resume next time)[/]")


async def _run_async(config: Config, console: Console) -> int:
    from ..bot import run_userbot

    failures: list[BaseException] = []
    # Trio's default KeyboardInterrupt can land inside an asyncio callback of trio-asyncio and hang the process;
    # receiving the signals ourselves and leaving through an exception always works. The receiver stays open until
    # the shutdown is over, so a second Ctrl-C during it cannot reach Trio's default handling either.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_raise_on_signal, signals, partial(_stopping, console))
                await run_userbot(config)
                nursery.cancel_scope.cancel()
        except* _Shutdown:
            pass
        except* StoryFlowError as group:
            failures.extend(group.exceptions)
    for error in failures:
        console.print(f"[red]error:[/] {error.user_text() if isinstance(error, StoryFlowError) else error}")
    return EXIT_FAILED if failures else EXIT_OK


def _run(config: Config, console: Console, *, verbose: bool) -> int:
    if not verbose:
        logging.getLogger("storyflow").setLevel(logging.INFO)
    return trio.run(_run_async, config, console)


async def _ask(question: str, secret: bool) -> str:
    import getpass

    # Questions go to stderr, so `storyflow login --print > session.txt` captures the session alone.
    def read() -> str:
        if secret:
            return getpass.getpass(question, stream=sys.stderr)
        sys.stderr.write(question)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.removesuffix("\n")

    try:
        return await trio.to_thread.run_sync(read, abandon_on_cancel=True)
    except EOFError:
        raise InputError("no answer (end of input)", hint="run `storyflow login` in a terminal") from None


async def _login_async(config: Config, console: Console, *, print_session: bool) -> int:
    from ..bot import session_path, write_session
    from ..bot._run import gateway_settings
    from ..telegram._gateway import login

    settings = gateway_settings(config, session="")
    # Signals received here, not by Trio's default KeyboardInterrupt (which can hang trio-asyncio): Ctrl-C while
    # connecting or waiting for an answer ends the login cleanly.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            with single_error():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_raise_on_signal, signals)
                    session, me = await login(settings, _ask)
                    nursery.cancel_scope.cancel()
        except _Shutdown:
            console.print("[yellow]login cancelled[/]")
            return EXIT_INTERRUPTED
        except StoryFlowError as exc:
            console.print(f"[red]login failed:[/] {exc.user_text()}")
            return EXIT_FAILED
    if print_session:
        Console(highlight=False, soft_wrap=True).print(session)
        console.print(f"[green]logged in as {me.name}[/]; keep that string secret (it is the whole login)")
    else:
        path = session_path(config)
        await trio.to_thread.run_sync(write_session, path, session)
        console.print(f"[green]logged in as {me.name}[/]; session saved to {path} (readable by you only)")
    return EXIT_OK


def _login(config: Config, console: Console, *, print_session: bool) -> int:
    try:
        return trio.run(partial(_login_async, config, console, print_session=print_session))
    except StoryFlowError as exc:
        console.print(f"[red]error:[/] {exc.user_text()}")
        return EXIT_USAGE


# -- get --------------------------------------------------------------------------------------------------


def _get(args: argparse.Namespace, config: Config, console: Console) -> int:
    if args.max_height is not None and args.max_height < 1:
        console.print("[red]error:[/] --max-height must be a positive number of pixels")
        return EXIT_USAGE
    bad = []
    for url in args.urls:
        try:
            validate_url(url)
        except InputError as exc:
            bad.append(f"{url!r}: {exc.user_text()}")
    if bad:
        for line in bad:
            console.print(f"[red]error:[/] {line}")
        return EXIT_USAGE
    options = JobOptions(audio_only=args.audio_only, max_height=args.max_height)
    try:
        return trio.run(_get_async, tuple(args.urls), args.output.expanduser(), options, config, console)
    except KeyboardInterrupt:  # Ctrl-C before _get_async took the signals over: nothing had started yet
        console.print("[yellow]cancelled[/]")
        return EXIT_INTERRUPTED


@attrs.define(eq=False)
class _Interruption:
    """Ctrl-C (or SIGTERM) during `storyflow get`: stop submitting, cancel what runs, wait a grace period."""

    console: Console
    submitting: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    waiting: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    engine: Engine | None = None
    job_ids: list[int] = attrs.field(factory=list)
    happened: bool = False

    async def watch(self, signals: AsyncIterator[int]) -> None:
        async for _ in signals:
            if self.happened:
                continue
            self.happened = True
            self.console.print("[yellow]interrupted: cancelling downloads…[/]")
            # A scope cancelled before it is entered cancels its block at once: submitting may not have begun.
            self.submitting.cancel()
            self.waiting.deadline = trio.current_time() + SHUTDOWN_GRACE_SECONDS
            await self.cancel_jobs()

    async def cancel_jobs(self) -> None:
        if self.engine is not None:
            for job_id in self.job_ids:
                await self.engine.cancel(job_id)


async def _get_async(
    urls: tuple[str, ...], output: Path, options: JobOptions, config: Config, console: Console
) -> int:
    # First of all, so Ctrl-C at any point below is a clean cancel, never a KeyboardInterrupt traceback.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        log.info("getting %d link(s) into %s", len(urls), output)
        interruption = _Interruption(console)
        tracker = TerminalProgress(console)
        delivery = FolderDelivery(output)
        failures: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(interruption.watch, signals)
            await _get_jobs_done(urls, options, config, interruption, tracker, delivery, failures)
            nursery.cancel_scope.cancel()

    out = Console(highlight=False)
    for job_id in interruption.job_ids:
        for path in delivery.placed.get(job_id, []):
            out.print(str(path), soft_wrap=True)
        if (job := tracker.results.get(job_id)) is not None:
            failures.extend(_failure_lines(job))
    if interruption.happened:
        console.print("[yellow]cancelled[/]")
        return EXIT_INTERRUPTED
    for line in failures:
        console.print(f"[red]failed:[/] {line}")
    return EXIT_FAILED if failures else EXIT_OK


async def _get_jobs_done(
    urls: tuple[str, ...],
    options: JobOptions,
    config: Config,
    interruption: _Interruption,
    tracker: TerminalProgress,
    delivery: FolderDelivery,
    failures: list[str],
) -> None:
    """Run one job per URL in this run's own store and folders, until all end (or the interruption's grace does)."""
    # Each URL is its own job, all at once: the owner limit is for chat users, not for this command line.
    settings = attrs.evolve(config.download, max_jobs_per_owner=max(len(urls), config.download.max_jobs_per_owner))
    data_dir = config.paths.data_dir
    async with open_cli_run(data_dir) as run, open_store(run.database) as store, open_engine(
        store, settings, jobs_dir=run.jobs_dir, delivery=delivery, cache_dir=data_dir / "cache", resume=False,
    ) as engine:
        engine.subscribe(tracker)
        interruption.engine = engine
        try:
            with tracker.progress:
                with interruption.submitting:
                    for url in urls:
                        try:
                            job = await engine.submit(JobRequest((url,), CLI_OWNER, options))
                        except StoryFlowError as exc:
                            failures.append(f"{url}: {exc.user_text()}")
                            continue
                        tracker.track(job)
                        interruption.job_ids.append(job.id)
                if interruption.happened:
                    await interruption.cancel_jobs()  # again: one may have been accepted while the first round ran
                with interruption.waiting:
                    for job_id in interruption.job_ids:
                        await tracker.wait(job_id)
        finally:
            interruption.engine = None  # a late Ctrl-C must not reach a closed engine


def _failure_lines(job: Job) -> list[str]:
    """What the user must know went wrong with one job, one line each (empty when all went well)."""
    if job.state is JobState.FAILED or (job.state is JobState.DONE and job.error):
        return [f"{job.urls[0]}: {job.error}"]
    lost = [f for f in job.files if f.state is not FileState.DELIVERED]
    if job.state is JobState.DONE and lost:
        return [f"{job.urls[0]}: {len(lost)} of {len(job.files)} files were not saved"]
    return []


# -- doctor -----------------------------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ffmpeg_version() -> tuple[str | None, str | None]:
    try:
        path = ffmpeg_executable()
        first = subprocess.run(
            [path, "-version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()[0]
    except (FfmpegMissing, OSError, subprocess.SubprocessError, IndexError) as exc:
        return None, str(exc)
    return first, path


def _doctor(config: Config, console: Console) -> int:
    missing = []
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"storyflow {_version('storyflow') or 'not installed'} on Python {sys.version.split()[0]}")
    for name in ("gallery-dl", "yt-dlp", "telethon", "trio", "trio-asyncio", "cryptg", "hachoir"):
        version = _version(name)
        out.print(f"  {name:<13} {version or 'MISSING'}")
        if version is None:
            missing.append(name)
    ffmpeg, where = _ffmpeg_version()
    out.print(f"  {'ffmpeg':<13} {ffmpeg or 'MISSING'}  ({where})")
    if ffmpeg is None:
        missing.append("ffmpeg")
    source = config.source or default_config_path()
    out.print(f"config file     {source} ({'found' if config.source else 'not present; using defaults'})")
    out.print(f"data dir        {config.paths.data_dir}")
    out.print(f"job database    {config.paths.database}")
    out.print(f"job folders     {config.paths.jobs_dir}")
    telegram_ready = config.telegram.api_id is not None and config.telegram.api_hash is not None
    telegram = "api_id/api_hash set" if telegram_ready else "api_id/api_hash not set (needed for `storyflow run`)"
    out.print(f"telegram        {telegram}")
    if missing:
        out.print(f"[red]missing:[/] {', '.join(missing)}")
        return EXIT_FAILED
    out.print("[green]everything needed is present[/]")
    return EXIT_OK
