"""Losing a host of the lab and getting it back (`fermion lab fail HOST`, `fermion lab heal HOST`).

Failing a host does what a power cut does: its agents stop (threads of the all-in-one server's supervisor
in embedded mode, the processes the lab started in distributed mode), its wires are cut in the underlay
namespace, every process in its router namespaces (the keepalived of HA routers and its notify script) is
killed by PID, and its router and DHCP namespaces go, as their kernel state would with the power. A
killed keepalived leaves the router's addresses and routes behind, and a dnsmasq its address: a host that
comes back must not show them, as its routers' devices share their MACs with the instances that took
over. Healing restores the wires, then starts the agents, which build what the host still carries:
keepalived comes back as standby (nopreempt), so the instances that took over stay active."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from fermion.dataplane import naming, netns
from fermion.dataplane.router import RouterManager
from fermion.lab import topology
from fermion.lab.instances import LabError
from fermion.lab.state import LabHost, LabState, log_dir, state_path

AGENTS_STOP_TIMEOUT = 15.0  # seconds the all-in-one's supervisor gets to stop a host's agents
KILL_ROUNDS = 20


def host_of(state: LabState, name: str) -> LabHost:
    host = state.hosts.get(name)
    if host is None:
        raise LabError(f"unknown host {name} (hosts: {', '.join(state.hosts)})")
    return host


@dataclass
class Failure:
    cut_at: float  # when its wires went down (epoch seconds)
    killed: list[int]  # PIDs of the processes in its router namespaces
    namespaces: list[str]  # its router and DHCP namespaces, gone


def fail(state: LabState, state_dir: Path, name: str, timeout: float = AGENTS_STOP_TIMEOUT) -> Failure:
    """Take the host down."""
    from fermion.runtime.lab import stop_agents, wait_unsupervised

    host = host_of(state, name)
    if host.failed:
        raise LabError(f"host {name} has failed already; `fermion lab heal {name}` brings it back")
    # the agents first: a running L3 agent would start the killed keepalived again, or report its cut-off
    # instance active once more
    host.failed = True
    if state.mode == "distributed":
        stop_agents(host, host.agents, timeout=0)  # SIGKILL right after the SIGTERM: a crash
        host.agents = []
    state.save(state_path(state_dir))
    if state.mode == "embedded" and not wait_unsupervised(state_dir, {name}, timeout):
        host.failed = False
        state.save(state_path(state_dir))
        raise LabError(f"the server did not stop the agents of host {name} within {timeout:.0f} s")
    topology.set_wires(state, name, up=False)
    cut_at = time.time()
    killed = kill_router_processes(host)
    return Failure(cut_at=cut_at, killed=killed, namespaces=remove_namespaces(host))


def heal(state: LabState, state_dir: Path, name: str) -> None:
    """Bring a failed host back: wires up, then its agents (distributed mode: started here; embedded mode:
    by the server's supervisor, which follows the state file). The caller waits for them to report."""
    from fermion.runtime.lab import spawn_agents

    host = host_of(state, name)
    if not host.failed:
        raise LabError(f"host {name} has not failed (`fermion lab fail {name}` first)")
    # wires before agents: keepalived must hear the active instance's adverts as it starts, or it would
    # take over too and one of the two masters would have to yield (nothing stale answers meanwhile: the
    # host's router and DHCP namespaces went with the failure)
    topology.set_wires(state, name, up=True)
    host.failed = False
    if state.mode == "distributed":
        spawn_agents(state, host, log_dir(state_dir))
    state.save(state_path(state_dir))


def remove_namespaces(host: LabHost) -> list[str]:
    """Delete the host's router namespaces (devices first, as its L3 agent does) and DHCP namespaces (their
    dnsmasq stopped first, as its DHCP agent does). Returns their names."""
    routers = RouterManager(host.netns)
    gone = []
    for router_id in sorted(routers.present()):
        routers.remove(router_id)
        gone.append(routers.namespace(router_id))
    for ns in netns.names(naming.dhcp_namespace("", host.netns)):
        netns.delete(ns)
        gone.append(ns)
    return gone


def router_processes(host: LabHost) -> list[int]:
    """The processes in the host's router namespaces."""
    return [pid for ns in netns.names(naming.router_namespace("", host.netns)) for pid in netns.pids(ns)]


def kill_router_processes(host: LabHost) -> list[int]:
    """SIGKILL every process in the host's router namespaces, by PID, until none is left (keepalived's
    parent may respawn its VRRP child before it dies itself)."""
    killed: list[int] = []
    for _ in range(KILL_ROUNDS):
        victims = [pid for pid in router_processes(host) if netns.alive(pid)]
        if not victims:
            return killed
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        deadline = time.monotonic() + 1.0
        while any(netns.alive(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.01)
    raise LabError(f"processes in the router namespaces of host {host.name} survive SIGKILL: "
                   f"{router_processes(host)}")
