"""Emulated hosts: one namespace per host on a shared underlay (198.18.0.0/24, a bridge in its own
namespace), a provider wire for flat networks (physnet1 on each host's eth1; a host given a physical network
of its own has its eth1 on that network's wire instead, as racks of a routed network), and the external
network's wire (physnet "external" on each host's eth2) shared with an "external" namespace that plays the
internet (198.19.0.1/24). Nothing touches the root namespace.

An Open vSwitch host runs its own ovsdb-server and ovs-vswitchd (netdev datapath) in its namespace, with its
wires on OVS bridges as an operator would set them up: the underlay address on br-ul (userspace tunnels route
through OVS), eth1 on br-eth1 and eth2 on br-ex (the agent's bridge mappings)."""

from __future__ import annotations

from pathlib import Path

from fermion.dataplane import netns, ovs, veth
from fermion.lab.state import LabHost, LabState

UNDERLAY = "198.18.0.{}/24"
EXTERNAL_CIDR = "198.19.0.0/24"
EXTERNAL_GATEWAY = "198.19.0.1"
EXTERNAL_POOL = ("198.19.0.10", "198.19.0.250")


def build(state: LabState, hosts: list[str], dhcp_hosts: list[str], zones: dict[str, str] | None = None,
          physnets: dict[str, str] | None = None, dvr: bool = False, switches: dict[str, str] | None = None,
          state_dir: Path | None = None) -> None:
    """physnets: host -> the physical network on its eth1 (others: the lab's physnet1). dvr: every host runs
    an L3 agent, dvr_snat on the network nodes and dvr on the others (distributed routers). switches: host ->
    "ovs" for Open vSwitch hosts (their OVS daemons run from <state_dir>/ovs-<host>)."""
    for physnet in (physnets or {}).values():
        if len(physnet) > 12 or not physnet.replace("-", "").isalnum():
            raise ValueError(f"physical network {physnet!r}: use at most 12 letters, digits or '-'")
    ul = f"{state.prefix}-underlay"
    state.underlay = ul
    netns.create(ul)
    for bridge in ("br-ul", "br-phys", "br-ext"):
        netns.run(["ip", "-n", ul, "link", "add", bridge, "type", "bridge"], check=False)
        netns.run(["ip", "-n", ul, "link", "set", bridge, "up"])
    netns.run(["ip", "netns", "exec", ul, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0",
               "net.bridge.bridge-nf-call-ip6tables=0"], check=False)
    taken = {h.underlay_ip for h in state.hosts.values()}
    number = 11
    for name in hosts:
        if name in state.hosts:
            continue
        if len(name) > 12 or not name.replace("-", "").isalnum():
            raise ValueError(f"host name {name!r}: use at most 12 letters, digits or '-'")
        while UNDERLAY.format(number).split("/")[0] in taken:
            number += 1
        ip = UNDERLAY.format(number)
        ns = f"{state.prefix}-{name}"
        netns.create(ns)
        _wire(ns, "ul0", ul, f"ul-{name}", "br-ul")
        physnet = (physnets or {}).get(name, state.physnet)
        _wire(ns, state.physical_interface, ul, f"pv-{name}", _physnet_bridge(ul, state, physnet))
        _wire(ns, state.external_interface, ul, f"ex-{name}", "br-ext")
        host = LabHost(name=name, netns=ns, underlay_ip=ip.split("/")[0], dhcp=name in dhcp_hosts,
                       zone=(zones or {}).get(name, "nova"), physnet="" if physnet == state.physnet else physnet,
                       l3_mode=("dvr_snat" if name in dhcp_hosts else "dvr") if dvr else "",
                       switch=(switches or {}).get(name, "linuxbridge"))
        if host.switch == "ovs":
            _ovs_host(state, host, ip, ovs.rundir(state_dir or Path("."), name))
        else:
            netns.run(["ip", "-n", ns, "addr", "replace", ip, "dev", "ul0"])
        state.hosts[name] = host
        taken.add(ip.split("/")[0])


