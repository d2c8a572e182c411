"""`storyflow login` as a user runs it: a real process, a real key exchange and sign-in against the loopback
Telegram, the answers typed on its standard input."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
from telethon.sessions import StringSession

from storyflow.testing._processes import storyflow_env
from storyflow.testing.telegram import LoopbackTelegram
from storyflow.testing.telegram._render import DC_ID

CHILD = Path(__file__).with_name("cli_child.py")


@attrs.define
class Login:
    process: trio.Process
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")


def login_env(tmp_path: Path, server: LoopbackTelegram) -> dict[str, str]:
    config = tmp_path / "storyflow.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[telegram]\napi_id = 1\napi_hash = "loopback-hash"\ndc_address = "127.0.0.1:{server.port}"\n'
        f"dc_id = {DC_ID}\n"
    )
    env = storyflow_env(config, LOOPBACK_TELEGRAM_RSA_KEY=server.rsa_public_key_line)
    return env


async def run_login(server: LoopbackTelegram, tmp_path: Path, answers: list[str], *args: str) -> Login:
    """Start `storyflow login`, type the phone, wait for the code the server sent, then type ``answers``
    (where ``{code}`` stands for it)."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(partial(
            trio.run_process, [sys.executable, str(CHILD), "login", *args], env=login_env(tmp_path, server),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
        ))
        login = Login(process)

        async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
            async for chunk in stream:
                into.extend(chunk)

        assert process.stdout is not None and process.stderr is not None
        nursery.start_soon(drain, process.stdout, login.stdout)
        nursery.start_soon(drain, process.stderr, login.stderr)
        with trio.fail_after(60):
            await login.type(f"+{server.owner.phone}")
            code = await server.wait_for_login_code(server.owner)
            for answer in answers:
                await login.type(answer.format(code=code))
            await process.wait()
    return login


async def test_login_with_a_typo_and_a_password_saves_a_private_session(
    telegram: LoopbackTelegram, tmp_path: Path
) -> None:
    telegram.set_password(telegram.owner, "correct horse battery staple")
    login = await run_login(telegram, tmp_path, ["00000", "{code}", "correct horse battery staple"])
    output = (login.stdout + login.stderr).decode()
    assert login.process.returncode == 0, output
    saved = tmp_path / "data" / "storyflow.session"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    session = StringSession(saved.read_text().strip())
    assert telegram.account_for_key(session.auth_key.key) is telegram.owner
    assert "logged in as Owner" in output
    # Neither the password nor the session string reaches the terminal.
    assert "correct horse" not in output
    assert saved.read_text().strip() not in output


async def test_login_print_shows_the_session_and_saves_nothing(telegram: LoopbackTelegram, tmp_path: Path) -> None:
    login = await run_login(telegram, tmp_path, ["{code}"], "--print")
    assert login.process.returncode == 0, login.stderr.decode()
    printed = login.stdout.decode().strip().splitlines()[-1]
    assert telegram.account_for_key(StringSession(printed).auth_key.key) is telegram.owner
    assert not (tmp_path / "data" / "storyflow.session").exists()


async def test_wrong_password_three_times_fails_cleanly(telegram: LoopbackTelegram, tmp_path: Path) -> None:
    telegram.set_password(telegram.owner, "right")
    login = await run_login(telegram, tmp_path, ["{code}", "wrong1", "wrong2", "wrong3"])
    assert login.process.returncode == 1
    assert "wrong two-step verification password" in login.stderr.decode()
    assert not (tmp_path / "data" / "storyflow.session").exists()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", ["login", "run"])
async def test_an_unreachable_telegram_is_reported_after_the_connect_timeout(
    telegram: LoopbackTelegram, tmp_path: Path, command: str
) -> None:
    env = login_env(tmp_path, telegram)
    env["STORYFLOW_TELEGRAM_DC_ADDRESS"] = f"127.0.0.1:{closed_port()}"
    env["STORYFLOW_TELEGRAM_CONNECT_TIMEOUT"] = "1"
    env["STORYFLOW_TELEGRAM_SESSION_STRING"] = telegram.session_string(telegram.owner)
    with trio.fail_after(30):
        result = await trio.run_process([sys.executable, str(CHILD), command], env=env, stdin=subprocess.DEVNULL,
                                        capture_stdout=True, capture_stderr=True, check=False)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output
    assert "could not reach Telegram within 1 s" in output
    assert "Traceback" not in output


async def test_ctrl_c_at_a_question_cancels_the_login(telegram: LoopbackTelegram, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(partial(
            trio.run_process, [sys.executable, str(CHILD), "login"], env=login_env(tmp_path, telegram),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
        ))
        assert process.stderr is not None
        asked = bytearray()
        with trio.fail_after(30):
            while b"Phone number" not in asked:
                asked.extend(await process.stderr.receive_some(4096))
            process.send_signal(signal.SIGINT)
            await process.wait()
        rest = await process.stderr.receive_some(65536)
    output = (asked + rest).decode()
    assert process.returncode == 130, output
    assert "login cancelled" in output and "Traceback" not in output
    assert not (tmp_path / "data" / "storyflow.session").exists()
