"""The agent runtime shared by every agent kind: heartbeat, hint subscription, and a worker that pulls
the host's desired view and hands it to the agent's driver. Level-triggered: hints only say *where* to
look; a lost hint is repaired by the periodic full resync, a broker or server outage by a full resync
once it answers again."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fermion import metrics
from fermion.agent.workqueue import WorkQueue
from fermion.rpc.contracts import (
    FirewallReport,
    FirewallStatus,
    FloatingIpReport,
    FloatingIpStatus,
    HaStateReport,
    Hint,
    PortReport,
    ProbeReply,
    ProbeRequest,
    StateReport,
    ViewRequest,
    decode,
    encode,
)
from fermion.rpc.transport import RpcError, RpcUnavailable, Transport, agent_target

_JITTER = random.Random()  # background threads keep off the global generator (a caller may seed or check it)

LOG = logging.getLogger(__name__)


@dataclass
class SyncResult:
    up: dict[str, int] = field(default_factory=dict)  # port id -> realized revision
    down: list[str] = field(default_factory=list)
    failed: bool = False  # something could not be applied: retry with backoff
    ha_states: dict[str, str] = field(default_factory=dict)  # HA router -> active|standby, where the server differs
    floating_ips: dict[str, FloatingIpStatus] = field(default_factory=dict)  # where the server's status differs
    firewall_groups: dict[str, FirewallStatus] = field(default_factory=dict)  # FWaaS: where the server's differs
    ha_reported: Callable[[], None] | None = None  # called once the server has taken ha_states


class Driver(Protocol):
    agent_type: str
    binary: str
    topic: str
    view_method: str

    def configurations(self) -> dict[str, Any]: ...

    def relevant(self, hint: Hint) -> Iterable[str]:
        """The keys (network ids) a hint makes dirty for this host; empty when it does not concern it."""
        ...

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        """Make the host match the view (scope None: the whole host; else only those networks)."""
        ...

    def start(self, wake: Any) -> None:
        """Begin watching the host; call wake(keys) when something local changed (e.g. a tap appeared)."""
        ...

    def stop(self) -> None: ...


class AgentRuntime:
    def __init__(self, host: str, driver: Driver, transport: Transport, report_interval: float = 5.0,
                 resync_interval: float = 60.0, call_timeout: float = 10.0,
                 availability_zone: str = "nova") -> None:
        self.host = host
        self.availability_zone = availability_zone
        self.driver = driver
        self.transport = transport
        self.report_interval = report_interval
        self.resync_interval = resync_interval
        self.call_timeout = call_timeout
        self.queue = WorkQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unlisten: Any = None
        self._unserve: Any = None
        self._reported: dict[str, int | None] = {}
        self._inflight: set[str] = set()
        self._inflight_full = False
        self.synced = threading.Event()  # set after the first successful full sync (tests, lab)
        self.last_sync_seconds = 0.0
        self.last_sync_phases: dict[str, float] = {}  # of the last full sync: view, apply, report (seconds)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.queue.add_full()
        self._unlisten = self.transport.listen(self._on_hint, on_connect=self.queue.add_full)
        self.driver.start(self.queue.add)
        if hasattr(self.driver, "probe"):
            self._unserve = self.transport.serve_agent(agent_target(self.driver.agent_type, self.host),
                                                       {"probe": self._probe})
        for name, target in (("heartbeat", self._heartbeat), ("worker", self._work)):
            t = threading.Thread(target=target, name=f"fermion-{self.driver.binary}-{name}-{self.host}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._unlisten is not None:
            self._unlisten()
        if self._unserve is not None:
            self._unserve()
        for t in self._threads:
            t.join(timeout=10)
        self.driver.stop()

    # ---------------------------------------------------------------- hints
    def _on_hint(self, message: dict[str, Any]) -> None:
        try:
            hint = decode(Hint, message)
        except (ValueError, TypeError):
            LOG.warning("ignoring malformed hint %r", message)
            return
        keys = set(self.driver.relevant(hint))
        # a sync in flight may have pulled its view before this change: look again afterwards
        if hint.network_id and (self._inflight_full or hint.network_id in self._inflight):
            keys.add(hint.network_id)
        LOG.debug("%s on %s: hint %s %s (network %s, host %s) -> %s", self.driver.binary, self.host, hint.kind,
                  hint.id, hint.network_id, hint.host, keys or "ignored")
        self.queue.add(keys)

    # ---------------------------------------------------------------- fermion trace --probe
    def _probe(self, body: dict[str, Any]) -> dict[str, Any]:
        """The server asks what the kernel holds for some objects: pull their desired view as a sync would and
        let the driver compare it with the kernel, changing nothing."""
        request = decode(ProbeRequest, body)
        keys = self.driver.probe_keys(request)  # type: ignore[attr-defined]
        view = self.transport.call(self.driver.view_method, encode(ViewRequest(
            host=self.host, agent_type=self.driver.agent_type, network_ids=keys)), timeout=self.call_timeout)
        results = self.driver.probe(view, request)  # type: ignore[attr-defined]
        return encode(ProbeReply(host=self.host, agent_type=self.driver.agent_type, results=results))

    # ---------------------------------------------------------------- heartbeat
    def _heartbeat(self) -> None:
        start_flag, lost = True, False
        while not self._stop.is_set():
            report = StateReport(host=self.host, agent_type=self.driver.agent_type, binary=self.driver.binary,
                                 topic=self.driver.topic, configurations=self._configurations(),
                                 start_flag=start_flag, availability_zone=self.availability_zone)
            try:
                self.transport.call("report_state", encode(report), timeout=self.call_timeout)
                start_flag = False
                self._periodic_reports()
                if lost:
                    LOG.info("server reachable again: full resync")
                    self.queue.add_full()
                    lost = False
            except (RpcUnavailable, RpcError) as err:
                LOG.warning("state report failed: %s", err)
                lost = True
            self._stop.wait(self.report_interval if not lost else min(1.0, self.report_interval))

    def _configurations(self) -> dict[str, Any]:
        """The driver's, with how long the last full sync took (GET /v2.0/agents shows it, as does the console)."""
        out = dict(self.driver.configurations())
        if self.last_sync_seconds:
            out["last_full_sync_seconds"] = round(self.last_sync_seconds, 3)
        return out

    def _periodic_reports(self) -> None:
        """What the driver reports with every heartbeat (the L3 agent's metering counters), if anything."""
        reports = getattr(self.driver, "reports", None)
        if reports is None:
            return
        try:
            pending = reports()
        except Exception:  # noqa: BLE001 - a driver bug must not stop the heartbeat
            LOG.exception("%s on %s: periodic reports failed", self.driver.binary, self.host)
            return
        for method, message in pending:
            self.transport.call(method, encode(message), timeout=self.call_timeout)

    # ---------------------------------------------------------------- worker
    def _work(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            job = self.queue.take(self.resync_interval)
            if job is None:
                return
            full, keys = job
            started = time.perf_counter()
            self._inflight, self._inflight_full = keys, full
            try:
                ok = self._sync_once(full, keys)
            finally:
                self._inflight, self._inflight_full = set(), False
            if ok:
                delay = 0.0
                if full:
                    self.last_sync_seconds = time.perf_counter() - started
                    self.synced.set()
                continue
            if full:
                self.queue.add_full()
            else:
                self.queue.add(keys)
            delay = min(max(delay * 2, 0.1), 5.0)
            self._stop.wait(delay * _JITTER.uniform(0.5, 1.0))

    def _sync_once(self, full: bool, keys: set[str]) -> bool:
        request = ViewRequest(host=self.host, agent_type=self.driver.agent_type,
                              network_ids=None if full else sorted(keys))
        kind = "full" if full else "partial"
        LOG.debug("%s on %s: %s sync %s", self.driver.binary, self.host, kind, keys)
        try:
            t0 = time.perf_counter()
            view = self.transport.call(self.driver.view_method, encode(request), timeout=self.call_timeout)
            t1 = time.perf_counter()
            if full and hasattr(self.driver, "hinted"):  # hints a full sync absorbed still count as asked
                self.driver.hinted = set(keys)
            result = self.driver.sync(view, None if full else keys)
            t2 = time.perf_counter()
            self._report_ports(result, full)
            if result.ha_states:
                self.transport.call("report_ha_states", encode(HaStateReport(host=self.host, states=result.ha_states)),
                                    timeout=self.call_timeout)
                if result.ha_reported is not None:
                    result.ha_reported()
            if result.floating_ips:  # after the HA states: the server heeds the host it now knows as active
                self.transport.call("report_floatingip_statuses",
                                    encode(FloatingIpReport(host=self.host, statuses=result.floating_ips)),
                                    timeout=self.call_timeout)
            if result.firewall_groups:
                self.transport.call("report_firewall_statuses",
                                    encode(FirewallReport(host=self.host, statuses=result.firewall_groups)),
                                    timeout=self.call_timeout)
            phases = {"view": t1 - t0, "apply": t2 - t1, "report": time.perf_counter() - t2}
            for phase, seconds in phases.items():
                metrics.AGENT_SYNC.labels(self.driver.agent_type, self.host, kind, phase).observe(seconds)
            if full:
                self.last_sync_phases = phases
                LOG.info("%s on %s: full sync took %s", self.driver.binary, self.host,
                         ", ".join(f"{k} {v:.2f} s" for k, v in self.last_sync_phases.items()))
        except (RpcUnavailable, RpcError) as err:
            LOG.warning("sync failed (%s): %s", "full" if full else f"{len(keys)} networks", err)
            self._count(kind, False)
            return False
        except Exception:  # noqa: BLE001 - a driver bug must not kill the worker: log, back off, retry
            LOG.exception("sync failed")
            self._count(kind, False)
            return False
        self._count(kind, not result.failed)
        return not result.failed

    def _count(self, kind: str, ok: bool) -> None:
        metrics.AGENT_SYNCS.labels(self.driver.agent_type, self.host, kind, "ok" if ok else "failed").inc()

    def _report_ports(self, result: SyncResult, full: bool) -> None:
        if full:
            self._reported = {k: v for k, v in self._reported.items() if k in result.up or k in result.down}
        up = {k: v for k, v in result.up.items() if full or self._reported.get(k) != v}
        down = [k for k in result.down if full or k not in self._reported or self._reported[k] is not None]
        if not up and not down:
            return
        self.transport.call("report_ports", encode(PortReport(host=self.host, up=up, down=down)),
                            timeout=self.call_timeout)
        self._reported.update(up)
        self._reported.update(dict.fromkeys(down))
