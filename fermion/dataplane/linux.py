"""The kernel executor: observe a host namespace and apply plan operations over netlink (pyroute2), one
long-lived netlink socket per host namespace, no process per operation."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Sequence
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fermion.dataplane import DataplaneError, naming
from fermion.dataplane import plan as p
from fermion.dataplane.state import HostState, Link

LOG = logging.getLogger(__name__)
IFF_UP = 0x1
NUD_PERMANENT = 0x80
NTF_SELF = 0x2


class LinuxHost:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: IPRoute | None = None
        self._lock = threading.Lock()  # one netlink socket, used by one thread at a time

    def _conn(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
        return self._ipr

    def close(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

    # ---------------------------------------------------------------- observe
    def observe(self) -> HostState:
        with self._lock:
            try:
                return self._observe(self._conn())
            except NetlinkError as err:
                raise DataplaneError(f"observing {self.netns or 'root namespace'}: {err}") from err

    def _observe(self, ipr: IPRoute) -> HostState:
        raw = list(ipr.get_links())
        names = {msg["index"]: msg.get("IFLA_IFNAME") for msg in raw}
        state = HostState()
        for msg in raw:
            name = msg.get("IFLA_IFNAME")
            kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "device"
            vni = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_ID") if kind == "vxlan" else None
            master = msg.get("IFLA_MASTER")
            state.links[name] = Link(name=name, kind=kind, mtu=msg.get("IFLA_MTU"), up=bool(msg["flags"] & IFF_UP),
                                     master=names.get(master) if master else None,
                                     ours=msg.get("IFLA_IFALIAS") == naming.MARKER, vni=vni)
            if kind == "vxlan" and state.links[name].ours:
                index = msg["index"]
                state.fdb[name] = {(f.get("NDA_LLADDR"), f.get("NDA_DST")) for f in ipr.fdb("dump", ifindex=index)
                                   if f.get("NDA_DST") and f["flags"] & NTF_SELF}
                state.neigh[name] = {(n.get("NDA_DST"), n.get("NDA_LLADDR")) for n in ipr.neigh("dump", ifindex=index)
                                     if n["state"] & NUD_PERMANENT and n.get("NDA_LLADDR")}
        return state

    # ---------------------------------------------------------------- apply
    def apply(self, ops: Sequence[p.Op]) -> list[tuple[p.Op, str]]:
        """Apply every operation; return the ones that failed with the kernel's reason (the rest are done)."""
        failed: list[tuple[p.Op, str]] = []
        with self._lock:
            ipr = self._conn()
            for op in ops:
                try:
                    self._apply(ipr, op)
                except (NetlinkError, DataplaneError) as err:
                    LOG.warning("%s in %s failed: %s", op, self.netns or "root namespace", err)
                    failed.append((op, str(err)))
        return failed

    @staticmethod
    def _index(ipr: IPRoute, name: str) -> int | None:
        found = ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def _need(self, ipr: IPRoute, name: str) -> int:
        index = self._index(ipr, name)
        if index is None:
            raise DataplaneError(f"device {name} does not exist")
        return index

    def _apply(self, ipr: IPRoute, op: p.Op) -> None:
        if isinstance(op, p.EnsureBridge):
            index = self._index(ipr, op.name)
            if index is None:
                ipr.link("add", ifname=op.name, kind="bridge")
                index = self._need(ipr, op.name)
            ipr.link("set", index=index, ifalias=naming.MARKER, mtu=op.mtu, state="up")
        elif isinstance(op, p.EnsureVxlan):
            index = self._index(ipr, op.name)
            if index is None:
                dev = self._device_with(ipr, op.local_ip)
                ipr.link("add", ifname=op.name, kind="vxlan", vxlan_id=op.vni, vxlan_local=op.local_ip,
                         vxlan_link=dev, vxlan_port=4789, vxlan_learning=0, vxlan_proxy=1)
                index = self._need(ipr, op.name)
            ipr.link("set", index=index, ifalias=naming.MARKER, mtu=op.mtu, master=self._need(ipr, op.bridge),
                     state="up")
        elif isinstance(op, p.DeleteLink):
            index = self._index(ipr, op.name)
            if index is not None:
                ipr.link("del", index=index)
        elif isinstance(op, p.Attach):
            index = self._need(ipr, op.name)
            extra: dict[str, Any] = {} if op.mtu is None else {"mtu": op.mtu}
            ipr.link("set", index=index, master=self._need(ipr, op.bridge), state="up", **extra)
        elif isinstance(op, p.Detach):
            index = self._index(ipr, op.name)
            if index is not None:
                ipr.link("set", index=index, master=0, **({"state": "down"} if op.down else {}))
        elif isinstance(op, p.FdbAdd):
            ipr.fdb("append", ifindex=self._need(ipr, op.dev), lladdr=op.mac, dst=op.dst)
        elif isinstance(op, p.FdbDel):
            self._ignore_missing(lambda: ipr.fdb("del", ifindex=self._need(ipr, op.dev), lladdr=op.mac, dst=op.dst))
        elif isinstance(op, p.NeighAdd):
            ipr.neigh("replace", dst=op.ip, lladdr=op.mac, ifindex=self._need(ipr, op.dev), state=NUD_PERMANENT)
        elif isinstance(op, p.NeighDel):
            self._ignore_missing(lambda: ipr.neigh("del", dst=op.ip, lladdr=op.mac, ifindex=self._need(ipr, op.dev)))
        else:  # pragma: no cover - the Op union is closed
            raise DataplaneError(f"unknown operation {op!r}")

    @staticmethod
    def _ignore_missing(fn: Any) -> None:
        try:
            fn()
        except NetlinkError as err:
            if err.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
                raise

    @staticmethod
    def _device_with(ipr: IPRoute, address: str) -> int:
        for msg in ipr.get_addr():
            if msg.get("IFA_ADDRESS") == address or msg.get("IFA_LOCAL") == address:
                return int(msg["index"])
        raise DataplaneError(f"no device has the tunnel address {address}")
