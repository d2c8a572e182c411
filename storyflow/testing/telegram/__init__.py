"""A loopback Telegram: a small MTProto 2.0 server on 127.0.0.1 for end-to-end tests and benchmarks.

Unmodified Telethon clients connect to it exactly as to Telegram (TcpFull, auth keys delivered as
StringSessions), or from an empty session through the real key exchange and sign-in (login code, 2FA
password over SRP, QR token). Trio-flavoured; only `open_client` touches asyncio (through trio-asyncio).

    async with open_loopback_telegram() as server:
        async with open_client(server, server.owner) as client:
            me = await aio_as_trio(client.get_me)()

        async with open_client(server, None) as fresh:  # a first login
            await aio_as_trio(fresh.send_code_request)(server.owner.phone)
            await aio_as_trio(fresh.sign_in)(server.owner.phone, server.last_login_code(server.owner))

A client in another process must trust the server's RSA key before its first key exchange:
`trust_server_key(server.rsa_public_key_pem)` (the standalone server prints it as `rsa_key=`).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._client import CLIENT_SETTINGS as CLIENT_SETTINGS
from ._client import open_client as open_client
from ._errors import RpcFailure as RpcFailure
from ._faults import normalize_method_name as normalize_method_name
from ._rsa import ServerRsaKey as ServerRsaKey
from ._rsa import trust_server_key as trust_server_key
from ._server import LoopbackTelegram as LoopbackTelegram
from ._server import login_session as login_session
from ._state import Account as Account
from ._state import Channel as Channel
from ._state import Group as Group
from ._state import MessageRecord as MessageRecord
from ._state import PrivateChat as PrivateChat
from ._state import StoredFile as StoredFile
from ._state import StoredMedia as StoredMedia
from ._state import StoryRecord as StoryRecord
from ._uploads import PARTS_LIMIT_DEFAULT as PARTS_LIMIT_DEFAULT
from ._uploads import PARTS_LIMIT_PREMIUM as PARTS_LIMIT_PREMIUM


@asynccontextmanager
async def open_loopback_telegram(*, port: int = 0, **options: Any) -> AsyncIterator[LoopbackTelegram]:
    """A listening LoopbackTelegram for the duration of the block (its own nursery)."""
    server = LoopbackTelegram(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve(port=port, task_status=task_status))
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
