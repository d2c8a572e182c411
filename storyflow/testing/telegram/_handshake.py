"""Creating an auth key (core.telegram.org/mtproto/auth_key), server side, in unencrypted messages.

    req_pq_multi nonce                      → resPQ nonce server_nonce pq [fingerprint]
    req_DH_params … encrypted p_q_inner_data → server_DH_params_ok: server_DH_inner_data (g, dh_prime, g_a)
                                               under AES-256-IGE with a key and IV derived from the nonces
    set_client_DH_params … g_b              → dh_gen_ok; auth_key = g_b^a mod dh_prime (256 bytes)

The client encrypts p_q_inner_data for the server's RSA key in one of two ways: Telethon 1.x still uses
the old `sha1(data) + data + random` block; RSA_PAD (the documented scheme) adds an AES layer keyed by a
random temp_key. Both are accepted. A client that breaks the protocol gets HandshakeError: Telegram just
drops such a connection.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time

import attrs
from telethon import helpers
from telethon.crypto import AES, AuthKey
from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from ._crypto import TELEGRAM_GENERATOR, TELEGRAM_PRIME, TELEGRAM_PRIME_BYTES
from ._rsa import ServerRsaKey, is_probable_prime

AUTH_KEY_BYTES = 256
# Both sides must keep g_a and g_b this far from 1 and dh_prime - 1 (auth_key, "DH key exchange complete").
_DH_SAFETY_MARGIN = 2 ** (2048 - 64)
_PLAIN_HEADER = struct.Struct("<qqi")  # auth_key_id = 0, message_id, message_data_length


class HandshakeError(Exception):
    """The client broke the key exchange (wrong nonce, undecryptable data, out-of-range g_b, …)."""


def is_plain_message(packet: bytes) -> bool:
    return packet[:8] == bytes(8)


def read_plain_message(packet: bytes) -> TLObject:
    if len(packet) < _PLAIN_HEADER.size:
        raise HandshakeError("unencrypted message shorter than its header")
    _, _, length = _PLAIN_HEADER.unpack_from(packet)
    if length != len(packet) - _PLAIN_HEADER.size:
        raise HandshakeError(f"unencrypted message_data_length {length} does not fit the packet")
    return _read_object(packet[_PLAIN_HEADER.size :])


def plain_message(msg_id: int, body: bytes) -> bytes:
    return _PLAIN_HEADER.pack(0, msg_id, len(body)) + body


# Parsing attacker-chosen bytes: whatever the reader trips over, the message is simply invalid.
_PARSE_ERRORS = (TypeNotFoundError, BufferError, struct.error, ValueError, OverflowError, MemoryError)


def _read_object(data: bytes) -> TLObject:
    try:
        obj = BinaryReader(data).tgread_object()
    except _PARSE_ERRORS as error:
        raise HandshakeError(f"unparseable message: {error}") from None
    if not isinstance(obj, TLObject):
        raise HandshakeError(f"unexpected {obj!r}")
    return obj


def _read_hashed(data: bytes, digest_size: int, expected: type[TLObject]) -> TLObject:
    """`hash(object) + object + padding` → the object, once the hash of its exact bytes matches."""
    digest, rest = data[:digest_size], data[digest_size:]
    reader = BinaryReader(rest)
    try:
        obj = reader.tgread_object()
    except _PARSE_ERRORS as error:
        raise HandshakeError(f"unparseable {expected.__name__}: {error}") from None
    if not isinstance(obj, expected) or hashlib.sha1(rest[: reader.tell_position()]).digest() != digest:
        raise HandshakeError(f"{expected.__name__} does not match its hash")
    return obj


def _random_int(byte_count: int, *, signed: bool) -> int:
    return int.from_bytes(os.urandom(byte_count), "little", signed=signed)


def _big_endian(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _random_small_prime() -> int:
    """A prime just under 2**31: two of them make the pq that the client factors (pq < 2**63)."""
    while True:
        candidate = (1 << 30) | _random_int(4, signed=False) & ((1 << 30) - 1) | 1
        if is_probable_prime(candidate):
            return candidate


def _xor(first: bytes, second: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(first, second, strict=True))


def _pq_inner_data(rsa_key: ServerRsaKey, encrypted: bytes) -> TLObject:
    """Undo the client's RSA encryption of p_q_inner_data: the old sha1 padding or RSA_PAD."""
    try:
        value = rsa_key.decrypt(encrypted)
    except ValueError as error:
        raise HandshakeError(str(error)) from None
    if value < 1 << (255 * 8):
        try:
            return _read_hashed(value.to_bytes(255, "big"), 20, TLObject)
        except HandshakeError:
            pass  # an RSA_PAD block can start with a zero byte too
    # RSA_PAD: temp_key_xor (32) + AES-IGE(temp_key, iv 0)(reversed(data_with_padding) + sha256(temp_key + it))
    block = value.to_bytes(256, "big")
    aes_encrypted = block[32:]
    temp_key = _xor(block[:32], hashlib.sha256(aes_encrypted).digest())
    data_with_hash = AES.decrypt_ige(aes_encrypted, temp_key, bytes(32))
    data_with_padding = data_with_hash[:192][::-1]
    if hashlib.sha256(temp_key + data_with_padding).digest() != data_with_hash[192:]:
        raise HandshakeError("p_q_inner_data: neither the sha1 padding nor RSA_PAD checks out")
    return _read_object(data_with_padding)


