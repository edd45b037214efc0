"""The L3 agent driver: per router hosted here a qrouter namespace with its qr-/qg- ports, routes and NAT.

Level-triggered like the other agents: hints name routers, the agent pulls their desired state (the L3
view), and the router manager makes each namespace match; routers this host no longer carries are removed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from fermion import metrics
from fermion.agent.runtime import SyncResult
from fermion.dataplane import DataplaneError, naming
from fermion.dataplane import router as dp
from fermion.rpc.contracts import Hint, L3View, Router, RouterPort, decode

LOG = logging.getLogger(__name__)
AGENT_TYPE = "L3 agent"


def to_dataplane(router: Router) -> dp.Router:
    def iface(port: RouterPort, gateway: bool) -> dp.Interface:
        name = naming.router_gateway(port.id) if gateway else naming.router_interface(port.id)
        return dp.Interface(port_id=port.id, device=name, tap=naming.tap(port.id), mac=port.mac, mtu=port.mtu,
                            addresses=tuple(port.addresses), address_scope=port.ipv4_address_scope,
                            address_scope6=port.ipv6_address_scope)

    return dp.Router(
        id=router.id, interfaces=tuple(iface(p, False) for p in router.interfaces),
        gateway=iface(router.gateway, True) if router.gateway is not None else None,
        gateway_ip=router.gateway_ip, enable_snat=router.enable_snat,
        floating_ips=tuple(dp.FloatingIp(f.floating_ip, f.fixed_ip) for f in router.floating_ips),
        routes=tuple((r[0], r[1]) for r in router.routes),
        conntrack_helpers=tuple(sorted({(h.protocol, h.port, h.helper) for h in router.conntrack_helpers})))


class L3Agent:
    agent_type = AGENT_TYPE
    binary = "fermion-l3-agent"
    topic = "l3_agent"
    view_method = "get_l3_view"

    def __init__(self, host: str, netns_name: str | None = None) -> None:
        self.host = host
        self.netns = netns_name
        self.manager = dp.RouterManager(netns_name, metrics.NAT_APPLY.labels(host).observe)
        self.routers: set[str] = set()
        self._lock = threading.Lock()

    def configurations(self) -> dict[str, Any]:
        return {"routers": len(self.routers), "agent_mode": "legacy", "netns": self.netns}

    def relevant(self, hint: Hint) -> Iterable[str]:
        if hint.kind == "router" and (hint.host in (None, self.host) or hint.id in self.routers):
            return [hint.id]
        return []

    def start(self, wake: Callable[[Iterable[str]], None]) -> None:
        pass

    def stop(self) -> None:
        self.manager.close()

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        desired = decode(L3View, view)
        failed = False
        with self._lock:
            wanted = {r.id for r in desired.routers if r.admin_state_up}
            for router in desired.routers:
                if not router.admin_state_up:
                    continue
                try:
                    changes = self.manager.ensure(to_dataplane(router))
                except DataplaneError as err:
                    LOG.warning("router %s on host %s: %s", router.id, self.host, err)
                    failed = True
                    continue
                if changes:
                    LOG.info("router %s on host %s: %s", router.id, self.host, "; ".join(changes))
            present = self.manager.present()
            candidates = present if scope is None else present & scope
            for router_id in sorted(candidates - wanted):
                try:
                    self.manager.remove(router_id)
                    LOG.info("removed router %s from host %s", router_id, self.host)
                except DataplaneError as err:
                    LOG.warning("removing router %s on host %s: %s", router_id, self.host, err)
                    failed = True
            self.routers = wanted if scope is None else (self.routers - scope) | wanted
        return SyncResult(failed=failed)
