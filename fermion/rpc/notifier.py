"""After-commit hints: what a write transaction emitted, published once, after it committed."""

from __future__ import annotations

from typing import Any

from fermion.rpc.contracts import Hint, encode
from fermion.rpc.transport import Transport


class Notifier:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def __call__(self, events: list[Any]) -> None:
        seen = set()
        for event in events:
            if isinstance(event, Hint) and event not in seen:
                seen.add(event)
                self.transport.notify(encode(event))
