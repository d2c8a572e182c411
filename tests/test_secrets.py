"""Secrets never leave: the session string, the api_hash, cookie values and phone numbers appear nowhere in what a
verbose `storyflow run` logs, in what it says in chat, in its error messages, or in the files it writes (other than
the session and cookie files that exist to hold them)."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio
from trio_asyncio import aio_as_trio

from storyflow.testing._httpserver import MediaServer
from storyflow.testing._processes import storyflow_env
from storyflow.testing.telegram import LoopbackTelegram, open_client

from .test_cookies_chat import CSRF_VALUE, SESSION_VALUE, cookies_txt
from .test_run import until_it_answers

API_HASH = "0123456789abcdefSECRETHASH"
NUMERIC_HASH = 998877.665544332


def everything_written(root: Path, *, except_: set[Path]) -> bytes:
    found = b""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path not in except_ and not path.is_symlink():
            found += path.read_bytes()
    return found


async def test_secrets_appear_in_no_log_chat_error_or_file(
    telegram: LoopbackTelegram, tmp_path: Path, site: MediaServer
) -> None:
    session = telegram.session_string(telegram.owner)
    data = tmp_path / "data"
    config = tmp_path / "storyflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\n[download]\nallow_private_addresses = true\n'
        f'[telegram]\napi_id = 1\napi_hash = "{API_HASH}"\nsession_string = "{session}"\n'
    )
    env = storyflow_env(config)
    log = tmp_path / "run.log"
    cookie_file = tmp_path / "cookies.txt"
    cookie_file.write_bytes(cookies_txt())
    async with open_client(telegram, telegram.owner, new_device=True) as phone:
        with log.open("wb") as output:
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(partial(
                    trio.run_process, [sys.executable, "-m", "storyflow", "-v", "run"], env=env, stdout=output,
                    stderr=subprocess.STDOUT, check=False,
                ))
                await until_it_answers(telegram, phone)
                sent = await aio_as_trio(phone.send_file)("me", str(cookie_file), force_document=True)
                commands = [(".cookies set instagram", sent.id), (".cookies", None),
                            (f".dl {site.url('/photo.jpg')}", None), (f".dl {site.url('/missing.mp4')}", None),
                            (".stats", None), (".settings", None), (".allowed", None)]
                for text, reply_to in commands:
                    command = await aio_as_trio(phone.send_message)("me", text, reply_to=reply_to)
                    with trio.fail_after(60):
                        await telegram.wait_for_message(
                            lambda m, c=command.id: m.reply_to == c and (m.media is not None or m.text[:1] != "⏳")
                        )
                await until_it_answers(telegram, phone)
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(10):
                    await process.wait()
    # Errors about the secrets themselves must not quote them either (a number where text belongs).
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(f"[telegram]\napi_hash = {NUMERIC_HASH}\n")
    bad = await trio.run_process(
        [sys.executable, "-m", "storyflow", "doctor"], capture_stdout=True, capture_stderr=True, check=False,
        env={**env, "STORYFLOW_CONFIG": str(wrong)},
    )
    assert bad.returncode == 2
    assert b"api_hash" in bad.stderr and b"secret" in bad.stderr

    secrets = {
        "session string": session, "api_hash": API_HASH, "numeric api_hash": str(NUMERIC_HASH),
        "cookie": SESSION_VALUE, "csrf cookie": CSRF_VALUE,
        "phone number": telegram.owner.phone,
    }
    chat = "\n".join(m.text for m in telegram.all_messages()).encode()
    kept = {config, wrong, cookie_file, *(data / "cookies").rglob("*")}
    places = {
        "the log": log.read_bytes(),
        "the chat": chat,
        "errors": bad.stdout + bad.stderr,
        "files written": everything_written(tmp_path, except_=kept),
    }
    leaks = [(what, where) for what, secret in secrets.items() for where, text in places.items()
             if secret.encode() in text]
    assert leaks == []
    assert b"logged in as Owner" in places["the log"]  # the log did have things to say
