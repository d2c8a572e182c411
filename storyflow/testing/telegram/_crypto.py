"""MTProto 2.0 message encryption, seen from the server's side.

The key derivation is Telethon's own (`MTProtoState._calc_key`): the client encrypts with x=0 and the
server with x=8, so a server is simply the mirror image of Telethon's sender.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time

import attrs
from telethon.crypto import AES, AuthKey
from telethon.network.mtprotostate import MTProtoState

# Telethon checks that a server msg_id lies within -300 s / +30 s of its clock; ours is the same clock.
_MSG_ID_STEP = 4

# Telegram's 2048-bit safe prime with g = 3, used by the auth key exchange and by 2FA's SRP alike
# (core.telegram.org/mtproto/auth_key, /api/srp). Telethon knows it and skips its slow primality check.
TELEGRAM_PRIME = int(
    "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f48198a0aa7c14058229493d22530f4db"
    "fa336f6e0ac925139543aed44cce7c3720fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64"
    "2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4a4a695811051907e162753b56b0f6b41"
    "0dba74d8a84b2a14b3144e0ef1284754fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4"
    "e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f0d8115f635b105ee2e4e15d04b2454bf"
    "6f4fadf034b10403119cd8e3b92fcc5b",
    16,
)
TELEGRAM_PRIME_BYTES = TELEGRAM_PRIME.to_bytes(256, "big")
TELEGRAM_GENERATOR = 3


class MessageKeyMismatch(Exception):
    """The client's msg_key does not match its plaintext: wrong key or a corrupted packet."""


@attrs.frozen
class ClientMessage:
    """One decrypted client packet: the envelope fields plus the still-serialized TL body."""

    salt: int
    session_id: int
    msg_id: int
    seq_no: int
    body: bytes


def auth_key_id(key: bytes) -> int:
    return int(AuthKey(key).key_id)


def decrypt_client_packet(auth_key: bytes, packet: bytes) -> ClientMessage:
    """Decrypt a client→server packet (`auth_key_id msg_key encrypted_data`)."""
    if len(packet) < 24 + 32 or (len(packet) - 24) % 16:
        raise MessageKeyMismatch("packet too short or not a multiple of the AES block")
    msg_key = packet[8:24]
    aes_key, aes_iv = MTProtoState._calc_key(auth_key, msg_key, True)
    plaintext = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
    if hashlib.sha256(auth_key[88:120] + plaintext).digest()[8:24] != msg_key:
        raise MessageKeyMismatch("msg_key does not match the plaintext")
    salt, session_id, msg_id, seq_no, length = struct.unpack_from("<qqqii", plaintext)
    # MTProto 2.0 allows 12..1024 bytes of padding after the message body.
    if length < 4 or length > len(plaintext) - 32 - 12 or length % 4:
        raise MessageKeyMismatch(f"inner message length {length} does not fit the packet")
    return ClientMessage(salt, session_id, msg_id, seq_no, bytes(plaintext[32 : 32 + length]))


def encrypt_server_message(
    auth_key: bytes, key_id: int, *, salt: int, session_id: int, msg_id: int, seq_no: int, body: bytes
) -> bytes:
    """Encrypt one server→client message in the MTProto 2.0 envelope."""
    data = struct.pack("<qqqii", salt, session_id, msg_id, seq_no, len(body)) + body
    padding = os.urandom(-(len(data) + 12) % 16 + 12)
    msg_key = hashlib.sha256(auth_key[96:128] + data + padding).digest()[8:24]
    aes_key, aes_iv = MTProtoState._calc_key(auth_key, msg_key, False)
    encrypted: bytes = AES.encrypt_ige(data + padding, aes_key, aes_iv)
    return struct.pack("<Q", key_id) + msg_key + encrypted


@attrs.define
class ServerMsgIds:
    """Strictly increasing server msg_ids: `% 4 == 1` for replies, `% 4 == 3` for unsolicited messages."""

    _last: int = 0

    def next(self, *, reply: bool) -> int:
        now = time.time()
        candidate = (int(now) << 32) | (int((now % 1) * 2**32) & ~3)
        if candidate <= self._last:
            candidate = (self._last & ~3) + _MSG_ID_STEP
        self._last = candidate
        return candidate | (1 if reply else 3)
