"""The L3 agent's metering: the labels of each router it realizes become counters in the router's namespace
(dataplane.metering), and their cumulative counts go to the server with every heartbeat (MeteringReport)."""

from __future__ import annotations

import logging

from fermion.dataplane import DataplaneError, naming
from fermion.dataplane import metering as dp
from fermion.rpc.contracts import MeteringCounter, MeteringReport, Router

LOG = logging.getLogger(__name__)


def to_dataplane(router: Router) -> list[dp.MeterLabel]:
    return [dp.MeterLabel(label.id, tuple(dp.MeterRule(r.direction, r.excluded, r.remote_ip_prefix, r.source_ip_prefix,
                                                       r.destination_ip_prefix) for r in label.rules))
            for label in router.metering_labels]


class Metering:
    def __init__(self, host: str, host_netns: str | None) -> None:
        self.host = host
        self.host_netns = host_netns
        self.manager = dp.MeterManager()

    def ensure(self, router: Router) -> list[str]:
        """After the router itself is realized. Raises DataplaneError."""
        gateway = naming.router_gateway(router.gateway.id) if router.gateway is not None else None
        ns = naming.router_namespace(router.id, self.host_netns)
        return self.manager.ensure(router.id, ns, gateway, to_dataplane(router))

    def forget(self, router_id: str) -> None:
        self.manager.forget(router_id)

    def report(self) -> MeteringReport | None:
        """The counters of every metered router here; None when there are none. Never raises: a router whose
        table cannot be read is left out (and made again at its next sync)."""
        counters = []
        for router_id in self.manager.routers():
            try:
                found = self.manager.counts(router_id, naming.router_namespace(router_id, self.host_netns))
            except DataplaneError as err:
                LOG.warning("metering counters of router %s on host %s: %s", router_id, self.host, err)
                continue
            if found is not None:
                epoch, counts = found
                counters += [MeteringCounter(router_id, c.label_id, c.packets, c.bytes, epoch) for c in counts]
        return MeteringReport(host=self.host, counters=counters) if counters else None
