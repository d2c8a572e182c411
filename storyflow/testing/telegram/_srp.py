"""2FA passwords the way Telegram checks them: SRP-2048 over the password's PBKDF2 hash (core.telegram.org/api/srp).

The server keeps only the verifier v = g^x mod p (x from the salted, 100 000-round PBKDF2-HMAC-SHA512
hash); for each account.getPassword it sends B = k·v + g^b and later checks the client's proof
M1 = H(H(p) xor H(g) | H(salt1) | H(salt2) | A | B | K) with K = H((A·v^u)^b). Telethon computes the
client side in `telethon.password.compute_check`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import attrs
from telethon.tl import types

from ._crypto import TELEGRAM_GENERATOR, TELEGRAM_PRIME, TELEGRAM_PRIME_BYTES
from ._state import random_long

PBKDF2_ITERATIONS = 100_000
_SIZE = 256  # every SRP number is hashed as 256 big-endian bytes
# Telethon refuses B unless g^b (and so B) keeps at least 2048 - 64 significant bits away from 0 and p.
_MIN_BITS = 2048 - 64


def _sha256(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _padded(number: int) -> bytes:
    return number.to_bytes(_SIZE, "big")


def password_hash(password: str, salt1: bytes, salt2: bytes) -> int:
    """x = SH(PBKDF2(sha512, SH(SH(password, salt1), salt2), salt1, 100000), salt2), SH(d, s) = H(s|d|s)."""
    hash1 = _sha256(salt1, password.encode("utf-8"), salt1)
    hash2 = _sha256(salt2, hash1, salt2)
    hash3 = hashlib.pbkdf2_hmac("sha512", hash2, salt1, PBKDF2_ITERATIONS)
    return int.from_bytes(_sha256(salt2, hash3, salt2), "big")


def kdf_algo(salt1: bytes, salt2: bytes) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
    return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=salt1, salt2=salt2, g=TELEGRAM_GENERATOR, p=TELEGRAM_PRIME_BYTES
    )


_K = int.from_bytes(_sha256(TELEGRAM_PRIME_BYTES, _padded(TELEGRAM_GENERATOR)), "big")


@attrs.frozen
class PasswordVerifier:
    """What the server stores for an account's 2FA password: salts, the SRP verifier, the hint."""

    salt1: bytes
    salt2: bytes
    verifier: int = attrs.field(repr=False)
    hint: str | None = None

    @classmethod
    def create(cls, password: str, *, hint: str | None = None) -> PasswordVerifier:
        # Telegram's salt1 is its own 8-byte prefix plus 32 random bytes from the client that set it.
        salt1, salt2 = os.urandom(40), os.urandom(16)
        x = password_hash(password, salt1, salt2)
        return cls(salt1=salt1, salt2=salt2, verifier=pow(TELEGRAM_GENERATOR, x, TELEGRAM_PRIME), hint=hint)

    @property
    def algo(self) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
        return kdf_algo(self.salt1, self.salt2)


@attrs.frozen
class SrpChallenge:
    """One account.getPassword answer's server half: srp_id, the secret b and B."""

    srp_id: int
    b: int = attrs.field(repr=False)
    B: int

    @classmethod
    def start(cls, password: PasswordVerifier) -> SrpChallenge:
        while True:
            b = int.from_bytes(os.urandom(_SIZE), "big")
            g_b = pow(TELEGRAM_GENERATOR, b, TELEGRAM_PRIME)
            if g_b.bit_length() >= _MIN_BITS and (TELEGRAM_PRIME - g_b).bit_length() >= _MIN_BITS:
                break
        B = (_K * password.verifier + g_b) % TELEGRAM_PRIME
        return cls(srp_id=random_long(), b=b, B=B)

    @property
    def srp_B(self) -> bytes:
        return _padded(self.B)

    def check(self, password: PasswordVerifier, A_bytes: bytes, M1: bytes) -> bool:
        """Whether the client's (A, M1) proves it knows the password behind `password`."""
        A = int.from_bytes(A_bytes, "big")
        if not 0 < A < TELEGRAM_PRIME or len(A_bytes) > _SIZE:
            return False
        A_padded = _padded(A)
        u = int.from_bytes(_sha256(A_padded, self.srp_B), "big")
        if u == 0:
            return False
        S = pow(A * pow(password.verifier, u, TELEGRAM_PRIME), self.b, TELEGRAM_PRIME)
        K = _sha256(_padded(S))
        p_hash = _sha256(TELEGRAM_PRIME_BYTES)
        g_hash = _sha256(_padded(TELEGRAM_GENERATOR))
        expected = _sha256(
            bytes(a ^ b for a, b in zip(p_hash, g_hash, strict=True)),
            _sha256(password.salt1),
            _sha256(password.salt2),
            A_padded,
            self.srp_B,
            K,
        )
        return hmac.compare_digest(expected, M1)
