"""Run the loopback Telegram as a process: `python -m storyflow.testing.telegram --port 8443`.

Prints `port=…`, then `rsa_key=…` (the server's RSA public key on one line: a client process passes it
to `storyflow.testing.telegram.trust_server_key` before its first login), then one `name=session_string`
and one `name.phone=digits` line per account once listening; later one `login_code=phone:code` line per
code a client asks for. Serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys

import trio

from ._server import LoopbackTelegram
from ._state import Account


def _announce_login_code(account: Account, code: str) -> None:
    print(f"login_code={account.phone}:{code}", flush=True)


async def _main(arguments: argparse.Namespace) -> None:
    server = LoopbackTelegram(
        login_code=arguments.login_code, on_login_code=_announce_login_code,
        keep_file_bytes_limit=arguments.keep_file_bytes,
    )
    if arguments.rpc_delay:
        server.set_rpc_delay(arguments.rpc_delay)
    if arguments.bandwidth:
        server.set_bandwidth(arguments.bandwidth)
    for name in arguments.account:
        server.add_account(name)
    for name in arguments.premium:
        server.set_premium(server.account(name))
    for setting in arguments.password:
        name, _, password = setting.partition("=")
        server.set_password(server.account(name), password)
    rsa_key = server.rsa_public_key_line  # generated before listening: the first exchange need not wait
    port = arguments.port
    async with trio.open_nursery() as nursery:
        listening_port = await nursery.start(lambda task_status: server.serve(port=port, task_status=task_status))
        print(f"port={listening_port}", flush=True)
        print(f"rsa_key={rsa_key}", flush=True)
        for account in server.accounts:
            print(f"{account.name}={server.session_string(account)}", flush=True)
            print(f"{account.name}.phone={account.phone}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storyflow.testing.telegram", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--account", action="append", default=[], help="extra account name (repeatable)")
    parser.add_argument("--premium", action="append", default=[], help="account name to make premium")
    parser.add_argument("--password", action="append", default=[], metavar="NAME=SECRET", help="turn on 2FA")
    parser.add_argument("--login-code", help="answer every login with this code instead of random digits")
    parser.add_argument("--rpc-delay", type=float, default=0.0, metavar="SECONDS",
                        help="delay every answer, like a long round trip (benchmarks)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="BYTES_PER_SECOND",
                        help="limit the link shared by all connections (benchmarks)")
    parser.add_argument("--keep-file-bytes", type=int, default=64 * 1024 * 1024, metavar="BYTES",
                        help="uploaded files larger than this are only hashed, not kept (bounds memory)")
    arguments = parser.parse_args(argv)
    try:
        trio.run(_main, arguments)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
