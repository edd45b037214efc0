"""The L3 agent driver: per router hosted here a qrouter namespace with its qr-/qg- ports, routes and NAT.

Level-triggered like the other agents: hints name routers, the agent pulls their desired state (the L3
view), and the router manager makes each namespace match (an admin-down router's disabled: ports plugged but
down, nothing forwarded); routers this host no longer carries are removed.
HA routers also run keepalived; its transitions wake the agent (a datagram on the host's notify socket),
whose next sync reports each HA router's state where it differs from what the server last heard, except
an active state the server already had from here and gave to another host since (see _tell).
Floating IPs are reported the same way, where the view's status differs from what this host did: ACTIVE
once their router is realized, ERROR when realizing it failed (logged, and counted in
fermion_agent_router_failures), DOWN while their router is administratively down. An HA router's are
reported by its active instance only.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fermion import metrics
from fermion.agent.l3 import dvr
from fermion.agent.l3.fwaas import FwaasPart
from fermion.agent.l3.metering import Metering
from fermion.agent.l3.qos import RouterQos
from fermion.agent.runtime import SyncResult
from fermion.dataplane import DataplaneError, keepalived, naming
from fermion.dataplane import port_forwarding as pfwd
from fermion.dataplane import router as dp
from fermion.dataplane.dvr import DvrManager
from fermion.rpc.contracts import (
    FipGateway,
    FloatingIpStatus,
    Hint,
    L3View,
    ProbeRequest,
    ProbeResult,
    Router,
    RouterPort,
    decode,
)

LOG = logging.getLogger(__name__)
AGENT_TYPE = "L3 agent"
ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"  # a floating IP's status
# an HA router the server gave to another host, while it is active here too, is claimed back at the latest
# after this long: the other host may have died since, and nothing else would say so
OVERRULE_HOLD = 300.0


def to_dataplane(router: Router) -> dp.Router:
    def iface(port: RouterPort, name: str) -> dp.Interface:
        return dp.Interface(port_id=port.id, device=name, tap=naming.tap(port.id), mac=port.mac, mtu=port.mtu,
                            addresses=tuple(port.addresses), address_scope=port.ipv4_address_scope,
                            address_scope6=port.ipv6_address_scope)

    return dp.Router(
        id=router.id, interfaces=tuple(iface(p, naming.router_interface(p.id)) for p in router.interfaces),
        gateway=iface(router.gateway, naming.router_gateway(router.gateway.id)) if router.gateway is not None else None,
        gateway_ip=router.gateway_ip, enable_snat=router.enable_snat,
        floating_ips=tuple(dp.FloatingIp(f.floating_ip, f.fixed_ip) for f in router.floating_ips),
        routes=tuple((r[0], r[1]) for r in router.routes),
        conntrack_helpers=tuple(sorted({(h.protocol, h.port, h.helper) for h in router.conntrack_helpers})),
        port_forwardings=tuple(pfwd.Forward(p.floating_ip, p.protocol, pfwd.ports(p.external_port), p.internal_ip,
                                            pfwd.ports(p.internal_port)) for p in router.port_forwardings),
        ha=dp.Ha(router.ha.vr_id, iface(router.ha.interface, naming.ha_device(router.ha.interface.id)))
        if router.ha is not None else None, enabled=router.admin_state_up)


class L3Agent:
    agent_type = AGENT_TYPE
    binary = "fermion-l3-agent"
    topic = "l3_agent"
    view_method = "get_l3_view"

    def __init__(self, host: str, netns_name: str | None = None, state_dir: Path | None = None,
                 agent_mode: str = dvr.LEGACY) -> None:
        if agent_mode not in dvr.MODES:
            raise ValueError(f"agent_mode must be one of {', '.join(dvr.MODES)}, not {agent_mode!r}")
        self.host = host
        self.netns = netns_name
        self.mode = agent_mode
        # HA routers' keepalived: a workdir each under state_dir/l3/<host>/ha, transitions on one socket
        ha_dir = state_dir / "l3" / host if state_dir is not None else None
        self.notifications = keepalived.Notifications(ha_dir / "ha.sock") if ha_dir is not None else None
        self.manager = dp.RouterManager(netns_name, metrics.NAT_APPLY.labels(host).observe,
                                        state_dir=ha_dir / "ha" if ha_dir is not None else None,
                                        notify_socket=self.notifications.path if self.notifications else None)
        # distributed routers' central parts (a separate keepalived state directory: a dvr_snat host can hold
        # a router's local copy and its SNAT part) and DVR parts
        self.snat = dp.RouterManager(netns_name, metrics.NAT_APPLY.labels(host).observe,
                                     state_dir=ha_dir / "snat" if ha_dir is not None else None,
                                     notify_socket=self.notifications.path if self.notifications else None,
                                     kind="snat")
        self.dvr_manager = DvrManager(netns_name, garp=self.manager.garp)
        self._local: dict[str, Router] = {}  # distributed routers with a local copy here, as last seen
        self._fip_gateways: list[FipGateway] = []
        self._dvr_mac = ""
        self._filtered: set[str] = set()  # the qr- taps in the host's bridge filter
        self.last_changes: list[str] = []  # what the last sync changed (tests, logs)
        self.metering = Metering(host, netns_name)
        self.fwaas = FwaasPart(host)
        self.routers: set[str] = set()
        self.qos = RouterQos(netns_name)
        # routers the server hinted about whose hints a full sync absorbed (the runtime sets it before such a
        # sync): they count as asked, as in a partial sync
        self.hinted: set[str] = set()
        # HA router -> (keepalived's last transition, monotonic time) when the server took this host's claim
        # to be its active instance
        self._claimed: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def configurations(self) -> dict[str, Any]:
        return {"routers": len(self.routers), "agent_mode": self.mode, "netns": self.netns}

    def relevant(self, hint: Hint) -> Iterable[str]:
        if hint.kind == "router" and (hint.host in (None, self.host) or hint.id in self.routers):
            return [hint.id]
        return []

    def start(self, wake: Callable[[Iterable[str]], None]) -> None:
        if self.notifications is None:
            return
        self.notifications.open()
        notifications = self.notifications

        def watch() -> None:
            while not self._stopping.is_set():
                try:
                    changed = notifications.read(0.5)
                except (DataplaneError, OSError) as err:
                    LOG.warning("keepalived notifications on host %s: %s", self.host, err)
                    return
                if changed:
                    wake({router_id for router_id, _ in changed})

        self._watcher = threading.Thread(target=watch, name=f"fermion-l3-ha-{self.host}", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.notifications is not None:
            self.notifications.close()
        self.manager.close()
        self.snat.close()

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        desired = decode(L3View, view)
        failed = False
        states: dict[str, str] = {}
        done: dict[str, str] = {}  # router id -> what its floating IPs are now here: ACTIVE, DOWN or ERROR
        changes: list[str] = []
        firewalls: dict[str, dict[str, str]] = {}  # router id -> its firewall groups' state here
        with self._lock:
            routers, local, central = self._split(desired.routers)
            if self.mode != dvr.LEGACY:  # host-wide: every local copy known, this view's replacing its own
                known = {} if scope is None else {k: v for k, v in self._local.items() if k not in scope}
                self._local = known | {r.id: r for r in local}
                self._fip_gateways, self._dvr_mac = list(desired.fip_gateways), desired.dvr_mac
                failed |= self._each("fip namespace", dvr.fip_namespaces(self._fip_gateways, []),
                                     lambda f: self.dvr_manager.ensure_fip(f), changes)
                # new copies' qr- taps join the bridge filter before they are plugged: their first frames (IPv6
                # DAD, MLD) would leave with the router's MAC, and the other hosts' bridges would send what is
                # for the gateway over the tunnel, where the filter drops it (a black hole until they relearn)
                new = set(dvr.bridge_taps(local)) - self._filtered
                if new:
                    failed |= self._filter(sorted(self._filtered | new), changes)
            fip_networks = {g.network_id for g in self._fip_gateways}
            # admin-down routers too: their ports stay plugged (ACTIVE), the router disabled
            for router in routers:
                ok = self._ensure(router, functools.partial(self._ensure_router, full=scope is None), changes)
                failed |= not ok
                if ok:
                    failed |= self._meter(router, changes)
                    firewalls[router.id] = self.fwaas.ensure(self.manager.namespace(router.id), router,
                                                             repair=scope is None)
                    failed |= ERROR in firewalls[router.id].values()  # retried with backoff
                done[router.id] = (ACTIVE if router.admin_state_up else DOWN) if ok else ERROR
                if ok and not router.admin_state_up:
                    self._claimed.pop(router.id, None)  # disabled: its keepalived is gone, and its claims
                elif ok and router.ha is not None:
                    state = self.manager.ha_state(router.id)
                    asked = scope is not None or router.id in self.hinted
                    if self._tell(router.id, state, router.ha.state, asked=asked):
                        states[router.id] = state
            for router in local:
                network = dvr.fip_network(router)
                fip_ns = self.dvr_manager.fip_namespace(network) if network in fip_networks else None
                ok = self._ensure(router, functools.partial(self._ensure_local, fip_ns=fip_ns), changes)
                failed |= not ok
                done[router.id] = (ACTIVE if router.admin_state_up else DOWN) if ok else ERROR
                if ok and network is not None and fip_ns is None:
                    LOG.warning("router %s on host %s: no floating-IP gateway on network %s (its %d floating IPs "
                                "are ERROR)", router.id, self.host, network, len(router.floating_ips))
                    done[router.id] = ERROR
            for router in central:
                ok = self._ensure(router, lambda r: self.snat.ensure(dvr.to_snat(r)), changes)
                failed |= not ok
                if ok and router.admin_state_up and router.ha is not None:
                    state = self.snat.ha_state(router.id)
                    asked = scope is not None or router.id in self.hinted
                    if self._tell(router.id, state, router.ha.state, asked=asked):
                        states[router.id] = state
            wanted = {r.id for r in [*routers, *local]}
            failed |= self._remove_stale(self.manager, wanted, scope)
            failed |= self._remove_stale(self.snat, {r.id for r in central}, scope, "SNAT part of router")
            if scope is None:  # keepalived of routers gone, or no longer HA, here
                ha = {r.id for r in routers if r.admin_state_up and r.ha is not None}
                for router_id in self.manager.cleanup_keepalived(keep=ha):
                    LOG.info("stopped keepalived of router %s on host %s", router_id, self.host)
                ha = {r.id for r in central if r.admin_state_up and r.ha is not None}
                for router_id in self.snat.cleanup_keepalived(keep=ha):
                    LOG.info("stopped keepalived of the SNAT part of router %s on host %s", router_id, self.host)
            if self.mode != dvr.LEGACY:
                failed |= self._host_wide(changes)
            every = {r.id for r in desired.routers}
            self.routers = every if scope is None else (self.routers - scope) | every
            for gone in set(self._claimed) - self.routers:
                del self._claimed[gone]
            self.last_changes = changes
        claims = {router_id: self._manager_of(router_id).last_transition(router_id)
                  for router_id, s in states.items() if s == "active"}
        return SyncResult(failed=failed, ha_states=states, floating_ips=floating_ips(desired, done, states),
                          firewall_groups=self.fwaas.report(desired, firewalls, states),
                          ha_reported=lambda: self._claim(claims))

    # ---------------------------------------------------------------- fermion trace --probe
    def probe_keys(self, request: ProbeRequest) -> list[str] | None:
        return sorted(request.routers)

    def probe(self, view: dict[str, Any], request: ProbeRequest) -> dict[str, ProbeResult]:
        desired = {r.id: r for r in decode(L3View, view).routers}
        out = {}
        with self._lock:  # never half-way through a sync's changes
            for router_id in request.routers:
                router = desired.get(router_id)
                if router is None:
                    out[f"router {router_id}"] = ProbeResult(missing=[f"router {router_id} in this host's view"])
                    continue
                if router.distributed is not None:  # its copies span hosts and namespaces: not compared yet,
                    continue  # so no answer for it: the trace says unanswered, not ok
                standby = router.ha is not None and self.manager.ha_state(router_id) != "active"
                try:
                    checked, missing, extra = self.manager.probe(to_dataplane(router), addresses=not standby)
                except DataplaneError as err:
                    checked, missing, extra = [], [f"(could not read the kernel: {err})"], []
                if standby:
                    checked.append("standby HA instance: addresses and routes are keepalived's")
                out[f"router {router_id}"] = ProbeResult(checked=checked, missing=missing, extra=extra)
        return out

    def _split(self, routers: list[Router]) -> tuple[list[Router], list[Router], list[Router]]:
        """(centralized routers, distributed ones with a local copy here, those whose SNAT part is here)."""
        plain, local, central = [], [], []
        for router in routers:
            part = router.distributed
            if part is None:
                plain.append(router)
            elif self.mode == dvr.LEGACY:
                LOG.warning("router %s is distributed: the L3 agent on host %s is in legacy mode", router.id,
                            self.host)
            else:
                if part.local:
                    local.append(router)
                if part.central and self.mode == dvr.DVR_SNAT:
                    central.append(router)
                elif part.central:
                    LOG.warning("router %s: its SNAT part needs a dvr_snat agent, host %s is dvr", router.id,
                                self.host)
        return plain, local, central

    def _ensure(self, router: Router, ensure: Callable[[Router], list[str]], changes: list[str]) -> bool:
        try:
            done = ensure(router)
        except DataplaneError as err:
            LOG.warning("router %s on host %s not realized (its %d floating IPs are ERROR): %s", router.id,
                        self.host, len(router.floating_ips), err)
            metrics.ROUTER_FAILURES.labels(self.host, "ensure").inc()
            return False
        if done:
            LOG.info("router %s on host %s: %s", router.id, self.host, "; ".join(done))
            changes += done
        return True

    def _ensure_router(self, router: Router, full: bool) -> list[str]:
        """A centralized router, then its floating IPs' and gateway's QoS limits (on qg-)."""
        changes = self.manager.ensure(to_dataplane(router), repair=full)  # full syncs repair the NAT tables
        return [*changes, "qos"] if self.qos.ensure(router, full=full) else changes

    def _meter(self, router: Router, changes: list[str]) -> bool:
        """The router's metering counters; True when that failed (the router works: retried)."""
        try:
            changes += self.metering.ensure(router)
        except DataplaneError as err:
            LOG.warning("metering of router %s on host %s: %s", router.id, self.host, err)
            return True
        return False

    def reports(self) -> list[tuple[str, Any]]:
        """Sent with every heartbeat: the metering counters."""
        report = self.metering.report()
        return [("report_metering", report)] if report is not None else []

    def _ensure_local(self, router: Router, fip_ns: str | None) -> list[str]:
        return [*self.manager.ensure(dvr.to_local(router)),
                *self.dvr_manager.ensure_local(dvr.local_copy(router, fip_ns))]

    def _each(self, what: str, items: Iterable[Any], ensure: Callable[[Any], list[str]], changes: list[str]) -> bool:
        """ensure() of each item; True when one failed (logged)."""
        failed = False
        for item in items:
            try:
                done = ensure(item)
            except DataplaneError as err:
                LOG.warning("%s on host %s: %s", what, self.host, err)
                metrics.ROUTER_FAILURES.labels(self.host, "ensure").inc()
                failed = True
                continue
            if done:
                LOG.info("%s on host %s: %s", what, self.host, "; ".join(done))
                changes += done
        return failed

    def _remove_stale(self, manager: dp.RouterManager, wanted: set[str], scope: set[str] | None,
                      what: str = "router") -> bool:
        present = manager.present()
        candidates = present if scope is None else present & scope
        failed = False
        for router_id in sorted(candidates - wanted):
            try:
                if manager is self.manager:
                    self.metering.forget(router_id)
                    self.qos.remove(router_id)
                    self.fwaas.forget(manager.namespace(router_id))
                if manager is self.manager and self.mode != dvr.LEGACY:
                    self.dvr_manager.unplug(router_id)
                manager.remove(router_id)
                LOG.info("removed %s %s from host %s", what, router_id, self.host)
            except DataplaneError as err:
                LOG.warning("removing router %s on host %s: %s", router_id, self.host, err)
                metrics.ROUTER_FAILURES.labels(self.host, "remove").inc()
                failed = True
        return failed

    def _host_wide(self, changes: list[str]) -> bool:
        """The floating-IP namespaces' routes and the bridge filter, from every local copy known; floating-IP
        namespaces no longer wanted removed."""
        local = list(self._local.values())
        fips = dvr.fip_namespaces(self._fip_gateways, local)
        failed = self._each("floating IPs", fips, lambda f: self.dvr_manager.route_fips(f), changes)
        for network_id in sorted(self.dvr_manager.present_fips() - {f.network_id for f in fips}):
            failed |= self._each("floating-IP namespace", [network_id],
                                 self.dvr_manager.remove_fip, changes)
        return self._filter(dvr.bridge_taps(local), changes) or failed

    def _filter(self, taps: list[str], changes: list[str]) -> bool:
        failed = self._each("bridge filter", [taps], lambda t: self.dvr_manager.ensure_bridge(t, self._dvr_mac),
                            changes)
        if not failed:
            self._filtered = set(taps)
        return failed

    def _manager_of(self, router_id: str) -> dp.RouterManager:
        return self.snat if router_id in self.snat.present() else self.manager

    def _claim(self, claims: dict[str, float]) -> None:
        with self._lock:
            self._claimed.update({router_id: (last, time.monotonic()) for router_id, last in claims.items()})

    def _tell(self, router_id: str, state: str, heard: str, asked: bool) -> bool:
        """Whether to report an HA router's state, which the server has as heard. Two instances can both be
        active (hosts cut off from each other, their agents still talking to the server), and the server
        believes the latest claim: an instance whose claim the server took since its last transition does
        not claim the router again at every periodic sync, or the router's ports would swing between the
        hosts and the traffic with them. It does after a new transition, when the server asks (a hint: the
        other gave the router up) and after OVERRULE_HOLD."""
        if state != "active":
            self._claimed.pop(router_id, None)
            return state != heard
        if heard == "active":
            return False
        claimed = self._claimed.get(router_id)
        if claimed is not None and not asked and claimed[0] == self.manager.last_transition(router_id) \
                and time.monotonic() - claimed[1] < OVERRULE_HOLD:
            return False
        return True


def floating_ips(desired: L3View, done: dict[str, str], states: dict[str, str]) -> dict[str, FloatingIpStatus]:
    """The floating IPs whose status on this host differs from the view's; an HA router's only where this
    instance is active (as this sync found it, else as the server last heard), and all of them when it has
    just become active (the server sets them DOWN when it hears of the transition, reported just before)."""
    out = {}
    for router in desired.routers:
        status = done.get(router.id)
        if router.distributed is not None:  # reported by the host with the local copy (the instances' host)
            if status is None or not router.distributed.local:
                continue
        elif status is None or (router.ha is not None and states.get(router.id, router.ha.state) != "active"):
            continue
        promoted = router.distributed is None and states.get(router.id) == "active"
        for fip in router.floating_ips:
            if fip.id and (fip.status != status or promoted):
                out[fip.id] = FloatingIpStatus(revision=fip.revision, status=status)
    return out
