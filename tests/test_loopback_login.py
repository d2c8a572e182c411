"""A first login against the loopback Telegram: the real key exchange, login codes, 2FA, QR tokens.

Every client here starts from an empty session, as `storyflow login` does, and uses stock Telethon calls.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
import trio_asyncio
from telethon import TelegramClient, errors, events, helpers
from telethon.crypto import AES, AuthKey, Factorization
from telethon.crypto import rsa as telethon_rsa
from telethon.extensions import BinaryReader
from telethon.network import ConnectionTcpFull, MTProtoPlainSender, MTProtoSender
from telethon.password import compute_check
from telethon.tl import functions, types
from trio_asyncio import aio_as_trio

from storyflow.testing.telegram import LoopbackTelegram, open_client, open_loopback_telegram, trust_server_key


@pytest.fixture
async def server() -> AsyncIterator[LoopbackTelegram]:
    async with open_loopback_telegram() as running:
        yield running
        assert running.internal_errors == []


def call(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Telethon's asyncio coroutine method as a Trio one."""
    return aio_as_trio(method)  # type: ignore[no-any-return]


def key_of(client: TelegramClient) -> bytes:
    key: bytes = client.session.auth_key.key
    return key


async def test_key_exchange_then_sign_in_with_code(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        assert server.completed_key_exchanges == 1
        assert server.account_for_key(key_of(client)) is None
        assert not await call(client.is_user_authorized)()

        sent = await call(client.send_code_request)("+" + server.owner.phone)
        assert isinstance(sent.type, types.auth.SentCodeTypeApp)
        code = server.last_login_code(server.owner)
        assert code is not None
        assert len(code) == sent.type.length
        me = await call(client.sign_in)(server.owner.phone, code)
        assert me.id == server.owner.user_id
        assert server.account_for_key(key_of(client)) is server.owner
        assert key_of(client) in server.owner.auth_keys
        assert server.last_login_code(server.owner) is None  # used up

        assert (await call(client.get_me)()).username == "storyflow_owner"
        await call(client.send_message)("storyflow_friend", "logged in for real")
        incoming: trio.MemorySendChannel[Any]
        incoming, received = trio.open_memory_channel[Any](10)

        async def on_message(event: Any) -> None:
            incoming.send_nowait(event.message.message)

        client.add_event_handler(on_message, events.NewMessage(incoming=True))
        server.send_message(server.friend, server.owner, "welcome")
        with trio.fail_after(5):
            assert await received.receive() == "welcome"
        saved = client.session.save()

    assert [r.text for r in server.messages(server.owner, server.friend)] == ["logged in for real", "welcome"]
    async with open_client(server, None, session=saved) as again:
        assert (await call(again.get_me)()).id == server.owner.user_id
    assert server.completed_key_exchanges == 1


async def test_unauthorized_key_gets_401_and_no_updates(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        updates: list[Any] = []

        async def on_update(update: Any) -> None:
            updates.append(update)

        client.add_event_handler(on_update, events.Raw)
        assert await call(client.get_me)() is None  # Telethon's reading of 401
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await call(client)(functions.users.GetUsersRequest([types.InputUserSelf()]))
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await call(client)(functions.messages.SendMessageRequest(types.InputPeerSelf(), "no", random_id=1))
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await call(client)(functions.account.GetPasswordRequest())
        assert not server.connections(server.owner)  # nothing to push updates to
        server.send_message(server.friend, server.owner, "not for an anonymous key")
        # An update would have gone out before this answer; give Telethon the chance to dispatch it.
        nearest = await call(client)(functions.help.GetNearestDcRequest())
        assert nearest.this_dc == 2
        await trio.testing.wait_all_tasks_blocked()
        assert updates == []


async def test_wrong_code_then_right_one(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        phone = server.friend.phone
        await call(client.send_code_request)(phone)
        code = await server.wait_for_login_code(phone)
        wrong = "00000" if code != "00000" else "11111"
        with pytest.raises(errors.PhoneCodeInvalidError):
            await call(client.sign_in)(phone, wrong)
        with pytest.raises(errors.PhoneCodeEmptyError):
            await call(client)(functions.auth.SignInRequest(phone, client._phone_code_hash[phone], ""))
        me = await call(client.sign_in)(phone, code)
        assert me.id == server.friend.user_id


async def test_expired_code_needs_a_new_one(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        phone = server.owner.phone
        await call(client.send_code_request)(phone)
        first = server.last_login_code(phone)
        server.expire_login_code(phone)
        with pytest.raises(errors.PhoneCodeExpiredError):
            await call(client.sign_in)(phone, first)
        await call(client.send_code_request)(phone)
        me = await call(client.sign_in)(phone, server.last_login_code(phone))
        assert me.id == server.owner.user_id


async def test_a_code_only_works_on_the_key_that_asked(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as asking, open_client(server, None) as other:
        phone = server.owner.phone
        sent = await call(asking.send_code_request)(phone)
        with pytest.raises(errors.PhoneCodeExpiredError):
            await call(other.sign_in)(phone, server.last_login_code(phone), phone_code_hash=sent.phone_code_hash)
        assert server.completed_key_exchanges == 2


async def test_unknown_and_malformed_phones(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        with pytest.raises(errors.PhoneNumberInvalidError):
            await call(client.send_code_request)("+15550000000")
        with pytest.raises(errors.PhoneNumberInvalidError):
            await call(client)(functions.auth.SendCodeRequest("12", 1, "loopback", types.CodeSettings()))
        with pytest.raises(errors.PhoneNumberInvalidError):
            await call(client)(functions.auth.SendCodeRequest("call me", 1, "loopback", types.CodeSettings()))


async def test_two_step_password_wrong_then_right(server: LoopbackTelegram) -> None:
    server.set_password(server.owner, "correct horse", hint="horse")
    async with open_client(server, None) as client:
        phone = server.owner.phone
        await call(client.send_code_request)(phone)
        with pytest.raises(errors.SessionPasswordNeededError):
            await call(client.sign_in)(phone, server.last_login_code(phone))
        assert server.account_for_key(key_of(client)) is None

        password = await call(client)(functions.account.GetPasswordRequest())
        assert password.has_password
        assert password.hint == "horse"
        assert isinstance(
            password.current_algo, types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow
        )
        assert password.current_algo.g == 3
        with pytest.raises(errors.PasswordHashInvalidError):
            await call(client.sign_in)(password="battery staple")
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await call(client)(functions.updates.GetStateRequest())

        me = await call(client.sign_in)(password="correct horse")
        assert me.id == server.owner.user_id
        assert server.account_for_key(key_of(client)) is server.owner
        assert (await call(client)(functions.updates.GetStateRequest())).pts >= 1


async def test_password_proof_answers_one_challenge(server: LoopbackTelegram) -> None:
    server.set_password(server.friend, "secret")
    async with open_client(server, None) as client:
        await call(client.send_code_request)(server.friend.phone)
        with pytest.raises(errors.SessionPasswordNeededError):
            await call(client.sign_in)(server.friend.phone, server.last_login_code(server.friend))
        stale = await call(client)(functions.account.GetPasswordRequest())
        fresh = await call(client)(functions.account.GetPasswordRequest())
        with pytest.raises(errors.SrpIdInvalidError):
            await call(client)(functions.auth.CheckPasswordRequest(compute_check(stale, "secret")))
        # The failed attempt used up the live challenge too: every proof needs its own getPassword
        # (Telethon's sign_in fetches one each time).
        proof = compute_check(fresh, "secret")
        with pytest.raises(errors.SrpIdInvalidError):
            await call(client)(functions.auth.CheckPasswordRequest(proof))
        me = await call(client.sign_in)(password="secret")
        assert me.id == server.friend.user_id


async def _wait_for_qr_login(qr: Any, results: list[Any]) -> None:
    try:
        results.append(await call(qr.wait)())
    except errors.SessionPasswordNeededError as needed:
        results.append(needed)


async def test_qr_login_accepted_on_another_device(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client, open_client(server, server.owner) as phone_app:
        qr = await call(client.qr_login)()
        assert qr.url.startswith("tg://login?token=")
        assert server.last_login_token() == qr.token
        results: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_wait_for_qr_login, qr, results)
            await trio.testing.wait_all_tasks_blocked()  # qr.wait() listens before the code is scanned
            accepted = await call(phone_app)(functions.auth.AcceptLoginTokenRequest(qr.token))
            assert accepted.device_model == "loopback"
        [user] = results
        assert user.id == server.owner.user_id
        assert server.account_for_key(key_of(client)) is server.owner
        assert (await call(client.get_me)()).id == server.owner.user_id
        with pytest.raises(errors.AuthTokenInvalidError):
            await call(phone_app)(functions.auth.AcceptLoginTokenRequest(qr.token))


async def test_qr_login_with_two_step_password(server: LoopbackTelegram) -> None:
    server.set_password(server.friend, "pin")
    async with open_client(server, None) as client:
        qr = await call(client.qr_login)()
        results: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_wait_for_qr_login, qr, results)
            await trio.testing.wait_all_tasks_blocked()
            server.accept_login_token(server.friend, qr.token)
        [needed] = results
        assert isinstance(needed, errors.SessionPasswordNeededError)
        me = await call(client.sign_in)(password="pin")
        assert me.id == server.friend.user_id


async def test_log_out_forgets_the_key(server: LoopbackTelegram) -> None:
    async with open_client(server, None) as client:
        await call(client.send_code_request)(server.stranger.phone)
        await call(client.sign_in)(server.stranger.phone, server.last_login_code(server.stranger))
        saved = client.session.save()
        key = key_of(client)
        assert await call(client.log_out)()
    assert server.account_for_key(key) is None
    assert key not in server.stranger.auth_keys
    refused = False
    try:
        async with open_client(server, None, session=saved):
            pytest.fail("connected with a logged-out key")
    except* errors.AuthKeyNotFound:
        refused = True
    assert refused


def _rsa_pad(data: bytes, n: int, e: int) -> bytes:
    """RSA_PAD from core.telegram.org/mtproto/auth_key, the client side (Telethon 1.x does not use it)."""
    while True:
        data_with_padding = data + os.urandom(192 - len(data))
        temp_key = os.urandom(32)
        data_with_hash = data_with_padding[::-1] + hashlib.sha256(temp_key + data_with_padding).digest()
        aes_encrypted = AES.encrypt_ige(data_with_hash, temp_key, bytes(32))
        digest = hashlib.sha256(aes_encrypted).digest()
        key_aes_encrypted = bytes(a ^ b for a, b in zip(temp_key, digest, strict=True)) + aes_encrypted
        value = int.from_bytes(key_aes_encrypted, "big")
        if value < n:
            return pow(value, e, n).to_bytes(256, "big")


async def _exchange_with_rsa_pad(port: int, n: int, e: int, fingerprint: int) -> AuthKey:
    """asyncio-flavoured: the key exchange by hand, with p_q_inner_data_dc under RSA_PAD."""
    connection = ConnectionTcpFull("127.0.0.1", port, 2, loggers=_Loggers())
    await connection.connect(timeout=5)
    try:
        plain = MTProtoPlainSender(connection, loggers=_Loggers())
        nonce = int.from_bytes(os.urandom(16), "little", signed=True)
        res_pq = await plain.send(functions.ReqPqMultiRequest(nonce))
        assert res_pq.server_public_key_fingerprints == [fingerprint]
        p, q = Factorization.factorize(int.from_bytes(res_pq.pq, "big"))
        p_bytes, q_bytes = telethon_rsa.get_byte_array(p), telethon_rsa.get_byte_array(q)
        new_nonce = int.from_bytes(os.urandom(32), "little", signed=True)
        inner = types.PQInnerDataDc(res_pq.pq, p_bytes, q_bytes, nonce, res_pq.server_nonce, new_nonce, dc=2)
        params = await plain.send(
            functions.ReqDHParamsRequest(
                nonce, res_pq.server_nonce, p_bytes, q_bytes, fingerprint, _rsa_pad(bytes(inner), n, e)
            )
        )
        assert isinstance(params, types.ServerDHParamsOk)
        key, iv = helpers.generate_key_data_from_nonce(res_pq.server_nonce, new_nonce)
        answer = BinaryReader(AES.decrypt_ige(params.encrypted_answer, key, iv)[20:]).tgread_object()
        dh_prime = int.from_bytes(answer.dh_prime, "big")
        b = int.from_bytes(os.urandom(256), "big")
        g_b = pow(answer.g, b, dh_prime)
        client_inner = bytes(types.ClientDHInnerData(nonce, res_pq.server_nonce, 0, telethon_rsa.get_byte_array(g_b)))
        hashed = hashlib.sha1(client_inner).digest() + client_inner
        hashed += os.urandom(-len(hashed) % 16)
        dh_gen = await plain.send(
            functions.SetClientDHParamsRequest(nonce, res_pq.server_nonce, AES.encrypt_ige(hashed, key, iv))
        )
        auth_key = AuthKey(pow(int.from_bytes(answer.g_a, "big"), b, dh_prime).to_bytes(256, "big"))
        number = 1 if isinstance(dh_gen, types.DhGenOk) else 2
        assert getattr(dh_gen, f"new_nonce_hash{number}") == auth_key.calc_new_nonce_hash(new_nonce, number)
        return auth_key if isinstance(dh_gen, types.DhGenOk) else await _exchange_with_rsa_pad(port, n, e, fingerprint)
    finally:
        await connection.disconnect()


class _Loggers(dict[str, logging.Logger]):
    """What Telethon's network classes take as `loggers` (TelegramClient passes its own)."""

    def __missing__(self, name: str) -> logging.Logger:
        return logging.getLogger(name)


async def test_key_exchange_with_rsa_pad_and_the_key_works(server: LoopbackTelegram) -> None:
    rsa_key = server.rsa_key
    async with trio_asyncio.open_loop():
        auth_key = await call(_exchange_with_rsa_pad)(server.port, rsa_key.n, rsa_key.e, rsa_key.fingerprint)
        assert server.completed_key_exchanges == 1
        sender = MTProtoSender(auth_key, loggers=_Loggers())
        await call(sender.connect)(ConnectionTcpFull("127.0.0.1", server.port, 2, loggers=_Loggers()))
        try:
            config = await call(sender.send)(functions.help.GetConfigRequest())
            assert config.dc_options[0].port == server.port
            with pytest.raises(errors.AuthKeyUnregisteredError):
                await call(sender.send)(functions.updates.GetStateRequest())
        finally:
            with trio.CancelScope(shield=True):
                await call(sender.disconnect)()


CHILD = """
import asyncio, os, sys
from telethon import TelegramClient
from storyflow.testing.telegram import login_session, trust_server_key

async def main():
    trust_server_key(os.environ["LOOPBACK_TELEGRAM_RSA_KEY"])
    client = TelegramClient(login_session(int(sys.argv[1])), 1, "loopback", connection_retries=1, retry_delay=0)
    await client.connect()
    await client.send_code_request(sys.argv[2])
    code = sys.stdin.readline().strip()
    me = await client.sign_in(sys.argv[2], code)
    print(me.id, client.session.save(), flush=True)
    await client.disconnect()

asyncio.run(main())
"""


async def test_child_process_trusts_the_key_and_logs_in(server: LoopbackTelegram) -> None:
    command = [sys.executable, "-c", CHILD, str(server.port), server.owner.phone]
    env = {**os.environ, "LOOPBACK_TELEGRAM_RSA_KEY": server.rsa_public_key_line}
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, check=False
            )
        )
        assert process.stdin is not None
        assert process.stdout is not None
        with trio.fail_after(20):
            code = await server.wait_for_login_code(server.owner)
            await process.stdin.send_all(code.encode() + b"\n")
            output = b""
            while not output.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, "the child exited without logging in"
                output += chunk
            await process.wait()
    user_id, saved = output.decode().split()
    assert int(user_id) == server.owner.user_id
    assert process.returncode == 0
    async with open_client(server, None, session=saved) as client:
        assert (await call(client.get_me)()).id == server.owner.user_id


async def test_key_exchange_refuses_a_wrong_nonce(server: LoopbackTelegram) -> None:
    async def wrong_nonce() -> type[BaseException] | None:
        """asyncio-flavoured: req_DH_params for an exchange that never started."""
        connection = ConnectionTcpFull("127.0.0.1", server.port, 2, loggers=_Loggers())
        await connection.connect(timeout=5)
        try:
            plain = MTProtoPlainSender(connection, loggers=_Loggers())
            await plain.send(functions.ReqDHParamsRequest(1, 2, b"\x01", b"\x02", 3, bytes(256)))
        except (ConnectionError, OSError, EOFError) as error:  # the server hung up
            return type(error)
        finally:
            await connection.disconnect()
        return None

    async with trio_asyncio.open_loop():
        assert await call(wrong_nonce)() is not None
    assert server.completed_key_exchanges == 0


async def test_standalone_server_prints_its_key_and_login_codes() -> None:
    command = [
        sys.executable, "-m", "storyflow.testing.telegram", "--login-code", "13579", "--password", "owner=pw",
    ]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        lines: dict[str, str] = {}
        buffer = b""

        async def read_until(name: str) -> str:
            nonlocal buffer
            while name not in lines:
                chunk = await process.stdout.receive_some()
                assert chunk, "the server exited"
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    key, _, value = line.decode().partition("=")
                    lines[key] = value
            return lines[name]

        with trio.fail_after(20):
            await read_until("stranger.phone")
            trust_server_key(lines["rsa_key"])
            standalone = LoopbackTelegram()  # only to build clients; its port is the process's
            standalone.port = int(lines["port"])
            async with open_client(standalone, None) as client:
                await call(client.send_code_request)(lines["owner.phone"])
                assert await read_until("login_code") == f"{lines['owner.phone']}:13579"
                with pytest.raises(errors.SessionPasswordNeededError):
                    await call(client.sign_in)(lines["owner.phone"], "13579")
                me = await call(client.sign_in)(password="pw")
                assert me.username == "storyflow_owner"
        process.terminate()
