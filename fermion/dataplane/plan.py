"""Plan operations: what a reconciler wants done, applied by an executor (linux.LinuxHost or fake.FakeHost).
Operations are idempotent: applying one whose effect is already there is not an error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnsureBridge:
    name: str
    mtu: int


@dataclass(frozen=True)
class EnsureVxlan:
    name: str
    vni: int
    local_ip: str
    mtu: int
    bridge: str


@dataclass(frozen=True)
class DeleteLink:
    name: str


@dataclass(frozen=True)
class Attach:
    """Put an existing device (tap or physical interface) into a bridge, up; mtu None: leave it."""

    name: str
    bridge: str
    mtu: int | None = None


@dataclass(frozen=True)
class Detach:
    name: str
    down: bool = True


@dataclass(frozen=True)
class FdbAdd:
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class FdbDel:
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class NeighAdd:
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True)
class NeighDel:
    dev: str
    ip: str
    mac: str


Op = EnsureBridge | EnsureVxlan | DeleteLink | Attach | Detach | FdbAdd | FdbDel | NeighAdd | NeighDel
FLOOD = "00:00:00:00:00:00"
