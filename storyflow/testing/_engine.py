"""The engine on its own, for benchmarks: a delivery that only marks files delivered, and a batch of jobs run to
their end."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..download import DeliveryHandle, Engine, JobUpdated
from ..jobs import JobRequest, JobState


class MarkDelivered:
    """Delivery that only records each file as delivered: what is measured is the download stage."""

    async def deliver(self, handle: DeliveryHandle) -> None:
        async for file in handle.files:
            await handle.delivered(file)


async def run_jobs(engine: Engine, urls: Sequence[str], *, owner: int = 1) -> dict[int, JobState]:
    """Submit one job per URL and wait until every one has ended; their final states by job id."""
    remaining: set[int] = set()
    states: dict[int, JobState] = {}
    all_done = trio.Event()

    def on_event(event: object) -> None:
        if isinstance(event, JobUpdated) and event.job.finished and event.job.id in remaining:
            remaining.discard(event.job.id)
            states[event.job.id] = event.job.state
            if not remaining:
                all_done.set()

    unsubscribe = engine.subscribe(on_event)
    try:
        for url in urls:
            remaining.add((await engine.submit(JobRequest((url,), owner=owner))).id)
        await all_done.wait()
    finally:
        unsubscribe()
    return states
