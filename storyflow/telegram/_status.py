"""Status messages: one per job, edited as the job moves, paced per message and per chat.

Only the latest text of a message matters, so edits coalesce: a message is edited at most once per
``per_message`` seconds and a chat at most once per ``per_chat`` seconds, always with the newest text. A final text
skips the per-message wait but not the chat's. A FloodWait closes that chat's gate for its duration; the pending
texts stay and go out when it opens, so the final state is never lost. "Not modified" is success. A message that
can no longer be edited (deleted, in a chat we may no longer write in, a session that is gone) is forgotten after
one log line; passing trouble (connection, Telegram's internal errors) is retried, each time a little later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import attrs
import trio

from .._errors import FloodWait, MessageGone, NotModified, StoryFlowError, TelegramUnavailable

log = logging.getLogger("storyflow.status")

PER_MESSAGE_SECONDS = 3.0
PER_CHAT_SECONDS = 1.0
# On shutdown, final texts still waiting get this long to go out.
FLUSH_GRACE_SECONDS = 5.0
# An edit that failed for a passing reason is tried again this much later, doubling up to the cap.
RETRY_SECONDS = 2.0
RETRY_SECONDS_MAX = 60.0


class EditSink(Protocol):
    async def edit_text(self, chat_id: int, message_id: int, text_html: str) -> None: ...


@attrs.define(eq=False)
class _Message:
    text: str
    final: bool
    sent_text: str | None = None
    last_edit: float = -1e9
    failures: int = 0  # passing failures in a row
    retry_at: float = 0.0  # after a passing failure, not before this
    done: trio.Event = attrs.field(factory=trio.Event)  # set once the final text is out (or cannot be)

    @property
    def dirty(self) -> bool:
        return self.text != self.sent_text


@attrs.define(eq=False)
class _Chat:
    messages: dict[int, _Message] = attrs.field(factory=dict)
    wake: trio.Event = attrs.field(factory=trio.Event)
    gate_opens: float = 0.0
    last_edit: float = -1e9
    gone: set[int] = attrs.field(factory=set)  # deleted by someone: never edited again


@attrs.define(eq=False)
class StatusBoard:
    """Obtain from :func:`open_status_board`; :meth:`show` never blocks."""

    sink: EditSink
    per_message: float = PER_MESSAGE_SECONDS
    per_chat: float = PER_CHAT_SECONDS
    _chats: dict[int, _Chat] = attrs.field(init=False, factory=dict)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    edits: int = attrs.field(init=False, default=0)

    def show(self, chat_id: int, message_id: int, text_html: str, *, final: bool = False) -> None:
        """Make ``text_html`` the message's newest text; it goes out as soon as pacing allows."""
        chat = self._chats.get(chat_id)
        if chat is None:
            if self._nursery is None:
                raise RuntimeError("the status board is closed")
            chat = self._chats[chat_id] = _Chat()
            self._nursery.start_soon(self._edit_loop, chat_id, chat)
        if message_id in chat.gone:
            return
        message = chat.messages.get(message_id)
        if message is None:
            message = chat.messages[message_id] = _Message(text_html, final)
        elif message.final:
            return  # a final text is final
        else:
            message.text, message.final = text_html, final
        if not message.dirty and final:
            message.done.set()
        chat.wake.set()

    def known(self, chat_id: int, message_id: int, text_html: str) -> None:
        """Record that the message already shows ``text_html`` (it was just sent with it)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            self.show(chat_id, message_id, text_html)
            chat = self._chats[chat_id]
        message = chat.messages.setdefault(message_id, _Message(text_html, False))
        message.sent_text = text_html
        message.last_edit = trio.current_time()

    async def wait_final(self, chat_id: int, message_id: int) -> None:
        """Until the message's final text is out (or the message is gone)."""
        chat = self._chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if message is not None:
            await message.done.wait()

    def _next(self, chat: _Chat, now: float) -> tuple[int | None, float]:
        """The message to edit now, or how long until one is due."""
        soonest = float("inf")
        for message_id, message in chat.messages.items():
            if not message.dirty:
                continue
            due = max(message.last_edit + (0 if message.final else self.per_message), message.retry_at)
            if due <= now:
                return message_id, 0.0
            soonest = min(soonest, due - now)
        return None, soonest

    async def _edit_loop(self, chat_id: int, chat: _Chat) -> None:
        while True:
            now = trio.current_time()
            wait = max(chat.gate_opens - now, chat.last_edit + self.per_chat - now, 0.0)
            if wait > 0:
                await trio.sleep(wait)
                continue
            message_id, wait = self._next(chat, now)
            if message_id is None:
                chat.wake = trio.Event()
                with trio.move_on_after(wait):
                    await chat.wake.wait()
                continue
            await self._edit(chat_id, chat, message_id)

    async def _flush_finals(self) -> None:
        for chat_id, chat in self._chats.items():
            for message_id, message in list(chat.messages.items()):
                if message.final and message.dirty:
                    await trio.sleep_until(chat.gate_opens)  # a flood gate longer than the grace ends the flush
                    await self._edit(chat_id, chat, message_id)

    async def _edit(self, chat_id: int, chat: _Chat, message_id: int) -> None:
        message = chat.messages[message_id]
        text = message.text
        chat.last_edit = message.last_edit = trio.current_time()
        try:
            await self.sink.edit_text(chat_id, message_id, text)
            self.edits += 1
        except NotModified:
            message.sent_text = text
        except FloodWait as flood:
            log.info("chat %d: status edits wait %g s (flood wait)", chat_id, flood.seconds)
            chat.gate_opens = trio.current_time() + flood.seconds
            return
        except MessageGone:
            log.debug("chat %d: status message %d is gone", chat_id, message_id)
            self._give_up(chat, message_id, message)
        except TelegramUnavailable as exc:
            # Not worth failing a job over: tried again later, with the newest text by then.
            message.failures += 1
            message.retry_at = trio.current_time() + min(RETRY_SECONDS * 2 ** (message.failures - 1),
                                                         RETRY_SECONDS_MAX)
            if message.failures == 1:
                log.warning("chat %d: status edit failed, trying again later: %s", chat_id, exc.message)
            return
        except StoryFlowError as exc:
            # Asking again would get the same answer (no right to write there, no such chat, no session).
            log.warning("chat %d: status message %d can no longer be edited: %s", chat_id, message_id, exc.message)
            self._give_up(chat, message_id, message)
        else:
            message.sent_text = text
        message.failures, message.retry_at = 0, 0.0
        if message.final and not message.dirty:
            message.done.set()
            del chat.messages[message_id]

    @staticmethod
    def _give_up(chat: _Chat, message_id: int, message: _Message) -> None:
        """Never edit this message again; whoever waits for its final text stops waiting."""
        chat.gone.add(message_id)
        message.sent_text = message.text
        message.final = True


@asynccontextmanager
async def open_status_board(
    sink: EditSink, *, per_message: float = PER_MESSAGE_SECONDS, per_chat: float = PER_CHAT_SECONDS
) -> AsyncIterator[StatusBoard]:
    """Run a board for the block. On the way out (even when cancelled), final texts still pending get a short,
    shielded grace to go out, so a job's last state survives a shutdown."""
    board = StatusBoard(sink, per_message, per_chat)
    try:
        async with trio.open_nursery() as nursery:
            board._nursery = nursery
            try:
                yield board
            finally:
                board._nursery = None
                nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(FLUSH_GRACE_SECONDS) as grace:
            grace.shield = True
            await board._flush_finals()
