"""Who gets nothing at all: strangers, removed users, forwarded or edited commands, groups of people not allowed.
Every case: zero jobs, zero replies, no download started — checked after the owner's own `.ping` is answered, so the
ignored messages have certainly been seen by then."""

from __future__ import annotations

from pathlib import Path

import trio
from trio_asyncio import aio_as_trio

from storyflow.testing._httpserver import MediaServer
from storyflow.testing.telegram import LoopbackTelegram, MessageRecord

from .conftest import BotRig, child_pids, running_userbot, userbot_config


async def settled(bot: BotRig) -> None:
    """Messages are handled in order of arrival: once a later .ping is answered, earlier ones were judged."""
    await bot.answer(await bot.type(".ping"))


def replies_to(telegram: LoopbackTelegram, messages: list[MessageRecord | int]) -> list[MessageRecord]:
    ids = {m if isinstance(m, int) else m.id for m in messages}
    return [m for m in telegram.all_messages() if m.reply_to in ids]


async def test_nobody_but_the_owner_and_the_allowed_gets_an_answer(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    group = telegram.create_group("Chat", [telegram.owner, telegram.friend, telegram.stranger])
    link = site.url("/photo.jpg")
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        ignored: list[MessageRecord | int] = [
            # a stranger, in a private chat and in a group
            telegram.send_message(telegram.stranger, telegram.owner, f".dl {link}"),
            telegram.send_message(telegram.stranger, telegram.owner, ".ping"),
            telegram.send_message(telegram.stranger, group, f".dl {link}"),
            # the friend is not allowed yet: the same
            telegram.send_message(telegram.friend, group, ".ping"),
            telegram.send_message(telegram.friend, telegram.owner, ".help"),
            # forwarded commands: the owner's words forwarded by a stranger, and the owner forwarding a stranger's
            telegram.send_message(telegram.stranger, telegram.owner, f".dl {link}", forwarded_from=telegram.owner),
            telegram.send_message(telegram.owner, telegram.owner, f".dl {link}", forwarded_from=telegram.stranger),
        ]
        await settled(bot)
        # An ordinary message the owner later edits into a command is not a command.
        note = await aio_as_trio(bot.phone.send_message)("me", "just a note")
        await aio_as_trio(bot.phone.edit_message)("me", note.id, f".dl {link}")
        ignored.append(note.id)
        await settled(bot)
        # Allowed, then removed: answered while allowed, ignored after.
        await bot.answer(await bot.type(".allow @storyflow_friend"))
        allowed_ping = telegram.send_message(telegram.friend, telegram.owner, ".ping")
        with trio.fail_after(30):
            await telegram.wait_for_message(lambda m: m.reply_to == allowed_ping.id)
        await bot.answer(await bot.type(".deny @storyflow_friend"))
        ignored.append(telegram.send_message(telegram.friend, telegram.owner, f".dl {link}"))
        ignored.append(telegram.send_message(telegram.friend, group, ".ping"))
        await settled(bot)
        assert replies_to(telegram, ignored) == []
        assert await bot.running.store.recent_jobs() == []
    assert site.request_count("/photo.jpg") == 0
    assert child_pids() == set()


async def test_an_allowed_chat_lets_its_members_in_but_not_elsewhere(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    group = telegram.create_group("Family", [telegram.owner, telegram.stranger])
    other = telegram.create_group("Other", [telegram.owner, telegram.stranger])
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        sent = telegram.send_message(telegram.owner, group, ".allow chat")  # typed by the owner in that group
        with trio.fail_after(30):
            await telegram.wait_for_message(lambda m: m.reply_to == sent.id)
        inside = telegram.send_message(telegram.stranger, group, ".ping")
        with trio.fail_after(30):
            answer = await telegram.wait_for_message(lambda m: m.reply_to == inside.id)
        assert answer.text.startswith("🏓")
        outside = telegram.send_message(telegram.stranger, other, ".ping")
        admin = telegram.send_message(telegram.stranger, group, ".allow @storyflow_stranger")
        await settled(bot)
        refusal = [m for m in telegram.all_messages() if m.reply_to == admin.id]
        assert replies_to(telegram, [outside]) == []
        assert [m.text for m in refusal] == ["only the owner can use .allow"]


async def test_allow_and_deny_by_the_id_of_a_user_never_met(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    stranger = telegram.stranger.user_id
    async with running_userbot(telegram, userbot_config(tmp_path, telegram)) as bot:
        # This session has never seen the stranger: Telethon cannot look the id up, and needs not to.
        allowed = await bot.answer(await bot.type(f".allow {stranger}"))
        assert allowed.text.startswith("✅") and str(stranger) in allowed.text, allowed.text
        ping = telegram.send_message(telegram.stranger, telegram.owner, ".ping")
        with trio.fail_after(30):
            answer = await telegram.wait_for_message(lambda m: m.reply_to == ping.id)
        assert answer.text.startswith("🏓")
        denied = await bot.answer(await bot.type(f".deny {stranger}"))
        assert "may no longer use StoryFlow" in denied.text, denied.text
        ignored = telegram.send_message(telegram.stranger, telegram.owner, ".ping")
        await settled(bot)
        assert replies_to(telegram, [ignored]) == []
