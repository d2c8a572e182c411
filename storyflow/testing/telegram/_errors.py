"""The RPC error a handler raises; the connection turns it into an `rpc_error` answer."""

from __future__ import annotations


class RpcFailure(Exception):
    """Telegram's answer `rpc_error error_code error_message`, e.g. (400, "FILE_PART_3_MISSING")."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def bad_request(message: str) -> RpcFailure:
    return RpcFailure(400, message)
