"""The L2 agent's QoS: each bound port's effective policy on its tap (dataplane/qos.py), after the links.

Scoped like the rest of a sync: a partial sync looks at the ports of its networks (those in the view, and
those it knew there before: their limits go), a full sync at every tap."""

from __future__ import annotations

import logging

from fermion.dataplane import naming
from fermion.dataplane import qos as dq
from fermion.rpc.contracts import BandwidthLimit, L2View

LOG = logging.getLogger(__name__)


def _limit(rule: BandwidthLimit | None) -> dq.Limit | None:
    return dq.Limit(rule.max_kbps, rule.max_burst_kbps) if rule is not None else None


class PortQosManager:
    def __init__(self, netns: str | None, tap_qos: dq.TapQos | None = None) -> None:
        self.qos = tap_qos or dq.TapQos(netns)
        self.known: dict[str, str] = {}  # tap -> network, of the ports last seen

    def sync(self, view: L2View, scope: set[str] | None) -> int:
        """Apply the view's QoS; the number of kernel commands (DataplaneError when some failed)."""
        wanted: dict[str, dq.PortQos] = {}
        seen: dict[str, str] = {}
        for port in view.ports:
            tap = naming.tap(port.id)
            seen[tap] = port.network_id
            rules = port.qos
            if rules is not None and (rules.egress or rules.ingress or rules.dscp_mark is not None):
                wanted[tap] = dq.PortQos(tap, egress=_limit(rules.egress), ingress=_limit(rules.ingress),
                                         dscp=rules.dscp_mark)
        if scope is None:
            present = set(seen) | set(self.known)
            self.known = seen
        else:
            present = set(seen) | {t for t, n in self.known.items() if n in scope}
            self.known = {t: n for t, n in self.known.items() if n not in scope} | seen
            if self.qos.idle(wanted, present):
                return 0
        return self.qos.apply(wanted, present, full=scope is None)
