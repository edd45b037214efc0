"""The walk: from a source to a destination through the model, hop by hop, deciding each hop as the data plane
would. Pure: (Model, Query) -> Trace.

Path: source port (admin state, status, its agent) -> anti-spoofing -> egress security groups -> source network
(switched when the destination is on-link, else the subnet's host routes and gateway) -> router(s) (state and
hosting agent, route lookup, FWaaS on the interfaces, address scopes, SNAT or floating IP towards the external
network) -> destination network -> ingress security groups -> destination port; from `external`, a floating
IP's (or a port forwarding's) DNAT first. Replies need rules of their own only at ports whose groups are
stateless. Hops after the first failure still say what would happen next, as far as the path is known."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fermion.services.trace.match import (
    ICMP,
    ICMPV6,
    Packet,
    contains,
    fw_rule_matches,
    ip,
    lookup,
    sg_rule_matches,
)
from fermion.services.trace.model import (
    BLOCK,
    NOT_ROUTABLE,
    PASS,
    FloatingIp,
    Forwarding,
    Hop,
    Model,
    Port,
    Query,
    Router,
    Subnet,
    Trace,
)

L2_AGENTS = ("Linux bridge agent", "Open vSwitch agent")
L3_AGENT = "L3 agent"
MAX_ROUTERS = 8  # a path through more routers than this is called a loop
FALLBACK_EXTERNAL = {4: "203.0.113.1", 6: "2001:db8::1"}  # no external subnet: documentation addresses stand in


@dataclass(frozen=True)
class Arrival:
    """Where the routed packet comes out: a network (internal or external) with the packet as it is there."""

    network_id: str
    packet: Packet
    external: bool = False
    switched: bool = False  # on the source's own network: its hop said so


def _filtering(method: Callable[..., None]) -> Callable[..., None]:
    """The hops a filtering step adds name the port filtered (a probe asks its host about its filters)."""
    @functools.wraps(method)
    def wrapper(self: Any, port: Port, *args: Any) -> None:
        first = len(self.hops)
        try:
            method(self, port, *args)
        finally:
            for hop in self.hops[first:]:
                hop.port_id = port.id

    return wrapper


def trace(model: Model, query: Query) -> Trace:
    return _Walk(model, query).run()


def _label(kind: str, ident: str, name: str) -> dict[str, str]:
    return {"type": kind, "id": ident, "name": name}


def _named(name: str, ident: str) -> str:
    return name or ident


class _Walk:
    def __init__(self, model: Model, query: Query) -> None:
        self.m = model
        self.q = query
        self.hops: list[Hop] = []
        self.outside: str | None = None  # the address `external` stands for, once known

    # ------------------------------------------------------------ driver
    def run(self) -> Trace:
        q = self.q
        version, src_ip, dst_ip = self._addresses()
        if q.source.external:
            assert q.destination.port_id is not None
            self._from_external(self.m.ports[q.destination.port_id], dst_ip, version)
            src_ip = self.outside
        else:
            assert q.source.port_id is not None
            self._from_port(self.m.ports[q.source.port_id], src_ip, dst_ip, version)
            if q.destination.external:
                dst_ip = self.outside
        return Trace(q, version, src_ip, dst_ip, self.hops)

    def _addresses(self) -> tuple[int, str | None, str | None]:
        """The IP version and both addresses: as given, else the ports' first fixed IPs of one version (IPv4
        when both have one, or the destination is external)."""
        q = self.q
        src = self.m.ports.get(q.source.port_id or "")
        dst = self.m.ports.get(q.destination.port_id or "")
        given = q.source.address or q.destination.address
        if given:
            version = ip(given).version
        else:
            def has(port: Port | None, v: int) -> bool:
                return port is None or any(ip(f.ip).version == v for f in port.fixed_ips)
            version = 4 if (has(src, 4) and has(dst, 4)) or not (has(src, 6) and has(dst, 6)) else 6

        def pick(port: Port | None, address: str | None) -> str | None:
            if address or port is None:
                return address
            return next((f.ip for f in port.fixed_ips if ip(f.ip).version == version), None)

        return version, pick(src, q.source.address), pick(dst, q.destination.address)

    def add(self, hop: Hop) -> Hop:
        self.hops.append(hop)
        return hop

    def stop(self, name: str, kind: str, reason: str, resource: dict[str, str] | None = None,
             attribute: str | None = None, realized: dict[str, Any] | None = None) -> None:
        """A hop with no way on."""
        self.add(Hop(name, kind, NOT_ROUTABLE, reason, resource=resource, attribute=attribute, realized=realized))

    # ------------------------------------------------------------ from a port
    def _from_port(self, src: Port, src_ip: str | None, dst_ip: str | None, version: int) -> None:
        q = self.q
        self._port_hop(src, "source port", src_ip, version)
        if src_ip is None:
            return
        self._antispoof(src, src_ip)
        dst = None if q.destination.external else self.m.ports[q.destination.port_id or ""]
        if dst is not None and dst_ip is None:
            self.stop("destination port", "port", f"port {_named(dst.name, dst.id)} has no IPv{version} address",
                      resource=_label("port", dst.id, dst.name))
            return
        target = dst_ip if dst_ip is not None else self._external_address(src, src_ip)
        if dst is None:
            self.outside = target
        packet = Packet.first(version, src_ip, target, q.protocol, q.port)
        self._sg_hop(src, "egress", packet, target, "egress security groups")
        arrival = self._leave(src, src_ip, packet)
        if arrival is None:
            return
        if dst is None:
            self._external_hop(arrival)
            return
        if not self._arrive(arrival, dst):
            return
        seen = arrival.packet
        self._sg_hop(dst, "ingress", seen, seen.src, "ingress security groups")
        self._port_hop(dst, "destination port", dst_ip, version)
        self._replies(src, dst, packet, seen)

    def _external_address(self, src: Port, src_ip: str) -> str:
        """The address `external` stands for: the gateway of the external subnet the source's router leads to
        (the lab's "internet"), else of any external network's subnet."""
        subnet = self._subnet_of(src.network_id, src_ip)
        network = self.m.networks.get(src.network_id)
        if network is not None and network.external and subnet is not None and subnet.gateway_ip:
            return subnet.gateway_ip
        if subnet is not None and subnet.gateway_ip:
            found = self._router_port_at(src.network_id, subnet.gateway_ip)
            if found is not None and found[0].gateway:
                gateway = self._gateway_ip(found[0], ip(src_ip).version)
                if gateway:
                    return gateway
        for net in sorted(self.m.networks.values(), key=lambda n: (n.name, n.id)):
            if net.external:
                for s in self._subnets_of(net.id):
                    if s.gateway_ip and s.ip_version == ip(src_ip).version:
                        return s.gateway_ip
        return FALLBACK_EXTERNAL[ip(src_ip).version]

    def _leave(self, port: Port, address: str, packet: Packet) -> Arrival | None:
        """The source network: switched on-link, else routed through its subnet's next hop."""
        net = self.m.networks.get(port.network_id)
        net_name = _named(net.name if net else "", port.network_id)
        name = f"network {net_name}"
        res = _label("network", port.network_id, net.name if net else "")
        subnet = self._subnet_of(port.network_id, address)
        if subnet is None:
            self.stop(name, "network", f"{address} is in no subnet of network {net_name}", resource=res)
            return None
        if contains(subnet.cidr, packet.dst):
            if self.q.destination.external and net is not None and net.external:
                self.add(Hop(name, "network", PASS, f"{packet.dst} is on-link in subnet {subnet.cidr}: switched on "
                             f"external network {net_name}", resource=res))
                return Arrival(port.network_id, packet, external=True, switched=True)
            self.add(Hop(name, "network", PASS, f"{packet.dst} is on-link in subnet {subnet.cidr}: switched on "
                         f"network {net_name}", resource=res))
            return Arrival(port.network_id, packet, switched=True)
        default = "::/0" if subnet.ip_version == 6 else "0.0.0.0/0"
        routes = [*subnet.host_routes, *([(default, subnet.gateway_ip)] if subnet.gateway_ip else [])]
        nexthop = lookup(((d, n) for d, n in routes), packet.dst)
        if nexthop is None:
            self.stop(name, "network", f"no route to {packet.dst} from subnet {subnet.cidr}: it has no gateway_ip "
                      "and no host route for it", resource=_label("subnet", subnet.id, subnet.name),
                      attribute="gateway_ip")
            return None
        via = "gateway" if nexthop == subnet.gateway_ip else "host route"
        found = self._router_port_at(port.network_id, nexthop)
        if found is None:
            self.stop(name, "network", f"the next hop {nexthop} ({via} of subnet {subnet.cidr}) is no router's "
                      f"interface on network {net_name}", resource=_label("subnet", subnet.id, subnet.name),
                      attribute="gateway_ip" if via == "gateway" else "host_routes")
            return None
        router, iface = found
        self.add(Hop(name, "network", PASS, f"{packet.dst} is off-link: routed to {nexthop} ({via} of subnet "
                     f"{subnet.cidr}), an interface of router {_named(router.name, router.id)}", resource=res))
        return self._routers(router, iface, packet, port.host, dnat=False)

    # ------------------------------------------------------------ from the external network
    def _from_external(self, dst: Port, dst_ip: str | None, version: int) -> None:
        q = self.q
        name = "external network"
        if dst_ip is None:
            self.stop(name, "external", f"port {_named(dst.name, dst.id)} has no IPv{version} address",
                      resource=_label("port", dst.id, dst.name))
            return
        fip, forward = self._inbound(dst, dst_ip)
        if fip is None:
            why = "" if version == 4 else " (IPv6 has no floating IPs)"
            pf = f" nor a port forwarding of {q.protocol} port {q.port}" if q.protocol != "icmp" else ""
            self.stop(name, "external", f"port {_named(dst.name, dst.id)} ({dst_ip}) has no floating IP{pf}{why}: "
                      "nothing leads to it from outside", resource=_label("port", dst.id, dst.name))
            return
        outside = self.outside = self._gateway_of(fip.network_id, fip.address) or FALLBACK_EXTERNAL[4]
        ext_net = self.m.networks.get(fip.network_id)
        self.add(Hop(name, "external", PASS, f"from {outside} on external network "
                     f"{_named(ext_net.name if ext_net else '', fip.network_id)} to {fip.address}",
                     resource=_label("network", fip.network_id, ext_net.name if ext_net else "")))
        packet = Packet.first(4, outside, fip.address, q.protocol, q.port)
        router = self.m.routers.get(fip.router_id or "")
        inside = packet.to(dst_ip)
        if forward is not None:
            assert q.port is not None
            offset = q.port - forward.external[0] if forward.internal[0] != forward.internal[1] else 0
            inside = inside.with_port(forward.internal[0] + offset)
        hop_name = "floating IP" if forward is None else "port forwarding"
        what = (f"DNAT {fip.address} -> {dst_ip}" if forward is None else
                f"DNAT {fip.address}:{q.port} -> {dst_ip}:{inside.dport[0] if inside.dport else ''}")
        realized = {"status": fip.status}
        resource = (_label("floatingip", fip.id, fip.address) if forward is None
                    else _label("port_forwarding", forward.id, f"{fip.address}:{q.port}"))
        if router is None:
            self.stop(hop_name, "nat", f"floating IP {fip.address} is on no router", resource=resource,
                      realized=realized)
            return
        if router.gateway is None:
            self.stop(hop_name, "nat", f"router {_named(router.name, router.id)} of floating IP {fip.address} has no "
                      "external gateway", resource=_label("router", router.id, router.name),
                      attribute="external_gateway_info", realized=realized)
            return
        if fip.status != "ACTIVE" and forward is None:  # (one with port forwardings has no port: always DOWN)
            self.stop(hop_name, "nat", f"{what}: floating IP {fip.address} is {fip.status} (not realized by the L3 "
                      "agent)", resource=resource, attribute="status", realized=realized)
        else:
            self.add(Hop(hop_name, "nat", PASS, f"{what} on router {_named(router.name, router.id)}", resource=resource,
                         realized=realized))
        arrival = self._routers(router, self.m.ports[router.gateway], inside, dst.host, dnat=True)
        if arrival is None or not self._arrive(arrival, dst):
            return
        seen = arrival.packet
        self._sg_hop(dst, "ingress", seen, seen.src, "ingress security groups")
        self._port_hop(dst, "destination port", dst_ip, version)
        self._replies(None, dst, packet, seen)

    def _inbound(self, dst: Port, dst_ip: str) -> tuple[FloatingIp | None, Forwarding | None]:
        """The floating IP of the destination's address, else the port forwarding that takes the protocol and
        port to it."""
        for fip in sorted(self.m.floating_ips, key=lambda f: ip(f.address)):
            if fip.port_id == dst.id and fip.fixed_ip == dst_ip:
                return fip, None
        if self.q.protocol == "icmp" or self.q.port is None:
            return None, None
        fips = {f.id: f for f in self.m.floating_ips}
        for pf in sorted(self.m.forwardings, key=lambda f: (f.floatingip_id, f.external)):
            if (pf.internal_port_id == dst.id and pf.internal_ip == dst_ip and pf.protocol == self.q.protocol
                    and pf.external[0] <= self.q.port <= pf.external[1] and pf.floatingip_id in fips):
                return fips[pf.floatingip_id], pf
        return None, None

    # ------------------------------------------------------------ routers
    def _routers(self, router: Router, in_port: Port, packet: Packet, host: str, dnat: bool) -> Arrival | None:
        """Through one router after another until a network of the destination's (or the external one)."""
        seen: set[str] = set()
        while True:
            rname = _named(router.name, router.id)
            name = f"router {rname}"
            if router.id in seen or len(seen) >= MAX_ROUTERS:
                self.stop(name, "router", f"routing loop: {packet.dst} comes back to router {rname}",
                          resource=_label("router", router.id, router.name))
                return None
            seen.add(router.id)
            chosen = self._route(router, packet)
            if chosen is None:
                why = " (it has no external gateway)" if self.q.destination.external and not router.gateway else ""
                self._router_hop(router, in_port, None, host, f"router {rname} has no route to {packet.dst}{why}",
                                 found=False)
                return None
            out_port, nexthop = chosen
            external = out_port.id == router.gateway
            if external and not self.q.destination.external:
                self._router_hop(router, in_port, out_port, host, f"router {rname} has no interface on the network "
                                 f"of {packet.dst}: its default route sends it to the external network", found=False)
                return None
            via = f" via {nexthop}" if nexthop and not external else ""
            out_net = self.m.networks.get(out_port.network_id)
            where = "the external network" if external else \
                f"network {_named(out_net.name if out_net else '', out_port.network_id)}"
            self._router_hop(router, in_port, out_port, host, f"routes {packet.dst} to {where}{via}",
                             snat=external and not self._floating_ip_of(router, packet.src))
            self._fwaas(router, in_port, "egress", packet)
            if external:
                return self._to_external(router, in_port, out_port, packet)
            self._fwaas(router, out_port, "ingress", packet)
            self._scopes(router, in_port, out_port, packet, dnat)
            if nexthop is None:
                return Arrival(out_port.network_id, packet)
            found = self._router_port_at(out_port.network_id, nexthop)
            if found is None:
                self.stop(f"network {_named(out_net.name if out_net else '', out_port.network_id)}", "network",
                          f"router {rname} routes {packet.dst} via {nexthop}, which is no router's interface",
                          resource=_label("router", router.id, router.name), attribute="routes")
                return None
            router, in_port = found

    def _route(self, router: Router, packet: Packet) -> tuple[Port, str | None] | None:
        """(the port it leaves through, the next hop or None when on-link) as the router's table has it: its
        connected subnets, extra routes and the default route through the gateway (IPv4). A router that is
        administratively down has no routes, but the trace still says where its routes would lead."""
        connected: list[tuple[str, Port]] = []
        for pid in (*router.interfaces, *([router.gateway] if router.gateway else [])):
            port = self.m.ports.get(pid)
            for f in port.fixed_ips if port else ():
                subnet = self.m.subnets.get(f.subnet_id)
                if subnet is not None:
                    connected.append((subnet.cidr, port))  # type: ignore[arg-type]
        routes: list[tuple[str, tuple[Port | None, str | None]]] = [(c, (p, None)) for c, p in connected]
        routes += [(d, (None, n)) for d, n in router.routes]
        gateway_ip = self._gateway_ip(router, packet.version) if router.gateway else None
        if gateway_ip and packet.version == 4:
            routes.append(("0.0.0.0/0", (self.m.ports[router.gateway or ""], gateway_ip)))
        chosen = lookup(routes, packet.dst)
        if chosen is None:
            return None
        port, nexthop = chosen
        if port is None:
            assert nexthop is not None
            port = lookup(connected, nexthop)
            if port is None:
                return None
        return port, nexthop

    def _router_hop(self, router: Router, in_port: Port, out_port: Port | None, host: str, reason: str,
                    found: bool = True, snat: bool = False) -> None:
        rname = _named(router.name, router.id)
        problems: list[tuple[str, str]] = []
        if not router.admin_state_up:
            problems.append(("admin_state_up", f"router {rname} is administratively down (admin_state_up false)"))
        problems += self._hosting(router, host, snat)
        for port in (in_port, out_port):
            if port is not None and port.status != "ACTIVE":
                problems.append(("status", f"port {port.id} of router {rname} is {port.status} (not wired by the "
                                           "agents yet)"))
        realized = {"bindings": [{"host": b.host, "agent_alive": b.alive, "ha_state": b.ha_state}
                                 for b in router.bindings],
                    **({"copies": list(router.copies)} if router.distributed else {})}
        if not found:
            problems.insert(0, ("routes", reason))
        decision = NOT_ROUTABLE if problems else PASS
        attribute, text = problems[0] if problems else (None, f"router {rname} {reason}")
        self.add(Hop(f"router {rname}", "router", decision, text, resource=_label("router", router.id, router.name),
                     attribute=attribute, realized=realized))

    def _hosting(self, router: Router, host: str, snat: bool) -> list[tuple[str, str]]:
        """What keeps the router's hosts from forwarding: no agent, a dead one, no active HA instance; a
        distributed router routes on the sending instance's host (its SNAT part on its central agent)."""
        rname = _named(router.name, router.id)
        out: list[tuple[str, str]] = []
        if router.distributed:
            local = [a for a in self.m.agents.get(host, ()) if a.agent_type == L3_AGENT]
            if host not in router.copies or not local:
                out.append(("distributed", f"no copy of distributed router {rname} on host {host or '(none)'}"))
            elif not any(a.alive for a in local):
                out.append(("agent", f"the L3 agent on host {host} is dead"))
            if not snat:
                return out
        if not router.bindings:
            return [*out, ("agent", f"router {rname} is hosted by no L3 agent")]
        serving = [b for b in router.bindings if b.ha_state in (None, "active")]
        if not serving:
            return [*out, ("ha_state", f"no instance of HA router {rname} is active")]
        if not any(b.alive for b in serving):
            out.append(("agent", f"the L3 agent on host {serving[0].host} serving router {rname} is dead"))
        return out

    def _fwaas(self, router: Router, port: Port, direction: str, packet: Packet) -> None:
        """FWaaS v2 on a router interface: its group's egress policy for what enters the router through it,
        its ingress policy for what leaves through it; first match wins, then the implicit deny."""
        group = self.m.firewall_groups.get(port.id)
        if group is None or port.id == router.gateway:
            return
        gname = _named(group.name, group.id)
        name = f"firewall group {gname} ({direction}, router {_named(router.name, router.id)})"
        res = _label("firewall_group", group.id, group.name)
        realized = {"status": group.status}
        if not group.admin_state_up:
            self.add(Hop(name, "firewall_group", BLOCK, f"firewall group {gname} is administratively down: it drops "
                         "everything on its ports", resource=res, group=gname, attribute="admin_state_up",
                         realized=realized))
            return
        rules = group.egress if direction == "egress" else group.ingress
        if rules is None:
            self.add(Hop(name, "firewall_group", PASS, f"firewall group {gname} has no {direction} policy",
                         resource=res, group=gname, realized=realized))
            return
        for rule in rules:
            if fw_rule_matches(rule.rule, packet):
                decision = PASS if rule.rule.action == "allow" else BLOCK
                self.add(Hop(name, "firewall_group", decision, f"firewall rule {_named(rule.name, rule.id)} "
                             f"({rule.rule.action}) matches {self._describe(packet)} from {packet.src} to "
                             f"{packet.dst}", resource=res, rule_id=rule.id, group=gname, realized=realized))
                return
        self.add(Hop(name, "firewall_group", BLOCK, f"no rule of firewall group {gname}'s {direction} policy matches "
                     f"{self._describe(packet)} from {packet.src} to {packet.dst}: the implicit deny",
                     resource=res, group=gname, realized=realized))

    def _scopes(self, router: Router, in_port: Port, out_port: Port, packet: Packet, dnat: bool) -> None:
        """Address scopes: no forwarding between interfaces of different scopes without NAT (IPv4: DNAT'd
        connections pass; IPv6: never)."""
        a, b = self._scope(in_port, packet.version), self._scope(out_port, packet.version)
        if a == b or (dnat and packet.version == 4):
            if a is not None or b is not None:
                self.add(Hop("address scopes", "address_scope", PASS, f"both sides are in address scope {a}",
                             resource=_label("router", router.id, router.name)))
            return
        self.add(Hop("address scopes", "address_scope", BLOCK, f"router {_named(router.name, router.id)} does not "
                     f"route between address scopes {a or '(none)'} and {b or '(none)'} without NAT",
                     resource=_label("router", router.id, router.name), attribute="address_scope_id"))

    def _to_external(self, router: Router, in_port: Port, gateway: Port, packet: Packet) -> Arrival | None:
        """Out of the gateway: the source's floating IP, else the router's SNAT, rewrites the source; without
        either, replies would have no way back."""
        rname = _named(router.name, router.id)
        res = _label("router", router.id, router.name)
        fip = self._floating_ip_of(router, packet.src)
        snat_address = next((f.ip for f in gateway.fixed_ips if ip(f.ip).version == 4), None)
        snat = router.enable_snat and snat_address is not None
        inner, outer = self._scope(in_port, 4), self._scope(gateway, 4)
        if packet.version == 6:
            self.stop("NAT", "nat", "IPv6 to the external network: no route (the router's default route is IPv4)",
                      resource=res)
            return None
        if inner != outer and not snat:
            self.add(Hop("address scopes", "address_scope", BLOCK, f"router {rname} does not route between address "
                         f"scopes {inner or '(none)'} and {outer or '(none)'} without SNAT", resource=res,
                         attribute="address_scope_id"))
        if fip is not None:
            realized = {"status": fip.status}
            label = _label("floatingip", fip.id, fip.address)
            if fip.status != "ACTIVE":
                self.stop("NAT", "nat", f"SNAT {packet.src} -> floating IP {fip.address}: it is {fip.status} (not "
                          "realized by the L3 agent)", resource=label, attribute="status", realized=realized)
            else:
                self.add(Hop("NAT", "nat", PASS, f"SNAT {packet.src} -> floating IP {fip.address}", resource=label,
                             realized=realized))
            return Arrival(gateway.network_id, packet.from_(fip.address), external=True)
        routed = inner is not None and inner == outer
        if snat and not routed:
            assert snat_address is not None
            self.add(Hop("NAT", "nat", PASS, f"SNAT {packet.src} -> {snat_address}, the gateway address of router "
                         f"{rname}", resource=res, attribute="enable_snat"))
            return Arrival(gateway.network_id, packet.from_(snat_address), external=True)
        why = (f"its subnet is in the external network's address scope {inner}" if routed
               else f"router {rname} has SNAT disabled")
        self.stop("NAT", "nat", f"{packet.src} leaves unchanged ({why}) and has no floating IP: the external network "
                  f"has no route back to it", resource=res, attribute="enable_snat")
        return None

    # ------------------------------------------------------------ arrival
    def _arrive(self, arrival: Arrival, dst: Port) -> bool:
        """The packet is on a network: the destination port must be there (networks are isolated: only routers
        with interfaces on both connect two)."""
        if arrival.network_id == dst.network_id:
            if arrival.switched:
                return True
            net = self.m.networks.get(dst.network_id)
            nname = _named(net.name if net else "", dst.network_id)
            self.add(Hop(f"network {nname}", "network", PASS, f"delivered on network {nname} to port "
                         f"{_named(dst.name, dst.id)}", resource=_label("network", dst.network_id,
                                                                       net.name if net else "")))
            return True
        there = self.m.networks.get(arrival.network_id)
        tname = _named(there.name if there else "", arrival.network_id)
        self.stop(f"network {tname}", "network", f"{arrival.packet.dst} is reached on network {tname}, but port "
                  f"{_named(dst.name, dst.id)} is on another network: networks are connected only through a router "
                  "with interfaces on both", resource=_label("network", arrival.network_id,
                                                              there.name if there else ""))
        return False

    def _external_hop(self, arrival: Arrival) -> None:
        net = self.m.networks.get(arrival.network_id)
        nname = _named(net.name if net else "", arrival.network_id)
        self.add(Hop("external network", "external", PASS, f"reaches {arrival.packet.dst} on external network {nname} "
                     f"from {arrival.packet.src}", resource=_label("network", arrival.network_id,
                                                                   net.name if net else "")))

    # ------------------------------------------------------------ ports and their filters
    def _port_hop(self, port: Port, name: str, address: str | None, version: int) -> None:
        pname = _named(port.name, port.id)
        problems: list[tuple[str, str]] = []
        if address is None:
            problems.append(("fixed_ips", f"port {pname} has no IPv{version} address"))
        if not port.admin_state_up:
            problems.append(("admin_state_up", f"port {pname} is administratively down (admin_state_up false)"))
        net = self.m.networks.get(port.network_id)
        if net is not None and not net.admin_state_up:
            problems.append(("admin_state_up", f"network {_named(net.name, net.id)} is administratively down"))
        agents = [a for a in self.m.agents.get(port.host, ()) if a.agent_type in L2_AGENTS] if port.host else []
        if port.host and not agents:
            problems.append(("binding:host_id", f"host {port.host} of port {pname} has no L2 agent"))
        elif agents and not any(a.alive for a in agents):
            problems.append(("agent", f"the {agents[0].agent_type} on host {port.host} is dead"))
        if port.status != "ACTIVE":
            where = (f"its agent on host {port.host} has not realized it" if port.host
                     else "it is bound to no host")
            problems.append(("status", f"port {pname} is {port.status} ({where})"))
        realized = {"host": port.host or None, "status": port.status, "revision": port.revision,
                    "agent": agents[0].agent_type if agents else None,
                    "agent_alive": any(a.alive for a in agents) if agents else None}
        decision = NOT_ROUTABLE if problems else PASS
        attribute, text = problems[0] if problems else (None, f"port {pname} ({address}) is up and ACTIVE on host "
                                                                f"{port.host}")
        self.add(Hop(name, "port", decision, text, resource=_label("port", port.id, port.name), attribute=attribute,
                     realized=realized))

    @_filtering
    def _antispoof(self, port: Port, address: str) -> None:
        pname = _named(port.name, port.id)
        res = _label("port", port.id, port.name)
        if not port.port_security:
            self.add(Hop("anti-spoofing", "anti_spoofing", PASS, f"port {pname} is not filtered (port security "
                         "disabled, or a port the network owns)", resource=res, attribute="port_security_enabled"))
            return
        if any(f.ip == address for f in port.fixed_ips):
            self.add(Hop("anti-spoofing", "anti_spoofing", PASS, f"{address} is a fixed IP of port {pname} "
                         f"(MAC {port.mac})", resource=res, attribute="fixed_ips"))
            return
        for cidr, mac in port.allowed_pairs:
            if contains(cidr, address):
                self.add(Hop("anti-spoofing", "anti_spoofing", PASS, f"{address} is in allowed address pair {cidr} "
                             f"(MAC {mac or port.mac}) of port {pname}", resource=res,
                             attribute="allowed_address_pairs"))
                return
        self.add(Hop("anti-spoofing", "anti_spoofing", BLOCK, f"{address} is neither a fixed IP nor an allowed address "
                     f"pair of port {pname}", resource=res, attribute="allowed_address_pairs"))

    def _stateful(self, port: Port) -> bool:
        return all(g.stateful for g in (self.m.groups.get(gid) for gid in port.groups) if g is not None)

    @_filtering
    def _sg_hop(self, port: Port, direction: str, packet: Packet, remote: str, name: str) -> None:
        pname = _named(port.name, port.id)
        res = _label("port", port.id, port.name)
        agents = [a for a in self.m.agents.get(port.host, ()) if a.agent_type in L2_AGENTS] if port.host else []
        realized = {"host": port.host or None, "agent": agents[0].agent_type if agents else None,
                    "agent_alive": any(a.alive for a in agents) if agents else None}
        if not port.port_security:
            self.add(Hop(name, "security_groups", PASS, f"port {pname} is not filtered (port security disabled, or "
                         "a port the network owns)", resource=res, attribute="port_security_enabled",
                         realized=realized))
            return
        groups = [self.m.groups[g] for g in port.groups if g in self.m.groups]
        if not groups:
            self.add(Hop(name, "security_groups", BLOCK, f"port {pname} is in no security group: everything is "
                         "dropped", resource=res, attribute="security_groups", realized=realized))
            return
        toward = "from" if direction == "ingress" else "to"
        for group in groups:
            for rule in group.rules:
                if rule.rule.direction == direction and sg_rule_matches(rule.rule, packet, remote, self.m.members,
                                                                        self.m.address_groups):
                    gname = _named(group.name, group.id)
                    self.add(Hop(name, "security_groups", PASS, f"rule {rule.id} of security group {gname} allows "
                                 f"{self._describe(packet)} {toward} {remote}", resource=_label(
                                     "security_group", group.id, group.name), rule_id=rule.id, group=gname,
                                 realized=realized))
                    return
        names = ", ".join(_named(g.name, g.id) for g in groups)
        self.add(Hop(name, "security_groups", BLOCK, f"no {direction} rule of security group{'s' * (len(groups) > 1)} "
                     f"{names} allows {self._describe(packet)} {toward} {remote}", resource=res,
                     group=_named(groups[0].name, groups[0].id) if len(groups) == 1 else names,
                     attribute="security_groups", realized=realized))

    def _replies(self, src: Port | None, dst: Port, sent: Packet, received: Packet) -> None:
        """Stateless groups let nothing back by connection tracking: the replies need rules of their own."""
        if dst.port_security and not self._stateful(dst):
            back = received.reply()
            self._sg_hop(dst, "egress", back, back.dst, "replies: egress security groups (stateless)")
        if src is not None and src.port_security and not self._stateful(src):
            back = sent.reply()
            self._sg_hop(src, "ingress", back, back.src, "replies: ingress security groups (stateless)")

    # ------------------------------------------------------------ lookups
    def _describe(self, packet: Packet) -> str:
        if packet.protocol in (ICMP, ICMPV6):
            return "icmp echo request" if packet.icmp_type in (8, 128) else "icmp echo reply"
        name = {6: "tcp", 17: "udp"}.get(packet.protocol, str(packet.protocol))
        if packet.dport is None:
            return name
        low, high = packet.dport
        return f"{name} port {low}" if low == high else f"{name} replies (to ports {low}-{high})"

    def _subnets_of(self, network_id: str) -> list[Subnet]:
        return sorted((s for s in self.m.subnets.values() if s.network_id == network_id), key=lambda s: s.id)

    def _subnet_of(self, network_id: str, address: str) -> Subnet | None:
        return next((s for s in self._subnets_of(network_id) if contains(s.cidr, address)), None)

    def _gateway_of(self, network_id: str, address: str) -> str | None:
        subnet = self._subnet_of(network_id, address)
        return subnet.gateway_ip if subnet is not None else None

    def _gateway_ip(self, router: Router, version: int) -> str | None:
        """The external subnet's gateway (the router's default route), as the L3 view has it: IPv4 only."""
        port = self.m.ports.get(router.gateway or "")
        for f in port.fixed_ips if port else ():
            subnet = self.m.subnets.get(f.subnet_id)
            if subnet is not None and subnet.gateway_ip and ip(subnet.gateway_ip).version == 4 == version:
                return subnet.gateway_ip
        return None

    def _router_port_at(self, network_id: str, address: str) -> tuple[Router, Port] | None:
        """The router interface on the network that holds the address."""
        for router in sorted(self.m.routers.values(), key=lambda r: r.id):
            for pid in router.interfaces:
                port = self.m.ports.get(pid)
                if port is not None and port.network_id == network_id and any(f.ip == address for f in port.fixed_ips):
                    return router, port
        return None

    def _floating_ip_of(self, router: Router, fixed_ip: str) -> FloatingIp | None:
        """The floating IP the router SNATs the fixed address to (the lowest, as the NAT table keeps one)."""
        found = [f for f in self.m.floating_ips if f.router_id == router.id and f.fixed_ip == fixed_ip]
        return min(found, key=lambda f: ip(f.address)) if found and router.gateway else None

    def _scope(self, port: Port, version: int) -> str | None:
        for f in port.fixed_ips:
            subnet = self.m.subnets.get(f.subnet_id)
            if subnet is not None and subnet.ip_version == version:
                return subnet.address_scope
        return None

