"""Prometheus metrics: every series Fermion exports is declared here; the call sites in api/, services/,
rpc/ and agent/ only observe. Label values stay bounded: API routes are templates (`ports/{id}`), RPC
methods come from our own code, agents are labelled by type and host.

With `[server] workers` > 1 the API processes share counters and histograms through prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `fermion serve`); gauges read at scrape time (database
pool, agents) then describe the process that answered the scrape.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, start_http_server

LOG = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes: the format every Prometheus reads
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

disable_created_metrics()  # a `_created` twin of every series doubles a scrape and says little

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AGENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

API_REQUESTS = Counter("fermion_api_requests", "API requests answered, by route, method and status",
                       ["resource", "method", "status"])
API_LATENCY = Histogram("fermion_api_request_duration_seconds",
                        "Time from a request's arrival to its last byte sent", ["resource", "method"],
                        buckets=REQUEST_BUCKETS)
RPC_MESSAGES = Counter("fermion_rpc_messages", "RPC messages: calls and casts by method, hints as method "
                       "'hint'", ["direction", "method"])
PORT_ACTIVE = Histogram("fermion_port_active_latency_seconds",
                        "From a port's creation to its first ACTIVE (its agent realized it)", buckets=AGENT_BUCKETS)
AGENT_SYNC = Histogram("fermion_agent_sync_duration_seconds",
                       "Agent syncs by phase: view (pull from the server), apply (the host), report (statuses)",
                       ["agent_type", "host", "sync", "phase"], buckets=AGENT_BUCKETS)
AGENT_SYNCS = Counter("fermion_agent_syncs", "Agent syncs by kind (full, partial) and result (ok, failed)",
                      ["agent_type", "host", "sync", "result"])
FIREWALL_APPLY = Histogram("fermion_agent_firewall_apply_seconds",
                           "Security-group filter changes applied by an L2 agent (one nft transaction)", ["host"],
                           buckets=AGENT_BUCKETS)
ROUTER_FAILURES = Counter("fermion_agent_router_failures", "Routers an L3 agent failed to realize (operation "
                          "ensure: their floating IPs turn ERROR) or to remove; the reason is in the agent's log",
                          ["host", "operation"])
NAT_APPLY = Histogram("fermion_agent_nat_apply_seconds", "A router's NAT table replaced by an L3 agent",
                      ["host"], buckets=AGENT_BUCKETS)


_rpc: dict[tuple[str, str], Any] = {}  # label children by (direction, method): a hint goes out with every write


def _rpc_count(direction: str, method: str) -> None:
    child = _rpc.get((direction, method))
    if child is None:
        child = _rpc[(direction, method)] = RPC_MESSAGES.labels(direction, method)
    child.inc()


def rpc_sent(method: str) -> None:
    _rpc_count("sent", method)


def rpc_received(method: str) -> None:
    _rpc_count("received", method)


# ------------------------------------------------------------------------------------------ port activation
class PortActivation:
    """Creation times of ports not yet ACTIVE, so their first ACTIVE observes create -> ACTIVE once.
    In memory of the process that created them: bounded, the oldest forgotten first (ports that are
    never bound would otherwise pile up)."""

    def __init__(self, histogram: Histogram, max_ports: int = 10_000) -> None:
        self.histogram = histogram
        self.max_ports = max_ports
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()

    def created(self, port_id: str) -> None:
        with self._lock:
            self._created[port_id] = time.monotonic()
            if len(self._created) > self.max_ports:
                del self._created[next(iter(self._created))]

    def pending(self, port_ids: Iterable[str]) -> list[str]:
        """Those of port_ids still waiting for their first ACTIVE."""
        return [p for p in port_ids if p in self._created]

    def active(self, port_ids: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            times = [self._created.pop(p, None) for p in port_ids]
        for t in times:
            if t is not None:
                self.histogram.observe(now - t)


PORTS = PortActivation(PORT_ACTIVE)


# ------------------------------------------------------------------------------------------ scrape-time gauges
@dataclass(frozen=True)
class AgentSample:
    agent_type: str
    host: str
    alive: bool
    heartbeat_age: float


class ServerCollector:
    """Gauges read when scraped, at no cost between scrapes: the database pool of this process and the
    agents' liveness (one small query)."""

    def __init__(self, pool: Callable[[], dict[str, int]], agents: Callable[[], list[AgentSample]]) -> None:
        self.pool = pool
        self.agents = agents

    def collect(self) -> Iterator[Metric]:
        for key, value in self.pool().items():
            yield GaugeMetricFamily(f"fermion_db_pool_{key}", POOL_HELP[key], value=value)
        try:
            samples = self.agents()
        except Exception as err:  # noqa: BLE001 - a scrape must answer even when the database does not
            LOG.warning("metrics: cannot read the agents: %s", err)
            return
        alive = GaugeMetricFamily("fermion_agent_alive", "1 when the agent's last heartbeat is recent, 0 when it "
                                  "counts as dead", labels=["agent_type", "host"])
        age = GaugeMetricFamily("fermion_agent_heartbeat_age_seconds", "Seconds since the agent's last heartbeat",
                                labels=["agent_type", "host"])
        for s in samples:
            alive.add_metric([s.agent_type, s.host], 1.0 if s.alive else 0.0)
            age.add_metric([s.agent_type, s.host], s.heartbeat_age)
        yield alive
        yield age


class MeteringCollector:
    """Metering labels' counts per router, read when scraped (one grouped query): what the L3 agents have
    reported, summed over hosts and counter restarts (services.metering)."""

    def __init__(self, counters: Callable[[], list[tuple[str, str, int, int]]]) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        try:
            rows = self.counters()
        except Exception as err:  # noqa: BLE001 - a scrape must answer even when the database does not
            LOG.warning("metrics: cannot read the metering counters: %s", err)
            return
        packets = CounterMetricFamily("fermion_metering_label_packets", "Packets a metering label counted on a "
                                      "router", labels=["label_id", "router_id"])
        nbytes = CounterMetricFamily("fermion_metering_label_bytes", "Bytes a metering label counted on a router",
                                     labels=["label_id", "router_id"])
        for label_id, router_id, p, b in rows:
            packets.add_metric([label_id, router_id], p)
            nbytes.add_metric([label_id, router_id], b)
        yield packets
        yield nbytes


POOL_HELP = {
    "size": "Connections the database pool keeps open",
    "max": "Connections the database pool may open at most (size plus overflow)",
    "checked_out": "Database connections in use by a request or an RPC call",
    "idle": "Database connections open and waiting in the pool",
}


def scrape_registry(*collectors: Any) -> CollectorRegistry:
    """A registry for one application's scrape-time collectors (kept apart from the process-wide one, so
    that building several applications in one process, as tests do, registers nothing twice)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


def render(extra: CollectorRegistry | None = None) -> bytes:
    """The text exposition of this process's (or, in multiprocess mode, all workers') series."""
    if multiprocess():
        from prometheus_client.multiprocess import MultiProcessCollector

        base = CollectorRegistry()
        MultiProcessCollector(base)
        text = generate_latest(base)
    else:
        text = generate_latest(REGISTRY)
    return text + generate_latest(extra) if extra is not None else text


# ------------------------------------------------------------------------------------------ agent processes
def parse_address(address: str) -> tuple[str, int]:
    """'127.0.0.1:9110', '[::1]:9110' or ':9110' (every address) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics address {address!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(address: str) -> Callable[[], None]:
    """Serve this process's metrics over HTTP on a thread (agent processes); returns the stop function.
    Raises OSError when the address cannot be bound."""
    host, port = parse_address(address)
    server, thread = start_http_server(port, host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
