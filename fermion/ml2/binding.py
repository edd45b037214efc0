"""Port binding: pick a mechanism driver and a segment for a port on a host.

A MechanismDriver decides, from the agents alive on the host and their reported configuration, whether it
can carry a network segment there. Its methods run inside the port's write transaction, get everything
they need as arguments, do no I/O and must not block. Drivers are tried in the configured order, segments
in the network's order; the first fit wins. No fit: vif_type "binding_failed" with the reasons in
vif_details["error"] (admin-only, as binding:vif_details is) and in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fermion.ml2.segments import Segment

LOG = logging.getLogger(__name__)
UNBOUND = "unbound"
FAILED = "binding_failed"


@dataclass(frozen=True)
class AgentInfo:
    id: str
    agent_type: str
    host: str
    alive: bool
    admin_state_up: bool
    configurations: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    vif_type: str
    vif_details: dict[str, Any]
    segment: Segment | None = None

    @property
    def bound(self) -> bool:
        return self.vif_type not in (UNBOUND, FAILED)


class MechanismDriver(Protocol):
    name: str
    agent_type: str
    vif_type: str
    filters_ports: bool  # applies security groups; False: ports with port security are not bound by it

    def check_segment(self, segment: Segment, agent: AgentInfo) -> str | None:
        """None when the agent can carry the segment on its host, else the reason it cannot."""
        ...

    def vif_details(self, segment: Segment) -> dict[str, Any]:
        ...


class PortBinder:
    def __init__(self, drivers: Sequence[MechanismDriver]) -> None:
        self.drivers = list(drivers)

    def bind(self, host: str, vnic_type: str, segments: Sequence[Segment],
             agents: Sequence[AgentInfo], port_security: bool = True) -> Binding:
        if not host:
            return Binding(UNBOUND, {})
        reasons: list[str] = []
        if vnic_type != "normal":
            reasons.append(f"vnic_type {vnic_type} is not supported")
        elif not segments:
            reasons.append("the network has no segment")
        absent: list[str] = []  # drivers with no agent on the host: named only when no driver has one
        for driver in self.drivers if not reasons else []:
            candidates = [a for a in agents if a.agent_type == driver.agent_type]
            agent = next((a for a in candidates if a.alive and a.admin_state_up), None)
            if agent is None:
                whose = f"{driver.name}: the {driver.agent_type} on host {host} is "
                if candidates:
                    reasons.append(whose + "not alive or disabled")
                else:
                    absent.append(whose + "not running")
                continue
            if port_security and not driver.filters_ports:  # never bound silently unfiltered
                reasons.append(f"{driver.name}: the {driver.agent_type} cannot filter ports yet (no security "
                               "group firewall); disable port security on the port to bind it there")
                continue
            for segment in segments:
                why = driver.check_segment(segment, agent)
                if why is None:
                    return Binding(driver.vif_type, driver.vif_details(segment), segment)
                reasons.append(f"{driver.name}: {why}")
        error = "; ".join(reasons or absent) or "no mechanism driver configured"
        LOG.warning("binding failed on host %s: %s", host, error)
        return Binding(FAILED, {"error": error})

    def segment_for(self, segments: Sequence[Segment], agent: AgentInfo) -> Segment | None:
        """The segment an agent carries for a network (what bind() chose for ports on its host)."""
        for driver in self.drivers:
            if driver.agent_type == agent.agent_type:
                for segment in segments:
                    if driver.check_segment(segment, agent) is None:
                        return segment
        return None
