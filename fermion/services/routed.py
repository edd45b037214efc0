"""Routed networks: a network whose subnets are on segments gives a port addresses only from the subnets of
the segment its host reaches, or none until a host is known (Neutron's deferred IP allocation).

Which host reaches which segment is derived from the agents' reported configurations (Neutron keeps it in
its internal segment host mappings, refreshed by the same reports): a vlan or flat segment by its physical
network in an agent's interface_mappings (or bridge_mappings), a tunnel segment when an agent has a
tunnel endpoint for its type, a local segment on every host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.errors import Conflict
from fermion.ml2.binding import AgentInfo

PHYSICAL = ("vlan", "flat")
TUNNELS = ("vxlan", "gre", "geneve")

_g = m.network_segments.c
_SEGMENTS_OF_NETWORK = Prepared(select(_g.id, _g.network_type, _g.physical_network)
                                .where(_g.network_id == bindparam("b_network")))


def is_routed(subnets: Sequence[dict[str, Any]]) -> bool:
    """Whether a network's subnets (as loaded for its ports) are on segments: no query needed."""
    return any(s["segment_id"] for s in subnets)


def reaches(network_type: str, physical_network: str | None, agents: Sequence[AgentInfo]) -> bool:
    """Whether a host with these agents reaches a segment of this type and physical network."""
    if network_type == "local":
        return True
    for agent in agents:
        conf = agent.configurations or {}
        if network_type in PHYSICAL:
            mapped = {**(conf.get("bridge_mappings") or {}), **(conf.get("interface_mappings") or {})}
            if physical_network in mapped:
                return True
        elif network_type in TUNNELS and conf.get("tunneling_ip"):
            types = conf.get("tunnel_types")
            if not types or network_type in types:
                return True
    return False


def host_segments(conn: Connection, network_id: str, agents: Sequence[AgentInfo]) -> set[str]:
    """The ids of the network's segments a host with these agents reaches."""
    return {seg_id for seg_id, kind, physnet in _SEGMENTS_OF_NETWORK.rows(conn, {"b_network": network_id})
            if reaches(kind, physnet, agents)}


def not_connected(host: str, network_id: str) -> Conflict:
    return Conflict(f"Host {host} is not connected to any segments on routed provider network '{network_id}'.  "
                    "It should be connected to one.", type="HostNotConnectedToAnySegment")


def on_host(host: str, network_id: str, subnets: list[dict[str, Any]], reached: set[str]) -> list[dict[str, Any]]:
    """The subnets (already filtered by service type, in order) a port on the host takes addresses from:
    those of the one segment it reaches. None, or several segments, is a 409 as in Neutron."""
    mine = [s for s in subnets if s["segment_id"] in reached]
    if not mine:
        raise not_connected(host, network_id)
    if len({s["segment_id"] for s in mine}) > 1:
        raise Conflict(f"Host {host} is connected to multiple segments on routed provider network "
                       f"'{network_id}'.  It should be connected to one.", type="HostConnectedToMultipleSegments")
    return mine


def incompatible(host: str, port_id: str) -> Conflict:
    return Conflict(f"Host {host} is not connected to a segment where the existing fixed_ips on port {port_id} "
                    "will function given the routed network topology.", type="HostNotCompatibleWithFixedIps")
