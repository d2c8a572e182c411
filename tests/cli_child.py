"""The real `storyflow` command, in a process that trusts a loopback Telegram's RSA key first.

Telethon ships Telegram's real server keys; a first login's key exchange with the loopback server needs its key
too. Usage: LOOPBACK_TELEGRAM_RSA_KEY=<key line> cli_child.py <storyflow arguments>.
"""

from __future__ import annotations

import os
import sys

from storyflow.cli import main
from storyflow.testing.telegram import trust_server_key

if __name__ == "__main__":
    trust_server_key(os.environ["LOOPBACK_TELEGRAM_RSA_KEY"])
    sys.exit(main(sys.argv[1:]))
