"""StoryFlow's uploader against stock Telethon ``send_file``: the same file, the same loopback Telegram (in its own
process), side by side in one run; and peak memory while uploading a 2 GB file.

    .venv/bin/python scripts/bench_upload.py [--size-mb 200] [--delay-ms 50] [--big-gb 2] [--skip-big]

For each round trip (none, then ``--delay-ms``): stock ``client.send_file(me, path, force_document=True)`` with
Telethon's default settings, then StoryFlow's gateway + uploader (parts read off the loop, ``parts_in_flight`` on
their way, no gzip attempt, a connection of their own) + ``messages.uploadMedia`` + ``sendMedia``. Prints seconds,
MB/s, this process's CPU, and the ratio. Goals: >= 3x with no delay, >= 8x at 50 ms.

Then a child process uploads a ``--big-gb`` file with StoryFlow's uploader while sampling its own RSS: peak above
idle, goal <= 64 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio
import trio_asyncio
from telethon import TelegramClient
from telethon.sessions import StringSession
from telethon.tl.core import GzipPacked

# Importing storyflow patches Telethon (no gzip attempt for file parts), so the stock side's process must never import
# it: storyflow is imported inside the functions that need it.
if TYPE_CHECKING:
    from storyflow.telegram import PartsInFlight

DEFAULT_PARTS_IN_FLIGHT = 8


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def stock_send_file(session: str, path: Path) -> tuple[float, float]:
    if "storyflow" in sys.modules or GzipPacked.gzip_if_smaller.__module__ != GzipPacked.__module__:
        raise RuntimeError("the stock side must run Telethon as shipped, without StoryFlow's patches")
    TelegramClient._config = None
    async with trio_asyncio.open_loop():
        client = TelegramClient(StringSession(session), 1, "loopback-hash")  # Telethon's defaults, as users run it
        await trio_asyncio.aio_as_trio(client.connect)()
        try:
            cpu, started = cpu_seconds(), time.perf_counter()
            await trio_asyncio.aio_as_trio(client.send_file)("me", str(path), force_document=True)
            return time.perf_counter() - started, cpu_seconds() - cpu
        finally:
            with trio.CancelScope(shield=True):
                await trio_asyncio.aio_as_trio(client.disconnect)()


async def storyflow_upload(session: str, path: Path, parts_in_flight: int) -> tuple[float, float]:
    from storyflow.telegram import PartsInFlight
    from storyflow.telegram._gateway import GatewaySettings, open_gateway

    async with open_gateway(GatewaySettings(1, "loopback-hash", session)) as gateway:
        cpu, started = cpu_seconds(), time.perf_counter()
        await send_with_storyflow(gateway, path, PartsInFlight(parts_in_flight))
        return time.perf_counter() - started, cpu_seconds() - cpu


async def send_with_storyflow(gateway: object, path: Path, in_flight: PartsInFlight) -> None:
    from storyflow.telegram import upload_file
    from storyflow.telegram._values import MediaSpec, MediaType, OutgoingMedia, random_id

    uploaded = await upload_file(gateway, path, name=path.name, in_flight=in_flight)  # type: ignore[arg-type]
    spec = MediaSpec(MediaType.DOCUMENT, uploaded, "application/octet-stream", path.name)
    me = gateway.me.user_id  # type: ignore[attr-defined]
    media = await gateway.prepare_media(me, spec, as_file=True)  # type: ignore[attr-defined]
    await gateway.send_media(me, [OutgoingMedia(media, "", random_id())])  # type: ignore[attr-defined]


def run_side(side: str, session: str, path: Path, parts_in_flight: int) -> tuple[float, float]:
    """One side in a fresh process: stock Telethon must not see the gateway's patch (no gzip for file parts)."""
    result = subprocess.run(
        [sys.executable, __file__, "--side", side, "--session", session, "--path", str(path),
         "--parts-in-flight", str(parts_in_flight)],
        capture_output=True, text=True, check=True,
    )
    elapsed, cpu = result.stdout.split()
    return float(elapsed), float(cpu)


