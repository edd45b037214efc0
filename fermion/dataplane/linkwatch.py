"""Link events (RTM_NEWLINK/RTM_DELLINK) of one network namespace, from a plain netlink socket: every
datagram is parsed in full, so no event waits in a library buffer while select() sleeps."""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from fermion.dataplane import rtnl

RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME, IFLA_MASTER = 3, 10


@dataclass(frozen=True)
class LinkEvent:
    deleted: bool
    name: str
    master: int | None


def open_socket(netns: str | None) -> socket.socket:
    """A netlink socket subscribed to link events inside netns (None: this process's namespace)."""
    return rtnl.open_socket(netns, RTMGRP_LINK)


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
    while offset + rtnl.HDR.size <= len(data):
        length, kind, _, _, _ = rtnl.HDR.unpack_from(data, offset)
        if length < rtnl.HDR.size:
            return
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            name, master = "", None
            for atype, start, end in rtnl.attributes(data, offset + rtnl.HDR.size + rtnl.IFINFO.size, offset + length):
                if atype == IFLA_IFNAME:
                    name = data[start:end].rstrip(b"\0").decode(errors="replace")
                elif atype == IFLA_MASTER and end - start >= 4:
                    master = struct.unpack_from("=I", data, start)[0] or None
            yield LinkEvent(deleted=kind == RTM_DELLINK, name=name, master=master)
        offset += (length + 3) & ~3
