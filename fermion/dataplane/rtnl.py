"""A small rtnetlink client for the bulk paths where pyroute2's generic decoding dominates: dumping every
link of a namespace (only the attributes we read are parsed) and changing many links at once (requests
pipelined in one datagram, one ack each).  pyroute2 stays in charge of everything else."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fermion.dataplane import DataplaneError

NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK = 16, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 3, 4, 10, 18, 20
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_VXLAN_ID = 1, 2, 1
IFF_UP = 0x1
HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
ERR = struct.Struct("=i")
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17
_BATCH = 256  # requests per datagram: their acks fit the receive buffer many times over


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    kind: str  # IFLA_INFO_KIND, "device" for links without one
    mtu: int
    up: bool
    master: int | None  # index of the master device
    alias: str | None
    vni: int | None  # vxlan only


@dataclass(frozen=True)
class LinkChange:
    index: int
    master: int | None = None  # enslave to this index (0: release)
    mtu: int | None = None
    up: bool | None = None


def open_socket(netns: str | None, groups: int = 0, rcvbuf: int = 1 << 20,
                protocol: int = NETLINK_ROUTE) -> socket.socket:
    """A netlink socket (rtnetlink unless protocol says otherwise) inside netns (None: this process's
    namespace), subscribed to groups. setns() changes only the calling thread's namespace, so a
    short-lived thread does it; the socket stays in the namespace it was made in."""
    if netns is None:
        return _bound(groups, rcvbuf, protocol)
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
            out["sock"] = _bound(groups, rcvbuf, protocol)
        except OSError as err:
            out["error"] = err

    t = threading.Thread(target=work, name=f"fermion-rtnl-{netns}")
    t.start()
    t.join()
    if "error" in out:
        raise DataplaneError(f"netlink socket in {netns}: {out['error']}")
    return out["sock"]  # type: ignore[return-value]


def _bound(groups: int, rcvbuf: int, protocol: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((0, groups))
    return sock


def attributes(data: bytes | memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type without flags, start, end) of each netlink attribute in data[pos:end]."""
    while pos + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, pos)
        if length < _ATTR.size:
            return
        yield kind & 0x3FFF, pos + _ATTR.size, pos + length
        pos += (length + 3) & ~3


def _text(data: bytes, start: int, end: int) -> str:
    return data[start:end].rstrip(b"\0").decode(errors="replace")


def parse_link(data: bytes, offset: int, length: int) -> LinkInfo:
    _, _, index, flags, _ = IFINFO.unpack_from(data, offset + HDR.size)
    name, kind, mtu, master, alias, vni = "", "device", 0, None, None, None
    for atype, start, end in attributes(data, offset + HDR.size + IFINFO.size, offset + length):
        if atype == IFLA_IFNAME:
            name = _text(data, start, end)
        elif atype == IFLA_MTU:
            mtu = _U32.unpack_from(data, start)[0]
        elif atype == IFLA_MASTER:
            master = _U32.unpack_from(data, start)[0] or None
        elif atype == IFLA_IFALIAS:
            alias = _text(data, start, end)
        elif atype == IFLA_LINKINFO:
            for itype, istart, iend in attributes(data, start, end):
                if itype == IFLA_INFO_KIND:
                    kind = _text(data, istart, iend)
                elif itype == IFLA_INFO_DATA and kind == "vxlan":
                    for dtype, dstart, _ in attributes(data, istart, iend):
                        if dtype == IFLA_VXLAN_ID:
                            vni = _U32.unpack_from(data, dstart)[0]
    return LinkInfo(index, name, kind, mtu, bool(flags & IFF_UP), master, alias, vni)


def attr(kind: int, payload: bytes) -> bytes:
    body = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


