"""The Linux-bridge L2 agent driver: pulls the host's L2 view, reconciles it, watches for taps."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from fermion import metrics
from fermion.agent.l2 import probe
from fermion.agent.l2.qos import PortQosManager
from fermion.agent.l2.reconciler import L2Config, plan
from fermion.agent.runtime import SyncResult
from fermion.agent.secgroups import firewall_state
from fermion.dataplane import DataplaneError, linkwatch, naming
from fermion.dataplane import firewall as fw
from fermion.dataplane.linux import LinuxHost
from fermion.rpc.contracts import FIREWALL_KEY, Hint, L2View, ProbeRequest, ProbeResult, decode

LOG = logging.getLogger(__name__)
AGENT_TYPE = "Linux bridge agent"


class LinuxBridgeAgent:
    agent_type = AGENT_TYPE
    binary = "fermion-linuxbridge-agent"
    topic = "N/A"
    view_method = "get_l2_view"

    def __init__(self, host: str, config: L2Config, netns: str | None = None, executor: Any = None,
                 firewall: Any = None) -> None:
        self.host = host
        self.config = config
        self.netns = netns
        self.executor = executor or LinuxHost(netns)
        self.firewall = firewall or fw.Firewall(netns)
        self.qos = PortQosManager(netns)
        self.networks: set[str] = set()
        self.watched: dict[str, str] = {}
        self.devices = 0
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.last_phases: dict[str, float] = {}  # seconds per step of the last full sync (benchmarks, logs)

    def configurations(self) -> dict[str, Any]:
        return {"tunneling_ip": self.config.local_ip, "tunnel_types": ["vxlan"] if self.config.local_ip else [],
                "interface_mappings": dict(self.config.interface_mappings), "l2_population": True,
                "devices": self.devices, "netns": self.netns}

    def relevant(self, hint: Hint) -> Iterable[str]:
        if hint.kind == "security_group":  # rules or members changed: this host's filters may follow
            return [FIREWALL_KEY]
        keys = []
        if hint.network_id and (hint.network_id in self.networks or hint.host == self.host):
            keys.append(hint.network_id)
        if hint.kind == "port" and hint.host == self.host:
            keys.append(FIREWALL_KEY)
        return keys

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        t0 = time.perf_counter()
        desired = decode(L2View, view)
        phases = {"decode": time.perf_counter() - t0}
        firewall_failed = False
        if desired.firewall is not None:
            # filters first: a tap the L2 plan attaches is filtered from its first packet
            try:
                # incremental even on full syncs: after a restart the applied digest spares a full replace;
                # a full sync also reads our tables back and repairs what drifted from the view (an element
                # or chain deleted by hand), and checks every tracked connection against the rules (a
                # change missed while away is cut too)
                started = time.perf_counter()
                changed = self.firewall.apply(firewall_state(desired.firewall, self.config.local_ip),
                                              audit=scope is None, repair=scope is None)
                if changed:
                    metrics.FIREWALL_APPLY.labels(self.host).observe(time.perf_counter() - started)
                    LOG.info("host %s: firewall updated (%d nft commands)", self.host, changed)
            except DataplaneError as err:
                LOG.warning("host %s: firewall: %s", self.host, err)
                firewall_failed = True
            phases["firewall"] = time.perf_counter() - t0 - sum(phases.values())
        if scope is not None:
            scope = scope - {FIREWALL_KEY}
            if not scope:
                return SyncResult(failed=firewall_failed)
        with self._lock:
            # publish the taps to watch *before* observing: a tap appearing after the observation is then
            # seen by the monitor, one appearing before it by the observation
            watched = {naming.tap(port.id): port.network_id for port in desired.ports}
            for net in desired.networks:  # our own devices too: deleted by hand -> rebuilt at once
                watched[naming.bridge(net.id)] = net.id
                if net.segment.network_type == "vxlan" and net.segment.segmentation_id is not None:
                    watched[naming.vxlan(net.segment.segmentation_id)] = net.id
            if scope is None:
                self.watched = watched
            else:
                self.watched = {t: n for t, n in self.watched.items() if n not in scope} | watched
            observed = self.executor.observe()
            phases["observe"] = time.perf_counter() - t0 - sum(phases.values())
            result = plan(desired, observed, self.config, scope)
            phases["plan"] = time.perf_counter() - t0 - sum(phases.values())
            failed = self.executor.apply(result.ops) if result.ops else []
            phases["links"] = time.perf_counter() - t0 - sum(phases.values())
            qos_failed = self._qos(desired, scope)
            phases["qos"] = time.perf_counter() - t0 - sum(phases.values())
            present = {n.id for n in desired.networks}
            self.networks = present if scope is None else (self.networks - scope) | present
            self.devices = len(desired.ports)
        if scope is None:
            self.last_phases = phases
        if result.ops:
            LOG.info("host %s: applied %d operations (%d failed) in %s", self.host, len(result.ops), len(failed),
                     ", ".join(f"{k} {v:.3f} s" for k, v in phases.items()))
        bad = {getattr(op, "name", None) for op, _ in failed}
        up = {pid: rev for pid, rev in result.up.items() if naming.tap(pid) not in bad}
        if firewall_failed:  # not realized until its filters are: report nothing up, retry
            up = {}
        return SyncResult(up=up, down=result.down, failed=bool(failed) or firewall_failed or qos_failed)

    def _qos(self, desired: L2View, scope: set[str] | None) -> bool:
        """The ports' QoS (agent/l2/qos.py); True when it failed (the sync is retried)."""
        try:
            changed = self.qos.sync(desired, scope)
        except DataplaneError as err:
            LOG.warning("host %s: qos: %s", self.host, err)
            return True
        if changed:
            LOG.info("host %s: qos updated (%d commands)", self.host, changed)
        return False

    # ---------------------------------------------------------------- fermion trace --probe
    def probe_keys(self, request: ProbeRequest) -> list[str] | None:
        return None  # the whole host view: the ports' networks are not known before it

    def probe(self, view: dict[str, Any], request: ProbeRequest) -> dict[str, ProbeResult]:
        desired = decode(L2View, view)
        with self._lock:  # never half-way through a sync's changes
            observed = self.executor.observe()
        out = {f"port {pid}": probe.probe_port(desired, observed, self.config, pid) for pid in request.ports}
        out |= {f"filters {pid}": probe.probe_filters(desired, self.firewall, self.config, pid)
                for pid in request.filters}
        return out

    # ---------------------------------------------------------------- device monitor
    def start(self, wake: Callable[[Iterable[str]], None]) -> None:
        self._stop.clear()
        self._monitor = threading.Thread(target=self._watch, args=(wake,), daemon=True,
                                         name=f"fermion-l2-monitor-{self.host}")
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        self.executor.close()
        self.firewall.close()

    def _watch(self, wake: Callable[[Iterable[str]], None]) -> None:
        """Taps come and go with instances, which the server does not see: watch link events."""
        try:
            sock = linkwatch.open_socket(self.netns)
        except (OSError, DataplaneError):  # without events the periodic resync still converges
            LOG.exception("cannot watch links on host %s", self.host)
            return
        try:
            while not self._stop.is_set():
                try:
                    events = linkwatch.read(sock, 0.5)
                except OSError:  # events were lost (buffer overrun): look at every network
                    wake(set(self.watched.values()))
                    continue
                dirty = {self.watched[e.name] for e in events if e.name in self.watched and (
                    e.deleted or (e.master is None and e.name.startswith("tap")))}
                if dirty:
                    wake(dirty)
        finally:
            sock.close()
