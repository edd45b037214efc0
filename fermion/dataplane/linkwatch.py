"""Link events (RTM_NEWLINK/RTM_DELLINK) of one network namespace, from a plain netlink socket: every
datagram is parsed in full, so no event waits in a library buffer while select() sleeps."""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fermion.dataplane import DataplaneError

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME, IFLA_MASTER = 3, 10
CLONE_NEWNET = 0x40000000
_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_ATTR = struct.Struct("=HH")


@dataclass(frozen=True)
class LinkEvent:
    deleted: bool
    name: str
    master: int | None


def open_socket(netns: str | None) -> socket.socket:
    """A netlink socket subscribed to link events inside netns (None: this process's namespace). setns()
    changes only the calling thread's namespace, so a short-lived thread does it."""
    if netns is None:
        return _bound()
    out: dict[str, object] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            out["sock"] = _bound()
        except OSError as err:
            out["error"] = err

    t = threading.Thread(target=work, name=f"fermion-linkwatch-{netns}")
    t.start()
    t.join()
    if "error" in out:
        raise DataplaneError(f"watching links in {netns}: {out['error']}")
    return out["sock"]  # type: ignore[return-value]


def _bound() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, RTMGRP_LINK))
    return sock


def read(sock: socket.socket, timeout: float) -> list[LinkEvent]:
    """Events available within timeout (empty list on timeout). An overflowed socket buffer raises
    OSError(ENOBUFS): the caller must then assume anything may have changed."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return []
    events: list[LinkEvent] = []
    while True:
        try:
            data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return events
        events.extend(parse(data))


def parse(data: bytes) -> Iterator[LinkEvent]:
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, _, _, _ = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            return
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            name, master = "", None
            pos = offset + _HDR.size + _IFINFO.size
            end = offset + length
            while pos + _ATTR.size <= end:
                alen, atype = _ATTR.unpack_from(data, pos)
                if alen < _ATTR.size:
                    break
                value = data[pos + _ATTR.size: pos + alen]
                if atype == IFLA_IFNAME:
                    name = value.rstrip(b"\0").decode(errors="replace")
                elif atype == IFLA_MASTER and len(value) >= 4:
                    master = struct.unpack_from("=I", value)[0] or None
                pos += (alen + 3) & ~3
            yield LinkEvent(deleted=kind == RTM_DELLINK, name=name, master=master)
        offset += (length + 3) & ~3
