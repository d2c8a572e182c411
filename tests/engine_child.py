"""Run an engine in its own process so a test can kill -9 it mid-job.

Usage: engine_child.py DATABASE JOBS_DIR URL... — submits one job with the URLs and never delivers anything,
so finished files stay COMPLETE (downloaded, not delivered) until the process dies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from storyflow.config import DownloadConfig
from storyflow.download import DeliveryHandle, open_engine
from storyflow.jobs import JobRequest, open_store


class NeverDelivers:
    async def deliver(self, handle: DeliveryHandle) -> None:
        await trio.sleep_forever()


async def main(database: Path, jobs_dir: Path, urls: list[str]) -> None:
    settings = DownloadConfig(allow_private_addresses=True)
    async with open_store(database) as store, open_engine(
        store, settings, jobs_dir=jobs_dir, delivery=NeverDelivers()
    ) as engine:
        await engine.submit(JobRequest(tuple(urls), owner=1))
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
