"""The L3 view of distributed routers translated for the data plane: a router's local copy (qrouter, no
gateway: RouterManager, plus its DVR parts: dataplane.dvr), its central SNAT part (snat-<router>, built by a
RouterManager of kind snat) and the host-wide floating-IP namespaces and bridge filter, recomputed from every
local copy the agent knows."""

from __future__ import annotations

from collections.abc import Iterable

from fermion.dataplane import dvr, naming
from fermion.dataplane import router as dp
from fermion.rpc.contracts import FipGateway, Router, RouterPort

LEGACY, DVR, DVR_SNAT = "legacy", "dvr", "dvr_snat"  # Neutron's agent_mode values
MODES = (LEGACY, DVR, DVR_SNAT)


def _iface(port: RouterPort, device: str) -> dp.Interface:
    return dp.Interface(port_id=port.id, device=device, tap=naming.tap(port.id), mac=port.mac, mtu=port.mtu,
                        addresses=tuple(port.addresses), address_scope=port.ipv4_address_scope,
                        address_scope6=port.ipv6_address_scope)


def to_local(router: Router) -> dp.Router:
    """The local copy as RouterManager builds it: the qr- devices, extra routes, forwarding; no gateway, no
    floating IP (their NAT is the copy's DVR table), never HA."""
    interfaces = tuple(_iface(p, naming.router_interface(p.id)) for p in router.interfaces)
    return dp.Router(id=router.id, interfaces=interfaces,
                     routes=tuple((r[0], r[1]) for r in router.routes), enabled=router.admin_state_up,
                     distributed=True)


def fip_network(router: Router) -> str | None:
    """The external network whose floating-IP namespace serves the router's floating IPs here."""
    return router.gateway.network_id if router.gateway is not None and router.floating_ips else None


def local_copy(router: Router, fip_namespace: str | None) -> dvr.LocalCopy:
    assert router.distributed is not None
    copy = to_local(router)
    snat: tuple[dvr.SnatRedirect, ...] = ()
    if router.gateway is not None and router.enable_snat:
        snat = dvr.snat_redirects(copy.interfaces, (a for p in router.distributed.snat_ports for a in p.addresses))
    fips = tuple(dp.FloatingIp(f.floating_ip, f.fixed_ip) for f in router.floating_ips) \
        if router.gateway is not None and router.admin_state_up and fip_namespace is not None else ()
    return dvr.LocalCopy(router_id=router.id, interfaces=copy.interfaces,
                         neighbors=tuple((n.ip, n.mac) for n in router.distributed.neighbors), snat=snat,
                         floating_ips=fips, fip_namespace=fip_namespace)


def to_snat(router: Router) -> dp.Router:
    """The central part: the SNAT ports as sg- devices, the gateway, SNAT, extra routes, HA; no floating IP."""
    assert router.distributed is not None
    ha, gw = router.ha, router.gateway
    return dp.Router(
        id=router.id, interfaces=tuple(_iface(p, naming.snat_device(p.id)) for p in router.distributed.snat_ports),
        gateway=_iface(gw, naming.router_gateway(gw.id)) if gw is not None else None,
        gateway_ip=router.gateway_ip, enable_snat=router.enable_snat, routes=tuple((r[0], r[1]) for r in router.routes),
        conntrack_helpers=tuple(sorted({(h.protocol, h.port, h.helper) for h in router.conntrack_helpers})),
        ha=dp.Ha(ha.vr_id, _iface(ha.interface, naming.ha_device(ha.interface.id))) if ha is not None else None,
        enabled=router.admin_state_up)


def fip_namespaces(gateways: Iterable[FipGateway], local: Iterable[Router]) -> list[dvr.FipNamespace]:
    """Each floating-IP gateway with the floating IPs of the local copies on its network."""
    routes: dict[str, set[tuple[str, str]]] = {}
    for router in local:
        network = fip_network(router)
        if network is not None and router.admin_state_up:
            routes.setdefault(network, set()).update((f.floating_ip, router.id) for f in router.floating_ips)
    return [dvr.FipNamespace(network_id=g.network_id, gateway=_iface(g.port, naming.fip_gateway(g.port.id)),
                             gateway_ip=g.gateway_ip, routes=tuple(sorted(routes.get(g.network_id, ()))))
            for g in sorted(gateways, key=lambda g: g.network_id)]


def bridge_taps(local: Iterable[Router]) -> list[str]:
    """The host-side taps of every local copy's qr- devices."""
    return sorted({naming.tap(p.id) for r in local for p in r.interfaces})
