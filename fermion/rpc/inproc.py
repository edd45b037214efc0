"""In-process transport for embedded mode: direct calls, with the same JSON round trip and error handling
as the AMQP transport so code tested here behaves the same over RabbitMQ."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import orjson

from fermion import metrics
from fermion.rpc.transport import Handler, RpcUnavailable, dispatch, envelope, unanswered, unwrap

LOG = logging.getLogger(__name__)


class InProcTransport:
    def __init__(self) -> None:
        self._handlers: Mapping[str, Handler] | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._agents: dict[str, Mapping[str, Handler]] = {}
        self._lock = threading.Lock()

    def serve(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = handlers

    def call(self, method: str, payload: dict[str, Any], timeout: float = 10.0) -> Any:
        if self._handlers is None:
            raise RpcUnavailable("no server is serving RPC in this process")
        metrics.rpc_sent(method)
        message = orjson.loads(orjson.dumps(envelope(method, payload)))
        return unwrap(orjson.loads(orjson.dumps(dispatch(self._handlers, message))))

    def cast(self, method: str, payload: dict[str, Any]) -> None:
        try:
            self.call(method, payload)
        except Exception:  # noqa: BLE001 - a cast is best effort, like over AMQP
            LOG.exception("cast %s failed", method)

    def notify(self, message: dict[str, Any]) -> None:
        data = orjson.dumps(message)
        metrics.rpc_sent("hint")
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            metrics.rpc_received("hint")
            try:
                callback(orjson.loads(data))
            except Exception:  # noqa: BLE001 - one bad listener must not starve the others
                LOG.exception("hint listener failed")

    def listen(self, callback: Callable[[dict[str, Any]], None],
               on_connect: Callable[[], None] | None = None) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)
        if on_connect is not None:
            on_connect()

        def stop() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return stop

    def serve_agent(self, target: str, handlers: Mapping[str, Handler]) -> Callable[[], None]:
        with self._lock:
            self._agents[target] = handlers

        def stop() -> None:
            with self._lock:
                if self._agents.get(target) is handlers:
                    del self._agents[target]

        return stop

    def call_agent(self, target: str, method: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
        with self._lock:
            handlers = self._agents.get(target)
        if handlers is None:
            raise unanswered(target, timeout)
        metrics.rpc_sent(method)
        message = orjson.loads(orjson.dumps(envelope(method, payload)))
        reply: Future[bytes] = Future()

        def answer() -> None:
            try:
                reply.set_result(orjson.dumps(dispatch(handlers, message)))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                reply.set_exception(err)

        # a thread of its own, as an agent answers on its own: a stuck agent costs the caller only the timeout
        threading.Thread(target=answer, name=f"fermion-inproc-answer-{target}", daemon=True).start()
        try:
            return unwrap(orjson.loads(reply.result(timeout)))
        except TimeoutError:
            raise unanswered(target, timeout) from None

    def close(self) -> None:
        with self._lock:
            self._listeners.clear()
            self._agents.clear()