@attrs.define(eq=False)
class KeyExchange:
    """One client's way through the three steps; `answer` each request in order, then `take_key`."""

    rsa_key: ServerRsaKey
    _nonce: int | None = None
    _server_nonce: int = 0
    _p: int = 0
    _q: int = 0
    _new_nonce: int | None = None
    _a: int = 0
    _created_key: bytes | None = None

    def answer(self, request: TLObject) -> TLObject:
        if isinstance(request, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            return self._res_pq(request.nonce)
        if isinstance(request, functions.ReqDHParamsRequest):
            return self._server_dh_params(request)
        if isinstance(request, functions.SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeError(f"{type(request).__name__} in an unencrypted message")

    def take_key(self) -> bytes | None:
        """The auth key the exchange just created (once), or None."""
        key, self._created_key = self._created_key, None
        return key

    def _res_pq(self, nonce: int) -> types.ResPQ:
        # A new req_pq starts over: Telethon retries the whole exchange on the same connection.
        self._nonce, self._new_nonce = nonce, None
        self._server_nonce = _random_int(16, signed=True)
        self._p = self._q = _random_small_prime()
        while self._q == self._p:
            self._q = _random_small_prime()
        self._p, self._q = sorted((self._p, self._q))
        return types.ResPQ(
            nonce=nonce,
            server_nonce=self._server_nonce,
            pq=_big_endian(self._p * self._q),
            server_public_key_fingerprints=[self.rsa_key.fingerprint],
        )

    def _check_nonces(self, nonce: int, server_nonce: int) -> None:
        if self._nonce is None or nonce != self._nonce or server_nonce != self._server_nonce:
            raise HandshakeError("nonce or server_nonce does not match this exchange")

    def _server_dh_params(self, request: functions.ReqDHParamsRequest) -> types.ServerDHParamsOk:
        self._check_nonces(request.nonce, request.server_nonce)
        factors = (int.from_bytes(request.p, "big"), int.from_bytes(request.q, "big"))
        if factors != (self._p, self._q):
            raise HandshakeError("p and q are not the factors of pq")
        if request.public_key_fingerprint != self.rsa_key.fingerprint:
            raise HandshakeError(f"unknown RSA key fingerprint {request.public_key_fingerprint}")
        inner = _pq_inner_data(self.rsa_key, request.encrypted_data)
        if isinstance(inner, types.PQInnerDataTemp | types.PQInnerDataTempDc):
            raise HandshakeError("temporary (PFS) keys are not supported")
        if not isinstance(inner, types.PQInnerData | types.PQInnerDataDc):
            raise HandshakeError(f"{type(inner).__name__} instead of p_q_inner_data")
        self._check_nonces(inner.nonce, inner.server_nonce)
        if inner.pq != _big_endian(self._p * self._q) or (inner.p, inner.q) != (request.p, request.q):
            raise HandshakeError("p_q_inner_data disagrees with req_DH_params")
        self._new_nonce = inner.new_nonce
        while True:
            self._a = int.from_bytes(os.urandom(AUTH_KEY_BYTES), "big")
            g_a = pow(TELEGRAM_GENERATOR, self._a, TELEGRAM_PRIME)
            if _DH_SAFETY_MARGIN <= g_a <= TELEGRAM_PRIME - _DH_SAFETY_MARGIN:
                break
        answer = bytes(
            types.ServerDHInnerData(
                nonce=self._nonce,
                server_nonce=self._server_nonce,
                g=TELEGRAM_GENERATOR,
                dh_prime=TELEGRAM_PRIME_BYTES,
                g_a=g_a.to_bytes(AUTH_KEY_BYTES, "big"),
                server_time=int(time.time()),
            )
        )
        hashed = hashlib.sha1(answer).digest() + answer
        hashed += os.urandom(-len(hashed) % 16)
        key, iv = helpers.generate_key_data_from_nonce(self._server_nonce, self._new_nonce)
        return types.ServerDHParamsOk(
            nonce=self._nonce, server_nonce=self._server_nonce, encrypted_answer=AES.encrypt_ige(hashed, key, iv)
        )

    def _dh_gen(self, request: functions.SetClientDHParamsRequest) -> types.DhGenOk | types.DhGenRetry:
        self._check_nonces(request.nonce, request.server_nonce)
        new_nonce = self._new_nonce
        if new_nonce is None:
            raise HandshakeError("set_client_DH_params before req_DH_params")
        if not request.encrypted_data or len(request.encrypted_data) % 16:
            raise HandshakeError("set_client_DH_params data is not whole AES blocks")
        key, iv = helpers.generate_key_data_from_nonce(self._server_nonce, new_nonce)
        inner = _read_hashed(AES.decrypt_ige(request.encrypted_data, key, iv), 20, types.ClientDHInnerData)
        assert isinstance(inner, types.ClientDHInnerData)
        self._check_nonces(inner.nonce, inner.server_nonce)
        g_b = int.from_bytes(inner.g_b, "big")
        if not _DH_SAFETY_MARGIN <= g_b <= TELEGRAM_PRIME - _DH_SAFETY_MARGIN:
            raise HandshakeError("g_b is outside the safe range")
        auth_key = pow(g_b, self._a, TELEGRAM_PRIME).to_bytes(AUTH_KEY_BYTES, "big")
        if auth_key[0] == 0:
            # Telethon 1.x keeps only the significant bytes of g^ab, so 1 key in 256 would differ from
            # ours. dh_gen_retry (a legitimate answer) makes it start over; a client that follows the
            # spec just sends a new g_b.
            return types.DhGenRetry(
                nonce=inner.nonce,
                server_nonce=inner.server_nonce,
                new_nonce_hash2=AuthKey(auth_key).calc_new_nonce_hash(new_nonce, 2),
            )
        self._created_key = auth_key
        self._nonce = self._new_nonce = None  # the same nonces must not make a second key
        return types.DhGenOk(
            nonce=inner.nonce,
            server_nonce=inner.server_nonce,
            new_nonce_hash1=AuthKey(auth_key).calc_new_nonce_hash(new_nonce, 1),
        )
