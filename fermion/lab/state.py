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
class LabHost:
    name: str
    netns: str
    underlay_ip: str
    dhcp: bool = False
    pids: list[int] = field(default_factory=list)  # agent processes (distributed mode)


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

    def mappings(self) -> dict[str, str]:
        return {self.physnet: self.physical_interface, self.external_physnet: self.external_interface}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        hosts = {k: LabHost(**v) for k, v in data.pop("hosts", {}).items()}
        instances = {k: LabInstance(**v) for k, v in data.pop("instances", {}).items()}
        return cls(**data, hosts=hosts, instances=instances)


def state_path(state_dir: Path) -> Path:
    return state_dir / "lab.json"
