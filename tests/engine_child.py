"""Run an engine in its own process so a test can kill -9 it mid-job.

Usage: engine_child.py [--max-items N] DATABASE JOBS_DIR URL... — submits one job with the URLs and never delivers
anything, so finished files stay COMPLETE (downloaded, not delivered) until the process dies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import attrs
import trio

from storyflow.config import DownloadConfig
from storyflow.download import DeliveryHandle, open_engine
from storyflow.jobs import JobRequest, open_store


class NeverDelivers:
    async def deliver(self, handle: DeliveryHandle) -> None:
        await trio.sleep_forever()


async def main(database: Path, jobs_dir: Path, urls: list[str], max_items: int | None) -> None:
    settings = DownloadConfig(allow_private_addresses=True)
    if max_items is not None:
        settings = attrs.evolve(settings, max_items=max_items)
    async with open_store(database) as store, open_engine(
        store, settings, jobs_dir=jobs_dir, delivery=NeverDelivers()
    ) as engine:
        await engine.submit(JobRequest(tuple(urls), owner=1))
        await trio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-items", type=int)
    parser.add_argument("database", type=Path)
    parser.add_argument("jobs_dir", type=Path)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    trio.run(main, args.database, args.jobs_dir, args.urls, args.max_items)
