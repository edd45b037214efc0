"""Connection-tracking entries of one namespace over ctnetlink: list them, delete some.

Only what the firewall needs to cut connections its rules no longer allow: the zone and the original
direction's tuple of each entry.  Deletion sends that tuple back exactly as the kernel gave it, so every
address family and protocol the kernel tracks is handled alike.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fermion.dataplane import DataplaneError, rtnl

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 1, 2
CTA_TUPLE_ORIG, CTA_ZONE = 1, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 5, 6
CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE = 8, 9
NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, resource id (big endian, unused here)
_BE16 = struct.Struct(">H")
_BATCH = 128  # delete requests per datagram


@dataclass(frozen=True)
class Flow:
    """One tracked connection, as its first packet (the original direction) saw it."""

    zone: int
    version: int  # 4 | 6
    protocol: int
    src: str
    dst: str
    sport: int | None = None  # ports: tcp, udp, sctp, dccp, udplite
    dport: int | None = None
    icmp_type: int | None = None  # icmp and icmpv6
    icmp_code: int | None = None
    tuple_attr: bytes = b""  # CTA_TUPLE_ORIG as received: what a delete names


def _parse_tuple(data: bytes, start: int, end: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, s, e in rtnl.attributes(data, start, end):
        if kind == CTA_TUPLE_IP:
            for ak, a_s, a_e in rtnl.attributes(data, s, e):
                if ak in (CTA_IP_V4_SRC, CTA_IP_V6_SRC):
                    out["src"] = str(ipaddress.ip_address(data[a_s:a_e]))
                    out["version"] = 4 if ak == CTA_IP_V4_SRC else 6
                elif ak in (CTA_IP_V4_DST, CTA_IP_V6_DST):
                    out["dst"] = str(ipaddress.ip_address(data[a_s:a_e]))
        elif kind == CTA_TUPLE_PROTO:
            for pk, p_s, _ in rtnl.attributes(data, s, e):
                if pk == CTA_PROTO_NUM:
                    out["protocol"] = data[p_s]
                elif pk == CTA_PROTO_SRC_PORT:
                    out["sport"] = _BE16.unpack_from(data, p_s)[0]
                elif pk == CTA_PROTO_DST_PORT:
                    out["dport"] = _BE16.unpack_from(data, p_s)[0]
                elif pk in (CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMPV6_TYPE):
                    out["icmp_type"] = data[p_s]
                elif pk in (CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMPV6_CODE):
                    out["icmp_code"] = data[p_s]
    return out


def parse(data: bytes, offset: int, length: int) -> Flow | None:
    """One IPCTNL_MSG_CT_NEW message of a dump; None for an entry without addresses (never expected)."""
    zone = 0
    fields: dict[str, object] = {}
    raw = b""
    start = offset + rtnl.HDR.size + NFGEN.size
    for kind, s, e in rtnl.attributes(data, start, offset + length):
        if kind == CTA_TUPLE_ORIG:
            fields = _parse_tuple(data, s, e)
            raw = data[s - 4:e]
        elif kind == CTA_ZONE:
            zone = _BE16.unpack_from(data, s)[0]
    if "src" not in fields or "dst" not in fields:
        return None
    return Flow(zone=zone, tuple_attr=raw, **fields)  # type: ignore[arg-type]


def _message(kind: int, flags: int, seq: int, family: int, body: bytes) -> bytes:
    payload = NFGEN.pack(family, 0, 0) + body
    return rtnl.HDR.pack(rtnl.HDR.size + len(payload), NFNL_SUBSYS_CTNETLINK << 8 | kind, flags, seq, 0) + payload


class Conntrack:
    """The conntrack table of one namespace (None: this process's). Not thread-safe; the caller serializes."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._sock: socket.socket | None = None
        self._seq = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = rtnl.open_socket(self.netns, 0, 1 << 21, NETLINK_NETFILTER)
        return self._sock

    def _next(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _messages(self) -> Iterator[tuple[int, int, bytes, int, int]]:
        data = self._socket().recv(1 << 20)
        offset = 0
        while offset + rtnl.HDR.size <= len(data):
            length, mtype, _, seq, _ = rtnl.HDR.unpack_from(data, offset)
            if length < rtnl.HDR.size:
                break
            yield mtype, seq, data, offset, length
            offset += (length + 3) & ~3

    def _where(self) -> str:
        return self.netns or "root namespace"

    def flows(self, zones: Iterable[int] | None = None) -> list[Flow]:
        """Every tracked connection (IPv4 and IPv6), or those in the given zones."""
        wanted = None if zones is None else set(zones)
        seq = self._next()
        try:
            sock = self._socket()
            sock.send(_message(IPCTNL_MSG_CT_GET, rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP, seq, socket.AF_UNSPEC, b""))
            out: list[Flow] = []
            while True:
                for mtype, mseq, data, offset, length in self._messages():
                    if mseq != seq:
                        continue
                    if mtype == rtnl.NLMSG_DONE:
                        return out
                    if mtype == rtnl.NLMSG_ERROR:
                        code = -rtnl.ERR.unpack_from(data, offset + rtnl.HDR.size)[0]
                        if code == 0:
                            continue
                        raise DataplaneError(f"conntrack dump in {self._where()}: {os.strerror(code)}")
                    flow = parse(data, offset, length)
                    if flow is not None and (wanted is None or flow.zone in wanted):
                        out.append(flow)
        except OSError as err:
            self.close()  # a dump interrupted midway leaves messages behind: start afresh next time
            raise DataplaneError(f"conntrack dump in {self._where()}: {err}") from err

    def delete(self, flows: Iterable[Flow]) -> int:
        """Delete these entries; return how many were deleted (one already gone is not an error)."""
        todo = [f for f in flows if f.tuple_attr]
        deleted = 0
        try:
            for first in range(0, len(todo), _BATCH):
                pending: set[int] = set()
                chunk = bytearray()
                for flow in todo[first:first + _BATCH]:
                    seq = self._next()
                    pending.add(seq)
                    body = flow.tuple_attr + b"\0" * (-len(flow.tuple_attr) % 4)
                    if flow.zone:
                        body += rtnl.attr(CTA_ZONE, _BE16.pack(flow.zone))
                    family = socket.AF_INET if flow.version == 4 else socket.AF_INET6
                    chunk += _message(IPCTNL_MSG_CT_DELETE, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK, seq, family, body)
                self._socket().send(bytes(chunk))
                while pending:
                    for mtype, seq, data, offset, _ in self._messages():
                        if mtype != rtnl.NLMSG_ERROR or seq not in pending:
                            continue
                        pending.discard(seq)
                        code = -rtnl.ERR.unpack_from(data, offset + rtnl.HDR.size)[0]
                        if code == 0:
                            deleted += 1
                        elif code != errno.ENOENT:
                            raise DataplaneError(f"conntrack delete in {self._where()}: {os.strerror(code)}")
        except OSError as err:
            self.close()
            raise DataplaneError(f"conntrack delete in {self._where()}: {err}") from err
        return deleted
