"""One client TCP connection: MTProto 2.0 sessions, service messages and RPC dispatch."""

from __future__ import annotations

import logging
import os
import struct
from typing import TYPE_CHECKING

import attrs
import trio
from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.core import GzipPacked, MessageContainer
from telethon.tl.tlobject import TLObject, TLRequest

from ._crypto import MessageKeyMismatch, ServerMsgIds, decrypt_client_packet, encrypt_server_message
from ._errors import RpcFailure
from ._faults import DropConnection, normalize_method_name
from ._state import Account, AuthKeyRecord
from ._transport import TcpFullStream

if TYPE_CHECKING:
    from ._server import LoopbackTelegram

log = logging.getLogger(__name__)

_RPC_RESULT = 0xF35C6D01
_VECTOR = 0x1CB5C415
_BOOL_TRUE = 0x997275B5
_BOOL_FALSE = 0xBC799737
_CONTAINER = 0x73F1F8DC
# Pushed updates beyond this backlog mean the client stopped reading; Telegram would drop it too.
_OUTGOING_BACKLOG = 1024
_CONTAINER_MAX_MESSAGES = 64
_CONTAINER_MAX_BYTES = 256 * 1024
# Compressing media bytes is pure waste (Telethon measured the same on its side).
_GZIP_THRESHOLD = 1024
_UNWRAPPED = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeAfterMsgRequest,
    functions.InvokeAfterMsgsRequest,
    functions.InvokeWithoutUpdatesRequest,
)
# Requests that do not make a connection an update receiver (Telegram: upload-only connections get none).
_NO_UPDATE_SUBSCRIPTION = ("upload.", "help.getConfig")


@attrs.frozen
class _Outgoing:
    body: bytes
    content_related: bool
    reply: bool


def serialize_result(value: object) -> bytes:
    """TL-serialize a handler's return value, including the bare Bool and Vector<T> answers."""
    if isinstance(value, bool):
        return struct.pack("<I", _BOOL_TRUE if value else _BOOL_FALSE)
    if isinstance(value, TLObject):
        return bytes(value)
    if isinstance(value, list):
        items = b"".join(
            struct.pack("<q", item) if isinstance(item, int) else bytes(item) for item in value
        )
        return struct.pack("<Ii", _VECTOR, len(value)) + items
    raise TypeError(f"cannot serialize RPC result {value!r}")


