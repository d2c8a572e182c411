"""Soak: many jobs end to end through one real `storyflow run`, checking that nothing accumulates.

    .venv/bin/python scripts/soak.py [--jobs 200] [--in-flight 8] [--rate-mb 10] [--keep]

The loopback Telegram, the media server and `storyflow run` each run in their own process, as in the benchmarks;
this process is the owner's phone: it types `.dl …` in Saved Messages and watches the answers (the status message
replying to each command, and the media replying to it). The mix: single photos, single small videos, `.dl` messages
of 2–4 links, pages with a `<video>` for yt-dlp, links that 404, and downloads cancelled with a `.cancel` replied to
the command while they download. At most ``--in-flight`` jobs are unfinished at once (a person pasting links, and
under the per-owner limit the config raises).

At start (after the first `.ping` is answered), in the middle (after half the jobs, once `.queue` says the queue is
empty) and at the end, it samples `storyflow run` from /proc: open descriptors, RSS, live and zombie descendants, and
files left in its job folders, its private folder and its TMPDIR. Then it checks the bytes of a sample of the media
by downloading them back with the phone (sha256 against the served file) and the sizes of every document, and stops
the userbot with SIGTERM (expect exit 0 within 5 s). Exit 0 when every verdict holds, 1 when one fails, 2 when the
soak could not run to the end.

It takes about a second per job: the userbot edits status messages at most once a second per chat
(`storyflow/telegram/_status.py`), every job needs its final edit, and all of them are in one chat here.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_asyncio
from telethon import TelegramClient, events
from telethon.sessions import StringSession

from storyflow.testing._media import make_image, make_padded_video, make_video, sha256_file, video_page_html
from storyflow.testing._processes import start_media_process, start_telegram_process, storyflow_env

FINAL_MARKS = ("✅", "❌", "🚫")
EXPECTED_MARK = {"photo": "✅", "video": "✅", "multi": "✅", "page": "✅", "missing": "❌", "cancel": "🚫"}

# Tolerances for "flat". Descriptors: a long-lived process may open a few things once and keep them (a keep-alive
# connection, SQLite's -wal/-shm files, a reconnected MTProto socket whose predecessor is still closing), so a small
# constant rise is not a leak; one descriptor leaked per job would show as 100+ here. (Measured: +0.)
FD_TOLERANCE = 5
# RSS: the first jobs load what then stays loaded (both tools' extractor tables for routing, Telethon's TL classes
# for media, SQLite's page cache, the buffers of the first big streamed upload): measured +13–19 MB by the middle
# sample (every kind of job has run by then) over six runs, so start → end gets 25 MB once plus the steady allowance.
# Steady state is middle → end, where both halves did the same work. Python's own heap is flat there (tracemalloc:
# +0.2 MB over 150 jobs), but glibc's per-thread malloc arenas (worker threads reading 512 KB parts and 1 MB hash
# chunks) creep in steps: +0–15 MB over 100–200 jobs, and +2 MB over 200 with MALLOC_ARENA_MAX=2. So the allowance
# is 100 KB per job of the second half, at least 10 MB: a leak of a part buffer per job still fails it.
RSS_ONE_TIME_MB = 25.0
RSS_STEADY_MB_PER_JOB = 0.1
RSS_STEADY_MIN_MB = 10.0
SIGTERM_LIMIT_SECONDS = 5.0
READY_SECONDS = 60.0
CANCEL_WAIT_SECONDS = 60.0  # until a job to be cancelled is seen downloading
JOB_SECONDS = 120.0  # from sending `.dl` to its final status (typically 2–15 s, waiting for a slot included)
QUEUE_EMPTY_SECONDS = 120.0
SHA_SAMPLE = 12

JOB_ID = re.compile(r"#(\d+)")


class SoakFailed(Exception):
    """The soak could not go on: something did not answer in time, or a process ended early."""


@contextmanager
def deadline(seconds: float, describe: Callable[[], str]) -> Iterator[None]:
    """``trio.fail_after`` whose timeout says what was awaited (``describe`` runs only then, so it can show state)."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise SoakFailed(f"{describe()} (waited {seconds:g} s)") from None


