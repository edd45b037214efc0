"""Ports: MACs, fixed IPs, address pairs and binding attributes."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import netaddr
from sqlalchemy import BindParameter, Connection, bindparam, delete, insert, literal, null, select, union_all, update

from fermion import metrics
from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent, insert_many_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.ml2.binding import UNBOUND, Binding, PortBinder
from fermion.ml2.manager import load_segments
from fermion.resources.base import AUTO
from fermion.resources.port import PORT
from fermion.rpc.contracts import Hint
from fermion.services import common, dvr, ipam, port_forwardings, qos_bindings, routed, trunk_ports
from fermion.services.agents import AgentService
from fermion.services.query import Collection, chunks
from fermion.services.quotas import QuotaService
from fermion.services.security_group_rules import emit_group_hints
from fermion.services.security_groups import ensure_default_group, usable_groups
from fermion.validation import InvalidValue, dns

ROUTER_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                 "network:ha_router_replicated_interface", "network:router_gateway")
SERVICE_OWNERS = (*ROUTER_OWNERS, "network:floatingip", dvr.SNAT_OWNER, dvr.FIP_GATEWAY_OWNER)
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                           "network:ha_router_replicated_interface")
SG_NEEDS_PORT_SECURITY = ("Port security must be enabled and port must have an IP address in order to use "
                          "security groups.")
MEMBER_ADDRESSES = frozenset({"fixed_ips", "allowed_address_pairs", "mac_address"})


def disassociate_floating_ips(conn: Connection, port_id: str) -> list[str]:
    """The port is going away: its floating IPs stay, unassociated. Returns the routers that served them."""
    f = m.floatingips.c
    routers = sorted({r[0] for r in conn.execute(select(f.router_id).where(f.fixed_port_id == port_id)) if r[0]})
    # a new revision: an agent's report made for the old association changes nothing (fip_status.py)
    conn.execute(update(m.floatingips).where(f.fixed_port_id == port_id).values(
        fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN", updated_at=common.now(),
        revision_number=f.revision_number + 1))
    return routers


def _slaac(port: dict[str, Any], subnet: dict[str, Any]) -> ipam.Want:
    """The port's EUI-64 address on a SLAAC (or DHCPv6-stateless) subnet."""
    ip = ipam.eui64(subnet["cidr"], port["mac_address"])
    ipam.check_specific(subnet, ip, False)
    return ipam.Want(port["id"], [subnet], ip)


_s, _st = m.subnets.c, m.subnet_service_types.c
# a network's subnets with their service types (one row per type, a None type for subnets without)
_SUBNETS_OF_NETWORK = Prepared(select(m.subnets, _st.service_type)
                               .select_from(m.subnets.outerjoin(m.subnet_service_types, _st.subnet_id == _s.id))
                               .where(_s.network_id == bindparam("b_network"))
                               .order_by(_s.created_at, _s.id, _st.service_type))
DHCP_OWNER = "network:dhcp"


