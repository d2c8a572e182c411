"""A file over 2000 MiB on an account without Premium: it arrives as numbered parts, the job folder is cleaned,
and the next job is fine. Long (it downloads, cuts and uploads ~2.1 GB), so it is a script, not a test.

    .venv/bin/python scripts/fault_big_file.py [--size-gb 2.15]

Runs the userbot in this process against the loopback Telegram (keeping only hashes of what it receives) and the
loopback media server (which generates the file's bytes instead of reading them from disk), exactly as the test
suite does, and prints what arrived.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storyflow.telegram._uploader import upload_limit  # noqa: E402
from storyflow.testing._httpserver import _generate, open_media_server  # noqa: E402
from storyflow.testing.telegram import open_loopback_telegram  # noqa: E402
from tests.conftest import running_userbot, userbot_config  # noqa: E402


def range_sha256(size: int, start: int, stop: int) -> str:
    digest = hashlib.sha256()
    for chunk in _generate(size, 0, b"", start, stop, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


async def main(size: int) -> int:
    limit = upload_limit(premium=False)
    print(f"file of {size:,} bytes; this account may upload {limit:,} bytes per file (no Premium)")
    with tempfile.TemporaryDirectory(prefix="storyflow-big-") as temp:
        work = Path(temp)
        async with open_loopback_telegram(keep_file_bytes_limit=0) as telegram, open_media_server() as site:
            site.add_generated("/huge.bin", size, content_type="application/octet-stream")
            site.add_generated("/small.bin", 1000, content_type="application/octet-stream", seed=1)
            config = userbot_config(work, telegram, download={"max_file_size": 5 * 10**9})
            async with running_userbot(telegram, config) as bot:
                started = time.perf_counter()
                command = await bot.type(f".dl {site.url('/huge.bin')}")
                status = await bot.final_status(command, seconds=1800)
                took = time.perf_counter() - started
                parts = bot.media_replies(command)
                leftovers = [p for p in config.paths.jobs_dir.rglob("*")] if config.paths.jobs_dir.exists() else []
                after = await bot.type(f".dl {site.url('/small.bin')}")
                next_status = await bot.final_status(after)
    print(f"status after {took:.0f} s: {status.text!r}")
    ok = status.text.startswith("✅") and next_status.text.startswith("✅") and not leftovers
    offset = 0
    for message in parts:
        media = message.media
        assert media is not None
        expected = range_sha256(size, offset, offset + media.size)
        matches = media.sha256 == expected
        ok = ok and matches and media.size <= limit
        print(f"  {media.file_name}: {media.size:,} bytes, caption {message.text.splitlines()[-1]!r},"
              f" bytes {'match' if matches else 'DIFFER'}")
        offset += media.size
    ok = ok and offset == size and len(parts) >= 2
    print(f"parts cover the file: {offset == size}; job folders left: {len(leftovers)}; "
          f"next job: {next_status.text.splitlines()[0]!r}")
    print("verdict:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.15)
    arguments = parser.parse_args()
    raise SystemExit(trio.run(main, int(arguments.size_gb * 1e9)))
