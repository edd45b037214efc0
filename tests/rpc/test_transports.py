"""The Transport contract, run over both transports: in-process, and RabbitMQ (skipped when unreachable).
Each AMQP test uses its own prefix, so tests can share the broker (and run in parallel)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import kombu
import orjson
import pytest

from fermion.rpc.amqp import AmqpTransport
from fermion.rpc.contracts import (
    L2Network,
    L2Port,
    L2View,
    PortReport,
    ProbeReply,
    ProbeRequest,
    ProbeResult,
    RemotePort,
    Segment,
    ViewRequest,
    decode,
    encode,
)
from fermion.rpc.inproc import InProcTransport
from fermion.rpc.transport import RpcError, RpcUnavailable, Transport, agent_target, dispatch, unwrap
from tests.support.tcpproxy import TcpProxy

AMQP_URL = os.environ.get("FERMION_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
BROKER = (urlsplit(AMQP_URL).hostname or "127.0.0.1", urlsplit(AMQP_URL).port or 5672)


def _broker_unreachable() -> str | None:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return None
    except OSError as err:
        return f"RabbitMQ is not reachable at {BROKER[0]}:{BROKER[1]} ({err}); set FERMION_TEST_AMQP"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class Amqp:
    """Makes AmqpTransports sharing one fresh prefix; close() tears everything down and checks for leaks."""

    def __init__(self) -> None:
        self.prefix = f"fermion-test-{uuid.uuid4().hex[:12]}"
        self.transports: list[AmqpTransport] = []

    def __call__(self, url: str = AMQP_URL) -> AmqpTransport:
        transport = AmqpTransport(url, prefix=self.prefix)
        self.transports.append(transport)
        return transport

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
        with kombu.Connection(AMQP_URL, connect_timeout=2) as conn:  # both are idempotent
            conn.default_channel.exchange_delete(f"{self.prefix}.hints")  # deployments keep it; tests must not
            conn.default_channel.queue_delete(f"{self.prefix}.rpc")
        leftover = [t.name for t in threading.enumerate() if self.prefix in t.name]
        assert not leftover, f"threads left running: {leftover}"


@pytest.fixture
def amqp() -> Iterator[Amqp]:
    reason = _broker_unreachable()
    if reason:
        pytest.skip(reason)
    factory = Amqp()
    yield factory
    factory.close()


L2_VIEW = L2View(
    host="compute-1",
    networks=[L2Network(id="net-1", mtu=1450, admin_state_up=True, segment=Segment("vxlan", None, 1001),
                        vteps=["198.19.2.2"],
                        remote_ports=[RemotePort("fa:16:3e:00:00:02", ["10.0.0.5"], "198.19.2.2")])],
    ports=[L2Port(id="port-1", network_id="net-1", mac="fa:16:3e:00:00:01", revision=7, admin_state_up=True,
                  device_owner="compute:nova")],
    partial=True,
)


class Pair:
    """A server-side and an agent-side transport (the same object in-process), with test handlers."""

    def __init__(self, server: Transport, agent: Transport) -> None:
        self.server, self.agent = server, agent
        self.reports: list[PortReport] = []
        self.release = threading.Event()  # lets "block" handlers finish
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "l2_view": self._l2_view,
            "refuse": self._refuse,
            "report_ports": lambda body: self.reports.append(decode(PortReport, body)),
            "echo": self._echo,
            "block": lambda body: self.release.wait(5),
            "crash": self._crash,
        }

    def serve(self) -> Pair:
        self.server.serve(self.handlers)
        return self

    def raw_call(self, message: dict[str, Any], timeout: float = 5.0) -> Any:
        """Send a hand-made envelope (e.g. another version)."""
        if isinstance(self.agent, AmqpTransport):
            return unwrap(self.agent._request(message, timeout))
        return unwrap(orjson.loads(orjson.dumps(dispatch(self.handlers, orjson.loads(orjson.dumps(message))))))

    @staticmethod
    def _l2_view(body: dict[str, Any]) -> dict[str, Any]:
        request = decode(ViewRequest, body)
        assert request.host == L2_VIEW.host and request.network_ids == ["net-1"]
        return encode(L2_VIEW)

    @staticmethod
    def _refuse(body: dict[str, Any]) -> None:
        raise RpcError(f"port {body['port_id']} not found", "PortNotFound")

    @staticmethod
    def _crash(body: dict[str, Any]) -> None:
        raise KeyError("a bug in a handler")

    @staticmethod
    def _echo(body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.002)  # a little work, so concurrent calls overlap
        return body


@pytest.fixture(params=["inproc", "amqp"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    if request.param == "inproc":
        transport = InProcTransport()
        yield Pair(transport, transport)
        transport.close()
        return
    factory: Amqp = request.getfixturevalue("amqp")
    p = Pair(factory(), factory())
    yield p
    p.release.set()  # before the fixture's teardown closes the transports


# ---------------------------------------------------------------- both transports
def test_call_round_trip_with_contracts(pair: Pair) -> None:
    pair.serve()
    reply = pair.agent.call("l2_view", encode(ViewRequest("compute-1", "linuxbridge", ["net-1"])))
    assert decode(L2View, reply) == L2_VIEW


def test_handler_error_reaches_the_caller(pair: Pair) -> None:
    pair.serve()
    with pytest.raises(RpcError, match="port p-9 not found") as err:
        pair.agent.call("refuse", {"port_id": "p-9"})
    assert err.value.type == "PortNotFound"


def test_unknown_method(pair: Pair) -> None:
    pair.serve()
    with pytest.raises(RpcError) as err:
        pair.agent.call("no_such_method", {})
    assert err.value.type == "UnknownMethod"


def test_versions(pair: Pair) -> None:
    pair.serve()
    assert pair.raw_call({"v": "1.9", "method": "echo", "body": {"a": 1}}) == {"a": 1}  # newer minor: fine
    with pytest.raises(RpcError) as err:
        pair.raw_call({"v": "2.0", "method": "echo", "body": {}})
    assert err.value.type == "IncompatibleVersion"


def test_cast_reaches_the_handler(pair: Pair) -> None:
    pair.serve()
    report = PortReport(host="compute-1", up={"port-1": 7}, down=["port-2"])
    pair.agent.cast("report_ports", encode(report))
    wait_for(lambda: pair.reports == [report])


def test_notify_reaches_every_listener_until_stopped(pair: Pair) -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    stop_first = pair.agent.listen(first.append)
    stop_second = pair.agent.listen(second.append)
    pair.server.notify({"kind": "port", "id": "port-1", "revision": 1})
    wait_for(lambda: len(first) == 1 and len(second) == 1)
    assert first == second == [{"kind": "port", "id": "port-1", "revision": 1}]

    started = time.monotonic()
    stop_first()
    assert time.monotonic() - started < 1.0
    pair.server.notify({"kind": "port", "id": "port-1", "revision": 2})
    wait_for(lambda: len(second) == 2)
    assert len(first) == 1
    stop_second()


def test_on_connect_runs_when_subscribed(pair: Pair) -> None:
    connects: list[float] = []
    stop = pair.agent.listen(lambda hint: None, lambda: connects.append(time.monotonic()))
    assert len(connects) == 1  # listen() returns once subscribed, as in-process
    stop()


def test_concurrent_calls_get_their_own_answers(pair: Pair) -> None:
    pair.serve()
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            results[n] = [pair.agent.call("echo", {"caller": n, "i": i}, timeout=5) for i in range(10)]
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == {n: [{"caller": n, "i": i} for i in range(10)] for n in range(16)}


# ---------------------------------------------------------------- server -> agent requests (trace --probe)
def _probe_handlers(host: str, release: threading.Event) -> dict[str, Callable[[dict[str, Any]], Any]]:
    def probe(body: dict[str, Any]) -> dict[str, Any]:
        request = decode(ProbeRequest, body)
        return encode(ProbeReply(host=host, agent_type="Linux bridge agent", results={
            f"port {p}": ProbeResult(checked=[f"tap on {host}"]) for p in request.ports}))

    return {"probe": probe, "block": lambda body: release.wait(5),
            "refuse": lambda body: Pair._refuse(body)}


def test_the_server_asks_each_agent_and_gets_its_own_reply(pair: Pair) -> None:
    stops = [pair.agent.serve_agent(agent_target("Linux bridge agent", host), _probe_handlers(host, pair.release))
             for host in ("compute1", "compute2")]
    try:
        for host in ("compute1", "compute2"):
            reply = pair.server.call_agent(agent_target("Linux bridge agent", host), "probe",
                                           encode(ProbeRequest(host=host, ports=["port-1"])), timeout=5)
            assert decode(ProbeReply, reply).results == {"port port-1": ProbeResult(checked=[f"tap on {host}"])}
        with pytest.raises(RpcError, match="port p-9 not found") as err:
            pair.server.call_agent(agent_target("Linux bridge agent", "compute1"), "refuse", {"port_id": "p-9"})
        assert err.value.type == "PortNotFound"
    finally:
        for stop in stops:
            stop()


def test_a_request_to_no_agent_is_unanswered_at_once(pair: Pair) -> None:
    target = agent_target("L3 agent", "nowhere")
    started = time.monotonic()
    with pytest.raises(RpcUnavailable, match=r"l3-agent.nowhere not answered in 2 s"):
        pair.server.call_agent(target, "probe", encode(ProbeRequest(host="nowhere")), timeout=2)
    assert time.monotonic() - started < 1.5  # nobody listens: no need to wait for the timeout


def test_a_silent_agent_is_unanswered_after_the_timeout(pair: Pair) -> None:
    target = agent_target("Linux bridge agent", "compute1")
    stop = pair.agent.serve_agent(target, _probe_handlers("compute1", pair.release))
    try:
        started = time.monotonic()
        with pytest.raises(RpcUnavailable, match=r"linux-bridge-agent.compute1 not answered in 0.5 s"):
            pair.server.call_agent(target, "block", {}, timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 1.5
    finally:
        pair.release.set()
        wait_for(lambda: not [t for t in threading.enumerate() if t.name.endswith(f"answer-{target}")])
        stop()


def test_a_stopped_agent_no_longer_answers(pair: Pair) -> None:
    target = agent_target("Linux bridge agent", "compute1")
    stop = pair.agent.serve_agent(target, _probe_handlers("compute1", pair.release))
    assert pair.server.call_agent(target, "probe", encode(ProbeRequest(host="compute1")), timeout=5)["host"] == \
        "compute1"
    stop()
    with pytest.raises(RpcUnavailable, match="not answered"):
        pair.server.call_agent(target, "probe", encode(ProbeRequest(host="compute1")), timeout=1)


# ---------------------------------------------------------------- RabbitMQ only
def test_call_without_a_server_is_unavailable(amqp: Amqp) -> None:
    agent = amqp()
    started = time.monotonic()
    with pytest.raises(RpcUnavailable):
        agent.call("echo", {}, timeout=1)
    assert time.monotonic() - started < 2


def test_call_timeout_is_unavailable(amqp: Amqp) -> None:
    pair = Pair(amqp(), amqp()).serve()
    started = time.monotonic()
    try:
        with pytest.raises(RpcUnavailable):
            pair.agent.call("block", {}, timeout=0.5)
        assert time.monotonic() - started < 1.5
    finally:
        pair.release.set()


def test_handler_crash_is_an_error_not_a_timeout(amqp: Amqp) -> None:
    pair = Pair(amqp(), amqp()).serve()
    with pytest.raises(RpcError) as err:
        pair.agent.call("crash", {}, timeout=5)
    assert err.value.type == "InternalError"


def test_unreachable_broker_fails_fast(amqp: Amqp) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there once closed
    transport = amqp(f"amqp://guest:guest@127.0.0.1:{port}//")
    started = time.monotonic()
    with pytest.raises(RpcUnavailable):
        transport.call("echo", {}, timeout=5)
    transport.cast("echo", {})
    transport.notify({"kind": "port"})
    stop = transport.listen(lambda hint: None)
    stop()
    assert time.monotonic() - started < 1.5


def test_agent_recovers_from_a_broker_cut(amqp: Amqp) -> None:
    proxy = TcpProxy(*BROKER)
    port = proxy.start()
    try:
        user = urlsplit(AMQP_URL)
        pair = Pair(amqp(), amqp(f"amqp://{user.username}:{user.password}@127.0.0.1:{port}//")).serve()
        hints: list[dict[str, Any]] = []
        connects: list[float] = []
        stop = pair.agent.listen(hints.append, lambda: connects.append(time.monotonic()))
        assert pair.agent.call("echo", {"n": 1}) == {"n": 1}
        pair.server.notify({"n": 1})
        wait_for(lambda: hints == [{"n": 1}])

        proxy.cut()
        started = time.monotonic()
        with pytest.raises(RpcUnavailable):
            pair.agent.call("echo", {"n": 2}, timeout=1)
        assert time.monotonic() - started < 2
        pair.server.notify({"n": "lost"})  # nobody is listening: gone for good, hence on_connect's resync
        time.sleep(0.3)  # a few reconnection attempts fail
        assert len(connects) == 1

        proxy.restore()
        restored = time.monotonic()
        wait_for(lambda: len(connects) == 2, timeout=10)
        assert connects[1] - restored < 6  # the backoff is capped
        assert pair.agent.call("echo", {"n": 3}, timeout=2) == {"n": 3}  # same transport object
        pair.server.notify({"n": 4})
        wait_for(lambda: hints == [{"n": 1}, {"n": 4}])
        stop()
    finally:
        proxy.stop()


def test_server_recovers_from_a_broker_cut(amqp: Amqp) -> None:
    proxy = TcpProxy(*BROKER)
    port = proxy.start()
    try:
        user = urlsplit(AMQP_URL)
        pair = Pair(amqp(f"amqp://{user.username}:{user.password}@127.0.0.1:{port}//"), amqp()).serve()
        hints: list[dict[str, Any]] = []
        stop = pair.agent.listen(hints.append)
        assert pair.agent.call("echo", {"n": 1}) == {"n": 1}

        proxy.cut()
        started = time.monotonic()
        pair.server.notify({"n": "lost"})  # best effort: neither raises nor hangs
        assert time.monotonic() - started < 1.5
        with pytest.raises(RpcUnavailable):
            pair.agent.call("echo", {"n": 2}, timeout=0.5)

        proxy.restore()

        def answers() -> bool:
            try:
                return bool(pair.agent.call("echo", {"n": 3}, timeout=0.5) == {"n": 3})
            except RpcUnavailable:
                return False

        wait_for(answers, timeout=10)  # the server consumes again, same transport object
        pair.server.notify({"n": 4})
        wait_for(lambda: hints == [{"n": 4}])
        stop()
    finally:
        proxy.stop()
