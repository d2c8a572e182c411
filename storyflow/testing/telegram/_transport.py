"""The TcpFull transport (`len:int32 seq:int32 body crc32`) over a Trio stream.

Telethon's default `ConnectionTcpFull` sends no tag byte, so the very first 8 bytes are already a
packet header. Abridged/intermediate clients are told apart by their tag and refused.
"""

from __future__ import annotations

import struct
import zlib

import attrs
import trio

# 512 KiB upload parts plus MTProto and container overhead fit comfortably.
MAX_PACKET_SIZE = 2 * 1024 * 1024
_RECEIVE_CHUNK = 256 * 1024


class TransportError(Exception):
    """The peer broke TcpFull framing; the connection cannot continue."""


@attrs.define(eq=False)
class TcpFullStream:
    stream: trio.abc.Stream
    _buffer: bytearray = attrs.field(init=False, factory=bytearray)
    _receive_seq: int = attrs.field(init=False, default=0)
    _send_seq: int = attrs.field(init=False, default=0)

    async def _receive_exactly(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            chunk = await self.stream.receive_some(max(_RECEIVE_CHUNK, count - len(self._buffer)))
            if not chunk:
                if self._buffer:
                    raise TransportError("connection closed in the middle of a packet")
                return None
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def receive_packet(self) -> bytes | None:
        """The next packet's body, or None when the client closed the connection cleanly."""
        header = await self._receive_exactly(8)
        if header is None:
            return None
        if header[0] == 0xEF or header[:4] in (b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd"):
            raise TransportError("only the TcpFull transport is supported")
        length, seq = struct.unpack("<ii", header)
        if not 12 < length <= MAX_PACKET_SIZE:
            raise TransportError(f"bad packet length {length}")
        rest = await self._receive_exactly(length - 8)
        if rest is None:
            raise TransportError("connection closed in the middle of a packet")
        body, (checksum,) = rest[:-4], struct.unpack("<I", rest[-4:])
        if zlib.crc32(header + body) != checksum:
            raise TransportError("bad CRC32")
        if seq != self._receive_seq:
            raise TransportError(f"transport seq {seq}, expected {self._receive_seq}")
        self._receive_seq += 1
        return body

    def encode_packet(self, body: bytes) -> bytes:
        data = struct.pack("<ii", len(body) + 12, self._send_seq) + body
        self._send_seq += 1
        return data + struct.pack("<I", zlib.crc32(data))

    async def send_packet(self, body: bytes) -> None:
        await self.stream.send_all(self.encode_packet(body))

    async def send_transport_error(self, code: int) -> None:
        """A bare negative int32 as the whole packet: Telethon reads it as InvalidBufferError(code)."""
        await self.stream.send_all(struct.pack("<i", -code))