@attrs.define(eq=False)
class Connection:
    server: LoopbackTelegram
    transport: TcpFullStream
    auth: AuthKeyRecord
    receives_updates: bool = False
    session_id: int | None = None
    init_connection: functions.InitConnectionRequest | None = None
    requests_handled: int = 0
    _salt: int = attrs.field(factory=lambda: struct.unpack("<q", os.urandom(8))[0])
    _msg_ids: ServerMsgIds = attrs.field(factory=ServerMsgIds)
    _content_sent: int = 0
    _cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _outgoing_send: trio.MemorySendChannel[_Outgoing] = attrs.field(init=False)
    _outgoing_receive: trio.MemoryReceiveChannel[_Outgoing] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._outgoing_send, self._outgoing_receive = trio.open_memory_channel[_Outgoing](_OUTGOING_BACKLOG)

    @property
    def auth_key(self) -> bytes:
        return self.auth.key

    @property
    def key_id(self) -> int:
        return self.auth.key_id

    @property
    def authorized(self) -> bool:
        return self.auth.account is not None

    @property
    def account(self) -> Account:
        """The signed-in account; on an unauthorized key every handler that needs one answers 401."""
        account = self.auth.account
        if account is None:
            raise RpcFailure(401, "AUTH_KEY_UNREGISTERED")
        return account

    # --- lifetime -------------------------------------------------------------------------------

    async def run(self, first_packet: bytes) -> None:
        with self._cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop)
                packet: bytes | None = first_packet
                while packet is not None:
                    self._handle_packet(packet, nursery)
                    packet = await self.transport.receive_packet()
                    if packet is not None:
                        self.server.faults.count_bytes(len(packet))
                        await self.server.faults.upstream.consume(len(packet) + 12)
                nursery.cancel_scope.cancel()

    def close(self) -> None:
        self._cancel_scope.cancel()

    def push_updates(self, updates: TLObject) -> None:
        """Queue an unsolicited Updates object; a client that cannot keep up is disconnected."""
        try:
            self._outgoing_send.send_nowait(_Outgoing(bytes(updates), content_related=True, reply=False))
        except trio.WouldBlock:
            log.warning("%s is not reading its updates; dropping the connection", self.auth.account)
            self.close()

    # --- incoming -------------------------------------------------------------------------------

    def _handle_packet(self, packet: bytes, nursery: trio.Nursery) -> None:
        if struct.unpack_from("<Q", packet)[0] != self.key_id:
            raise DropConnection  # a connection never switches keys
        try:
            message = decrypt_client_packet(self.auth_key, packet)
        except MessageKeyMismatch:
            log.warning("undecryptable packet from %s", self.auth.account)
            raise DropConnection from None
        if message.session_id != self.session_id:
            self.session_id = message.session_id
            created = types.NewSessionCreated(
                first_msg_id=message.msg_id, unique_id=struct.unpack("<q", os.urandom(8))[0], server_salt=self._salt
            )
            self._queue(bytes(created), content_related=True, reply=False)
        try:
            obj = BinaryReader(message.body).tgread_object()
        except (TypeNotFoundError, BufferError, struct.error) as error:
            log.warning("unparseable message from %s: %s", self.auth.account, error)
            self._queue_rpc_error(message.msg_id, RpcFailure(400, "INPUT_METHOD_INVALID"))
            return
        self._handle_object(message.msg_id, obj, nursery)

    def _handle_object(self, msg_id: int, obj: object, nursery: trio.Nursery) -> None:
        if isinstance(obj, MessageContainer):
            for inner in obj.messages:
                self._handle_object(inner.msg_id, inner.obj, nursery)
        elif isinstance(obj, GzipPacked):
            self._handle_object(msg_id, BinaryReader(obj.data).tgread_object(), nursery)
        elif isinstance(obj, functions.PingRequest | functions.PingDelayDisconnectRequest):
            self._queue(bytes(types.Pong(msg_id=msg_id, ping_id=obj.ping_id)), content_related=False, reply=True)
        elif isinstance(obj, functions.DestroySessionRequest):
            answer = types.DestroySessionOk(obj.session_id)
            self._queue(bytes(answer), content_related=False, reply=True)
        elif isinstance(obj, TLRequest):
            self.server.faults.count_request()
            nursery.start_soon(self._answer_rpc, msg_id, obj)
        # Acks, msgs_state_req and friends need no answer from this server.

    async def _answer_rpc(self, msg_id: int, request: TLRequest) -> None:
        if self.server.faults.rpc_delay:
            await trio.sleep(self.server.faults.rpc_delay)
        wants_updates = True
        while isinstance(request, _UNWRAPPED):
            if isinstance(request, functions.InitConnectionRequest):
                self.init_connection = request
            if isinstance(request, functions.InvokeWithoutUpdatesRequest):
                wants_updates = False
            request = request.query
        method = normalize_method_name(type(request))
        if wants_updates and not method.startswith(_NO_UPDATE_SUBSCRIPTION):
            self.receives_updates = True
        try:
            self.server.faults.check_flood(method)
            result = self.server.api.call(self, request, method)
        except RpcFailure as failure:
            self._queue_rpc_error(msg_id, failure)
            return
        except Exception:
            log.exception("loopback Telegram failed on %s", method)
            self._queue_rpc_error(msg_id, RpcFailure(500, "INTERNAL_SERVER_ERROR"))
            return
        self.requests_handled += 1
        if self.server.faults.answer_lost(method):
            self.close()  # done, but the client never hears so: it can only send the same request again
            return
        body = serialize_result(result)
        if len(body) > _GZIP_THRESHOLD and not isinstance(result, types.upload.File):
            packed = bytes(GzipPacked(body))
            body = packed if len(packed) < len(body) else body
        await self._outgoing_send.send(
            _Outgoing(struct.pack("<Iq", _RPC_RESULT, msg_id) + body, content_related=True, reply=True)
        )

    def _queue_rpc_error(self, msg_id: int, failure: RpcFailure) -> None:
        error = types.RpcError(error_code=failure.code, error_message=failure.message)
        self._queue(struct.pack("<Iq", _RPC_RESULT, msg_id) + bytes(error), content_related=True, reply=True)

    def _queue(self, body: bytes, *, content_related: bool, reply: bool) -> None:
        try:
            self._outgoing_send.send_nowait(_Outgoing(body, content_related, reply))
        except trio.WouldBlock:
            self.close()

    # --- outgoing -------------------------------------------------------------------------------

    def _envelope(self, item: _Outgoing) -> tuple[int, int, bytes]:
        msg_id = self._msg_ids.next(reply=item.reply)
        seq_no = self._content_sent * 2 + (1 if item.content_related else 0)
        if item.content_related:
            self._content_sent += 1
        return msg_id, seq_no, item.body

    async def _write_loop(self) -> None:
        async for first in self._outgoing_receive:
            batch = [first]
            size = len(first.body)
            while len(batch) < _CONTAINER_MAX_MESSAGES and size < _CONTAINER_MAX_BYTES:
                try:
                    item = self._outgoing_receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(item)
                size += len(item.body)
            envelopes = [self._envelope(item) for item in batch]
            if len(envelopes) == 1:
                msg_id, seq_no, body = envelopes[0]
            else:
                body = struct.pack("<Ii", _CONTAINER, len(envelopes)) + b"".join(
                    struct.pack("<qii", inner_id, inner_seq, len(inner)) + inner
                    for inner_id, inner_seq, inner in envelopes
                )
                msg_id, seq_no, _ = self._envelope(_Outgoing(b"", content_related=False, reply=False))
            assert self.session_id is not None
            packet = encrypt_server_message(
                self.auth_key, self.key_id, salt=self._salt, session_id=self.session_id,
                msg_id=msg_id, seq_no=seq_no, body=body,
            )
            await self.server.faults.downstream.consume(len(packet) + 12)
            await self.transport.send_packet(packet)