def service_subnets(port: dict[str, Any], subnets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subnets a port may take addresses from (Neutron's subnet-service-types): those whose service
    types name its device owner, first, then those without service types; a DHCP port may also use any
    subnet with DHCP enabled. None at all while the network has subnets is a 409."""
    owner = port["device_owner"]
    matching, plain = [], []
    for subnet in subnets:
        types = subnet["service_types"]
        if not types:
            plain.append(subnet)
        elif owner in types or (owner == DHCP_OWNER and subnet["enable_dhcp"]):
            matching.append(subnet)
    if subnets and not (matching or plain):
        raise Conflict(f"No valid service subnet for the given device owner, network {port['network_id']}, service "
                       f"type {owner}.", type="IpAddressGenerationFailureNoMatchingSubnet")
    return matching + plain
_INSERT_PORT_GROUP = Prepared(insert(m.port_security_groups))
_a, _b = m.ip_allocations.c, m.port_security_groups.c
_ips, _groups = select(_a.port_id, _a.subnet_id, _a.ip_address), select(_b.port_id, _b.security_group_id)
_ALL_IPS, _ALL_GROUPS = Prepared(_ips), Prepared(_groups)
_IPS_OF_PORTS = Prepared(_ips.where(_a.port_id.in_(bindparam("b_ids", expanding=True))))
_GROUPS_OF_PORTS = Prepared(_groups.where(_b.port_id.in_(bindparam("b_ids", expanding=True))))
_p = m.ports.c
_MACS_OF_PORTS = select(_p.id, _p.mac_address).where(_p.id.in_(bindparam("b_ids", expanding=True)))
_t = m.tags.c
_tr = m.trunks.c
# the addresses, groups, tags and trunks (of parents) of a few ports (a show, a filtered list) in one round trip,
# told apart by the first column
_ids: BindParameter[Any] = bindparam("b_ids", expanding=True)
_PORTS_PARTS = Prepared(union_all(
    select(literal(1), _a.port_id, _a.subnet_id, _a.ip_address).where(_a.port_id.in_(_ids)),
    select(literal(2), _b.port_id, _b.security_group_id, null()).where(_b.port_id.in_(_ids)),
    select(literal(3), _t.resource_id, _t.tag, null()).where(_t.resource_id.in_(_ids)),
    select(literal(4), _tr.port_id, _tr.id, null()).where(_tr.port_id.in_(_ids))))
_PARTS_AT_ONCE = 500  # ports per statement; larger pages read each kind apart (full scans past 2000)


def dns_assignment(dns_name: str, fixed_ips: list[dict[str, str]], domain: str) -> list[dict[str, str]]:
    """Neutron's dns_assignment: per fixed IP the port's dns_name (or host-<address> without one) and the name
    in the configured domain (domain: normalized, with its trailing dot, or empty)."""
    if dns_name:
        fqdn = dns_name if dns_name.endswith(".") else f"{dns_name}.{domain}"
        return [{"ip_address": f["ip_address"], "hostname": dns_name, "fqdn": fqdn} for f in fixed_ips]
    suffix = "." + domain if domain else ""
    out = []
    for f in fixed_ips:  # (a list shows this for every port)
        ip = f["ip_address"]
        hostname = "host-" + ip.replace(".", "-").replace(":", "-")
        out.append({"ip_address": ip, "hostname": hostname, "fqdn": hostname + suffix})
    return out


class PortCollection(Collection):
    def __init__(self, dns_domain: str = dns.DOMAIN_DEFAULT) -> None:
        super().__init__(PORT, m.ports)
        self.columns["binding:host_id"] = m.ports.c.binding_host_id
        self.dns_domain = dns.normalized_domain(dns_domain)

    def _finish(self, items: list[dict[str, Any]]) -> None:
        """What derives from the stored columns once fixed_ips are in."""
        domain = self.dns_domain
        for item in items:
            if item["extra_dhcp_opts"] is None:
                item["extra_dhcp_opts"] = []
            item["dns_assignment"] = dns_assignment(item["dns_name"], item["fixed_ips"], domain)

    def where(self, q: Any) -> list[Any]:
        groups = q.filters.get("security_groups")
        if groups is not None:  # port-security-groups-filtering: ports in any of the groups
            q = dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k != "security_groups"})
        conds = super().where(q)
        if groups is not None:
            b = m.port_security_groups.c
            conds.append(m.ports.c.id.in_(select(b.port_id).where(b.security_group_id.in_(groups))))
        a = m.ip_allocations.c
        for fip in q.fixed_ips:
            sub = select(a.port_id)
            if "ip_address" in fip:
                sub = sub.where(a.ip_address == fip["ip_address"])
            if "ip_address_substr" in fip:
                sub = sub.where(a.ip_address.contains(fip["ip_address_substr"], autoescape=True))
            if "subnet_id" in fip:
                sub = sub.where(a.subnet_id == fip["subnet_id"])
            conds.append(m.ports.c.id.in_(sub))
        return conds

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for item, values in zip(items, inserted, strict=True):  # PortService.create keeps what it stored
            item["fixed_ips"] = values["fixed_ips"]
            item["security_groups"] = values["security_groups"]
        self._finish(items)

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        """A page of up to 500 ports (a show, a filtered list) in one extra statement instead of three."""
        if not rows or len(rows) > _PARTS_AT_ONCE or tags is not None or not complete:
            return super().to_dicts(conn, rows, tags, complete)
        ips: dict[str, list[dict[str, str]]] = defaultdict(list)
        groups: dict[str, list[str]] = defaultdict(list)
        own_tags: dict[str, list[str]] = defaultdict(list)
        parents: dict[str, str] = {}
        for kind, pid, value, ip in _PORTS_PARTS.rows(conn, {"b_ids": [r[0] for r in rows]}):
            if kind == 1:
                ips[pid].append({"subnet_id": value, "ip_address": ip})
            elif kind == 4:
                parents[value] = pid
            else:
                (groups if kind == 2 else own_tags)[pid].append(value)
        for found in (groups, own_tags):
            for v in found.values():
                if len(v) > 1:
                    v.sort()
        items = self.dicts(rows, own_tags)
        ips_of, groups_of = ips.get, groups.get
        for item in items:
            pid = item["id"]
            fixed = ips_of(pid)
            if fixed is None:
                fixed = []
            elif len(fixed) > 1:
                fixed.sort(key=_by_subnet_and_address)
            item["fixed_ips"] = fixed
            item["security_groups"] = groups_of(pid) or []
        self._finish(items)
        if parents:
            self._trunk_details(items, trunk_ports.details_of(conn, parents))
        return items

    @staticmethod
    def _trunk_details(items: list[dict[str, Any]], found: dict[str, dict[str, Any]]) -> None:
        """trunk-details: shown on trunk parents only, as Neutron."""
        for item in items:
            got = found.get(item["id"])
            if got is not None:
                item["trunk_details"] = got

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ids = [i["id"] for i in items]
        ips_of = load_fixed_ips(conn, ids).get
        groups_of = load_port_groups(conn, ids).get
        for item in items:
            pid = item["id"]
            item["fixed_ips"] = ips_of(pid) or []
            item["security_groups"] = groups_of(pid) or []
        self._finish(items)
        self._trunk_details(items, trunk_ports.details(conn, ids))


def load_port_groups(conn: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if len(ids) > 2000:
        # large pages: one scan beats thousands of bound parameters (as load_fixed_ips)
        wanted = set(ids)
        rows = [r for r in _ALL_GROUPS.rows(conn) if r[0] in wanted]
    else:
        rows = [r for part in chunks(ids) for r in _GROUPS_OF_PORTS.rows(conn, {"b_ids": list(part)})]
    for port_id, sg_id in rows:
        out[port_id].append(sg_id)
    for v in out.values():
        if len(v) > 1:
            v.sort()
    return out


def load_fixed_ips(conn: Connection, ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    if len(ids) > 2000:
        wanted = set(ids)
        rows = [r for r in _ALL_IPS.rows(conn) if r[0] in wanted]
    else:
        rows = [r for part in chunks(ids) for r in _IPS_OF_PORTS.rows(conn, {"b_ids": list(part)})]
    for port_id, subnet_id, ip in rows:
        out[port_id].append({"subnet_id": subnet_id, "ip_address": ip})
    for v in out.values():
        if len(v) > 1:  # (most ports have one)
            v.sort(key=_by_subnet_and_address)
    return out


def _by_subnet_and_address(f: dict[str, str]) -> tuple[str, str]:
    return f["subnet_id"], f["ip_address"]


class PortService:
    def __init__(self, quotas: QuotaService, base_mac: str = "fa:16:3e:00:00:00",
                 binder: PortBinder | None = None, agents: AgentService | None = None,
                 dns_domain: str = dns.DOMAIN_DEFAULT) -> None:
        self.collection = PortCollection(dns_domain)
        self.dns_domain = dns_domain
        # with the default domain Neutron takes a port's dns_name and dns_domain and keeps neither
        self.keeps_dns_names = dns.normalized_domain(dns_domain) not in ("", dns.DOMAIN_DEFAULT)
        self.quotas = quotas
        self.binder = binder or PortBinder([])
        self.agents = agents or AgentService()
        self.allocator = ipam.Allocator()
        self.rng = random.Random()
        self.base_mac = [int(x, 16) for x in base_mac.split(":")]

    def subnets_of(self, conn: Connection, network_id: str) -> list[dict[str, Any]]:
        """A network's subnets in creation order, each with its service_types."""
        return self._subnets(conn, network_id)

    def _subnets(self, conn: Connection, network_id: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in _SUBNETS_OF_NETWORK.dicts(conn, {"b_network": network_id}):
            service_type = row.pop("service_type")
            subnet = out.setdefault(row["id"], {**row, "service_types": []})
            if service_type is not None:
                subnet["service_types"].append(service_type)
        return list(out.values())

    def bind(self, conn: Connection, network_id: str, host: str, vnic_type: str,
             port_security: bool = True, device_owner: str = "") -> Binding:
        if not host:
            return Binding(UNBOUND, {})
        segments = load_segments(conn, [network_id]).get(network_id, [])
        # ports the network itself owns (DHCP, routers) are never filtered, as in Neutron
        filtered = port_security and not device_owner.startswith("network:")
        return self.binder.bind(host, vnic_type, segments, self.agents.on_host(conn, host), filtered)

    def _random_mac(self) -> str:
        octets = self.base_mac[:3] + [self.rng.randint(0, 255) for _ in range(3)]
        return ":".join(f"{o:02x}" for o in octets)

    def create(self, conn: Connection, items: list[dict[str, Any]],
               networks: dict[str, dict[str, Any]], ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the items; return the inserted rows (to answer without reading them back).

        A bulk goes in step by step (every port row, then every address...) rather than port by port: a
        few statements for the whole request, and its unique keys locked in one order (see ipam.Allocator),
        so that concurrent bulks wait for each other instead of deadlocking."""
        defaults: dict[str, tuple[str, int]] = {}
        ports = []
        for item in items:
            qos_bindings.usable(conn, item.get("qos_policy_id"), ctx)
            row = self._new_row(conn, item, networks[item["network_id"]])
            ports.append((item, row, self._groups_on_create(conn, row, item.get("security_groups", AUTO), defaults)))
        subnets = {net_id: self._subnets(conn, net_id) for net_id in sorted({row["network_id"] for _, row, _ in ports})}
        candidates = []  # the subnets each port may take addresses from
        for item, row, _ in ports:
            on_net = subnets[row["network_id"]]
            if item["fixed_ips"] is AUTO and routed.is_routed(on_net):
                candidates.append(self._routed_subnets(conn, row, on_net))
            else:
                candidates.append(service_subnets(row, on_net))
        self._insert_rows(conn, [(row, AUTO if item["mac_address"] is None else item["mac_address"])
                                 for item, row, _ in ports])
        members = [{"port_id": row["id"], "security_group_id": g} for _, row, groups in ports for g in sorted(groups)]
        if members:
            _INSERT_PORT_GROUP.run_many(conn, members)
        joined = {gid: revision for _, _, groups in ports for gid, revision in groups.items()}
        for gid in sorted(joined):
            common.emit(conn, Hint("security_group", gid, joined[gid], None, None))
        wants = []
        for (item, row, _), on_net in zip(ports, candidates, strict=True):
            fixed = item["fixed_ips"]
            wants.append(self._auto_wants(row, on_net) if fixed is AUTO
                         else self._requested_wants(conn, row, on_net, fixed))
        self.allocator.allocate(conn, [w for own in wants for w in own])
        common.add_tags(conn, [(row["id"], item.get("tags") or []) for item, row, _ in ports])
        rows = []
        for (item, row, groups), own in zip(ports, wants, strict=True):
            ips = [w.got for w in own if w.got is not None]
            # what the answer shows, known without reading it back
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])), "security_groups": sorted(groups),
                         "fixed_ips": sorted(ips, key=_by_subnet_and_address)})
            common.emit(conn, Hint("port", row["id"], 1, row["network_id"], row["binding_host_id"] or None))
            metrics.PORTS.created(row["id"])
        dvr.ports_moved(conn, [(row["network_id"], row["device_owner"], [row["binding_host_id"]])
                               for row in rows if row["fixed_ips"]])
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "port", count)
        return rows

    def _routed_subnets(self, conn: Connection, row: dict[str, Any], subnets: list[dict[str, Any]]
                        ) -> list[dict[str, Any]]:
        """A port on a routed network without fixed_ips asked: the subnets of its host's segment, or none
        until it has a host (its allocation is then deferred)."""
        host = row["binding_host_id"]
        if not host:
            service_subnets(row, subnets)  # no subnet for its device owner is still a 409
            row["ip_allocation"] = "deferred"
            return []
        reached = routed.host_segments(conn, row["network_id"], self.agents.on_host(conn, host))
        try:
            candidates = service_subnets(row, subnets)
        except Conflict:  # Neutron looks at the host first
            candidates = []
        return routed.on_host(host, row["network_id"], candidates, reached)

    def _new_row(self, conn: Connection, item: dict[str, Any], net: dict[str, Any]) -> dict[str, Any]:
        row = common.standard_row(item)
        pse = item["port_security_enabled"]
        row.update(
            network_id=net["id"], admin_state_up=item["admin_state_up"], status="DOWN",
            device_id=item["device_id"], device_owner=item["device_owner"],
            port_security_enabled=net["port_security_enabled"] if pse is AUTO else pse,
            allowed_address_pairs=item["allowed_address_pairs"],
            binding_host_id=item["binding:host_id"], binding_vnic_type=item["binding:vnic_type"],
            binding_profile=item["binding:profile"],
            extra_dhcp_opts=dns.merge_opts([], item.get("extra_dhcp_opts") or []) or None,
            **{"dns_name": "", "dns_domain": "", **self._dns_values(item)},
            # the extensions' attributes (ports the services make themselves leave them out)
            propagate_uplink_status=item.get("propagate_uplink_status", True), data_plane_status=None,
            device_profile=item.get("device_profile"), numa_affinity_policy=item.get("numa_affinity_policy"),
            hints=item.get("hints"), trusted=None, hardware_offload_type=None,
            qos_policy_id=item.get("qos_policy_id"),
            # [] asked explicitly: an unaddressed port (Neutron's "none"); "deferred" is for routed networks
            ip_allocation="none" if item["fixed_ips"] == [] else "immediate",
        )
        trusted = item.get("trusted", AUTO)
        if trusted is not AUTO:  # port-trusted-vif: shown in binding:profile too, as in Neutron
            row["trusted"] = trusted
            row["binding_profile"] = {**row["binding_profile"], "trusted": trusted}
        offload = item.get("hardware_offload_type", AUTO)
        if offload is not AUTO:  # the type joins the profile's capabilities, as in Neutron
            row["hardware_offload_type"] = offload
            profile = dict(row["binding_profile"])
            capabilities = list(profile.get("capabilities") or [])
            if offload not in capabilities:
                capabilities.append(offload)
            row["binding_profile"] = {**profile, "capabilities": capabilities}
        binding = self.bind(conn, net["id"], row["binding_host_id"], row["binding_vnic_type"],
                            bool(row["port_security_enabled"]), row["device_owner"])
        row.update(binding_vif_type=binding.vif_type, binding_vif_details=binding.vif_details)
        if row["allowed_address_pairs"] and not row["port_security_enabled"]:
            raise Conflict("Port Security must be enabled in order to have allowed address pairs on a "
                           "port.", type="AddressPairAndPortSecurityRequired")
        return row

    def _dns_values(self, wanted: dict[str, Any]) -> dict[str, str]:
        """The dns_name and dns_domain columns for the requested values (those given)."""
        out: dict[str, str] = {}
        if "dns_name" in wanted:
            try:
                dns.in_domain(wanted["dns_name"], self.dns_domain)
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for dns_name. Reason: {err}.") from None
        for key in ("dns_name", "dns_domain"):
            if key in wanted:
                out[key] = wanted[key] if self.keeps_dns_names else ""
        return out

    # ---------------------------------------------------------------- security groups
    def _groups_on_create(self, conn: Connection, port: dict[str, Any], wanted: Any,
                          defaults: dict[str, tuple[str, int]]) -> dict[str, int]:
        """The groups a new port joins, with their revisions: the project's default group unless it names
        others (or none); none without port security, and none for network:* ports (DHCP, routers), as in
        Neutron. `defaults` keeps the default groups already looked up by this request."""
        if wanted is not AUTO and wanted and not port["port_security_enabled"]:
            raise BadRequest(SG_NEEDS_PORT_SECURITY, type="PortSecurityAndIPRequiredForSecurityGroups")
        if port["device_owner"].startswith("network:"):
            return {}
        if wanted is AUTO:
            if not port["port_security_enabled"]:
                return {}
            project = port["project_id"]
            if project not in defaults:
                defaults[project] = ensure_default_group(conn, project, self.quotas)
            gid, revision = defaults[project]
            return {gid: revision}
        return usable_groups(conn, wanted, port["project_id"]) if wanted else {}

    def _groups_on_update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
                          pse: bool) -> set[str]:
        """Apply a change of the port's groups; return the groups whose members changed."""
        before = set(orig["security_groups"])
        moved = bool(MEMBER_ADDRESSES & set(changes))  # a member's addresses change its groups' member sets
        if "security_groups" not in changes:
            if before and not pse:
                raise Conflict("Port has security group associated. Cannot disable port security or IP address "
                               "until security group is removed.", type="PortSecurityPortHasSecurityGroup")
            return before if moved else set()
        wanted = changes["security_groups"]
        if wanted and not pse:
            raise BadRequest(SG_NEEDS_PORT_SECURITY, type="PortSecurityAndIPRequiredForSecurityGroups")
        owner = changes.get("device_owner", orig["device_owner"])
        after: set[str] = set()
        if wanted and not owner.startswith("network:"):
            after = set(usable_groups(conn, wanted, orig["project_id"]))
        if after == before:
            return before if moved else set()
        conn.execute(delete(m.port_security_groups).where(m.port_security_groups.c.port_id == orig["id"]))
        self._bind_groups(conn, orig["id"], sorted(after))
        return before | after

    @staticmethod
    def _bind_groups(conn: Connection, port_id: str, groups: list[str]) -> None:
        if groups:
            _INSERT_PORT_GROUP.run_many(conn, [{"port_id": port_id, "security_group_id": g} for g in groups])

    def _insert_rows(self, conn: Connection, ports: list[tuple[dict[str, Any], Any]]) -> None:
        """Insert port rows, each with its requested MAC or a generated one (row, requested MAC or AUTO)."""
        pairs = [row["allowed_address_pairs"] for row, _ in ports]  # as asked, before a MAC fills them in
        if len(ports) == 1:
            self._insert_with_mac(conn, *ports[0], pairs[0])
            return
        for (row, mac), own in zip(ports, pairs, strict=True):
            self._set_mac(row, self._random_mac() if mac is AUTO else mac, own)
        rows = sorted((row for row, _ in ports), key=lambda r: (r["network_id"], r["mac_address"]))  # lock order
        insert_many_if_absent(conn, m.ports, rows)
        stored = dict(conn.execute(_MACS_OF_PORTS, {"b_ids": [r["id"] for r in rows]}).all())
        for (row, mac), own in zip(ports, pairs, strict=True):
            if stored.get(row["id"]) != row["mac_address"]:  # the MAC was taken: another one, or 409
                self._insert_with_mac(conn, row, mac, own)

    @staticmethod
    def _set_mac(row: dict[str, Any], mac: str, pairs: list[dict[str, Any]]) -> None:
        row["mac_address"] = mac
        # an address pair without a MAC takes the port's MAC, as in Neutron
        row["allowed_address_pairs"] = [{**p, "mac_address": p.get("mac_address", mac)} for p in pairs]

    def _insert_with_mac(self, conn: Connection, row: dict[str, Any], mac: Any, pairs: list[dict[str, Any]]) -> None:
        for _ in range(16):
            self._set_mac(row, self._random_mac() if mac is AUTO else mac, pairs)
            if insert_if_absent(conn, m.ports, row):
                return
            if conn.execute(select(m.ports.c.id).where(m.ports.c.id == row["id"])).first() is not None:
                raise RetryRequest(f"port {row['id']} was made concurrently")  # a port with a derived id
            if mac is not AUTO:
                raise Conflict(f"Unable to complete operation for network {row['network_id']}. "
                               f"The mac address {mac} is in use.", type="MacAddressInUse")
        raise Conflict("Unable to generate a unique MAC address", type="MacAddressGenerationFailure")

    @staticmethod
    def _auto_wants(port: dict[str, Any], subnets: list[dict[str, Any]]) -> list[ipam.Want]:
        """An address from each IP version's first subnet with room, and SLAAC addresses."""
        v4 = [s for s in subnets if s["ip_version"] == 4]
        v6_stateful = [s for s in subnets if s["ip_version"] == 6 and not ipam.is_auto_address(s)]
        wants = [ipam.Want(port["id"], group) for group in (v4, v6_stateful) if group]
        if not port["device_owner"].startswith("network:router"):
            wants += [_slaac(port, s) for s in subnets if ipam.is_auto_address(s)]
        return wants

    def _requested_wants(self, conn: Connection, port: dict[str, Any], subnets: list[dict[str, Any]],
                         fixed: list[dict[str, str]]) -> list[ipam.Want]:
        by_id = {s["id"]: s for s in subnets}
        may_gw = port["device_owner"] in ROUTER_OWNERS
        out = []
        for req in fixed:
            subnet = None
            if "subnet_id" in req:
                subnet = by_id.get(req["subnet_id"])
                if subnet is None:
                    exists = conn.execute(select(m.subnets.c.id).where(m.subnets.c.id == req["subnet_id"])).first()
                    if exists is None:
                        raise NotFound(f"Subnet {req['subnet_id']} could not be found.", type="SubnetNotFound")
                    raise BadRequest(f"Invalid input for operation: Failed to create port on network "
                                     f"{port['network_id']}, because fixed_ips included invalid subnet "
                                     f"{req['subnet_id']}.", type="InvalidInput")
            if "ip_address" in req:
                ip = netaddr.IPAddress(req["ip_address"])
                if subnet is None:
                    subnet = next((s for s in subnets if ip in netaddr.IPNetwork(s["cidr"])), None)
                    if subnet is None:
                        raise BadRequest(f"IP address {req['ip_address']} is not a valid IP for any of the "
                                         "subnets on the specified network.", type="InvalidIpForNetwork")
                ipam.check_specific(subnet, req["ip_address"], may_gw)
                out.append(ipam.Want(port["id"], [subnet], req["ip_address"]))
            elif subnet is not None:
                out.append(_slaac(port, subnet) if ipam.is_auto_address(subnet) else ipam.Want(port["id"], [subnet]))
            else:
                raise BadRequest("Invalid input for fixed_ips: each entry needs subnet_id or ip_address",
                                 type="InvalidInput")
        return out

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values: dict[str, Any] = {}
        pid = orig["id"]
        if "mac_address" in changes and changes["mac_address"] is None:
            changes["mac_address"] = self._free_mac(conn, orig["network_id"])  # port-mac-address-regenerate
        pse = changes.get("port_security_enabled", orig["port_security_enabled"])
        pairs = changes.get("allowed_address_pairs", orig["allowed_address_pairs"])
        if pairs and not pse:
            raise Conflict("Port Security must be enabled in order to have allowed address pairs on a port.",
                           type="AddressPairAndPortSecurityRequired")
        if "allowed_address_pairs" in changes:
            mac = changes.get("mac_address", orig["mac_address"])
            changes["allowed_address_pairs"] = [{**p, "mac_address": p.get("mac_address", mac)} for p in pairs]
        hinted = self._groups_on_update(conn, orig, changes, pse)
        qos_bindings.check_change(conn, changes, ctx)
        values.update(self._dns_values(changes))
        if changes.get("extra_dhcp_opts") is not None:
            values["extra_dhcp_opts"] = dns.merge_opts(orig["extra_dhcp_opts"], changes["extra_dhcp_opts"]) or None
        for key, val in changes.items():
            if key in ("fixed_ips", "security_groups", "dns_name", "dns_domain", "extra_dhcp_opts"):
                continue
            if key == "mac_address" and val != orig["mac_address"]:
                if orig["binding:vif_type"] != "unbound":  # as Neutron: a failed binding is still a binding
                    raise Conflict(f"Unable to complete operation on port {pid}, port is already bound, port "
                                   f"type: {orig['binding:vif_type']}, old_mac {orig['mac_address']}, new_mac "
                                   f"{val}.", type="PortBound")
                clash = conn.execute(select(m.ports.c.id).where(m.ports.c.network_id == orig["network_id"],
                                                                m.ports.c.mac_address == val)).first()
                if clash is not None:
                    raise Conflict(f"Unable to complete operation for network {orig['network_id']}. "
                                   f"The mac address {val} is in use.", type="MacAddressInUse")
            values[key.replace(":", "_")] = val
        trusted = changes.get("trusted", orig["trusted"])
        if trusted is not None and ("trusted" in changes or "binding:profile" in changes):
            # the profile shows `trusted` as the port-trusted-vif attribute says, as in Neutron
            profile = changes.get("binding:profile", orig["binding:profile"])
            values["binding_profile"] = {**(profile or {}), "trusted": trusted}
        if "fixed_ips" in changes:
            if ctx is not None and orig["device_owner"] in ROUTER_INTERFACE_OWNERS and any(
                    _plan_ips(orig, changes["fixed_ips"])):
                # l3-port-ip-change-not-allowed: a router interface keeps its addresses (remove and re-add it)
                raise BadRequest(f"Bad port request: The IP addresses of the router port {pid} cannot be "
                                 "changed.", type="BadRequest")
            self._replace_ips(conn, orig, changes["fixed_ips"])
        host = changes.get("binding:host_id", orig["binding:host_id"])
        if "fixed_ips" not in changes and host and host != orig["binding:host_id"]:
            if self._addresses_on_host(conn, orig, host, changes.get("mac_address", orig["mac_address"])):
                hinted |= set(orig["security_groups"])  # the members' addresses changed
        rebind = host != orig["binding:host_id"] or (
            "binding:host_id" in changes and orig["binding:vif_type"] != "bridge")
        # port security decides whether a driver that does not filter ports may bind the port
        if rebind or "binding:vnic_type" in changes or "port_security_enabled" in changes:
            binding = self.bind(conn, orig["network_id"], host,
                                changes.get("binding:vnic_type", orig["binding:vnic_type"]), bool(pse),
                                changes.get("device_owner", orig["device_owner"]))
            values.update(binding_vif_type=binding.vif_type, binding_vif_details=binding.vif_details)
            if host != orig["binding:host_id"]:
                values["status"] = "DOWN"
                # the port's binding moved there: an inactive binding for that host is now the active one
                b = m.port_bindings.c
                conn.execute(delete(m.port_bindings).where(b.port_id == pid, b.host == host))
        common.bump(conn, m.ports, pid, values, expect_revision)
        if "status" in values or "binding_vif_type" in values:  # a trunk's parent or subport: the trunk follows
            trunk_ports.port_changed(conn, self, pid, host)
        emit_group_hints(conn, hinted)
        rev = orig["revision_number"] + 1
        common.emit(conn, Hint("port", pid, rev, orig["network_id"], host or None))
        if orig["binding:host_id"] and host != orig["binding:host_id"]:
            common.emit(conn, Hint("port", pid, rev, orig["network_id"], orig["binding:host_id"]))
        if host != orig["binding:host_id"] and orig["binding:host_id"]:
            dvr.instance_moved(conn, pid)
        if "fixed_ips" in changes or host != orig["binding:host_id"] or "device_owner" in changes:
            dvr.ports_moved(conn, [(orig["network_id"], changes.get("device_owner", orig["device_owner"]),
                                    [orig["binding:host_id"], host])])

    def _addresses_on_host(self, conn: Connection, orig: dict[str, Any], host: str, mac: str) -> bool:
        """The port gets a new host: a deferred port takes its addresses from the host's segment now, and
        a routed port's addresses must be on a segment the host reaches (as Neutron). Returns whether
        addresses were allocated."""
        deferred = orig["ip_allocation"] == "deferred" and not orig["binding:host_id"] and not orig["fixed_ips"]
        if not deferred and not orig["fixed_ips"]:
            return False
        subnets = self._subnets(conn, orig["network_id"])
        port = {"id": orig["id"], "network_id": orig["network_id"], "device_owner": orig["device_owner"],
                "mac_address": mac, "binding_host_id": host}
        if not routed.is_routed(subnets):
            if not deferred:
                return False
            on_net = service_subnets(port, subnets)
        else:
            on_net = self._routed_subnets(conn, port, subnets)
            if not deferred:
                valid = {s["id"] for s in on_net}
                if any(f["subnet_id"] not in valid for f in orig["fixed_ips"]):
                    raise routed.incompatible(host, orig["id"])
                return False
        wants = self._auto_wants(port, on_net)
        self.allocator.allocate(conn, wants)
        return bool(wants)

    def _free_mac(self, conn: Connection, network_id: str) -> str:
        """A generated MAC no port of the network has (the unique key still guards a concurrent taker)."""
        p = m.ports.c
        for _ in range(16):
            mac = self._random_mac()
            if conn.execute(select(p.id).where(p.network_id == network_id, p.mac_address == mac)).first() is None:
                return mac
        raise Conflict("Unable to generate a unique MAC address", type="MacAddressGenerationFailure")

    def rebind_host(self, conn: Connection, host: str) -> int:
        """Retry binding the host's failed ports (its agent just appeared or came back). Returns how many
        got bound."""
        p = m.ports.c
        rows = conn.execute(select(p.id, p.network_id, p.binding_vnic_type, p.revision_number,
                                   p.port_security_enabled, p.device_owner).where(
            p.binding_host_id == host, p.binding_vif_type == "binding_failed")).all()
        bound = 0
        for pid, network_id, vnic_type, revision, pse, owner in rows:
            binding = self.bind(conn, network_id, host, vnic_type, bool(pse), owner or "")
            if binding.bound:
                common.bump(conn, m.ports, pid, {"binding_vif_type": binding.vif_type,
                                                 "binding_vif_details": binding.vif_details})
                common.emit(conn, Hint("port", pid, revision + 1, network_id, host))
                bound += 1
                trunk_ports.refresh_for_ports(conn, [pid])
        return bound

    def _replace_ips(self, conn: Connection, orig: dict[str, Any], wanted: list[dict[str, str]]) -> None:
        removed, new = _plan_ips(orig, wanted)
        a = m.ip_allocations.c
        for subnet_id, ip in removed:
            conn.execute(delete(m.ip_allocations).where(a.port_id == orig["id"], a.ip_address == ip,
                                                        a.subnet_id == subnet_id))
        if removed:  # forwardings to a removed address go (Neutron)
            kept = {f["ip_address"] for f in orig["fixed_ips"]} - {ip for _, ip in removed}
            for router_id in port_forwardings.forget_port(conn, orig["id"], kept):
                common.emit(conn, Hint("router", router_id, 0))
        if new:
            port = {"id": orig["id"], "network_id": orig["network_id"], "device_owner": orig["device_owner"],
                    "mac_address": orig["mac_address"]}
            on_net = service_subnets(port, self._subnets(conn, orig["network_id"]))
            self.allocator.allocate(conn, self._requested_wants(conn, port, on_net, new))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        """ctx is given for deletes through the API, which may not remove ports a router or floating IP owns."""
        pid = orig["id"]
        if ctx is not None and orig["device_owner"] in SERVICE_OWNERS:
            raise Conflict(f"Port {pid} cannot be deleted directly via the port API: has device owner "
                           f"{orig['device_owner']}.", type="ServicePortInUse")
        trunk_ports.refuse_delete(conn, pid)
        if expect_revision is not None:
            common.bump(conn, m.ports, pid, {}, expect_revision)
        for router_id in disassociate_floating_ips(conn, pid) + port_forwardings.forget_port(conn, pid):
            common.emit(conn, Hint("router", router_id, 0))
        conn.execute(delete(m.ip_allocations).where(m.ip_allocations.c.port_id == pid))
        conn.execute(delete(m.port_security_groups).where(m.port_security_groups.c.port_id == pid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
        conn.execute(delete(m.ports).where(m.ports.c.id == pid))  # its inactive bindings go by ON DELETE CASCADE
        self.quotas.release(conn, orig["project_id"], "port")
        emit_group_hints(conn, orig["security_groups"])
        common.emit(conn, Hint("port", pid, orig["revision_number"] + 1, orig["network_id"],
                               orig["binding:host_id"] or None))
        if orig["fixed_ips"]:
            dvr.ports_moved(conn, [(orig["network_id"], orig["device_owner"], [orig["binding:host_id"]])])


def _plan_ips(orig: dict[str, Any], wanted: list[dict[str, str]]) -> tuple[set[tuple[str, str]], list[dict[str, str]]]:
    """A fixed_ips update as (allocations to remove, requests to allocate); addresses the port keeps are
    matched by address, or by subnet when only the subnet is given."""
    current = {(f["subnet_id"], f["ip_address"]) for f in orig["fixed_ips"]}
    keep: set[tuple[str, str]] = set()
    new: list[dict[str, str]] = []
    for req in wanted:
        if "ip_address" in req:
            match = next((c for c in current if c[1] == req["ip_address"]
                          and req.get("subnet_id", c[0]) == c[0]), None)
            if match:
                keep.add(match)
                continue
        elif "subnet_id" in req:
            match = next((c for c in current if c[0] == req["subnet_id"] and c not in keep), None)
            if match:
                keep.add(match)
                continue
        new.append(req)
    return current - keep, new
