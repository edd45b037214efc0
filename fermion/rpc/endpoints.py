"""Server-side RPC methods: state reports, host views, realized port revisions and floating IPs."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from fermion import metrics
from fermion.db import models as m
from fermion.ml2.mech_drivers.linuxbridge import AGENT_TYPE as LINUXBRIDGE
from fermion.rpc.contracts import (
    FIREWALL_KEY,
    Firewall,
    FirewallReport,
    FloatingIpReport,
    HaStateReport,
    MeteringReport,
    PortReport,
    StateReport,
    ViewRequest,
    decode,
    encode,
)
from fermion.rpc.transport import CALLER_VERSION, Handler
from fermion.services import common, fip_status, fwaas_views, metering, trunk_ports
from fermion.services.agents import DHCP_AGENT
from fermion.services.agentviews import firewall_view, l3_view
from fermion.services.changes import Changed
from fermion.services.dhcp import NeedsWrite
from fermion.services.dvr import DVR_INTERFACE_OWNER
from fermion.services.dvr import NeedsWrite as NeedsDvrWrite
from fermion.services.hostviews import l2_view
from fermion.services.registry import Services
from fermion.services.routers import L3_AGENT


class ServerEndpoints:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db

    def handlers(self) -> dict[str, Handler]:
        return {"report_state": self.report_state, "report_ports": self.report_ports,
                "get_l2_view": self.get_l2_view, "get_dhcp_view": self.get_dhcp_view,
                "get_l3_view": self.get_l3_view, "report_ha_states": self.report_ha_states,
                "report_floatingip_statuses": self.report_floatingip_statuses,
                "report_metering": self.report_metering,
                "report_firewall_statuses": self.report_firewall_statuses}

    def report_state(self, body: dict[str, Any]) -> dict[str, Any]:
        report = decode(StateReport, body)
        s = self.services

        def work(conn: Connection) -> dict[str, Any]:
            row, revived = s.agents.report(conn, report)
            if revived and report.agent_type == LINUXBRIDGE:
                s.ports.rebind_host(conn, report.host)
            # an L2 agent's mappings tell which segments of routed networks its host's DHCP agent reaches
            if report.agent_type == DHCP_AGENT or (revived and report.agent_type == LINUXBRIDGE):
                s.dhcp.schedule_unhosted(conn, fill=revived and report.agent_type == DHCP_AGENT)
            if report.agent_type == L3_AGENT:
                s.routers.schedule_unhosted(conn)
                if caller_before(FLOATINGIP_REPORTS_SINCE):
                    fip_status.assume_realized(conn, report.host)
                elif revived and not report.start_flag:  # back from the dead: its floating IPs were set DOWN
                    for router_id in s.routers.router_ids(conn, row["id"]):
                        s.routers.changed(conn, router_id)
            fip_status.sweep(conn, s.agents.cutoff())  # routers of agents that died: DOWN
            if revived:
                common.emit(conn, Changed("agent", row["id"]))
            return {"agent_id": row["id"], "revived": revived}

        return self.db.write(work)

    def report_ha_states(self, body: dict[str, Any]) -> dict[str, Any]:
        """An L3 agent's VRRP transitions (l3-ha): GET /routers/{id}/l3-agents shows them as ha_state."""
        report = decode(HaStateReport, body)

        def work(conn: Connection) -> None:
            self.services.routers.set_ha_states(conn, report.host, report.states)
            announce(conn, m.routers, "router", list(report.states))

        self.db.write(work)
        return {}

    def report_floatingip_statuses(self, body: dict[str, Any]) -> dict[str, Any]:
        """An L3 agent's floating IPs (fip_status.apply); the routers of those reported from an older revision
        get a hint, so the agent reports them again from a fresh view."""
        report = decode(FloatingIpReport, body)
        routers = self.services.routers

        def work(conn: Connection) -> int:
            changed, stale = fip_status.apply(conn, report.host, report.statuses)
            for router_id in stale:
                routers.changed(conn, router_id)
            if changed:
                announce(conn, m.floatingips, "floatingip", list(report.statuses))
            return changed

        return {"changed": self.db.write(work)}

    def report_metering(self, body: dict[str, Any]) -> dict[str, Any]:
        """An L3 agent's cumulative metering counters (services.metering.apply_report)."""
        report = decode(MeteringReport, body)
        return {"changed": self.db.write(lambda conn: metering.apply_report(conn, report.host, report.counters))}

    def report_firewall_statuses(self, body: dict[str, Any]) -> dict[str, Any]:
        """An L3 agent's firewall groups (fwaas_views.apply); those reported from an older revision get their
        routers hinted, so the agent reports them again from a fresh view."""
        report = decode(FirewallReport, body)
        fwaas = self.services.fwaas

        def work(conn: Connection) -> int:
            changed, stale_ports = fwaas_views.apply(conn, report.statuses)
            fwaas.hint_routers(conn, stale_ports)
            return changed

        return {"changed": self.db.write(work)}

    def report_ports(self, body: dict[str, Any]) -> dict[str, Any]:
        """ACTIVE for ports the host's agent realized at (at least) their current revision, DOWN for those
        whose device is gone. Only ports bound to the reporting host are touched."""
        report = decode(PortReport, body)
        p = m.ports.c
        awaited = metrics.PORTS.pending(report.up)  # created here, never ACTIVE yet: time their first

        def work(conn: Connection) -> tuple[int, list[str]]:
            changed = 0
            if report.up:
                # a distributed router's interface (bound to no host) is ACTIVE once a host with a copy has it
                here = or_(p.binding_host_id == report.host, p.device_owner == DVR_INTERFACE_OWNER)
                stmt = (update(m.ports).where(p.id == bindparam("pid"), here,
                                              p.revision_number <= bindparam("rev"), p.status != "ACTIVE")
                        .values(status="ACTIVE"))
                changed += conn.execute(stmt, [{"pid": k, "rev": v} for k, v in report.up.items()]).rowcount or 0
            if report.down:
                stmt = (update(m.ports).where(p.id.in_(report.down), p.binding_host_id == report.host,
                                              p.status != "DOWN").values(status="DOWN"))
                changed += conn.execute(stmt).rowcount or 0
            if changed:  # the trunks whose parents these are follow them (services.trunk_ports)
                trunk_ports.refresh_for_ports(conn, [*report.up, *report.down])
                announce(conn, m.ports, "port", [*report.up, *report.down])
            active = []
            if awaited:
                active = list(conn.scalars(select(p.id).where(p.id.in_(awaited), p.status == "ACTIVE")))
            return changed, active

        changed, active = self.db.write(work)
        metrics.PORTS.active(active)
        return {"changed": changed}

    def get_l2_view(self, body: dict[str, Any]) -> dict[str, Any]:
        """The firewall comes with full views and when the request names FIREWALL_KEY among the keys. On a host
        running distributed routers' copies, the view may first need the host's DVR MAC made (dvr.host_mac)."""
        req = decode(ViewRequest, body)
        s = self.services
        keys = req.network_ids
        with_firewall = keys is None or FIREWALL_KEY in keys
        networks = None if keys is None else [k for k in keys if k != FIREWALL_KEY]
        def work(conn: Connection, write: bool = False) -> dict[str, Any]:
            view = l2_view(conn, s.agents, s.ports.binder, req.host, networks, write)
            if with_firewall:
                view = dataclasses.replace(view, firewall=for_caller(firewall_view(conn, req.host)))
            return encode(view)

        try:  # a host's first distributed router copy: its DVR MAC is made in a write transaction
            with self.db.read() as conn:
                return work(conn)
        except NeedsDvrWrite:
            return self.db.write(lambda conn: work(conn, write=True))

    def get_l3_view(self, body: dict[str, Any]) -> dict[str, Any]:
        """On a host running distributed routers' copies, the view may first need its DVR MAC or floating-IP
        gateway ports made or removed: then it is made again in a write transaction."""
        req = decode(ViewRequest, body)
        routers = self.services.routers
        try:
            with self.db.read() as conn:
                return encode(l3_view(conn, routers, req.host, req.network_ids))
        except NeedsDvrWrite:
            return encode(self.db.write(lambda conn: l3_view(conn, routers, req.host, req.network_ids, write=True)))

    def get_dhcp_view(self, body: dict[str, Any]) -> dict[str, Any]:
        req = decode(ViewRequest, body)
        dhcp = self.services.dhcp
        try:
            with self.db.read() as conn:
                return encode(dhcp.sync(conn, req.host, req.network_ids, write=False))
        except NeedsWrite:
            return encode(self.db.write(lambda conn: dhcp.sync(conn, req.host, req.network_ids)))


def announce(conn: Connection, table: Any, kind: str, ids: list[str]) -> None:
    """Tell the console's live feed that these rows' status may have changed (services.changes)."""
    if ids:
        c = table.c
        for ident, project_id in conn.execute(select(c.id, c.project_id).where(c.id.in_(ids))):
            common.emit(conn, Changed(kind, ident, project_id))


ADDRESS_GROUPS_SINCE = (1, 5)
FLOATINGIP_REPORTS_SINCE = (1, 9)


def caller_before(version: tuple[int, int]) -> bool:
    """Whether the agent being answered speaks a contract older than version (False when unknown)."""
    try:
        major, minor = (int(x) for x in CALLER_VERSION.get().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < version


def for_caller(view: Firewall) -> Firewall:
    """The firewall view as the calling agent can read it. An agent older than 1.5 ignores a rule's
    remote_address_group and would admit every address where the rule admits a few: such rules are left out
    of its view (it fails closed)."""
    if not caller_before(ADDRESS_GROUPS_SINCE):
        return view
    groups = [dataclasses.replace(g, rules=[r for r in g.rules if r.remote_address_group is None])
              for g in view.groups]
    return dataclasses.replace(view, groups=groups, address_groups={})
