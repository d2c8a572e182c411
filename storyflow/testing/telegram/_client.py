"""A connected Telethon client for a loopback account, from Trio code (the only asyncio-aware module).

Trio-flavoured context manager; the yielded TelegramClient is asyncio-flavoured, so call it through
`trio_asyncio.aio_as_trio(client.method)(...)` and register handlers with `client.on(...)` as usual.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio
import trio_asyncio
from telethon import TelegramClient
from telethon.sessions import Session, StringSession

from ._server import LoopbackTelegram
from ._state import Account

# Chosen for tests: errors surface instead of being slept through or retried for seconds.
CLIENT_SETTINGS: dict[str, Any] = {
    "api_id": 1,
    "api_hash": "loopback",
    "flood_sleep_threshold": 0,
    "request_retries": 2,
    "connection_retries": 3,
    "retry_delay": 0,
    "auto_reconnect": True,
    "timeout": 10,
    "raise_last_call_error": True,
    "catch_up": False,
    "receive_updates": True,
    "device_model": "loopback",
    "system_version": "1",
    "app_version": "1",
    "base_logger": logging.getLogger("storyflow.testing.telegram.client"),
}


def _session(
    server: LoopbackTelegram, account: Account | None, session: str | Session | None, new_device: bool
) -> Session:
    if isinstance(session, Session):
        return session
    if session is not None:
        return StringSession(session)
    if account is None:
        return server.login_session()
    return StringSession(server.session_string(account, new_device=new_device))


@asynccontextmanager
async def open_client(
    server: LoopbackTelegram,
    account: Account | None,
    *,
    session: str | Session | None = None,
    new_device: bool = False,
    **settings: Any,
) -> AsyncIterator[TelegramClient]:
    """Yield a connected TelegramClient logged in as `account` (own asyncio loop, shielded disconnect).

    `account=None` (and no `session`) gives a client on an empty session, as before a first login: it
    connects by creating a new, not yet signed-in auth key (the server's RSA key is trusted for it).
    `session` overrides the session, as a string (e.g. `server.unknown_session_string()`, or what
    `client.session.save()` gave after a login) or a Telethon Session; `new_device=True` gives the client
    its own auth key, like a second logged-in device; `settings` override `CLIENT_SETTINGS`.
    """
    # help.getConfig is cached on the class; a previous test's server has another port.
    TelegramClient._config = None
    chosen = _session(server, account, session, new_device)
    if not chosen.auth_key:
        server.trust_rsa_key()
    async with AsyncExitStack() as stack:
        # A client is bound to the asyncio loop it connected on, and `aio_as_trio` uses the innermost
        # loop: so clients opened inside one another share the first loop instead of nesting new ones.
        if trio_asyncio.current_loop.get() is None:
            await stack.enter_async_context(trio_asyncio.open_loop())
        client = TelegramClient(chosen, **{**CLIENT_SETTINGS, **settings})
        try:
            await trio_asyncio.aio_as_trio(client.connect)()
            yield client
        finally:
            with trio.CancelScope(shield=True):
                await trio_asyncio.aio_as_trio(client.disconnect)()
