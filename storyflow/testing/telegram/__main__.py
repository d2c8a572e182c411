"""Run the loopback Telegram as a process: `python -m storyflow.testing.telegram --port 8443`.

Prints one `name=session_string` line per account once listening, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys

import trio

from ._server import LoopbackTelegram


async def _main(port: int, premium: list[str], accounts: list[str]) -> None:
    server = LoopbackTelegram()
    for name in accounts:
        server.add_account(name)
    for name in premium:
        server.set_premium(server.account(name))
    async with trio.open_nursery() as nursery:
        listening_port = await nursery.start(lambda task_status: server.serve(port=port, task_status=task_status))
        print(f"port={listening_port}", flush=True)
        for account in server.accounts:
            print(f"{account.name}={server.session_string(account)}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storyflow.testing.telegram", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--account", action="append", default=[], help="extra account name (repeatable)")
    parser.add_argument("--premium", action="append", default=[], help="account name to make premium")
    arguments = parser.parse_args(argv)
    try:
        trio.run(_main, arguments.port, arguments.premium, arguments.account)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