class Rtnl:
    """One rtnetlink socket in one namespace; not thread-safe (the caller serializes)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._sock = open_socket(netns)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def _next(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _messages(self) -> Iterator[tuple[int, int, bytes, int, int]]:
        """(type, seq, datagram, offset, length) of every message of the next datagram."""
        data = self._sock.recv(1 << 17)
        offset = 0
        while offset + HDR.size <= len(data):
            length, mtype, _, seq, _ = HDR.unpack_from(data, offset)
            if length < HDR.size:
                break
            yield mtype, seq, data, offset, length
            offset += (length + 3) & ~3

    def _dump(self, request: int, body: bytes, reply: int, what: str) -> Iterator[tuple[bytes, int, int]]:
        """(datagram, offset, length) of each reply message of one dump request."""
        seq = self._next()
        self._sock.send(HDR.pack(HDR.size + len(body), request, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        while True:
            for mtype, mseq, data, offset, length in self._messages():
                if mseq != seq:
                    continue  # a late ack of an earlier request
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code = -ERR.unpack_from(data, offset + HDR.size)[0]
                    raise DataplaneError(f"{what} dump in {self.netns or 'root namespace'}: {os.strerror(code)}")
                if mtype == reply:
                    yield data, offset, length

    def links(self) -> list[LinkInfo]:
        return [parse_link(data, offset, length) for data, offset, length in
                self._dump(RTM_GETLINK, IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), RTM_NEWLINK, "link")]

    def ipv6_addressed(self) -> set[int]:
        """The indexes of the links that have an IPv6 address (one dump of the namespace's IPv6 addresses)."""
        return {IFADDR.unpack_from(data, offset + HDR.size)[4] for data, offset, _ in
                self._dump(RTM_GETADDR, IFADDR.pack(socket.AF_INET6, 0, 0, 0, 0), RTM_NEWADDR, "address")}

    def find(self, names: Sequence[str]) -> dict[str, LinkInfo]:
        """The named links that exist, asked for one by one in a single datagram (no dump of the rest)."""
        pending: dict[int, str] = {}
        chunk = bytearray()
        for name in names:
            seq = self._next()
            pending[seq] = name
            body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
            chunk += HDR.pack(HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body
        found: dict[str, LinkInfo] = {}
        if chunk:
            self._sock.send(bytes(chunk))
        while pending:
            for mtype, seq, data, offset, length in self._messages():
                if seq not in pending:
                    continue
                name = pending.pop(seq)
                if mtype == RTM_NEWLINK:
                    found[name] = parse_link(data, offset, length)
        return found

    def set_links(self, changes: Sequence[LinkChange]) -> list[int]:
        """Apply each change; return the errno of each (0: done). Requests go out in batches, each batch
        one datagram the kernel works through in order, acking every request."""
        results = [0] * len(changes)
        for first in range(0, len(changes), _BATCH):
            pending: dict[int, int] = {}
            chunk = bytearray()
            for i in range(first, min(first + _BATCH, len(changes))):
                change = changes[i]
                seq = self._next()
                pending[seq] = i
                flags = IFF_UP if change.up else 0
                body = IFINFO.pack(socket.AF_UNSPEC, 0, change.index, flags, 0 if change.up is None else IFF_UP)
                if change.mtu is not None:
                    body += attr(IFLA_MTU, _U32.pack(change.mtu))
                if change.master is not None:
                    body += attr(IFLA_MASTER, _U32.pack(change.master))
                chunk += HDR.pack(HDR.size + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body
            self._sock.send(bytes(chunk))
            while pending:
                for mtype, seq, data, offset, _ in self._messages():
                    if mtype == NLMSG_ERROR and seq in pending:
                        results[pending.pop(seq)] = -ERR.unpack_from(data, offset + HDR.size)[0]
        return results

    def tx_checksum_off(self, name: str) -> int:
        """`ethtool -K NAME tx off` (the legacy ioctl, which drops TSO with it) without a process per device;
        an rtnetlink socket takes device ioctls for its namespace. Returns the errno (0: done)."""
        value = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_STXCSUM, 0))
        ifreq = bytearray(struct.pack("16sP", name.encode()[:15], ctypes.addressof(value)).ljust(40, b"\0"))
        try:
            fcntl.ioctl(self._sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as err:
            return err.errno or -1
        return 0

