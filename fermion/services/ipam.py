"""Address management: subnet geometry (pure) and allocation (pick a candidate, insert, retry on conflict)."""

from __future__ import annotations

import random
import socket
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import netaddr
from sqlalchemy import Connection, bindparam, select

from fermion.allocation import first_free, pick_low_free
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import insert_if_absent, insert_many_if_absent
from fermion.errors import BadRequest, Conflict, InvalidInput

_ENUMERATE_LIMIT = 1 << 16  # pools up to this size are scanned; larger ones are sampled
_ATTEMPTS = 64
_WINDOW = 256  # a single address is picked among about the lowest this many free ones
_a = m.ip_allocations.c
_TAKEN = Prepared(select(_a.ip_address).where(_a.subnet_id == bindparam("b_subnet")))
_OWNERS = select(_a.ip_address, _a.port_id).where(_a.network_id == bindparam("b_network"),
                                                  _a.ip_address.in_(bindparam("b_ips", expanding=True)))


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


@dataclass
class Want:
    """An address a port asks for: `ip` itself, or any address from the first of `subnets` with room."""

    port_id: str
    subnets: list[dict[str, Any]]
    ip: str | None = None
    got: dict[str, str] | None = None  # {"subnet_id", "ip_address"} once allocated


def check_specific(subnet: dict[str, Any], ip: str, may_use_gateway: bool) -> None:
    """A requested address must lie in the subnet (and not be its gateway, but for routers)."""
    net = netaddr.IPNetwork(subnet["cidr"])
    addr = netaddr.IPAddress(ip)
    first, last = (net.first, net.last) if net.version == 6 else usable_range(net)
    if addr not in net or not first <= addr.value <= last:
        raise BadRequest(f"IP address {ip} is not a valid IP for the specified subnet.", type="InvalidIpForSubnet")
    if ip == subnet["gateway_ip"] and not may_use_gateway:
        raise _in_use(subnet, ip)


def _in_use(subnet: dict[str, Any], ip: str) -> Conflict:
    return Conflict(f"IP address {ip} already allocated in subnet {subnet['id']}", type="IpAddressAlreadyAllocated")


def _exhausted(subnet: dict[str, Any]) -> Conflict:
    return Conflict(f"No more IP addresses available for subnet {subnet['id']}.", type="IpAddressGenerationFailure")


@dataclass
class _Pick:
    value: int
    want: Want
    subnet: dict[str, Any]
    ip: str


