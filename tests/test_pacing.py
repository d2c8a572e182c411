"""Status-board pacing and the uploader's parts in flight, on Trio's autojump clock (virtual time, no waiting)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from storyflow import (
    ChatUnavailable,
    FloodWait,
    MessageGone,
    NotAuthorized,
    NotModified,
    PeerNotFound,
    TelegramError,
    TelegramUnavailable,
)
from storyflow.telegram import PartsInFlight, open_status_board, upload_file
from storyflow.telegram._uploader import PART_SIZE


@attrs.define
class RecordingSink:
    edits: list[tuple[float, int, int, str]] = attrs.field(factory=list)
    failures: dict[int, list[Exception]] = attrs.field(factory=dict)  # message id -> errors to raise, in order
    refusals: dict[int, Exception] = attrs.field(factory=dict)  # message id -> the error every edit of it gets
    attempts: dict[int, list[float]] = attrs.field(factory=dict)  # message id -> when each edit was tried

    async def edit_text(self, chat_id: int, message_id: int, text_html: str) -> None:
        self.attempts.setdefault(message_id, []).append(trio.current_time())
        await trio.sleep(0.01)
        if message_id in self.refusals:
            raise self.refusals[message_id]
        pending = self.failures.get(message_id)
        if pending:
            raise pending.pop(0)
        self.edits.append((trio.current_time(), chat_id, message_id, text_html))


async def test_edits_coalesce_and_respect_both_intervals(autojump_clock: trio.testing.MockClock) -> None:
    sink = RecordingSink()
    async with open_status_board(sink, per_message=3.0, per_chat=1.0) as board:
        for step in range(100):  # a progress event every 0.1 s for 10 s, on two messages of one chat
            board.show(1, 10, f"a {step}")
            board.show(1, 20, f"b {step}")
            await trio.sleep(0.1)
        board.show(1, 10, "a done", final=True)
        board.show(1, 20, "b done", final=True)
        await board.wait_final(1, 10)
        await board.wait_final(1, 20)
    times = [t for t, *_ in sink.edits]
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in zip(times, times[1:], strict=False))
    for message_id in (10, 20):
        mine = [(t, text) for t, _, m, text in sink.edits if m == message_id]
        assert mine[-1][1].endswith("done")
        paced = [t for t, text in mine if not text.endswith("done")]
        assert all(b - a >= 3.0 - 1e-9 for a, b in zip(paced, paced[1:], strict=False))
    assert len(sink.edits) < 20  # 200 updates became a handful of edits


async def test_flood_wait_closes_the_chats_gate_and_the_final_text_still_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = RecordingSink(failures={10: [FloodWait("edit", seconds=30)]})
    async with open_status_board(sink) as board:
        board.show(1, 10, "working")
        board.show(2, 99, "another chat")
        await trio.sleep(1)
        flooded_at = trio.current_time()
        board.show(1, 10, "final", final=True)
        await board.wait_final(1, 10)
    chat_one = [(t, text) for t, chat, _, text in sink.edits if chat == 1]
    assert chat_one == [(pytest.approx(chat_one[0][0]), "final")]
    assert chat_one[0][0] >= flooded_at + 28  # waited out the flood, then sent the newest text
    assert [text for _, chat, _, text in sink.edits if chat == 2] == ["another chat"]  # other chats unaffected


async def test_not_modified_and_deleted_messages_are_fine(autojump_clock: trio.testing.MockClock) -> None:
    sink = RecordingSink(failures={10: [NotModified("same")], 20: [MessageGone("deleted")]})
    async with open_status_board(sink) as board:
        board.show(1, 10, "same text", final=True)
        board.show(1, 20, "gone", final=True)
        await board.wait_final(1, 10)
        await board.wait_final(1, 20)
        board.show(1, 20, "never sent")  # a deleted message is not edited again
        await trio.sleep(10)
    assert [m for _, _, m, _ in sink.edits] == []


@pytest.mark.parametrize(
    "refusal",
    [ChatUnavailable("banned from the chat"), PeerNotFound("chat unknown to this session"),
     NotAuthorized("logged out"), TelegramError("Telegram said MESSAGE_TOO_LONG")],
    ids=lambda error: type(error).__name__,
)
async def test_a_message_that_cannot_be_edited_is_given_up_after_one_try(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, refusal: Exception
) -> None:
    caplog.set_level(logging.DEBUG, logger="storyflow.status")
    sink = RecordingSink(refusals={10: refusal})
    async with open_status_board(sink) as board:
        board.show(1, 10, "final", final=True)
        board.show(1, 11, "its neighbour", final=True)
        with trio.fail_after(60):  # virtual time: a board that kept trying would never let this return
            await board.wait_final(1, 10)  # not left waiting for a text that can never go out
            await board.wait_final(1, 11)
        board.show(1, 10, "newer, never tried")
        await trio.sleep(600)
    assert len(sink.attempts[10]) == 1
    assert [(m, text) for _, _, m, text in sink.edits] == [(11, "its neighbour")]
    assert len([r for r in caplog.records if "status message 10" in r.getMessage()]) == 1


async def test_passing_trouble_is_tried_again_later_each_time_and_logged_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="storyflow.status")
    sink = RecordingSink(failures={10: [TelegramUnavailable("connection trouble")] * 5})
    async with open_status_board(sink) as board:
        board.show(1, 10, "final", final=True)
        await board.wait_final(1, 10)
    tries = sink.attempts[10]
    gaps = [later - earlier for earlier, later in zip(tries, tries[1:], strict=False)]
    assert len(tries) == 6 and all(b > a for a, b in zip(gaps, gaps[1:], strict=False))  # backing off
    assert [text for *_, text in sink.edits] == ["final"]
    assert len([r for r in caplog.records if "connection trouble" in r.getMessage()]) == 1


async def test_final_texts_go_out_on_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    sink = RecordingSink()
    with trio.CancelScope() as scope:
        async with open_status_board(sink, per_chat=1.0) as board:
            board.show(1, 10, "first")
            await trio.sleep(0.5)
            board.show(1, 11, "last words", final=True)
            scope.cancel()  # shutting down before the chat's interval allowed the edit
            await trio.sleep_forever()
    assert [text for *_, text in sink.edits][-1] == "last words"


@attrs.define
class PartSink:
    delay: float = 0.05
    in_flight: int = 0
    peak: int = 0
    parts: dict[int, bytes] = attrs.field(factory=dict)
    floods: int = 0
    outages: int = 0

    async def save_part(self, file_id: int, index: int, total_parts: int, data: bytes, *, big: bool) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await trio.sleep(self.delay)
            if self.floods:
                self.floods -= 1
                raise FloodWait("part", seconds=5)
            if self.outages:
                self.outages -= 1
                raise TelegramUnavailable("link down")
            self.parts[index] = data
        finally:
            self.in_flight -= 1


@pytest.fixture
def twenty_parts(tmp_path: Path) -> Path:
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(20 * PART_SIZE - 123))
    return path


async def test_parts_in_flight_are_capped_and_bytes_arrive_in_place(twenty_parts: Path) -> None:
    # Real time: reads happen in a worker thread, which the autojump clock would not wait for.
    sink = PartSink()
    uploaded = await upload_file(sink, twenty_parts, name="file.bin", in_flight=PartsInFlight(4))
    assert sink.peak == 4
    assert uploaded.parts == 20
    assert not uploaded.big  # just under 10 MB: saveFilePart, with an MD5
    assert b"".join(sink.parts[i] for i in range(20)) == await trio.Path(twenty_parts).read_bytes()


async def test_flood_wait_halves_parts_in_flight_and_loses_nothing(
    autojump_clock: trio.testing.MockClock, twenty_parts: Path
) -> None:
    sink = PartSink(floods=3, outages=2)
    in_flight = PartsInFlight(8)
    started = trio.current_time()
    await upload_file(sink, twenty_parts, name="file.bin", in_flight=in_flight)
    assert in_flight.current < 8
    assert trio.current_time() - started >= 5  # the wait was waited
    assert b"".join(sink.parts[i] for i in range(20)) == await trio.Path(twenty_parts).read_bytes()


async def test_small_files_carry_their_md5(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "small.jpg"
    path.write_bytes(b"x" * 1000)
    uploaded = await upload_file(PartSink(), path, name="small.jpg", in_flight=PartsInFlight(2))
    assert not uploaded.big
    assert uploaded.md5 == hashlib.md5(b"x" * 1000).hexdigest()
