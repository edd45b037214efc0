"""The L3 agent's QoS: floating-IP (qos-fip) and gateway (qos-gateway-ip) limits on a router's qg- device,
in its namespace (dataplane/qos.py GatewayQos). Centralized routers, legacy and HA (every instance shapes its
own qg-; only the active one carries traffic). Distributed routers are not shaped (documented in docs/qos.md)."""

from __future__ import annotations

from fermion.dataplane import naming
from fermion.dataplane import qos as dq
from fermion.rpc.contracts import BandwidthLimit, QosRules, Router


def _limit(rule: BandwidthLimit | None) -> dq.Limit | None:
    return dq.Limit(rule.max_kbps, rule.max_burst_kbps) if rule is not None else None


def _address(address: str, rules: QosRules | None) -> dq.AddressLimit | None:
    if rules is None or (rules.egress is None and rules.ingress is None):
        return None
    return dq.AddressLimit(address, egress=_limit(rules.egress), ingress=_limit(rules.ingress))


def limits(router: Router) -> tuple[dq.AddressLimit, ...]:
    """The shaped addresses of the router's gateway: its own (SNAT) address and its floating IPs."""
    if router.gateway is None or router.distributed is not None or not router.admin_state_up:
        return ()
    out = []
    gateway_ip = next((a.split("/")[0] for a in router.gateway.addresses if ":" not in a), None)
    if gateway_ip is not None:
        out.append(_address(gateway_ip, router.gateway_qos))
    out += [_address(f.floating_ip, f.qos) for f in router.floating_ips]
    return tuple(sorted((x for x in out if x is not None), key=lambda x: x.address))


class RouterQos:
    def __init__(self, host_netns: str | None) -> None:
        self.host_netns = host_netns
        self.gateways = dq.GatewayQos()

    def ensure(self, router: Router, full: bool) -> bool:
        """Shape the router's gateway as its QoS says; True when something changed (DataplaneError if not)."""
        if router.gateway is None:
            return False
        namespace = naming.router_namespace(router.id, self.host_netns)
        return self.gateways.apply(namespace, naming.router_gateway(router.gateway.id), limits(router), check=full)

    def remove(self, router_id: str) -> None:
        self.gateways.forget(naming.router_namespace(router_id, self.host_netns))
