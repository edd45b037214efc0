"""RabbitMQ transport (kombu), the distributed-mode twin of inproc.py.

Names, all under a prefix so deployments can share a broker:
- {prefix}.rpc: the servers' work queue (default exchange, non-durable, auto-delete; servers compete for it);
- {prefix}.reply.<uuid>: one exclusive reply queue per caller connection;
- {prefix}.hints: fanout exchange; every listener binds its own exclusive queue {prefix}.hints.<uuid>.
- {prefix}.agent.<target>: an agent's request queue (serve_agent: fermion trace --probe), answered on the
  caller's reply queue like any call (one reply queue per server process, as oslo.messaging does).

kombu connections are not thread-safe, so each consumer (server, replies, every listener) owns a connection
driven by one thread, and all publishing goes through one confirm-mode connection behind a lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Any

import kombu
import orjson

from fermion import metrics
from fermion.rpc.transport import Handler, RpcError, RpcUnavailable, dispatch, envelope, unanswered, unwrap

_JITTER = random.Random()  # background threads keep off the global generator (a caller may seed or check it)

LOG = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # TCP connect + AMQP handshake
BEST_EFFORT_TIMEOUT = 1.0  # notify/cast/replies: never hold a caller up for long when the broker is gone
TICK = 0.1  # how often consumer threads look up from the socket (stop, heartbeats, acks)
BACKOFF_START, BACKOFF_MAX = 0.25, 5.0
WORKERS = 8  # concurrent handler calls per server


def _discard(conn: Any, graceful: bool) -> None:
    """Close a connection; a broken one without talking to the broker (a close handshake could hang)."""
    try:
        if graceful:
            conn.release()
            return
    except Exception as exc:  # noqa: BLE001 - closing is best effort
        LOG.debug("closing the broker connection failed: %s", exc)
    try:
        conn.collect()
    except Exception as exc:  # noqa: BLE001
        LOG.debug("dropping the broker connection failed: %s", exc)


def _consume(conn: Any, queue: Any, on_message: Callable[[Any], None], **options: Any) -> Any:
    """Declare a queue and start consuming it; messages go undecoded to on_message."""
    consumer = kombu.Consumer(conn.default_channel, [queue], on_message=on_message, **options)
    consumer.consume()
    return consumer


class _Worker(threading.Thread):
    """A daemon thread owning one connection: connects, lets setup() declare and consume, then drains events
    until stopped. When `forever`, it reconnects after any loss with capped, jittered backoff."""

    def __init__(self, transport: AmqpTransport, role: str, setup: Callable[[Any], list[Any]], *,
                 forever: bool, on_connect: Callable[[], None] | None = None,
                 on_lost: Callable[[], None] | None = None, tick: Callable[[], None] | None = None) -> None:
        super().__init__(name=f"fermion-amqp[{transport.prefix}]-{role}", daemon=True)
        self._transport, self._setup, self._forever = transport, setup, forever
        self._on_connect, self._on_lost, self._tick = on_connect, on_lost, tick
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._up = self._finished = False
        self._tries = 0  # connections lost or failed
        self.last_error: BaseException | None = None

    def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            conn = self._transport._connection(heartbeat=self._transport.heartbeat)
            graceful = False
            try:
                conn.ensure_connection(max_retries=0)
                consumers = self._setup(conn)  # noqa: F841 - kept referenced while consuming
                raw = conn.connection  # kombu's wrappers would quietly reconnect (with sleeps) on a dead one
                attempt = 0
                if self._on_connect is not None:
                    try:
                        self._on_connect()
                    except Exception:  # noqa: BLE001 - a failed resync must not drop the subscription
                        LOG.exception("%s: on_connect failed", self.name)
                self._set_up(True)
                while not self._stopping.is_set():
                    try:
                        raw.drain_events(timeout=TICK)
                    except TimeoutError:
                        pass
                    raw.heartbeat_tick()
                    if self._tick is not None:
                        self._tick()
                graceful = True
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                self.last_error = exc
                if not self._stopping.is_set():
                    LOG.warning("%s: broker connection failed: %s", self.name, exc or type(exc).__name__)
            finally:
                with self._cond:
                    self._up = False
                    self._tries += 1
                    self._cond.notify_all()
                if self._on_lost is not None:
                    self._on_lost()
                _discard(conn, graceful)
            if not self._forever:
                break
            self._stopping.wait(min(BACKOFF_MAX, BACKOFF_START * 2 ** attempt) * _JITTER.uniform(0.5, 1.0))
            attempt += 1
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _set_up(self, up: bool) -> None:
        with self._cond:
            self._up = up
            self._cond.notify_all()

    def wait_up(self, timeout: float) -> bool:
        """Wait until consuming (True), or until a first connection failed or the timeout passed (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._up or self._tries > 0 or self._finished, max(0.0, timeout))
            return self._up

    @property
    def finished(self) -> bool:
        return self._finished

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        if wait and self.is_alive() and self is not threading.current_thread():
            self.join(CONNECT_TIMEOUT + 1)  # a connection attempt under way bounds it


