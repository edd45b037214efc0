"""Address management: subnet geometry (pure) and allocation (pick a candidate, insert, retry on conflict)."""

from __future__ import annotations

import random
import socket
from typing import Any

import netaddr
from sqlalchemy import Connection, bindparam, select

from fermion.allocation import pick_low_free
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, InvalidInput

_ENUMERATE_LIMIT = 1 << 16  # pools up to this size are scanned; larger ones are sampled
_ATTEMPTS = 64
_TAKEN = Prepared(select(m.ip_allocations.c.ip_address).where(m.ip_allocations.c.subnet_id == bindparam("b_subnet")))


def default_gateway(net: netaddr.IPNetwork) -> str | None:
    if net.version == 4 and net.prefixlen >= 31:
        return None
    return str(netaddr.IPAddress(net.first + 1, net.version))


def usable_range(net: netaddr.IPNetwork) -> tuple[int, int]:
    """First and last address that may be handed out (v4 drops network and broadcast)."""
    if net.version == 4 and net.prefixlen < 31:
        return net.first + 1, net.last - 1
    if net.version == 6:
        return net.first + 1, net.last  # the subnet-router anycast address stays free
    return net.first, net.last


def default_pools(net: netaddr.IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    first, last = usable_range(net)
    pool = netaddr.IPSet(netaddr.IPRange(first, last))
    if gateway is not None:
        pool.remove(gateway)
    out = []
    for r in pool.iter_ipranges():
        out.append({"start": str(netaddr.IPAddress(r.first, net.version)),
                    "end": str(netaddr.IPAddress(r.last, net.version))})
    return out


def validate_pools(net: netaddr.IPNetwork, pools: list[dict[str, str]], gateway: str | None) -> None:
    first, last = usable_range(net)
    ranges = []
    for pool in pools:
        start, end = netaddr.IPAddress(pool["start"]), netaddr.IPAddress(pool["end"])
        if start.version != net.version or end.version != net.version or start > end:
            raise BadRequest(f"The allocation pool {pool['start']}-{pool['end']} is not valid.",
                             type="InvalidAllocationPool")
        if start.value < first or end.value > last:
            raise BadRequest(f"The allocation pool {pool['start']}-{pool['end']} spans beyond the subnet "
                             f"cidr {net}.", type="OutOfBoundsAllocationPool")
        ranges.append(netaddr.IPRange(start, end))
    ranges.sort(key=lambda r: r.first)
    for a, b in zip(ranges, ranges[1:], strict=False):
        if b.first <= a.last:
            raise Conflict(f"Found overlapping allocation pools: {a} and {b} for subnet {net}.",
                           type="OverlappingAllocationPools")
    if gateway is not None:
        gw = netaddr.IPAddress(gateway)
        for r in ranges:
            if gw in r:
                raise Conflict(f"Gateway ip {gateway} conflicts with allocation pool {r}.",
                               type="GatewayConflictWithAllocationPools")


def validate_gateway(net: netaddr.IPNetwork, gateway: str) -> None:
    gw = netaddr.IPAddress(gateway)
    if gw.version != net.version:
        raise InvalidInput(f"Gateway IP version inconsistent with allocation pool version: {gateway}")
    first, last = (net.first, net.last) if net.version == 6 else usable_range(net)
    if gw not in net or not first <= gw.value <= last:
        raise InvalidInput(f"Gateway is not valid on subnet: {gateway} is outside {net}.")


def eui64(cidr: str, mac: str) -> str:
    net = netaddr.IPNetwork(cidr)
    return str(netaddr.EUI(mac).ipv6(net.network))


def is_auto_address(subnet: dict[str, Any]) -> bool:
    return subnet["ip_version"] == 6 and subnet["ipv6_address_mode"] in ("slaac", "dhcpv6-stateless")


class Allocator:
    """Hands out addresses. The ip_allocations primary key (network_id, ip_address) settles races."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def _insert(self, conn: Connection, port_id: str, subnet: dict[str, Any], ip: str) -> bool:
        return insert_if_absent(conn, m.ip_allocations, {"port_id": port_id, "subnet_id": subnet["id"],
                                                         "network_id": subnet["network_id"], "ip_address": ip})

    def allocate_specific(self, conn: Connection, port_id: str, subnet: dict[str, Any], ip: str,
                          may_use_gateway: bool) -> str:
        net = netaddr.IPNetwork(subnet["cidr"])
        addr = netaddr.IPAddress(ip)
        first, last = (net.first, net.last) if net.version == 6 else usable_range(net)
        if addr not in net or not first <= addr.value <= last:
            raise BadRequest(f"IP address {ip} is not a valid IP for the specified subnet.",
                             type="InvalidIpForSubnet")
        if ip == subnet["gateway_ip"] and not may_use_gateway:
            raise Conflict(f"IP address {ip} already allocated in subnet {subnet['id']}",
                           type="IpAddressAlreadyAllocated")
        if not self._insert(conn, port_id, subnet, ip):
            raise Conflict(f"IP address {ip} already allocated in subnet {subnet['id']}",
                           type="IpAddressAlreadyAllocated")
        return ip

    def allocate_any(self, conn: Connection, port_id: str, subnet: dict[str, Any]) -> str:
        pools = [(_to_int(p["start"]), _to_int(p["end"])) for p in subnet["allocation_pools"]]
        size = sum(e - s + 1 for s, e in pools)
        version = subnet["ip_version"]
        for _ in range(_ATTEMPTS):
            if size <= _ENUMERATE_LIMIT:
                taken = {_to_int(r[0]) for r in _TAKEN.rows(conn, {"b_subnet": subnet["id"]})}
                found = pick_low_free(pools, taken, self.rng)
                if found is None:
                    break
                cand = found
            else:
                s, e = self.rng.choice(pools)
                cand = self.rng.randint(s, e)
            ip = str(netaddr.IPAddress(cand, version))
            if self._insert(conn, port_id, subnet, ip):
                return ip
        raise Conflict(f"No more IP addresses available for subnet {subnet['id']}.",
                       type="IpAddressGenerationFailure")


def _to_int(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return int.from_bytes(socket.inet_pton(family, ip), "big")
