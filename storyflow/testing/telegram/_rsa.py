"""The server's RSA key pair for the auth key exchange, made with plain ints and `pow`.

Telethon only talks to a server whose key fingerprint is in `telethon.crypto.rsa._server_keys`, so a
client process must trust the loopback key first: `trust_server_key(pem)` (in-process tests get it
done by `open_client`). Generating 2048 bits takes a few tenths of a second, hence one key per process
unless a test asks for its own.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import struct
import threading

import attrs
import rsa
from telethon.crypto import rsa as telethon_rsa
from telethon.tl.tlobject import TLObject

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
_SMALL_PRIMES = [p for p in range(3, 20_000, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))]
_SIEVE_WINDOW = 8192  # odd candidates examined per random starting point
_MILLER_RABIN_ROUNDS = 5  # FIPS 186-4 C.3: enough after a Fermat test for random 1024-bit candidates
_PEM_HEADER = "-----BEGIN RSA PUBLIC KEY-----"
_PEM_FOOTER = "-----END RSA PUBLIC KEY-----"


def is_probable_prime(number: int, rounds: int = _MILLER_RABIN_ROUNDS) -> bool:
    """Miller–Rabin with random bases (after trial division by the small primes)."""
    if number < 2:
        return False
    for small in (2, *_SMALL_PRIMES[:50]):
        if number % small == 0:
            return number == small
    odd, twos = number - 1, 0
    while odd % 2 == 0:
        odd, twos = odd // 2, twos + 1
    for _ in range(rounds):
        base = 2 + int.from_bytes(os.urandom((number.bit_length() + 7) // 8), "big") % (number - 3)
        value = pow(base, odd, number)
        if value in (1, number - 1):
            continue
        for _ in range(twos - 1):
            value = pow(value, 2, number)
            if value == number - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int) -> int:
    """A random prime of exactly `bits` bits (top two bits set, so two of them make a full modulus)."""
    while True:
        start = int.from_bytes(os.urandom((bits + 7) // 8), "big") >> (-bits % 8)
        start |= (3 << (bits - 2)) | 1
        # Sieve the window start, start+2, ... by the small primes before any modular exponentiation.
        composite = bytearray(_SIEVE_WINDOW)
        for small in _SMALL_PRIMES:
            first = (-start * pow(2, -1, small)) % small  # smallest i with start + 2i ≡ 0 (mod small)
            composite[first::small] = b"\x01" * len(range(first, _SIEVE_WINDOW, small))
        for index in range(_SIEVE_WINDOW):
            candidate = start + 2 * index
            if composite[index] or candidate.bit_length() != bits:
                continue
            # One cheap Fermat test weeds out almost every composite before the full check.
            if pow(2, candidate - 1, candidate) == 1 and is_probable_prime(candidate):
                return candidate


@attrs.frozen
class ServerRsaKey:
    """An RSA key pair as the auth key exchange needs it: raw `c^d mod n`, Telegram's fingerprint."""

    n: int
    e: int
    d: int = attrs.field(repr=False)
    p: int = attrs.field(repr=False)
    q: int = attrs.field(repr=False)

    @classmethod
    def generate(cls, bits: int = KEY_BITS) -> ServerRsaKey:
        while True:
            p, q = random_prime(bits // 2), random_prime(bits - bits // 2)
            if p == q or math.gcd(PUBLIC_EXPONENT, (p - 1) * (q - 1)) != 1:
                continue
            n = p * q
            if n.bit_length() == bits:
                return cls(n=n, e=PUBLIC_EXPONENT, d=pow(PUBLIC_EXPONENT, -1, math.lcm(p - 1, q - 1)), p=p, q=q)

    @property
    def fingerprint(self) -> int:
        """Telegram's: the low 64 bits of sha1(n, e as TL bytes), what resPQ lists and Telethon matches."""
        serialized = TLObject.serialize_bytes(_to_bytes(self.n)) + TLObject.serialize_bytes(_to_bytes(self.e))
        fingerprint: int = struct.unpack("<q", hashlib.sha1(serialized).digest()[-8:])[0]
        return fingerprint

    @property
    def public_pem(self) -> str:
        """The PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`) that Telegram publishes and `trust_server_key` takes."""
        pem: bytes = rsa.PublicKey(self.n, self.e).save_pkcs1()
        return pem.decode("ascii")

    @property
    def public_key_line(self) -> str:
        """The PEM body on one line (base64 DER), for passing the key through stdout or the environment."""
        return "".join(line for line in self.public_pem.splitlines() if not line.startswith("-----"))

    def decrypt(self, ciphertext: bytes) -> int:
        """Textbook RSA (`c^d mod n`, via CRT): the exchange pads by its own rules, not PKCS#1."""
        value = int.from_bytes(ciphertext, "big")
        if not 0 < value < self.n:
            raise ValueError("RSA ciphertext out of range")
        from_p = pow(value, self.d % (self.p - 1), self.p)
        from_q = pow(value, self.d % (self.q - 1), self.q)
        return from_q + self.q * ((from_p - from_q) * pow(self.q, -1, self.p) % self.p)


def _to_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


_process_key: ServerRsaKey | None = None
_process_key_lock = threading.Lock()


def process_rsa_key() -> ServerRsaKey:
    """This process's shared server key, generated on first use."""
    global _process_key
    with _process_key_lock:
        if _process_key is None:
            _process_key = ServerRsaKey.generate()
        return _process_key


def trust_server_key(pem: str) -> None:
    """Make Telethon in this process accept a loopback server's RSA key (idempotent).

    Takes the PEM or its one-line body (`ServerRsaKey.public_key_line`, what the standalone server
    prints as `rsa_key=`). Call it before the client connects, e.g. in a wrapper script that then
    starts the CLI under test.
    """
    text = pem.strip()
    if not text.startswith("-----"):
        body = "".join(text.split())
        base64.b64decode(body, validate=True)  # fail here, not deep inside Telethon
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        text = "\n".join([_PEM_HEADER, *lines, _PEM_FOOTER])
    telethon_rsa.add_key(text, old=False)