def _ovs_host(state: LabState, host: LabHost, ip: str, run: Path) -> None:
    """OVS daemons in the host's namespace; ul0 on br-ul with the underlay address, eth1/eth2 on the bridges of
    their physical networks. Checksum offload off on every veth OVS touches (netdev datapath: docs/kernel.md),
    and no kernel ARP replies on the wires OVS takes (ovs.uplink)."""
    ovs.start_daemons(run, host.netns)
    ovs.wait_ready(run)
    client = ovs.Client(run)
    ifaces: dict[str, str | None] = {"br-ul": "ul0", "br-int": None}  # br-int now: plugs see an OVS host
    ifaces |= dict(zip(state.bridge_mappings(host).values(), state.mappings(host).values(), strict=True))
    for bridge, iface in ifaces.items():
        secure = [] if bridge == "br-ul" else ["fail_mode=secure", "other-config:disable-in-band=true"]
        port = ["--", "--may-exist", "add-port", bridge, iface] if iface else []
        client.vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                     *secure, *port)
        if iface:
            ovs.uplink(host.netns, iface)
        netns.run(["ip", "-n", host.netns, "link", "set", bridge, "up"])
    for outer in wires(host.name):
        veth.no_tx_offload(state.underlay, outer)
    netns.run(["ip", "-n", host.netns, "addr", "replace", ip, "dev", "br-ul"])


def _physnet_bridge(ul: str, state: LabState, physnet: str) -> str:
    """The wire of a physical network: the lab's shared one, or a bridge of its own (made once)."""
    if physnet == state.physnet:
        return "br-phys"
    bridge = f"pn-{physnet}"
    if netns.run(["ip", "-n", ul, "link", "show", bridge], check=False).returncode != 0:
        netns.run(["ip", "-n", ul, "link", "add", bridge, "type", "bridge"])
        netns.run(["ip", "-n", ul, "link", "set", bridge, "up"])
    return bridge


def build_external(state: LabState) -> str:
    """The namespace that plays the internet, on the external network's wire."""
    ns = f"{state.prefix}-external"
    netns.create(ns)
    _wire(ns, "eth0", state.underlay, "ex-internet", "br-ext")
    netns.run(["ip", "-n", ns, "addr", "replace", f"{EXTERNAL_GATEWAY}/24", "dev", "eth0"])
    state.external = ns
    return ns


def _wire(ns: str, inner: str, ul: str, outer: str, bridge: str) -> None:
    have = netns.run(["ip", "-n", ns, "link", "show", inner], check=False)
    if have.returncode != 0:
        netns.run(["ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", ul])
    netns.run(["ip", "-n", ul, "link", "set", outer, "master", bridge, "up"])
    netns.run(["ip", "-n", ns, "link", "set", inner, "up"])


def wires(host: str) -> tuple[str, ...]:
    """The underlay namespace's ends of a host's wires: underlay, provider and external."""
    return f"ul-{host}", f"pv-{host}", f"ex-{host}"


def set_wires(state: LabState, host: str, up: bool) -> None:
    """Cut (or restore) every wire of a host, as when it loses power: from the underlay side, so nothing
    in the host's namespace changes."""
    for wire in wires(host):
        netns.run(["ip", "-n", state.underlay, "link", "set", wire, "up" if up else "down"])


def destroy(state: LabState, state_dir: Path | None = None) -> list[str]:
    """Stop the OVS hosts' daemons, delete every namespace of the lab (instances, qdhcp, hosts, underlay).
    Returns the namespaces' names."""
    for host in state.hosts.values():
        if host.switch == "ovs":
            ovs.stop_daemons(ovs.rundir(state_dir or Path("."), host.name))
    gone = []
    for ns in netns.names(f"{state.prefix}-"):
        netns.delete(ns)
        gone.append(ns)
    return gone
