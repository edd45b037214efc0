"""Run inside an instance's namespace: talk 802.1Q-tagged frames with raw sockets (this kernel cannot make
VLAN devices). `python vlan_probe.py IFACE VID SRC_MAC SRC_IP DST_IP`: an ARP request for DST_IP tagged VID,
then an ICMP echo to the MAC that answered; prints "arp <mac>" and "icmp <ttl>" for the tagged replies
received (the kernel strips the tag on receive; PACKET_AUXDATA gives it back), exits 1 when one is missing."""

from __future__ import annotations

import socket
import struct
import sys
import time

ETH_P_ALL, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP = 0x0003, 0x8100, 0x0806, 0x0800
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
AUX = struct.Struct("IIIHHHH")  # struct tpacket_auxdata


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def tagged(dst: bytes, src: bytes, vid: int, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!HHH", ETH_P_8021Q, vid, ethertype) + payload


def receive(sock: socket.socket, vid: int, want: int, deadline: float) -> bytes | None:
    """The next frame of ethertype want that arrived tagged vid (its bytes without the tag)."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            frame, anc, _, _ = sock.recvmsg(65535, socket.CMSG_SPACE(AUX.size))
        except TimeoutError:
            return None
        for level, kind, data in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUX.size:
                status, _, _, _, _, tci, _ = AUX.unpack(data[:AUX.size])
                if status & TP_STATUS_VLAN_VALID and tci & 0xFFF == vid and frame[12:14] == struct.pack("!H", want):
                    return frame
    return None


def main(iface: str, vid: int, src_mac: str, src_ip: str, dst_ip: str) -> int:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    me, src, dst = mac(src_mac), socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, me, src, b"\0" * 6, dst)
    peer = None
    for _ in range(3):
        sock.send(tagged(b"\xff" * 6, me, vid, ETH_P_ARP, arp))
        reply = receive(sock, vid, ETH_P_ARP, time.monotonic() + 2)
        if reply is not None and reply[20:22] == b"\0\2" and reply[28:32] == dst:
            peer = reply[22:28]
            break
    if peer is None:
        print("no tagged ARP reply")
        return 1
    print("arp", peer.hex(":"))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"fermion-trunk"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    for _ in range(3):
        sock.send(tagged(peer, me, vid, ETH_P_IP, header + icmp))
        reply = receive(sock, vid, ETH_P_IP, time.monotonic() + 2)
        if reply is not None and reply[23] == 1 and reply[26:30] == dst and reply[34] == 0:
            print("icmp", reply[22])
            return 0
    print("no tagged ICMP reply")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]))
