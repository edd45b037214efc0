"""The Open vSwitch L2 agent driver: pulls the host's L2 view, plans bridges, ports and flows, applies them.

Partial views (hints for some networks) are merged into the last full one, so the planner always sees the
whole host: its output for an unchanged host is empty whatever the order of hints (tested against a full
recompute). Instance taps appear without the server knowing: a periodic look for new taps wakes the sync.
Security groups come as the view's firewall (with full views, and when FIREWALL_KEY is asked for, as the
Linux-bridge agent asks for it) and are flows on br-int (agent/ovs/firewall.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fermion.agent.ovs import probe
from fermion.agent.ovs.planner import OvsConfig, plan
from fermion.agent.runtime import SyncResult
from fermion.dataplane import DataplaneError, linkwatch, naming
from fermion.dataplane import ovs as o
from fermion.ml2.mech_drivers.openvswitch import AGENT_TYPE
from fermion.rpc.contracts import FIREWALL_KEY, Hint, L2View, ProbeRequest, ProbeResult, decode

LOG = logging.getLogger(__name__)


class OvsAgent:
    agent_type = AGENT_TYPE
    binary = "fermion-openvswitch-agent"
    topic = "N/A"
    view_method = "get_l2_view"

    def __init__(self, host: str, config: OvsConfig, run: Path, netns: str | None = None,
                 executor: Any = None) -> None:
        self.host = host
        self.config = config
        self.run = run
        self.netns = netns
        self.executor = executor or o.OvsHost(run, netns)
        self.view: L2View | None = None
        self._state: o.OvsState | None = None  # OVS as the last sync left it
        self.networks: set[str] = set()
        self.taps: dict[str, str] = {}  # instance tap -> network: their link events wake the network
        self.plugged: set[str] = set()  # taps on br-int after the last sync (their own events wake nothing)
        # networks a tap's event woke whose sync has not looked at the links yet: that look covers later events
        # too (plugging a tap is several events within some 50 ms; each woke one more sync that found nothing)
        self._woken: set[str] = set()
        self.devices = 0
        self.last_phases: dict[str, float] = {}  # seconds per step of the last full sync (benchmarks, logs)
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def configurations(self) -> dict[str, Any]:
        return {"tunneling_ip": self.config.local_ip,
                "tunnel_types": list(self.config.tunnel_types) if self.config.local_ip else [],
                "bridge_mappings": dict(self.config.bridge_mappings), "l2_population": True,
                "datapath_type": "netdev", "integration_bridge": "br-int", "tunnel_bridge": "br-tun",
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
        got = decode(L2View, view)
        with self._lock:
            if scope is None or self.view is None:
                if scope is not None:  # no full view yet: the next full sync does it
                    return SyncResult(failed=True)
                desired = got
            else:
                desired = _merge(self.view, got, scope)
            # the taps to watch are published *before* observing: a tap appearing after the observation is
            # then seen by the monitor, one appearing before it by the observation
            self.taps = {naming.tap(p.id): p.network_id for p in desired.ports}
            t0 = time.perf_counter()
            # a firewall change alone plans against what the last sync left (kept in memory): no look at OVS, so
            # a revoked rule cuts its connections sooner; every other sync looks at OVS again
            if scope == {FIREWALL_KEY} and self._state is not None:
                observed = self._state
            else:
                self._woken.clear()  # every tap's events from now on wake again (the look at the links is next)
                observed = self.executor.observe(fresh=scope is None)
            t1 = time.perf_counter()
            # the taps seen: their later link events (the rest of their plugging: up, offloads off, carrier, and
            # ours) wake nothing; their deletion does
            self.plugged = {t for t in self.taps if t in observed.links}
            result = plan(desired, observed, self.config)
            t2 = time.perf_counter()
            failed = self.executor.apply(result.ops) if result.ops else []
            self._state = None if failed else o.applied(observed, result.ops)
            if scope is None:
                self.last_phases = {"observe": t1 - t0, "plan": t2 - t1, "ovs": time.perf_counter() - t2}
            self.view = desired
            self.networks = {n.id for n in desired.networks}
            bad = {getattr(op, "name", None) for op, _ in failed}
            self.plugged -= bad
            self.devices = len(desired.ports)
        if result.ops:
            LOG.info("host %s: applied %d OVS operations (%d failed)", self.host, len(result.ops), len(failed))
        for op, err in failed:
            LOG.warning("host %s: %s: %s", self.host, op, err)
        up = {pid: rev for pid, rev in result.up.items() if naming.tap(pid) not in bad}
        return SyncResult(up=up if not failed else {}, down=result.down, failed=bool(failed))

    # ---------------------------------------------------------------- fermion trace --probe
    def probe_keys(self, request: ProbeRequest) -> list[str] | None:
        return None  # the whole host view: the planner plans the whole host

    def probe(self, view: dict[str, Any], request: ProbeRequest) -> dict[str, ProbeResult]:
        with self._lock:  # never half-way through a sync's changes
            observed = self.executor.observe(fresh=True)
            return probe.probe(decode(L2View, view), observed, self.config, request.ports, request.filters,
                               probe.dumper(self.executor.client))

    # ---------------------------------------------------------------- device monitor
    def start(self, wake: Callable[[Iterable[str]], None]) -> None:
        self._stop.clear()
        self._monitor = threading.Thread(target=self._watch, args=(wake,), daemon=True,
                                         name=f"fermion-ovs-monitor-{self.host}")
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        self.executor.close()

    def woken_by(self, events: Iterable[linkwatch.LinkEvent]) -> set[str]:
        """The networks these link events wake: a new or deleted tap's, not the rest of plugging a tap seen
        already (link up, offloads off), and not again before a sync has looked at the links."""
        dirty = {self.taps[e.name] for e in events
                 if e.name in self.taps and (e.deleted or e.name not in self.plugged)} - self._woken
        self._woken |= dirty
        return dirty

    def _watch(self, wake: Callable[[Iterable[str]], None]) -> None:
        """Instance taps come and go without the server seeing it: link events wake their network."""
        try:
            sock = linkwatch.open_socket(self.netns)
        except (OSError, DataplaneError):
            LOG.exception("cannot watch links on host %s", self.host)
            return
        try:
            while not self._stop.is_set():
                try:
                    events = linkwatch.read(sock, 0.5)
                except OSError:
                    wake(set(self.taps.values()))
                    continue
                dirty = self.woken_by(events)
                if dirty:
                    wake(dirty)
        finally:
            sock.close()


def _merge(full: L2View, part: L2View, scope: set[str]) -> L2View:
    """The last full view with the networks in scope replaced by what the partial view says of them, its
    firewall by the partial view's when that has one, and the host's DVR MAC as the partial view has it (every
    view carries it)."""
    return L2View(host=full.host,
                  networks=[n for n in full.networks if n.id not in scope] + list(part.networks),
                  ports=[p for p in full.ports if p.network_id not in scope] + list(part.ports),
                  firewall=part.firewall if part.firewall is not None else full.firewall,
                  dvr_mac=part.dvr_mac)
