"""Plugging a namespace into a host the way a hypervisor plugs a VM: a veth pair whose host end is the
port's tap (which the L2 agent attaches) and whose inner end carries the port's MAC.

On an Open vSwitch host (its namespace has br-int) both ends get checksum offload off: OVS's userspace
datapath forwards a veth's packets without completing their checksums (docs/kernel.md), so TCP and UDP from
DHCP servers, routers and instances would arrive with bad ones."""

from __future__ import annotations

from collections.abc import Sequence

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fermion.dataplane import DataplaneError, rtnl

# the host end is a switch port: no IPv6 link-local on it (on an OVS host each address on a port costs the
# userspace datapath a scan per packet output there: ovs._no_addresses)
NO_LINK_LOCAL = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", 1]]}]]}


def _ipr(netns: str | None) -> IPRoute:
    return IPRoute(netns=netns) if netns else IPRoute()


def plug(host_netns: str | None, host_name: str, inner_netns: str, inner_name: str, mac: str, mtu: int,
         addresses: Sequence[str] | None = None, up: bool = True) -> None:
    """Idempotent. addresses (CIDR notation) replace whatever the inner end had; None leaves them alone.
    up False: the inner end is plugged but down (the host end then has no carrier)."""
    try:
        with _ipr(inner_netns) as inner:
            found = inner.link_lookup(ifname=inner_name)
            if not found:
                with _ipr(host_netns) as host:
                    stale = host.link_lookup(ifname=host_name)
                    if stale:
                        host.link("del", index=stale[0])
                    host.link("add", ifname=host_name, kind="veth",
                              peer={"ifname": inner_name, "net_ns_fd": inner_netns})
                    host.link("set", index=host.link_lookup(ifname=host_name)[0], mtu=mtu, state="up",
                              IFLA_AF_SPEC=NO_LINK_LOCAL)
                    if host.link_lookup(ifname="br-int"):
                        no_tx_offload(host_netns, host_name)
                        no_tx_offload(inner_netns, inner_name)
                found = inner.link_lookup(ifname=inner_name)
            index = found[0]
            inner.link("set", index=index, address=mac, mtu=mtu, state="up" if up else "down")
            if addresses is not None:
                want = {(a.split("/")[0], int(a.split("/")[1])) for a in addresses}
                have = {(m.get("IFA_ADDRESS"), m["prefixlen"]) for m in inner.get_addr(index=index)
                        if m.get("IFA_ADDRESS") and not str(m.get("IFA_ADDRESS")).startswith("fe80:")}
                for ip, plen in have - want:
                    inner.addr("del", index=index, address=ip, prefixlen=plen)
                for ip, plen in want - have:
                    inner.addr("add", index=index, address=ip, prefixlen=plen)
    except NetlinkError as err:
        raise DataplaneError(f"plugging {inner_name} into {inner_netns}: {err}") from err


def no_tx_offload(netns: str | None, name: str) -> None:
    """`ethtool -K NAME tx off` (OVS netdev datapath), without two processes per device; errors ignored."""
    try:
        kernel = rtnl.Rtnl(netns)
    except DataplaneError:
        return
    try:
        kernel.tx_checksum_off(name)
    finally:
        kernel.close()


def other_devices(netns: str, keep: str) -> list[str]:
    """Devices in a namespace besides lo and keep (left over from an earlier port)."""
    with _ipr(netns) as ipr:
        return [n for n in (m.get("IFLA_IFNAME") for m in ipr.get_links()) if n not in ("lo", keep)]


def delete(netns: str | None, name: str) -> None:
    with _ipr(netns) as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as err:
                raise DataplaneError(f"deleting {name}: {err}") from err
