"""What an executor observes in a host namespace."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Link:
    name: str
    kind: str  # bridge | vxlan | veth | tun | ...
    mtu: int
    up: bool
    master: str | None = None
    ours: bool = False  # carries naming.MARKER
    vni: int | None = None


@dataclass
class HostState:
    links: dict[str, Link] = field(default_factory=dict)
    fdb: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # vxlan dev -> {(mac, dst)}
    neigh: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # vxlan dev -> {(ip, mac)}