class Allocator:
    """Hands out addresses. The ip_allocations primary key (network_id, ip_address) settles races.

    All the addresses of one call (a bulk create's ports) are picked together, from one read of what is
    taken, and inserted in ascending (network, version, address) order; conflicts are picked again above
    the highest address held. A transaction that waits on another's uncommitted address therefore only
    waits for a higher one, and concurrent bulk creates on one network cannot deadlock.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def allocate(self, conn: Connection, wants: list[Want]) -> None:
        """Fill each want's `got`; Conflict when an address is taken or a pool is full (the caller's
        transaction then rolls back, keeping none of them)."""
        groups: dict[tuple[str, int], list[Want]] = defaultdict(list)
        for want in wants:
            first = want.subnets[0]
            groups[(first["network_id"], first["ip_version"])].append(want)
        for key in sorted(groups):
            self._allocate_group(conn, groups[key])

    def _allocate_group(self, conn: Connection, wants: list[Want]) -> None:
        pending, floor = wants, None
        for _ in range(_ATTEMPTS):
            picks = sorted(self._pick(conn, pending, floor), key=lambda p: p.value)
            left = []
            for pick, won in zip(picks, self._insert(conn, picks), strict=True):
                if won:
                    pick.want.got = {"subnet_id": pick.subnet["id"], "ip_address": pick.ip}
                    floor = pick.value if floor is None else max(floor, pick.value)
                elif pick.want.ip is not None:
                    raise _in_use(pick.subnet, pick.ip)
                else:
                    left.append(pick.want)  # taken meanwhile by another transaction: pick again
            if not left:
                return
            pending = left
        raise _exhausted(pending[0].subnets[-1])

    def _pick(self, conn: Connection, wants: list[Want], floor: int | None) -> list[_Pick]:
        """A candidate for every want: requested addresses as they are, the others from a fresh read of
        what is taken, above `floor` where there is room."""
        picks, reserved = [], set()
        for want in wants:
            if want.ip is not None:
                value = _to_int(want.ip)
                reserved.add(value)
                picks.append(_Pick(value, want, want.subnets[0], want.ip))
        demand: Counter[str] = Counter(s["id"] for w in wants if w.ip is None for s in w.subnets)
        free: dict[str, list[int]] = {}
        for want in wants:
            if want.ip is not None:
                continue
            for subnet in want.subnets:
                if subnet["id"] not in free:  # popped from the end: the lowest for the first want
                    free[subnet["id"]] = sorted(self._candidates(conn, subnet, demand[subnet["id"]], floor, reserved),
                                                reverse=True)
                if free[subnet["id"]]:
                    value = free[subnet["id"]].pop()
                    picks.append(_Pick(value, want, subnet, str(netaddr.IPAddress(value, subnet["ip_version"]))))
                    break
            else:
                raise _exhausted(want.subnets[-1])
        return picks

    def _candidates(self, conn: Connection, subnet: dict[str, Any], count: int, floor: int | None,
                    reserved: set[int]) -> list[int]:
        """Up to `count` free addresses of the subnet: a run of them from a random place among the lowest
        free ones, so that concurrent creates seldom pick the same."""
        pools = [(_to_int(p["start"]), _to_int(p["end"])) for p in subnet["allocation_pools"]]
        above = _above(pools, floor)
        if sum(e - s + 1 for s, e in pools) > _ENUMERATE_LIMIT:
            # too large to read what is taken: random addresses (a collision is rare and picked again)
            ranges = above or pools
            return [self.rng.randint(s, e) for s, e in (self.rng.choice(ranges) for _ in range(count))]
        taken = {_to_int(r[0]) for r in _TAKEN.rows(conn, {"b_subnet": subnet["id"]})} | reserved
        if count == 1 and floor is None:
            one = pick_low_free(pools, taken, self.rng)
            return [] if one is None else [one]
        window = max(_WINDOW, 4 * count)
        free = first_free(above, taken, count + window)
        if len(free) < count:
            free = first_free(pools, taken, count + window)  # no room above what this call holds: wrap
        if len(free) <= count:
            return free
        start = self.rng.randrange(len(free) - count + 1)
        return free[start:start + count]

    def _insert(self, conn: Connection, picks: list[_Pick]) -> list[bool]:
        """Insert the picks in their order; whether each went in."""
        rows = [{"port_id": p.want.port_id, "subnet_id": p.subnet["id"], "network_id": p.subnet["network_id"],
                 "ip_address": p.ip} for p in picks]
        if len(rows) == 1:
            return [insert_if_absent(conn, m.ip_allocations, rows[0])]
        insert_many_if_absent(conn, m.ip_allocations, rows)
        owner = dict(conn.execute(_OWNERS, {"b_network": rows[0]["network_id"],
                                            "b_ips": [r["ip_address"] for r in rows]}).all())
        won, seen = [], set()
        for row in rows:
            won.append(row["ip_address"] not in seen and owner.get(row["ip_address"]) == row["port_id"])
            seen.add(row["ip_address"])  # one port asking twice for an address gets it once
        return won


def _above(pools: list[tuple[int, int]], floor: int | None) -> list[tuple[int, int]]:
    if floor is None:
        return pools
    return [(max(s, floor + 1), e) for s, e in pools if e > floor]


def _to_int(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return int.from_bytes(socket.inet_pton(family, ip), "big")