# -- the phone ----------------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Answers:
    """Everything that replied to one command message: its status (or answer) text, and the media."""

    status_id: int | None = None
    text: str = ""
    final: bool = False
    media: dict[int, Any] = attrs.field(factory=dict)  # message id → Telethon message with a photo or document
    changed: trio.Event = attrs.field(factory=trio.Event)


class Phone:
    """The owner's other device: sends commands to Saved Messages and keeps what answered each one.

    Answers are kept by the id they reply to even before `send` returns that id, so an answer overtaking the
    result of our own sendMessage is not lost.
    """

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        self.answers: dict[int, Answers] = {}
        client.add_event_handler(self._on_message, events.NewMessage(outgoing=True))
        client.add_event_handler(self._on_message, events.MessageEdited(outgoing=True))

    def of(self, message_id: int) -> Answers:
        return self.answers.setdefault(message_id, Answers())

    async def _on_message(self, event: Any) -> None:
        """asyncio-flavoured (a Telethon handler): record, then wake the Trio side."""
        message = event.message
        reply_to = message.reply_to_msg_id
        if reply_to is None:
            return
        answers = self.of(reply_to)
        if message.photo is not None or message.document is not None:
            answers.media[message.id] = message
        elif answers.status_id in (None, message.id) and not answers.final:
            # Updates are handled in order (sequential_updates), and a final text stays final regardless.
            answers.status_id = message.id
            answers.text = message.message or ""
            answers.final = answers.text.startswith(FINAL_MARKS)
        await trio_asyncio.trio_as_aio(self._wake)(reply_to)

    async def _wake(self, message_id: int) -> None:
        answers = self.of(message_id)
        answers.changed.set()
        answers.changed = trio.Event()

    async def send(self, text: str, *, reply_to: int | None = None) -> int:
        sent = await trio_asyncio.aio_as_trio(self.client.send_message)("me", text, reply_to=reply_to)
        self.of(sent.id)
        return int(sent.id)

    async def wait_until(self, message_id: int, condition: Callable[[Answers], bool]) -> Answers:
        while not condition(answers := self.of(message_id)):
            await answers.changed.wait()
        return answers

    async def ask(self, text: str) -> str:
        """Send a command and return the text of the first answer to it."""
        message_id = await self.send(text)
        return (await self.wait_until(message_id, lambda a: a.status_id is not None)).text

    async def download(self, message: Any) -> bytes:
        data = await trio_asyncio.aio_as_trio(self.client.download_media)(message, file=bytes)
        return bytes(data)


# -- the jobs -----------------------------------------------------------------------------------------------------


@attrs.frozen
class JobPlan:
    number: int
    kind: str  # photo | video | multi | page | missing | cancel
    urls: tuple[str, ...]
    sources: tuple[Path, ...]  # the served files that should arrive, one media message each

    @property
    def command(self) -> str:
        return ".dl " + " ".join(self.urls)


@attrs.define(eq=False)
class JobResult:
    plan: JobPlan
    command_id: int
    answers: Answers
    cancel_answer: str = ""

    @property
    def mark(self) -> str:
        return self.answers.text[:1]

    @property
    def job_id(self) -> str:
        found = JOB_ID.search(self.answers.text)
        return f"#{found.group(1)}" if found else "#?"


