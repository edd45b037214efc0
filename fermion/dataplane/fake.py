"""An in-memory host for unit tests of reconcilers: same observe/apply contract as linux.LinuxHost."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from fermion.dataplane import plan as p
from fermion.dataplane.state import HostState, Link


class FakeHost:
    def __init__(self) -> None:
        self.state = HostState()
        self.applied: list[p.Op] = []

    def add_device(self, name: str, kind: str = "veth", mtu: int = 1500) -> None:
        """Something not ours appears (an instance's tap, a physical interface)."""
        self.state.links[name] = Link(name=name, kind=kind, mtu=mtu, up=False)

    def observe(self) -> HostState:
        return copy.deepcopy(self.state)

    def close(self) -> None:
        pass

    def apply(self, ops: Sequence[p.Op]) -> list[tuple[p.Op, str]]:
        failed = []
        for op in ops:
            self.applied.append(op)
            why = self._apply(op)
            if why:
                failed.append((op, why))
        return failed

    def _apply(self, op: p.Op) -> str | None:
        links, s = self.state.links, self.state
        if isinstance(op, p.EnsureBridge):
            link = links.setdefault(op.name, Link(op.name, "bridge", op.mtu, True, ours=True))
            link.mtu, link.up, link.ours = op.mtu, True, True
        elif isinstance(op, p.EnsureVxlan):
            if op.bridge not in links:
                return f"device {op.bridge} does not exist"
            link = links.setdefault(op.name, Link(op.name, "vxlan", op.mtu, True, ours=True, vni=op.vni))
            link.mtu, link.up, link.master, link.ours = op.mtu, True, op.bridge, True
            s.fdb.setdefault(op.name, set())
            s.neigh.setdefault(op.name, set())
        elif isinstance(op, p.DeleteLink):
            links.pop(op.name, None)
            s.fdb.pop(op.name, None)
            s.neigh.pop(op.name, None)
            for link in links.values():
                if link.master == op.name:
                    link.master = None
        elif isinstance(op, p.Attach):
            if op.name not in links or op.bridge not in links:
                return "device does not exist"
            link = links[op.name]
            link.master, link.up = op.bridge, True
            if op.mtu is not None:
                link.mtu = op.mtu
        elif isinstance(op, p.Detach):
            if op.name in links:
                links[op.name].master = None
                links[op.name].up = links[op.name].up and not op.down
        elif isinstance(op, p.FdbAdd):
            entries = s.fdb.setdefault(op.dev, set())
            if op.mac != p.FLOOD:
                entries -= {e for e in entries if e[0] == op.mac}
            entries.add((op.mac, op.dst))
        elif isinstance(op, p.FdbDel):
            s.fdb.get(op.dev, set()).discard((op.mac, op.dst))
        elif isinstance(op, p.NeighAdd):
            entries = s.neigh.setdefault(op.dev, set())
            entries -= {e for e in entries if e[0] == op.ip}
            entries.add((op.ip, op.mac))
        elif isinstance(op, p.NeighDel):
            s.neigh.get(op.dev, set()).discard((op.ip, op.mac))
        return None
