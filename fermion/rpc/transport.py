"""The Transport protocol: how the server and the agents talk. Two implementations, same behaviour:
inproc.py (embedded mode, one process) and amqp.py (RabbitMQ through kombu, distributed mode).

Semantics every implementation keeps:
- call(): request/response to *a* server; raises RpcUnavailable when no answer comes in time, RpcError when
  the server's handler refused the request. Payloads are JSON-able dicts (the in-process transport encodes
  them too, so both transports see the same data).
- cast(): one-way to a server, best effort.
- notify(): server -> every listening agent, best effort. Losing a hint is harmless by design.
- listen(): an agent's subscription to hints. on_connect runs every time the subscription is (re)established,
  so the agent can resync whatever hints it may have missed while disconnected.
- serve_agent() / call_agent(): the one server -> agent request with a reply (fermion trace --probe). An agent
  answers what is addressed to its target (agent_target: its kind and host); a caller gets RpcUnavailable
  ("not answered in N s") when no such agent listens or it does not answer in time, never a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from fermion import metrics

Handler = Callable[[dict[str, Any]], Any]


class RpcUnavailable(Exception):
    """No server answered (broker down, timeout)."""


class RpcError(Exception):
    """The server answered with an error."""

    def __init__(self, message: str, type: str = "RpcError") -> None:  # noqa: A002 - Neutron's word
        super().__init__(message)
        self.type = type


class Transport(Protocol):
    def serve(self, handlers: Mapping[str, Handler]) -> None: ...

    def call(self, method: str, payload: dict[str, Any], timeout: float = 10.0) -> Any: ...

    def cast(self, method: str, payload: dict[str, Any]) -> None: ...

    def notify(self, message: dict[str, Any]) -> None: ...

    def listen(self, callback: Callable[[dict[str, Any]], None],
               on_connect: Callable[[], None] | None = None) -> Callable[[], None]:
        """Start receiving hints; returns a function that stops the subscription."""
        ...

    def serve_agent(self, target: str, handlers: Mapping[str, Handler]) -> Callable[[], None]:
        """Answer requests addressed to target; returns a function that stops answering."""
        ...

    def call_agent(self, target: str, method: str, payload: dict[str, Any], timeout: float = 5.0) -> Any: ...

    def close(self) -> None: ...


def agent_target(agent_type: str, host: str) -> str:
    """Where requests for one agent go: its kind and host ("linux-bridge-agent.compute1")."""
    return f"{agent_type.lower().replace(' ', '-')}.{host}"


def unanswered(target: str, timeout: float) -> RpcUnavailable:
    return RpcUnavailable(f"{target} not answered in {timeout:g} s")


def envelope(method: str, payload: dict[str, Any]) -> dict[str, Any]:
    from fermion.rpc.contracts import VERSION

    return {"v": VERSION, "method": method, "body": payload}


# the contract version of the caller whose request is being handled (a handler may answer an older agent
# with less than it would tell a current one)
CALLER_VERSION: ContextVar[str] = ContextVar("fermion_rpc_caller_version", default="")


def dispatch(handlers: Mapping[str, Handler], message: dict[str, Any]) -> dict[str, Any]:
    """Run a handler for an envelope; the reply is an envelope too ({"ok": ...} or {"error": ...})."""
    from fermion.rpc.contracts import compatible

    version = str(message.get("v", ""))
    if not compatible(version):
        return {"error": {"type": "IncompatibleVersion", "message": f"RPC version {version} not supported"}}
    token = CALLER_VERSION.set(version)
    try:
        return _run(handlers, message)
    finally:
        CALLER_VERSION.reset(token)


def _run(handlers: Mapping[str, Handler], message: dict[str, Any]) -> dict[str, Any]:
    handler = handlers.get(str(message.get("method")))
    metrics.rpc_received(str(message["method"]) if handler is not None else "unknown")
    if handler is None:
        return {"error": {"type": "UnknownMethod", "message": f"no RPC method {message.get('method')!r}"}}
    try:
        return {"ok": handler(message.get("body") or {})}
    except RpcError as err:
        return {"error": {"type": err.type, "message": str(err)}}
    except ValueError as err:
        return {"error": {"type": "InvalidMessage", "message": str(err)}}
    except Exception as err:  # noqa: BLE001 - the caller gets an answer, not a timeout; the log gets the trace
        logging.getLogger(__name__).exception("RPC method %s failed", message.get("method"))
        return {"error": {"type": "InternalError", "message": f"{type(err).__name__}: {err}"}}


def unwrap(reply: dict[str, Any]) -> Any:
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], dict) else {"message": str(reply["error"])}
        raise RpcError(str(error.get("message", "")), str(error.get("type", "RpcError")))
    return reply.get("ok")
