"""The kernel executor: observe a host namespace and apply plan operations over netlink, long-lived netlink
sockets per host namespace, no process per operation.  pyroute2 does the varied operations; the bulk ones
(dumping every link, attaching many taps) go through the lean client in rtnl."""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fermion.dataplane import DataplaneError, naming, rtnl
from fermion.dataplane import plan as p
from fermion.dataplane.state import HostState, Link

LOG = logging.getLogger(__name__)
IFF_UP = 0x1
NUD_PERMANENT = 0x80
NTF_SELF = 0x2
_FIND_LIMIT = 64  # names looked up one by one before a dump of every link is cheaper


class LinuxHost:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: IPRoute | None = None
        self._rtnl: rtnl.Rtnl | None = None
        self._lock = threading.Lock()  # one netlink socket, used by one thread at a time

    def _conn(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
        return self._ipr

    def _lean(self) -> rtnl.Rtnl:
        if self._rtnl is None:
            self._rtnl = rtnl.Rtnl(self.netns)
        return self._rtnl

    def close(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
            if self._rtnl is not None:
                self._rtnl.close()
                self._rtnl = None

    # ---------------------------------------------------------------- observe
    def observe(self) -> HostState:
        with self._lock:
            try:
                return self._observe(self._conn())
            except NetlinkError as err:
                raise DataplaneError(f"observing {self.netns or 'root namespace'}: {err}") from err

    def _observe(self, ipr: IPRoute) -> HostState:
        try:
            raw = self._lean().links()
        except OSError as err:
            raise DataplaneError(f"observing {self.netns or 'root namespace'}: {err}") from err
        names = {link.index: link.name for link in raw}
        state = HostState()
        for link in raw:
            ours = link.alias == naming.MARKER
            state.links[link.name] = Link(name=link.name, kind=link.kind, mtu=link.mtu, up=link.up,
                                          master=names.get(link.master) if link.master else None, ours=ours,
                                          vni=link.vni)
            if link.kind == "vxlan" and ours:
                state.fdb[link.name] = {(f.get("NDA_LLADDR"), f.get("NDA_DST"))
                                        for f in ipr.fdb("dump", ifindex=link.index)
                                        if f.get("NDA_DST") and f["flags"] & NTF_SELF}
                state.neigh[link.name] = {(n.get("NDA_DST"), n.get("NDA_LLADDR"))
                                          for n in ipr.neigh("dump", ifindex=link.index)
                                          if n["state"] & NUD_PERMANENT and n.get("NDA_LLADDR")}
        return state

    # ---------------------------------------------------------------- apply
    def apply(self, ops: Sequence[p.Op]) -> list[tuple[p.Op, str]]:
        """Apply every operation; return the ones that failed with the kernel's reason (the rest are done)."""
        failed: list[tuple[p.Op, str]] = []
        with self._lock:
            ipr = self._conn()
            attach: list[p.Attach] = []
            for op in [*ops, None]:
                if isinstance(op, p.Attach):
                    attach.append(op)
                    continue
                if attach:  # a run of attaches (a full sync has one per tap) is one batch
                    failed += self._attach(attach)
                    attach = []
                if op is None:
                    break
                try:
                    self._apply(ipr, op)
                except (NetlinkError, DataplaneError) as err:
                    failed.append((op, str(err)))
        for op, reason in failed:
            LOG.warning("%s in %s failed: %s", op, self.netns or "root namespace", reason)
        return failed

    def _attach(self, ops: Sequence[p.Attach]) -> list[tuple[p.Op, str]]:
        """Enslave, bring up (and set the MTU of) many taps: one link dump, then pipelined requests."""
        failed: list[tuple[p.Op, str]] = []
        todo: list[tuple[p.Attach, rtnl.LinkChange]] = []
        try:
            lean = self._lean()
            names = sorted({n for op in ops for n in (op.name, op.bridge)})
            # a few taps (an instance plugged): ask for those; many (a full sync): one dump is cheaper
            links = lean.find(names).values() if len(names) <= _FIND_LIMIT else lean.links()
            index = {link.name: link.index for link in links}
            for op in ops:
                missing = next((n for n in (op.name, op.bridge) if n not in index), None)
                if missing:
                    failed.append((op, f"device {missing} does not exist"))
                else:
                    todo.append((op, rtnl.LinkChange(index[op.name], master=index[op.bridge], mtu=op.mtu, up=True)))
            codes = lean.set_links([change for _, change in todo])
        except (OSError, DataplaneError) as err:  # the socket is in an unknown state: start a new one next time
            if self._rtnl is not None:
                self._rtnl.close()
                self._rtnl = None
            return [(op, str(err)) for op in ops]
        return failed + [(op, os.strerror(code)) for (op, _), code in zip(todo, codes, strict=True) if code]

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
