"""Per-test fault injection: flood waits, refused media, dropped connections, RPC delay, bandwidth."""

from __future__ import annotations

import math
from typing import TypeVar

import attrs
import trio

from ._errors import RpcFailure


class DropConnection(Exception):
    """Raised inside a connection to cut it without an answer, as a flaky network would."""


def normalize_method_name(name: str | type) -> str:
    """'messages.sendMessage', 'messages.SendMessageRequest' or the class → 'messages.sendMessage'."""
    if isinstance(name, type):
        module = name.__module__.rpartition("telethon.tl.functions")[2].lstrip(".")
        name = f"{module}.{name.__name__}" if module else name.__name__
    namespace, _, method = name.rpartition(".")
    method = method.removesuffix("Request")
    method = method[:1].lower() + method[1:]
    return f"{namespace}.{method}" if namespace else method


@attrs.define(eq=False)
class _FloodRule:
    seconds: int
    remaining: int
    premium: bool


@attrs.define(eq=False)
class _Refusal:
    error: str
    remaining: int


_Rule = TypeVar("_Rule", _FloodRule, _Refusal)


def _use_first(rules: list[_Rule] | None) -> _Rule | None:
    """The first of a queue of injected faults, used once more (and gone once used up); None if there is none."""
    if not rules:
        return None
    rule = rules[0]
    rule.remaining -= 1
    if rule.remaining <= 0:
        rules.pop(0)
    return rule


@attrs.define(eq=False)
class Throttle:
    """A token bucket shared by every connection: one direction of the simulated link."""

    bytes_per_second: float | None = None
    _available_at: float = 0.0
    _lock: trio.Lock = attrs.field(factory=trio.Lock)

    async def consume(self, byte_count: int) -> None:
        rate = self.bytes_per_second
        if rate is None:
            return
        async with self._lock:
            now = trio.current_time()
            # No credit for idle time beyond a 50 ms burst, so a quiet link does not turn into a fast one.
            start = max(self._available_at, now - 0.05)
            self._available_at = start + byte_count / rate
            await trio.sleep_until(self._available_at)


@attrs.define(eq=False)
class FaultPlan:
    rpc_delay: float = 0.0
    upstream: Throttle = attrs.field(factory=Throttle)
    downstream: Throttle = attrs.field(factory=Throttle)
    _floods: dict[str, list[_FloodRule]] = attrs.field(factory=dict)
    _refusals: dict[str, list[_Refusal]] = attrs.field(factory=dict)
    floods_served: dict[str, int] = attrs.field(factory=dict)  # by method: how many injected flood waits went out
    _lost_answers: dict[str, list[int]] = attrs.field(factory=dict)  # method -> [calls to let through, to lose]
    _drop_after_requests: float = math.inf
    _drop_after_bytes: float = math.inf
    connections_dropped: int = 0

    def inject_flood_wait(self, method: str | type, seconds: int, *, count: int, premium: bool) -> None:
        rule = _FloodRule(seconds=seconds, remaining=count, premium=premium)
        self._floods.setdefault(normalize_method_name(method), []).append(rule)

    def check_flood(self, method: str) -> None:
        rule = _use_first(self._floods.get(method))
        if rule is None:
            return
        prefix = "FLOOD_PREMIUM_WAIT" if rule.premium else "FLOOD_WAIT"
        self.floods_served[method] = self.floods_served.get(method, 0) + 1
        raise RpcFailure(420, f"{prefix}_{rule.seconds}")

    def lose_answers(self, method: str | type, count: int, *, after: int) -> None:
        self._lost_answers[normalize_method_name(method)] = [after, count]

    def answer_lost(self, method: str) -> bool:
        """Whether this call's answer is to be lost (counting it)."""
        plan = self._lost_answers.get(method)
        if plan is None or plan[1] <= 0:
            return False
        if plan[0] > 0:
            plan[0] -= 1
            return False
        plan[1] -= 1
        self.connections_dropped += 1
        return True

    def refuse_media(self, kind: str, error: str, *, count: int) -> None:
        self._refusals.setdefault(kind, []).append(_Refusal(error, count))

    def check_media(self, kind: str) -> None:
        """Raise the refusal injected for newly uploaded media of this kind ("photo", "video"), if any."""
        refusal = _use_first(self._refusals.get(kind))
        if refusal is not None:
            raise RpcFailure(400, refusal.error)

    def drop_after(self, *, requests: int | None, bytes: int | None) -> None:
        self._drop_after_requests = math.inf if requests is None else requests
        self._drop_after_bytes = math.inf if bytes is None else bytes

    def count_request(self) -> None:
        self._drop_after_requests -= 1
        if self._drop_after_requests < 0:
            self._drop_after_requests = math.inf
            self.connections_dropped += 1
            raise DropConnection

    def count_bytes(self, byte_count: int) -> None:
        self._drop_after_bytes -= byte_count
        if self._drop_after_bytes <= 0:
            self._drop_after_bytes = math.inf
            self.connections_dropped += 1
            raise DropConnection