def job_kinds(count: int, rng: random.Random) -> list[str]:
    """The mix for ``count`` jobs, shuffled, with one of each kind among the first six.

    The first of a kind makes the userbot load what it then keeps (the first big, cancelled download alone lifted RSS
    by ~13 MB, once); with every kind in the first half, the middle sample has seen all of that, and middle → end
    compares like with like."""
    cancels, missing, pages, multis = max(1, count // 40), max(1, count // 25), max(1, count // 20), max(1, count // 4)
    rest = count - cancels - missing - pages - multis
    if rest < 2:
        raise SystemExit(f"--jobs {count} is too few for the mix; use at least 10")
    kinds = (["cancel"] * cancels + ["missing"] * missing + ["page"] * pages + ["multi"] * multis
             + ["photo"] * (rest // 2) + ["video"] * (rest - rest // 2))
    rng.shuffle(kinds)
    firsts = [kinds.pop(kinds.index(kind)) for kind in sorted(set(kinds))]
    rng.shuffle(firsts)
    return firsts + kinds


@attrs.frozen
class Library:
    """The few real media files ffmpeg made; every job serves hard links to them under names of its own, so no job
    is answered from the sent-file cache of an earlier one (that cache is keyed by the links)."""

    images: tuple[Path, ...]
    videos: tuple[Path, ...]
    big_video: Path  # large enough to be still downloading when the `.cancel` arrives


def make_library(folder: Path, big_bytes: int) -> Library:
    """Blocking (ffmpeg): run in a thread."""
    folder.mkdir()
    images = [make_image(folder / f"image{i}.jpg", variant=i) for i in range(3)]
    images.append(make_image(folder / "image3.png", fmt="png", variant=3))
    videos = [make_video(folder / f"video{i}.mp4", seconds=1.0, variant=i) for i in range(4)]
    big = make_padded_video(folder / "big.mp4", big_bytes)
    return Library(tuple(images), tuple(videos), big)


def plan_jobs(kinds: list[str], library: Library, served: Path, base_url: str, rng: random.Random) -> list[JobPlan]:
    """Blocking (links and small files): run in a thread."""

    def serve(source: Path, name: str) -> Path:
        target = served / f"{name}{source.suffix}"
        os.link(source, target)
        return target

    plans = []
    for number, kind in enumerate(kinds, start=1):
        tag = f"j{number:04d}"
        sources: list[Path] = []
        urls: list[str] = []
        if kind == "photo":
            sources = [serve(rng.choice(library.images), tag)]
        elif kind == "video":
            sources = [serve(rng.choice(library.videos), tag)]
        elif kind == "multi":
            pool = library.images + library.videos
            sources = [serve(rng.choice(pool), f"{tag}-{i}") for i in range(rng.randint(2, 4))]
        elif kind == "page":
            video = serve(rng.choice(library.videos), f"{tag}-page-video")
            sources = [video]
            page = served / f"{tag}.html"
            page.write_text(video_page_html(f"{base_url}/{video.name}", title=f"soak page {number}"))
            urls = [f"{base_url}/{page.name}"]
        elif kind == "missing":
            urls = [f"{base_url}/{tag}-missing.jpg"]
        elif kind == "cancel":
            urls = [f"{base_url}/{serve(library.big_video, tag).name}"]
        if not urls:
            urls = [f"{base_url}/{source.name}" for source in sources]
        plans.append(JobPlan(number, kind, tuple(urls), tuple(sources) if kind != "cancel" else ()))
    return plans


async def run_job(phone: Phone, plan: JobPlan, slots: trio.Semaphore, results: list[JobResult]) -> None:
    """One job from `.dl` to its final status; holds an in-flight slot for as long as the job is unfinished."""
    try:
        command_id = await phone.send(plan.command)
        result = JobResult(plan, command_id, phone.of(command_id))
        results.append(result)
        if plan.kind == "cancel":
            # Cancelled mid-download: wait until the status shows download progress, then reply `.cancel` to the
            # command (the README's "reply `.cancel` to a job's status message" works for the command too).
            with deadline(CANCEL_WAIT_SECONDS, lambda: f"job {plan.number} (to cancel) was never seen downloading; "
                                                        f"its status: {result.answers.text!r}"):
                answers = await phone.wait_until(command_id, lambda a: "downloading" in a.text or a.final)
            if not answers.final:
                result.cancel_answer = await _cancel(phone, command_id)
        with deadline(JOB_SECONDS, lambda: f"job {plan.number} ({plan.kind}) got no final status; "
                                           f"its status: {result.answers.text!r}"):
            await phone.wait_until(command_id, lambda a: a.final)
    finally:
        slots.release()


async def _cancel(phone: Phone, command_id: int) -> str:
    cancel_id = await phone.send(".cancel", reply_to=command_id)
    with deadline(30, lambda: "`.cancel` got no answer"):
        return (await phone.wait_until(cancel_id, lambda a: a.status_id is not None)).text


async def run_jobs(
    phone: Phone, plans: list[JobPlan], in_flight: int, rng: random.Random, results: list[JobResult]
) -> None:
    slots = trio.Semaphore(in_flight)
    async with trio.open_nursery() as nursery:
        for plan in plans:
            await slots.acquire()
            nursery.start_soon(run_job, phone, plan, slots, results)
            await trio.sleep(rng.uniform(0.05, 0.3))  # pacing: someone pasting links, not a script flooding


async def wait_queue_empty(phone: Phone) -> None:
    last = ""

    def describe() -> str:
        return f"`.queue` never said the queue is empty; last answer: {last!r}"

    with deadline(QUEUE_EMPTY_SECONDS, describe):
        while True:
            last = await phone.ask(".queue")
            if last == "the queue is empty":
                return
            await trio.sleep(1.0)  # pacing between polls, not readiness


async def wait_ready(phone: Phone) -> None:
    """Ready means it answers `.ping`."""
    with deadline(READY_SECONDS, lambda: "storyflow run never answered `.ping`"):
        while True:
            message_id = await phone.send(".ping")
            with trio.move_on_after(2):
                await phone.wait_until(message_id, lambda a: a.status_id is not None)
                return


# -- sampling /proc -----------------------------------------------------------------------------------------------


@attrs.frozen
class Sample:
    label: str
    fds: int
    fd_kinds: dict[str, int]
    rss_kb: int
    threads: int
    children: tuple[str, ...]  # live descendants, as "pid comm"
    zombies: tuple[str, ...]
    leftovers: tuple[str, ...]  # paths left in the job folders, the private folder and TMPDIR


def _fd_kind(link: str) -> str:
    if link.startswith(("socket:", "pipe:", "anon_inode:")):
        return link.partition(":")[0]
    return "file"


def _process_table() -> dict[int, tuple[str, str, int]]:
    """pid → (comm, state, ppid) for every process we may read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                line = stat.read()
        except OSError:
            continue  # gone between listing and reading
        comm = line[line.index("(") + 1 : line.rindex(")")]
        state, ppid = line[line.rindex(")") + 2 :].split()[:2]
        table[int(entry)] = (comm, state, int(ppid))
    return table


def _entries_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(path) for path in folder.rglob("*"))


def take_sample(label: str, pid: int, watched: list[Path]) -> Sample:
    """Blocking (/proc and the folders): run in a thread."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            kinds[_fd_kind(os.readlink(f"/proc/{pid}/fd/{fd}"))] += 1
        except OSError:
            kinds["closed while read"] += 1
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    table = _process_table()
    descendants, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, (_, _, ppid) in table.items():
            if ppid == parent:
                descendants.append(child)
                frontier.append(child)
    live = tuple(f"{p} {table[p][0]}" for p in descendants if table[p][1] != "Z")
    zombies = tuple(f"{p} {table[p][0]}" for p in descendants if table[p][1] == "Z")
    leftovers = tuple(path for folder in watched for path in _entries_under(folder))
    return Sample(label, sum(kinds.values()), dict(kinds), int(status["VmRSS"].split()[0]),
                  int(status["Threads"]), live, zombies, leftovers)


# -- checks and the report ----------------------------------------------------------------------------------------


@attrs.define
class Report:
    lines: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)

    def say(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def verdict(self, name: str, ok: bool, detail: str) -> None:
        self.say(f"  {name:<18} {'ok  ' if ok else 'FAIL'}  {detail}")
        if not ok:
            self.failures.append(name)


def sample_table(report: Report, samples: list[Sample]) -> None:
    report.say(f"{'':<22}" + "".join(f"{s.label:>12}" for s in samples))
    rows: list[tuple[str, Callable[[Sample], str]]] = [
        ("open fds", lambda s: str(s.fds)),
        ("  sockets", lambda s: str(s.fd_kinds.get("socket", 0))),
        ("  pipes", lambda s: str(s.fd_kinds.get("pipe", 0))),
        ("  files", lambda s: str(s.fd_kinds.get("file", 0))),
        ("  anon inodes", lambda s: str(s.fd_kinds.get("anon_inode", 0))),
        ("RSS MB", lambda s: f"{s.rss_kb / 1024:.1f}"),
        ("threads", lambda s: str(s.threads)),
        ("live children", lambda s: str(len(s.children))),
        ("zombie children", lambda s: str(len(s.zombies))),
        ("leftover files", lambda s: str(len(s.leftovers))),
    ]
    for name, cell in rows:
        report.say(f"{name:<22}" + "".join(f"{cell(s):>12}" for s in samples))


def judge_samples(report: Report, start: Sample, middle: Sample, end: Sample, *, second_half: int) -> None:
    fd_rise = end.fds - start.fds
    report.verdict("fds flat", fd_rise <= FD_TOLERANCE,
                   f"end − start = {fd_rise:+d} (tolerance ≤ {FD_TOLERANCE}); middle → end {end.fds - middle.fds:+d}")
    total_mb, steady_mb = (end.rss_kb - start.rss_kb) / 1024, (end.rss_kb - middle.rss_kb) / 1024
    steady_limit = max(RSS_STEADY_MIN_MB, RSS_STEADY_MB_PER_JOB * second_half)
    total_limit = RSS_ONE_TIME_MB + steady_limit
    report.verdict("RSS flat", total_mb <= total_limit and steady_mb <= steady_limit,
                   f"end − start = {total_mb:+.1f} MB (≤ {total_limit:g}: one-time loading + steady allowance), "
                   f"end − middle = {steady_mb:+.1f} MB (≤ {steady_limit:g} for {second_half} jobs)")
    for sample in (middle, end):
        report.verdict(f"children {sample.label}", not sample.children and not sample.zombies,
                       f"{len(sample.children)} live, {len(sample.zombies)} zombies (want 0, 0)"
                       + (f": {', '.join(sample.children + sample.zombies)[:200]}" if sample.children
                          or sample.zombies else ""))
        report.verdict(f"leftovers {sample.label}", not sample.leftovers,
                       f"{len(sample.leftovers)} (want 0)" + (f": {', '.join(sample.leftovers[:5])}"
                                                             if sample.leftovers else ""))


def judge_jobs(report: Report, results: list[JobResult], expected_count: int) -> None:
    expected = Counter(EXPECTED_MARK[r.plan.kind] for r in results)
    got = Counter(r.mark for r in results)
    names = {"✅": "done", "❌": "failed", "🚫": "cancelled"}
    summary = ", ".join(f"{got.get(mark, 0)} {names[mark]} (expected {expected.get(mark, 0)})" for mark in FINAL_MARKS)
    wrong = [r for r in results if r.mark != EXPECTED_MARK[r.plan.kind]]
    report.verdict("job outcomes", not wrong and len(results) == expected_count,
                   f"{len(results)} of {expected_count} jobs ended: {summary}")
    for result in wrong[:5]:
        report.say(f"      job {result.plan.number} ({result.plan.kind}, {result.job_id}) ended"
                   f" {result.answers.text!r}")
    cancels = [r for r in results if r.plan.kind == "cancel"]
    if cancels:
        report.say(f"  (the {len(cancels)} `.cancel`s were answered: "
                   f"{'; '.join(sorted({JOB_ID.sub('#N', r.cancel_answer) for r in cancels}))!r})")


def judge_media(report: Report, results: list[JobResult]) -> list[tuple[str, Any, Path]]:
    """Counts per job, and the size of every document against its source; returns (job kind, message, source) of
    single-file jobs to check byte for byte."""
    expected = sum(len(r.plan.sources) for r in results)
    received = sum(len(r.answers.media) for r in results)
    miscounted = [r for r in results if len(r.answers.media) != len(r.plan.sources)]
    report.verdict("media count", not miscounted,
                   f"{received} media messages received (expected {expected}) over {len(results)} jobs")
    for result in miscounted[:5]:
        report.say(f"      job {result.plan.number} ({result.plan.kind}) got {len(result.answers.media)}"
                   f" of {len(result.plan.sources)}")
    wrong_sizes, documents, photos = [], 0, 0
    for result in results:
        messages = list(result.answers.media.values())
        sent = sorted(m.document.size for m in messages if m.document is not None)
        sources = [p for p in result.plan.sources if p.suffix == ".mp4"]
        documents += len(sent)
        photos += sum(1 for m in messages if m.photo is not None)
        if sent != sorted(p.stat().st_size for p in sources) or len(messages) - len(sent) != (
                len(result.plan.sources) - len(sources)):
            wrong_sizes.append(result)
    report.verdict("media sizes", not wrong_sizes,
                   f"{documents} videos' document sizes equal their sources' and {photos} photos arrived as photos"
                   + (f"; {len(wrong_sizes)} jobs differ, e.g. job {wrong_sizes[0].plan.number}"
                      if wrong_sizes else ""))
    singles = [r for r in results if len(r.plan.sources) == 1 and len(r.answers.media) == 1]
    by_kind: dict[str, list[JobResult]] = {}
    for result in singles:
        by_kind.setdefault(result.plan.kind, []).append(result)
    chosen: list[tuple[str, Any, Path]] = []
    while len(chosen) < SHA_SAMPLE and any(by_kind.values()):
        for kind, queue in by_kind.items():  # round-robin over photo, video and page jobs
            if queue and len(chosen) < SHA_SAMPLE:
                result = queue.pop(0)
                chosen.append((kind, next(iter(result.answers.media.values())), result.plan.sources[0]))
    return chosen


async def judge_bytes(report: Report, phone: Phone, sample: list[tuple[str, Any, Path]]) -> None:
    mismatched = []
    for _, message, source in sample:
        with deadline(60, partial(str, f"downloading {source.name} back took too long")):
            data = await phone.download(message)
        if hashlib.sha256(data).hexdigest() != await trio.to_thread.run_sync(sha256_file, source):
            mismatched.append(f"{source.name} ({len(data)} bytes back, {source.stat().st_size} served)")
    kinds = Counter(kind for kind, _, _ in sample)
    report.verdict("media sha256", bool(sample) and not mismatched,
                   f"{len(sample) - len(mismatched)} of {len(sample)} media downloaded back with the phone "
                   f"(from {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))} jobs) equal the served file"
                   + (f"; differ: {', '.join(mismatched[:3])}" if mismatched else ""))


# -- the run ------------------------------------------------------------------------------------------------------


def config_text(data_dir: Path, session: str, in_flight: int) -> str:
    # The per-owner limit sits above our in-flight count: we count a job as finished only once its final status
    # arrives, which is after the engine stored it finished, so the userbot never sees more than ``in_flight``.
    return (
        f'[paths]\ndata_dir = "{data_dir}"\n'
        f"[download]\nallow_private_addresses = true\nmax_concurrent = 3\nmax_jobs_per_owner = {in_flight + 2}\n"
        f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\nsession_string = "{session}"\n'
    )


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def soak(work: Path, arguments: argparse.Namespace, results: list[JobResult]) -> Report:
    """Run everything; ``results`` fills up as jobs are sent, so a failed soak can still say where each one was."""
    report = Report()
    rng = random.Random(arguments.seed)
    served = work / "media"
    served.mkdir()
    big_bytes = min(int(arguments.rate_mb * 1e6 * 10), 1_000_000_000)  # under the default max_file_size
    library = await trio.to_thread.run_sync(make_library, work / "library", big_bytes)
    kinds = job_kinds(arguments.jobs, rng)
    data_dir, tmp_dir = work / "data", work / "userbot-tmp"
    tmp_dir.mkdir()
    log_path = work / "storyflow-run.log"
    async with trio.open_nursery() as nursery:
        telegram = await start_telegram_process(nursery)
        base_url = await start_media_process(nursery, served, rate=arguments.rate_mb * 1e6)
        plans = await trio.to_thread.run_sync(plan_jobs, kinds, library, served, base_url, rng)
        config = work / "storyflow.toml"
        config.write_text(config_text(data_dir, telegram.sessions["owner"], arguments.in_flight))
        # Its own TMPDIR, so whatever it (or a tool) leaves in the temporary directory is counted.
        env = storyflow_env(config, TMPDIR=str(tmp_dir))
        async with await trio.open_file(log_path, "wb") as log:
            userbot: trio.Process = await nursery.start(partial(
                trio.run_process, [sys.executable, "-m", "storyflow", "run"], env=env, check=False,
                stdout=log.fileno(), stderr=log.fileno(),
            ))
        watched = [data_dir / "jobs", data_dir / "private", tmp_dir]
        stopping = False

        async def fail_if_it_ends() -> None:
            await userbot.wait()
            if not stopping:
                raise SoakFailed(f"storyflow run exited {userbot.returncode} on its own")

        nursery.start_soon(fail_if_it_ends)
        try:
            async with trio_asyncio.open_loop():
                # Telethon caches the server config on the class; a client in a new loop must not reuse it.
                TelegramClient._config = None
                client = TelegramClient(
                    StringSession(telegram.sessions["owner"]), 1, "loopback-hash",
                    sequential_updates=True,  # status edits handled in the order they were made
                    flood_sleep_threshold=0, request_retries=1, receive_updates=True,
                )
                await trio_asyncio.aio_as_trio(client.connect)()
                try:
                    phone = Phone(client)
                    await wait_ready(phone)
                    samples = [await trio.to_thread.run_sync(take_sample, "start", userbot.pid, watched)]
                    mix = ", ".join(f"{n} {k}" for k, n in Counter(kinds).items())
                    report.say(f"soak: {arguments.jobs} jobs ({mix}) through storyflow run (pid {userbot.pid}); "
                               f"{arguments.in_flight} in flight, "
                               f"max_concurrent 3, max_jobs_per_owner {arguments.in_flight + 2}, media link "
                               f"{arguments.rate_mb:g} MB/s")
                    started = time.monotonic()
                    half = len(plans) // 2
                    await run_jobs(phone, plans[:half], arguments.in_flight, rng, results)
                    await wait_queue_empty(phone)
                    samples.append(await trio.to_thread.run_sync(take_sample, "middle", userbot.pid, watched))
                    report.say(f"  middle: {half} jobs finished after {time.monotonic() - started:.1f} s")
                    await run_jobs(phone, plans[half:], arguments.in_flight, rng, results)
                    await wait_queue_empty(phone)
                    wall = time.monotonic() - started
                    samples.append(await trio.to_thread.run_sync(take_sample, "end", userbot.pid, watched))
                    results.sort(key=lambda r: r.plan.number)
                    report.say()
                    sample_table(report, samples)
                    report.say()
                    report.say("verdicts:")
                    judge_samples(report, *samples, second_half=len(plans) - half)
                    judge_jobs(report, results, len(plans))
                    sha_sample = judge_media(report, results)
                    await judge_bytes(report, phone, sha_sample)
                finally:
                    with trio.CancelScope(shield=True):
                        await trio_asyncio.aio_as_trio(client.disconnect)()
            stopping = True
            terminated = time.monotonic()
            userbot.send_signal(signal.SIGTERM)
            with trio.move_on_after(SIGTERM_LIMIT_SECONDS * 3):
                await userbot.wait()
            took = time.monotonic() - terminated
            report.verdict("SIGTERM", userbot.returncode == 0 and took <= SIGTERM_LIMIT_SECONDS,
                           f"exit status {userbot.returncode} after {took:.2f} s (want 0 within "
                           f"{SIGTERM_LIMIT_SECONDS:g} s)")
            report.say()
            report.say("totals:")
            expected = Counter(EXPECTED_MARK[r.plan.kind] for r in results)
            got = Counter(r.mark for r in results)
            report.say("  jobs: " + ", ".join(f"{got.get(mark, 0)}/{expected.get(mark, 0)} {name}"
                                              for mark, name in zip(FINAL_MARKS, ("done", "failed", "cancelled"),
                                                                    strict=True)) + " (got/expected)")
            report.say(f"  media messages received: {sum(len(r.answers.media) for r in results)}/"
                       f"{sum(len(r.plan.sources) for r in results)}")
            report.say(f"  final SIGTERM: exit status {userbot.returncode} after {took:.2f} s")
            report.say(f"  wall time: {wall:.1f} s from the first `.dl` to the empty queue at the end "
                       f"({arguments.jobs / wall:.2f} jobs/s)")
        finally:
            if arguments.keep:
                print(f"kept {work} (log: {log_path})", file=sys.stderr)
            stopping = True
            with trio.CancelScope(shield=True):
                # On the way out after a failure: the userbot first, while Telegram is still there to talk to.
                if userbot.returncode is None:
                    userbot.send_signal(signal.SIGTERM)
                    with trio.move_on_after(SIGTERM_LIMIT_SECONDS * 2):
                        await userbot.wait()
            nursery.cancel_scope.cancel()  # the loopback servers (and the userbot, if it is still there) end here
    return report


def _leaves(group: BaseExceptionGroup[SoakFailed]) -> list[SoakFailed]:
    leaves: list[SoakFailed] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


async def main(arguments: argparse.Namespace) -> int:
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="storyflow-soak-"))
    report: Report | None = None
    failed: list[str] = []
    results: list[JobResult] = []
    try:
        try:
            report = await soak(work, arguments, results)
        except* SoakFailed as group:
            failed = [str(error) for error in _leaves(group)]
            tail = log_tail(work / "storyflow-run.log")
    finally:
        if not arguments.keep:
            await trio.to_thread.run_sync(partial(shutil.rmtree, work, ignore_errors=True))
    if report is None:
        for error in failed:
            print(f"soak failed: {error}", file=sys.stderr)
        unfinished = [r for r in results if not r.answers.final]
        print(f"{len(results) - len(unfinished)} of {arguments.jobs} jobs had finished; unfinished:", file=sys.stderr)
        for result in unfinished:
            print(f"  job {result.plan.number} ({result.plan.kind}): {result.answers.text!r}", file=sys.stderr)
        print(f"the end of storyflow run's log:\n{tail}", file=sys.stderr)
        return 2
    report.say(f"  whole run, media generation and shutdown included: {time.monotonic() - began:.1f} s")
    report.say("verdict: " + ("PASS" if not report.failures else f"FAIL ({', '.join(report.failures)})"))
    return 1 if report.failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="how many `.dl` commands (default 200)")
    parser.add_argument("--in-flight", type=int, default=8, help="unfinished jobs at once (default 8)")
    parser.add_argument("--rate-mb", type=float, default=10.0,
                        help="the media server's link, MB/s; the file to cancel is ten seconds of it (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="the mix's shuffle and pacing")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (config, data, log)")
    sys.exit(trio.run(main, parser.parse_args()))
