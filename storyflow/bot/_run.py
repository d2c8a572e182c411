"""`storyflow run`: the whole userbot under one nursery — store, Telegram gateway, status board, engine, commands."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs
import httpx
import trio

from .._errors import ConfigError, NotAuthorized
from ..config import Config
from ..cookies import CookieStore, JobCookies, login_hint
from ..download import Engine, open_engine
from ..jobs import JobStore, open_store
from ..telegram import PartsInFlight, StatusBoard, TelegramDelivery, open_status_board
from ..telegram._gateway import Gateway, GatewaySettings, open_gateway
from ..telegram._stories import TelegramStoryFetcher
from ._access import AccessList
from ._commands import Userbot
from ._settings import RuntimeSettings
from ._tracker import StatusTracker
from ._watch import Watcher

log = logging.getLogger("storyflow.run")

HTTP_TIMEOUT = httpx.Timeout(20.0, connect=10.0)


def session_path(config: Config) -> Path:
    return config.telegram.session or config.paths.data_dir / "storyflow.session"


def read_session(config: Config) -> str:
    """The StringSession to run with: the config's ``session_string``, else the session file."""
    if config.telegram.session_string:
        return config.telegram.session_string
    path = session_path(config)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotAuthorized(f"no session at {path}", hint="run `storyflow login` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAuthorized(f"cannot read the session file {path}: {exc}") from None
    if not text:
        raise NotAuthorized(f"the session file {path} is empty", hint="run `storyflow login` again")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; `chmod 600` it", path)
    return text


def gateway_settings(config: Config, session: str) -> GatewaySettings:
    telegram = config.telegram
    if telegram.api_id is None or telegram.api_hash is None:
        raise ConfigError(
            "telegram.api_id and telegram.api_hash are not set",
            hint="get them at my.telegram.org and put them in the config file or STORYFLOW_TELEGRAM_API_ID/_HASH",
        )
    return GatewaySettings(telegram.api_id, telegram.api_hash, session, telegram.dc_id, telegram.dc_address,
                           telegram.connect_timeout)


def write_session(path: Path, session: str) -> None:
    """Save a session readable by its owner only, replacing any old one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, session.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


@attrs.frozen
class Running:
    """What a started userbot hands to whoever started it (tests, benchmarks)."""

    userbot: Userbot
    gateway: Gateway
    engine: Engine
    store: JobStore
    board: StatusBoard


async def run_userbot(config: Config, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled. ``task_status.started`` once connected, resumed and listening for commands."""
    settings = gateway_settings(config, await trio.to_thread.run_sync(read_session, config))
    async with open_store(config.paths.database) as store:
        runtime = RuntimeSettings.from_config(config, await store.settings())
        async with open_gateway(settings) as gateway:
            await _serve(config, store, runtime, gateway, task_status)


async def _serve(
    config: Config, store: JobStore, runtime: RuntimeSettings, gateway: Gateway, task_status: trio.TaskStatus[Running]
) -> None:
    gateway.remember_peers(await store.peers())
    me = gateway.me
    log.info("logged in as %s (id %d%s)", me.name, me.user_id, ", premium" if me.premium else "")
    async with open_status_board(gateway) as board:
        tracker = StatusTracker(board)
        in_flight = PartsInFlight(runtime.parts_in_flight)
        delivery = TelegramDelivery(
            gateway, store, in_flight, on_event=tracker.on_delivery,
            upload_limit_override=config.telegram.max_upload_size, stream_uploads=config.telegram.stream_uploads,
        )
        download = attrs.evolve(
            config.download, max_concurrent=runtime.max_concurrent, max_jobs_per_owner=runtime.max_jobs_per_owner
        )
        access = await AccessList.load(
            store, gateway.me.user_id, config_users=config.commands.allowed_users,
            config_chats=config.commands.allowed_chats,
        )
        # The tracker watches from the first event on, so resumed jobs' status messages move too.
        cookies = CookieStore(config.paths.data_dir / "cookies")
        private_dir = config.paths.data_dir / "private"
        await trio.Path(private_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as http, open_engine(
            store, download, jobs_dir=config.paths.jobs_dir, delivery=delivery,
            cache_dir=config.paths.data_dir / "cache", observers=[tracker.on_engine],
            fetchers=[TelegramStoryFetcher(gateway)], cookies=JobCookies(cookies),
            login_hint=login_hint(config.commands.prefix),
        ) as engine:
            userbot = Userbot(
                gateway, engine, store, tracker, delivery, access, runtime, in_flight, http=http,
                snapchat_base_url=config.stories.snapchat_base_url, prefix=config.commands.prefix,
                cookies=cookies, private_dir=private_dir,
            )
            userbot.watcher = Watcher(
                store, userbot.list_for_watch, userbot.submit_for_watch, config.stories.watch_interval,
                config.stories.watch_jitter,
            )
            task_status.started(Running(userbot, gateway, engine, store, board))
            await userbot.serve(gateway.incoming)
