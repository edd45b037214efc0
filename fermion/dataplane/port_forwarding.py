"""Floating IP port forwardings in a router namespace: `table ip fermion_pfwd`, replaced in the same `nft -f`
transaction as the router's NAT table (dataplane/router.py), so a change never drops established connections.

nftables cannot add an offset to a port, so an N:N range becomes one element per port in a map keyed by
(floating IP, protocol, external port) whose value is (fixed IP, internal port); an N:1 range is one rule.
Replies are translated back by conntrack. The floating IP itself is a /32 on qg- so the router answers ARP
for it (router.desired_addresses)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

TABLE = "fermion_pfwd"


@dataclass(frozen=True)
class Forward:
    floating_ip: str
    protocol: str  # tcp | udp
    external: tuple[int, int]  # first and last port
    internal_ip: str
    internal: tuple[int, int]  # as long as external, or one port (N:1)


def ports(text: str) -> tuple[int, int]:
    """ "80" or "8000:8010" -> (first, last)."""
    first, _, last = text.partition(":")
    return int(first), int(last or first)


def valid(forwards: Iterable[Forward]) -> list[Forward]:
    """The IPv4 TCP/UDP forwardings whose ranges make sense, sorted and without duplicates."""
    out = set()
    for f in forwards:
        sizes = (f.external[1] - f.external[0], f.internal[1] - f.internal[0])
        if f.protocol in ("tcp", "udp") and netaddr.valid_ipv4(f.floating_ip) and netaddr.valid_ipv4(f.internal_ip) \
                and 1 <= f.external[0] <= f.external[1] <= 65535 and 1 <= f.internal[0] <= f.internal[1] <= 65535 \
                and sizes[1] in (0, sizes[0]):
            out.add(f)
    return sorted(out, key=lambda f: (netaddr.IPAddress(f.floating_ip), f.protocol, f.external))


def addresses(forwards: Iterable[Forward]) -> frozenset[str]:
    """The floating IPs to carry on qg- as /32."""
    return frozenset(f"{f.floating_ip}/32" for f in valid(forwards))


def render(forwards: Iterable[Forward]) -> list[str]:
    """The table as nft input lines; empty when there is nothing to forward."""
    wanted = valid(forwards)
    if not wanted:
        return []
    elements: dict[tuple[str, str, int], str] = {}
    rules: list[str] = []
    for f in wanted:
        if f.internal[0] == f.internal[1] and f.external[0] != f.external[1]:  # N:1
            rules.append(f"    ip daddr {f.floating_ip} {f.protocol} dport {f.external[0]}-{f.external[1]} "
                         f"dnat ip to {f.internal_ip}:{f.internal[0]}")
            continue
        for offset in range(f.external[1] - f.external[0] + 1):
            # the first forwarding wins a port that two claim (the API refuses overlaps)
            elements.setdefault((f.floating_ip, f.protocol, f.external[0] + offset),
                                f"{f.internal_ip} . {f.internal[0] + offset}")
    lines = [f"table ip {TABLE} {{",
             "  map pf_dnat { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"]
    if elements:
        lines.append("    elements = { " + ", ".join(f"{ip} . {proto} . {port} : {to}"
                                                     for (ip, proto, port), to in elements.items()) + " }")
    lines.append("  }")
    for chain, hook, priority in (("prerouting", "prerouting", "dstnat"), ("output", "output", "-100")):
        lines += [f"  chain {chain} {{", f"    type nat hook {hook} priority {priority}; policy accept;",
                  "    dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat", *rules, "  }"]
    return [*lines, "}"]