async def compare(path: Path, size: int, delay_ms: float, parts_in_flight: int) -> tuple[float, float]:
    from storyflow.testing._processes import start_telegram_process

    size_mb = size / 1e6
    async with trio.open_nursery() as nursery:
        server = await start_telegram_process(
            nursery, "--keep-file-bytes", "0", *(["--rpc-delay", str(delay_ms / 1000)] if delay_ms else [])
        )
        session = server.sessions["owner"]
        stock_time, stock_cpu = await trio.to_thread.run_sync(run_side, "stock", session, path, parts_in_flight)
        ours_time, ours_cpu = await trio.to_thread.run_sync(run_side, "storyflow", session, path, parts_in_flight)
        server.process.terminate()
        nursery.cancel_scope.cancel()
    label = f"{delay_ms:g} ms round trip" if delay_ms else "no added delay"
    print(f"{label}: {size_mb:.0f} MB")
    print(f"  stock send_file          {stock_time:7.2f} s  {size_mb / stock_time:6.1f} MB/s  CPU {stock_cpu:5.2f} s")
    print(f"  StoryFlow ({parts_in_flight:2d} in flight) {ours_time:7.2f} s  {size_mb / ours_time:6.1f} MB/s"
          f"  CPU {ours_cpu:5.2f} s")
    print(f"  ratio (stock time / StoryFlow time): {stock_time / ours_time:.1f}x")
    return stock_time, ours_time


async def big_upload_child(size: int, parts_in_flight: int) -> None:
    """Runs in a child process: upload a sparse ``size``-byte file, print idle and peak RSS."""
    from storyflow.telegram import PartsInFlight
    from storyflow.telegram._gateway import GatewaySettings, open_gateway
    from storyflow.testing._processes import start_telegram_process

    with tempfile.TemporaryDirectory(prefix="storyflow-bench-") as temp:
        path = Path(temp) / "big.bin"
        with path.open("wb") as f:
            f.truncate(size)
        async with trio.open_nursery() as nursery:
            server = await start_telegram_process(nursery, "--keep-file-bytes", "0")
            async with open_gateway(GatewaySettings(1, "loopback-hash", server.sessions["owner"])) as gateway:
                idle = rss_bytes()
                peak = idle
                done = trio.Event()

                async def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, rss_bytes())
                        await trio.sleep(0.05)

                nursery.start_soon(sample)
                started = time.perf_counter()
                await send_with_storyflow(gateway, path, PartsInFlight(parts_in_flight))
                elapsed = time.perf_counter() - started
                done.set()
            server.process.terminate()
            nursery.cancel_scope.cancel()
    print(f"{idle} {peak} {elapsed}")


def big_upload(size_gb: float, parts_in_flight: int) -> None:
    size = int(size_gb * 1e9)
    result = subprocess.run(
        [sys.executable, __file__, "--big-child", str(size), "--parts-in-flight", str(parts_in_flight)],
        capture_output=True, text=True, check=True,
    )
    idle, peak, elapsed = result.stdout.split()
    above = (int(peak) - int(idle)) / 2**20
    print(f"{size_gb:g} GB upload ({parts_in_flight} parts in flight): {float(elapsed):.1f} s, "
          f"{size / 1e6 / float(elapsed):.1f} MB/s; RSS idle {int(idle) / 2**20:.1f} MiB, "
          f"peak {int(peak) / 2**20:.1f} MiB, {above:.1f} MiB above idle (goal <= 64 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--big-gb", type=float, default=2)
    parser.add_argument("--parts-in-flight", type=int, default=DEFAULT_PARTS_IN_FLIGHT)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--big-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["stock", "storyflow"], help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_child:
        trio.run(big_upload_child, args.big_child, args.parts_in_flight)
        return
    if args.side == "stock":
        print(*trio.run(stock_send_file, args.session, args.path))
        return
    if args.side == "storyflow":
        print(*trio.run(storyflow_upload, args.session, args.path, args.parts_in_flight))
        return
    with tempfile.TemporaryDirectory(prefix="storyflow-bench-") as temp:
        path = Path(temp) / "random.bin"
        with path.open("wb") as f:  # incompressible, like media: no gzip can help either side
            for _ in range(int(args.size_mb)):
                f.write(os.urandom(1_000_000))
        size = int(args.size_mb) * 1_000_000
        results = [trio.run(compare, path, size, 0.0, args.parts_in_flight)]
        if args.delay_ms:
            results.append(trio.run(compare, path, size, args.delay_ms, args.parts_in_flight))
    goals = [3.0, 8.0]
    verdicts = [f"{stock / ours:.1f}x (goal >= {goal:g}x)" for (stock, ours), goal in zip(results, goals, strict=False)]
    print("summary: " + "; ".join(verdicts))
    if not args.skip_big:
        big_upload(args.big_gb, args.parts_in_flight)


if __name__ == "__main__":
    main()
