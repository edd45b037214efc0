"""The L3 agent's FWaaS part: each router's firewall groups into its namespace's table (dataplane/fwaas.py),
and their statuses where they differ from what the server last heard: ACTIVE once applied, DOWN when the
group is administratively down, ERROR when applying failed. An HA router's groups are applied on every
instance but reported by its active one only; a group on several routers here reads ERROR if any failed."""

from __future__ import annotations

import logging

from fermion import metrics
from fermion.dataplane import DataplaneError, naming
from fermion.dataplane import fwaas as dp
from fermion.rpc.contracts import FirewallGroup, FirewallRule, FirewallStatus, L3View, Router

LOG = logging.getLogger(__name__)
ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"


def to_dataplane(group: FirewallGroup) -> dp.Group:
    def rules(items: list[FirewallRule] | None) -> tuple[dp.Rule, ...] | None:
        if items is None:
            return None
        return tuple(dp.Rule(r.action, r.ip_version, r.protocol, r.source_ip, r.destination_ip, r.source_port,
                             r.destination_port) for r in items)

    return dp.Group(id=group.id, devices=tuple(naming.router_interface(p) for p in group.ports),
                    ingress=rules(group.ingress), egress=rules(group.egress), enabled=group.admin_state_up)


class FwaasPart:
    def __init__(self, host: str) -> None:
        self.host = host
        self.firewalls = dp.Firewalls()

    def ensure(self, namespace: str, router: Router, repair: bool = False) -> dict[str, str]:
        """Apply the router's groups (repair: full syncs, what drifted in the kernel is put back too); their
        state here (group id -> ACTIVE, DOWN or ERROR)."""
        try:
            if self.firewalls.ensure(namespace, [to_dataplane(g) for g in router.firewall_groups], repair):
                LOG.info("router %s on host %s: applied firewall groups %s", router.id, self.host,
                         [g.id for g in router.firewall_groups])
        except DataplaneError as err:
            LOG.warning("firewall groups of router %s on host %s not applied: %s", router.id, self.host, err)
            metrics.ROUTER_FAILURES.labels(self.host, "fwaas").inc()
            return {g.id: ERROR for g in router.firewall_groups}
        return {g.id: ACTIVE if g.admin_state_up else DOWN for g in router.firewall_groups}

    def forget(self, namespace: str) -> None:
        self.firewalls.forget(namespace)

    @staticmethod
    def report(desired: L3View, done: dict[str, dict[str, str]], states: dict[str, str]) -> dict[str, FirewallStatus]:
        """The groups whose state here differs from the view's (done: router id -> group id -> state)."""
        found: dict[str, tuple[FirewallGroup, str]] = {}
        for router in desired.routers:
            mine = done.get(router.id)
            if mine is None or (router.ha is not None and states.get(router.id, router.ha.state) != "active"):
                continue
            for group in router.firewall_groups:
                state = mine.get(group.id, ERROR)
                seen = found.get(group.id)
                if seen is None or state == ERROR:
                    found[group.id] = (group, state)
        return {gid: FirewallStatus(revision=g.revision, status=s) for gid, (g, s) in found.items() if g.status != s}