class _Replies:
    """The caller side of call(): an exclusive reply queue and the calls waiting on it. One per reply
    connection; when that connection is lost its pending calls fail at once and the next call makes a new one."""

    def __init__(self, transport: AmqpTransport) -> None:
        self.queue = f"{transport.prefix}.reply.{uuid.uuid4().hex}"
        self._pending: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._dead = False
        self.worker = _Worker(transport, "replies", self._setup, forever=False, on_lost=self._fail_pending)

    def _setup(self, conn: Any) -> list[Any]:
        queue = kombu.Queue(self.queue, durable=False, exclusive=True, auto_delete=True)
        return [_consume(conn, queue, self._on_reply, no_ack=True)]

    def register(self, correlation_id: str) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._dead:
                raise RpcUnavailable("lost the connection to the message broker")
            self._pending[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        with self._lock:
            self._pending.pop(correlation_id, None)

    def _on_reply(self, message: Any) -> None:
        with self._lock:
            future = self._pending.pop(str(message.properties.get("correlation_id")), None)
        if future is None:
            LOG.debug("dropping a reply nobody waits for (the call timed out)")
            return
        try:
            future.set_result(orjson.loads(message.body))
        except orjson.JSONDecodeError as err:
            future.set_exception(RpcError(f"malformed reply: {err}", "InvalidMessage"))

    def _fail_pending(self) -> None:
        with self._lock:
            self._dead = True
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(RpcUnavailable("lost the connection to the message broker"))


class AmqpTransport:
    """Transport over RabbitMQ. Does no I/O until used; see the module docstring for the names."""

    def __init__(self, url: str, prefix: str = "fermion", heartbeat: float = 10.0) -> None:
        self.url, self.prefix, self.heartbeat = url, prefix, heartbeat
        self.rpc_queue = f"{prefix}.rpc"
        self.hints_exchange = kombu.Exchange(f"{prefix}.hints", type="fanout", durable=False)
        self._lock = threading.Lock()
        self._closed = False
        self._workers: set[_Worker] = set()  # server and listeners
        self._replies: _Replies | None = None
        self._handlers: Mapping[str, Handler] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._acks: SimpleQueue[Any] = SimpleQueue()  # handled requests, acked by the consumer thread
        self._publish_lock = threading.Lock()
        self._publisher: tuple[Any, Any] | None = None  # (connection, producer)
        self._returned = False

    def _connection(self, heartbeat: float = 0, timeout: float = CONNECT_TIMEOUT, confirm: bool = False) -> Any:
        # socket read/write timeouts bound the blocking exchanges (declare, close) with a broker gone silent
        options = {"confirm_publish": confirm, "read_timeout": CONNECT_TIMEOUT, "write_timeout": CONNECT_TIMEOUT}
        return kombu.Connection(self.url, heartbeat=heartbeat, connect_timeout=max(0.05, timeout),
                                transport_options=options)

    def _start(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            self._workers.add(worker)
        worker.start()
        if not worker.wait_up(CONNECT_TIMEOUT):
            LOG.warning("%s: message broker unreachable (%s), retrying in the background", worker.name,
                        worker.last_error or "timed out")

    # ------------------------------------------------------------ server side
    def serve(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = handlers
        if self._pool is not None:
            return  # already serving: just swap the handlers, like inproc
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix=f"fermion-amqp[{self.prefix}]-handler")
        self._start(_Worker(self, "server", self._setup_server, forever=True, tick=self._flush_acks))

    def _setup_server(self, conn: Any) -> list[Any]:
        queue = kombu.Queue(self.rpc_queue, durable=False, auto_delete=True)
        # prefetch bounds what one server takes from the shared queue; acks come after handling
        return [_consume(conn, queue, self._on_request, prefetch_count=2 * WORKERS)]

    def _on_request(self, message: Any) -> None:
        assert self._pool is not None
        self._pool.submit(self._handle, message)

    def _handle(self, message: Any) -> None:
        try:
            self._answer(self._handlers, message)
        finally:
            self._acks.put(message)

    def _answer(self, handlers: Mapping[str, Handler], message: Any) -> None:
        try:
            try:
                request = orjson.loads(message.body)
                if not isinstance(request, dict):
                    raise ValueError("an RPC message must be an object")
                reply = orjson.dumps(dispatch(handlers, request))
            except ValueError as err:  # orjson.JSONDecodeError is one
                reply = orjson.dumps({"error": {"type": "InvalidMessage", "message": str(err)}})
            except Exception as err:  # noqa: BLE001 - answer now rather than let the caller time out
                LOG.exception("RPC handler failed")
                reply = orjson.dumps({"error": {"type": "InternalError", "message": type(err).__name__}})
            reply_to = message.properties.get("reply_to")
            if reply_to:
                self._publish(reply, exchange="", routing_key=reply_to, deadline=time.monotonic() + BEST_EFFORT_TIMEOUT,
                              correlation_id=message.properties.get("correlation_id"))
        except Exception:  # noqa: BLE001 - a lost reply is a timeout on the caller's side
            LOG.exception("could not answer an RPC request")

    def _flush_acks(self) -> None:
        while True:
            try:
                message = self._acks.get_nowait()
            except Empty:
                return
            try:
                message.ack()
            except Exception as exc:  # noqa: BLE001 - its connection is gone; the broker requeued it already
                LOG.debug("ack failed: %s", exc)

    def notify(self, message: dict[str, Any]) -> None:
        metrics.rpc_sent("hint")
        try:
            self._publish(orjson.dumps(message), exchange=self.hints_exchange.name, routing_key="",
                          deadline=time.monotonic() + BEST_EFFORT_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - hints are best effort by design
            LOG.warning("hint not sent: %s", exc or type(exc).__name__)

    # ------------------------------------------------------------ agent side
    def call(self, method: str, payload: dict[str, Any], timeout: float = 10.0) -> Any:
        metrics.rpc_sent(method)
        return unwrap(self._request(envelope(method, payload), timeout))

    def call_agent(self, target: str, method: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
        metrics.rpc_sent(method)
        return unwrap(self._request(envelope(method, payload), timeout, target))

    def _request(self, message: dict[str, Any], timeout: float, target: str | None = None) -> dict[str, Any]:
        """Send an envelope to a server (target None) or to an agent, and return its reply envelope."""
        deadline = time.monotonic() + timeout
        replies = self._reply_queue(deadline)
        correlation_id = uuid.uuid4().hex
        future = replies.register(correlation_id)
        try:
            try:
                routing_key = self.rpc_queue if target is None else self._agent_queue(target)
                routed = self._publish(orjson.dumps(message), exchange="", routing_key=routing_key,
                                       deadline=deadline, mandatory=True, reply_to=replies.queue,
                                       correlation_id=correlation_id, expiration=timeout)
            except Exception as exc:  # noqa: BLE001 - whatever the broker trouble, the caller sees one error
                raise RpcUnavailable(f"cannot reach the message broker: {exc or type(exc).__name__}") from exc
            if not routed:
                raise RpcUnavailable("no server is serving RPC") if target is None else unanswered(target, timeout)
            try:
                reply = future.result(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                if target is not None:
                    raise unanswered(target, timeout) from None
                raise RpcUnavailable(f"no answer to {message.get('method')!r} within {timeout}s") from None
        finally:
            replies.forget(correlation_id)
        if not isinstance(reply, dict):
            raise RpcError("malformed reply", "InvalidMessage")
        return reply

    def _reply_queue(self, deadline: float) -> _Replies:
        with self._lock:
            if self._closed:
                raise RpcUnavailable("the transport is closed")
            replies = self._replies
            if replies is None or replies.worker.finished:
                replies = self._replies = _Replies(self)
                replies.worker.start()
        if not replies.worker.wait_up(deadline - time.monotonic()):
            raise RpcUnavailable(f"cannot reach the message broker: {replies.worker.last_error or 'timed out'}")
        return replies

    def cast(self, method: str, payload: dict[str, Any]) -> None:
        metrics.rpc_sent(method)
        try:
            if not self._publish(orjson.dumps(envelope(method, payload)), exchange="", routing_key=self.rpc_queue,
                                 deadline=time.monotonic() + BEST_EFFORT_TIMEOUT, mandatory=True):
                LOG.warning("cast %s dropped: no server is serving RPC", method)
        except Exception as exc:  # noqa: BLE001 - a cast is best effort
            LOG.warning("cast %s failed: %s", method, exc or type(exc).__name__)

    def listen(self, callback: Callable[[dict[str, Any]], None],
               on_connect: Callable[[], None] | None = None) -> Callable[[], None]:
        queue = kombu.Queue(f"{self.hints_exchange.name}.{uuid.uuid4().hex}", exchange=self.hints_exchange,
                            durable=False, exclusive=True, auto_delete=True)

        def on_message(message: Any) -> None:
            metrics.rpc_received("hint")
            try:
                callback(orjson.loads(message.body))
            except Exception:  # noqa: BLE001 - one bad hint must not drop the subscription
                LOG.exception("hint listener failed")

        return self._consume_forever("hints", queue, on_message, on_connect)

    def _agent_queue(self, target: str) -> str:
        return f"{self.prefix}.agent.{target}"

    def serve_agent(self, target: str, handlers: Mapping[str, Handler]) -> Callable[[], None]:
        # not exclusive: an agent restarting while its old connection lingers shares the queue for a moment
        queue = kombu.Queue(self._agent_queue(target), durable=False, auto_delete=True)

        def on_message(message: Any) -> None:
            # answered off the consumer thread, which must keep up with heartbeats; unacknowledged requests are
            # not worth keeping: a lost one is a timeout for its caller
            threading.Thread(target=self._answer, args=(handlers, message), daemon=True,
                             name=f"fermion-amqp[{self.prefix}]-answer-{target}").start()

        return self._consume_forever(f"agent-{target}", queue, on_message)

    def _consume_forever(self, name: str, queue: Any, on_message: Callable[[Any], None],
                         on_connect: Callable[[], None] | None = None) -> Callable[[], None]:
        """A worker consuming the queue (again after each reconnection) until the returned stop is called."""
        def setup(conn: Any) -> list[Any]:
            return [_consume(conn, queue, on_message, no_ack=True)]

        worker = _Worker(self, name, setup, forever=True, on_connect=on_connect)
        self._start(worker)

        def stop() -> None:
            worker.stop()
            with self._lock:
                self._workers.discard(worker)

        return stop

    # ------------------------------------------------------------ publishing
    def _on_returned(self, exc: Any, exchange: Any, routing_key: Any, message: Any) -> None:
        self._returned = True  # called inside publish(), under the publish lock

    def _publish(self, body: bytes, *, exchange: str, routing_key: str, deadline: float, mandatory: bool = False,
                 **properties: Any) -> bool:
        """Publish and wait for the broker's confirm. Returns False when a mandatory message reached no queue;
        raises when the broker cannot be reached in time."""
        if not self._publish_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError("publisher busy")
        try:
            args = dict(exchange=exchange, routing_key=routing_key, mandatory=mandatory, **properties)
            stale = self._publisher is not None
            try:
                return self._publish_once(body, deadline, args)
            except Exception:
                # a connection idle since the broker went away only shows it on use: then retry once, fresh
                if not stale or time.monotonic() >= deadline:
                    raise
            return self._publish_once(body, deadline, args)
        finally:
            self._publish_lock.release()

    def _publish_once(self, body: bytes, deadline: float, args: dict[str, Any]) -> bool:
        try:
            if self._publisher is None:
                self._publisher = self._open_publisher(deadline)
            self._returned = False
            self._publisher[1].publish(body, delivery_mode=1, content_type="application/json",
                                       content_encoding="utf-8", timeout=max(0.05, deadline - time.monotonic()),
                                       **args)
            return not self._returned
        except BaseException:
            self._drop_publisher(graceful=False)
            raise

    def _open_publisher(self, deadline: float) -> tuple[Any, Any]:
        with self._lock:
            if self._closed:
                raise RpcUnavailable("the transport is closed")
        conn = self._connection(timeout=min(CONNECT_TIMEOUT, deadline - time.monotonic()), confirm=True)
        try:
            conn.ensure_connection(max_retries=0)
            channel = conn.default_channel
            self.hints_exchange(channel).declare()
            return conn, kombu.Producer(channel, on_return=self._on_returned)
        except BaseException:
            _discard(conn, graceful=False)
            raise

    def _drop_publisher(self, graceful: bool) -> None:
        if self._publisher is not None:
            _discard(self._publisher[0], graceful)
            self._publisher = None

    # ------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            if self._replies is not None:
                workers.append(self._replies.worker)
                self._replies = None
        for worker in workers:
            worker.stop(wait=False)  # all at once, then wait for each
        for worker in workers:
            worker.stop()
        if self._pool is not None:  # requests still being handled were requeued when the consumer closed
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._publish_lock:
            self._drop_publisher(graceful=True)
