"""The lab's record of what it built (hosts, agents it started, instances), kept as JSON in the state dir
so every `fermion lab ...` command and the all-in-one server see the same lab."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOSTS = ("compute1", "compute2", "network1")


@dataclass
class AgentProcess:
    """A `fermion agent` process the lab started (distributed mode)."""

    kind: str  # l2 | ovs | dhcp | l3
    pid: int
    start: int = 0  # start time from /proc/PID/stat: tells our process from a later one with the same PID


@dataclass
class LabHost:
    name: str
    netns: str
    underlay_ip: str
    dhcp: bool = False
    zone: str = "nova"  # the availability zone its agents report
    physnet: str = ""  # the physical network on its eth1 ("": the lab's shared one, LabState.physnet)
    agents: list[AgentProcess] = field(default_factory=list)  # distributed mode
    failed: bool = False  # `fermion lab fail`: links cut, agents and router processes killed, until `heal`
    # its L3 agent's mode: "" (legacy on network nodes, none elsewhere), or with `lab up --dvr` dvr_snat on
    # network nodes and dvr on the others (distributed routers' local copies and floating IPs)
    l3_mode: str = ""
    switch: str = "linuxbridge"  # linuxbridge | ovs: its L2 agent (and how DHCP and routers are plugged)

    def kinds(self) -> list[str]:
        """The agents this host runs: every host an L2 agent (Linux bridge, or Open vSwitch: "ovs"), the
        network node DHCP and L3 too, a DVR compute host an L3 agent."""
        l2 = "ovs" if self.switch == "ovs" else "l2"
        if self.dhcp:
            return [l2, "dhcp", "l3"]
        return [l2, "l3"] if self.l3_mode else [l2]

    def interface_driver(self) -> str:
        """How its DHCP and L3 agents plug their ports (Neutron's interface_driver)."""
        return "openvswitch" if self.switch == "ovs" else "linuxbridge"

    def agent_mode(self) -> str:
        """Its L3 agent's agent_mode."""
        return self.l3_mode or "legacy"


@dataclass
class LabInstance:
    name: str
    netns: str
    host: str
    port_id: str
    network_id: str
    mac: str
    ip: str | None = None


@dataclass
class LabState:
    prefix: str
    mode: str  # embedded | distributed
    endpoint: str
    hosts: dict[str, LabHost] = field(default_factory=dict)
    instances: dict[str, LabInstance] = field(default_factory=dict)
    underlay: str = ""
    physical_interface: str = "eth1"
    physnet: str = "physnet1"
    external_interface: str = "eth2"  # the external network's wire, shared with the "external" namespace
    external_physnet: str = "external"
    external: str = ""  # the namespace that plays the internet
    external_network_id: str = ""
    config: str = ""  # distributed mode: the config file the agents are started with
    agent_env: dict[str, str] = field(default_factory=dict)  # and the FERMION_* environment

    def mappings(self, host: LabHost) -> dict[str, str]:
        """The host's physical networks and their interfaces (its L2 agent's interface mappings)."""
        return {host.physnet or self.physnet: self.physical_interface, self.external_physnet: self.external_interface}

    def bridge_mappings(self, host: LabHost) -> dict[str, str]:
        """An OVS host's physical networks and their bridges (br-eth1, br-ex), each holding the interface."""
        return {physnet: bridge_of(physnet, iface, self.external_physnet)
                for physnet, iface in self.mappings(host).items()}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # owner only: the agents' environment it keeps may hold a broker URL with its password
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(dataclasses.asdict(self), indent=2))
        os.chmod(tmp, 0o600)  # an older file of other mode stays as it was under O_CREAT
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        hosts = {k: _host(v) for k, v in data.pop("hosts", {}).items()}
        instances = {k: LabInstance(**v) for k, v in data.pop("instances", {}).items()}
        return cls(**data, hosts=hosts, instances=instances)


def _host(data: dict[str, Any]) -> LabHost:
    agents = [AgentProcess(**a) for a in data.pop("agents", [])]
    # written before agents were recorded with their kind and start time: identified by command line
    agents += [AgentProcess(kind="", pid=pid) for pid in data.pop("pids", [])]
    return LabHost(**data, agents=agents)


def bridge_of(physnet: str, iface: str, external_physnet: str) -> str:
    """The OVS bridge of a physical network on a lab host: br-ex for the external one, br-<interface> else."""
    return "br-ex" if physnet == external_physnet else f"br-{iface}"


def state_path(state_dir: Path) -> Path:
    return state_dir / "lab.json"


def log_dir(state_dir: Path) -> Path:
    """Distributed mode: the agent processes' logs."""
    return state_dir / "lab-logs"
