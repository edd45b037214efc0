"""Distributed routers in the lab with real packets (issue 16 points 4-6): `fermion lab up --dvr` runs an L3
agent on every host (dvr on the compute hosts, dvr_snat on the network node) and `[l3] router_distributed`
makes routers distributed. Traffic between two subnets is routed on the sending instance's own host; a
floating IP is served by its instance's host; traffic without one is SNATed on the network node."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.dataplane import netns, ovs
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab, next_peer, ping_ns, tcp_connects, tcp_listener
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of

HOSTS = ["compute1", "compute2", "network1"]


@pytest.fixture
def dvr_lab(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"l3": {"router_distributed": True}}, hosts=HOSTS,
                      network_hosts=("network1",), dvr=True) as lab:
        yield lab


def count_underlay_icmp(lab: Lab) -> None:
    """Counters in the underlay's bridge for the VXLAN packets carrying ICMP that each host sends ("i-HOST")
    and receives ("o-HOST"); other traffic (IPv6 neighbour discovery right after set-up) is not counted."""
    count_in_underlay(lab, "icmp_count", {f"{way}-{h}": f'{way}ifname "ul-{h}" udp dport 4789 @th,312,8 1'
                                          for h in HOSTS for way in ("i", "o")})


def underlay_icmp(lab: Lab) -> dict[str, int]:
    return underlay_counts(lab, "icmp_count")


def count_in_underlay(lab: Lab, table: str, matches: dict[str, str]) -> None:
    """A table of counters (name -> nft match) in the underlay's bridge."""
    rules = "".join(f'    {match} counter comment "{name}"\n' for name, match in matches.items())
    text = f"table bridge {table} {{\n  chain forward {{\n    type filter hook forward priority 0;\n{rules}  }}\n}}\n"
    subprocess.run(["ip", "netns", "exec", lab.state.underlay, "nft", "-f", "-"], input=text, text=True,
                   check=True)


def underlay_counts(lab: Lab, table: str) -> dict[str, int]:
    listed = netns.run(["ip", "netns", "exec", lab.state.underlay, "nft", "list", "table", "bridge", table]).stdout
    return {m[1]: int(m[0]) for m in re.findall(r'counter packets (\d+) bytes \d+ comment "([\w-]+)"', listed)}


def crossed(lab: Lab, action: Any) -> dict[str, int]:
    """The ICMP packets each underlay wire carried while action ran (only those that moved)."""
    before = underlay_icmp(lab)
    action()
    return {k: v - before[k] for k, v in underlay_icmp(lab).items() if v != before[k]}


def pings(ns: str, target: str, count: int) -> None:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.01", "-W", "1", "-q",
                           target], capture_output=True, text=True, timeout=30, check=False)
    assert f"{count} received" in proc.stdout, proc.stdout


def fdb_ports(lab: Lab, host: str, mac: str) -> set[str]:
    """The bridge ports where the host's bridges learned a MAC."""
    out = netns.run(["bridge", "-n", lab.host_ns(host), "fdb", "show"]).stdout
    return {line.split()[2] for line in out.splitlines() if line.startswith(mac.lower()) and " dev " in line}


def distributed_pair(lab: Lab) -> dict[str, Any]:
    """Two subnets behind a distributed router with a gateway: vm1 (net1) and vm2 (net2) on compute1,
    vm3 (net2) on compute2."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net1 = lab.network("net1", "10.31.1.0/24")
    net2 = lab.network("net2", "10.31.2.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    assert router["distributed"] is True  # [l3] router_distributed
    for net in (net1, net2):
        put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    allow_from_anywhere(lab, "icmp")
    vms = {"vm1": lab.boot("net1", "compute1", "vm1"), "vm2": lab.boot("net2", "compute1", "vm2"),
           "vm3": lab.boot("net2", "compute2", "vm3")}
    router = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}"))["router"]
    return {"ext": ext, "router": router, "net1": net1, "net2": net2, **vms}


def reach(lab: Lab, t: dict[str, Any], pairs: list[tuple[str, str]], timeout: float = 45.0) -> None:
    """Wait until each pair pings; if not, fail with what the hosts hold for the router (to tell why)."""
    try:
        lab.wait(lambda: all(lab.ping(a, b) for a, b in pairs), timeout, f"pings {pairs}")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{router_state(lab, t['router']['id'])}") from None


def router_state(lab: Lab, router_id: str) -> str:
    out = []
    for host in HOSTS:
        ns = f"{lab.host_ns(host)}-qrouter-{router_id}"
        for argv in (["ip", "-n", ns, "-br", "addr"], ["ip", "-n", ns, "neigh"], ["ip", "-n", ns, "rule"],
                     ["bridge", "-n", lab.host_ns(host), "fdb", "show"],
                     ["ip", "netns", "exec", lab.host_ns(host), "nft", "list", "table", "bridge", "fermion_dvr"]):
            done = netns.run(argv, check=False)
            out.append(f"--- {host}: {' '.join(argv[-3:])}\n{done.stdout}{done.stderr}")
    return "\n".join(out)


def ports_of(lab: Lab, **filters: str) -> list[dict[str, Any]]:
    return lab.api._ok(lab.api.http.get("/v2.0/ports", params=filters))["ports"]  # type: ignore[no-any-return]


def test_distributed_router_routes_on_the_instances_host(dvr_lab: Lab) -> None:
    lab = dvr_lab
    t = distributed_pair(lab)
    vm1, vm2, vm3 = t["vm1"], t["vm2"], t["vm3"]
    reach(lab, t, [("vm1", "vm2"), ("vm1", "vm3")])
    agents = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{t['router']['id']}/l3-agents"))["agents"]
    assert {a["host"] for a in agents} == set(HOSTS)  # the copies on both compute hosts, SNAT on network1
    modes = {a["host"]: a["configurations"]["agent_mode"] for a in agents}
    assert modes == {"compute1": "dvr", "compute2": "dvr", "network1": "dvr_snat"}

    # same host: routed in compute1's copy of the router, nothing on the underlay
    count_underlay_icmp(lab)
    assert crossed(lab, lambda: pings(vm1.netns, vm2.ip, 50)) == {}

    # across hosts: each packet crosses the underlay once, straight between the compute hosts (routed by
    # compute1's copy one way, compute2's the other), never through network1
    assert crossed(lab, lambda: pings(vm1.netns, vm3.ip, 50)) == {"i-compute1": 50, "o-compute2": 50,
                                                                  "i-compute2": 50, "o-compute1": 50}

    # the gateway's address and MAC exist on every host: compute2's bridge must only know its own copy's
    interface = next(p for p in ports_of(lab, device_id=t["router"]["id"], network_id=t["net2"]["id"])
                     if p["device_owner"] == "network:router_interface_distributed")
    learned = fdb_ports(lab, "compute2", interface["mac_address"])
    assert learned and not any(port.startswith("vxlan-") for port in learned), learned
    # and what vm3 sees as the routed source MAC is compute1's DVR MAC, not the gateway's
    seen = capture_source_macs(vm3.netns, lambda: pings(vm1.netns, vm3.ip, 3), f"src host {vm1.ip}")
    assert seen and interface["mac_address"].lower() not in seen, seen

    # no floating IP: SNAT on network1, the outside sees the router's address
    gateway_ip = t["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    with tcp_listener(lab.state.external, 8080) as listener:
        lab.wait(lambda: tcp_connects(vm3.netns, EXTERNAL_GATEWAY, 8080), 20, "vm3 to reach the internet")
        assert next_peer(listener) == gateway_ip

    # a floating IP of vm3 is served by compute2's own floating-IP gateway port
    allow_from_anywhere(lab, "tcp", 22)
    fip = lab.api.post("floatingips", {"floating_network_id": t["ext"]["id"], "port_id": vm3.port_id})
    address = fip["floating_ip_address"]
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 20, "the floating IP to answer")
    gateway = ports_of(lab, device_owner="network:floatingip_agent_gateway", network_id=t["ext"]["id"])
    by_host = {p["binding:host_id"]: p["mac_address"].lower() for p in gateway}
    assert "compute2" in by_host
    assert neighbour_mac(lab.state.external, address) == by_host["compute2"]
    with tcp_listener(vm3.netns, 22) as listener:
        assert tcp_connects(lab.state.external, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY  # DNAT keeps the client's address
    with tcp_listener(lab.state.external, 8081) as listener:
        assert tcp_connects(vm3.netns, EXTERNAL_GATEWAY, 8081)
        assert next_peer(listener) == address  # vm3's own traffic leaves from its floating IP
    lab.wait(lambda: lab.api._ok(lab.api.http.get(f"/v2.0/floatingips/{fip['id']}"))["floatingip"]["status"]
             == "ACTIVE", 15, "the floating IP to be ACTIVE")

    # the floating IP moves with its instance's port: dissociated, compute2 stops answering for it
    put(lab, f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    lab.wait(lambda: not ping_ns(lab.state.external, address, count=1), 15, "the floating IP to stop answering")


def test_security_groups_and_isolation_on_a_distributed_router(dvr_lab: Lab) -> None:
    lab = dvr_lab
    t = distributed_pair(lab)
    vm1, vm3 = t["vm1"], t["vm3"]
    reach(lab, t, [("vm1", "vm3")])
    # vm3 in a group that allows only ICMP: TCP from vm1, routed on compute1, is stopped at vm3's port
    sg = lab.api.post("security-groups", {"name": "icmp-only"})
    lab.api.post("security-group-rules", {"security_group_id": sg["id"], "direction": "ingress",
                                          "protocol": "icmp"})
    put(lab, f"/v2.0/ports/{vm3.port_id}", {"port": {"security_groups": [sg["id"]]}})
    with tcp_listener(vm3.netns, 2222):
        # TCP stops as soon as the old group is gone; ICMP passes once the new one is in place
        lab.wait(lambda: not tcp_connects(vm1.netns, vm3.ip, 2222, timeout=1), 15, "the group to apply")
        lab.wait(lambda: lab.ping("vm1", "vm3"), 40, "ICMP to pass the new group")
        lab.api.post("security-group-rules", {"security_group_id": sg["id"], "direction": "ingress",
                                              "protocol": "tcp", "port_range_min": 2222, "port_range_max": 2222})
        lab.wait(lambda: tcp_connects(vm1.netns, vm3.ip, 2222, timeout=1), 15, "the new rule to apply")

    # anti-spoofing: vm1 sending from an address that is not its own reaches nobody
    netns.run(["ip", "-n", vm1.netns, "addr", "add", "10.31.1.250/24", "dev", "eth0"])
    spoofed = subprocess.run(["ip", "netns", "exec", vm1.netns, "ping", "-c", "2", "-W", "1", "-I", "10.31.1.250",
                              vm3.ip], capture_output=True, timeout=15, check=False)
    assert spoofed.returncode != 0

    # isolation: another project's network behind its own distributed router on the same hosts
    other = {"X-Project-Id": "other-project", "X-Roles": "member"}
    net = lab.api._ok(lab.api.http.post("/v2.0/networks", json={"network": {"name": "b-net"}}, headers=other))
    sub = lab.api._ok(lab.api.http.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["network"]["id"], "cidr": "10.31.9.0/24", "ip_version": 4}}, headers=other))
    r2 = lab.api._ok(lab.api.http.post("/v2.0/routers", json={"router": {"name": "b-r"}}, headers=other))
    lab.api._ok(lab.api.http.put(f"/v2.0/routers/{r2['router']['id']}/add_router_interface",
                                 json={"subnet_id": sub["subnet"]["id"]}, headers=other))
    intruder = instances.boot(lab.state, lab.api, lab.state_dir, net["network"]["id"], "compute1", "vmx",
                              dhcp_timeout=20)
    assert intruder.ip and intruder.ip.startswith("10.31.9.")
    assert not ping_ns(intruder.netns, vm1.ip, count=2)
    assert not ping_ns(intruder.netns, vm3.ip, count=2)


def neighbour_mac(ns: str, ip: str) -> str:
    out = netns.run(["ip", "-n", ns, "neigh", "show", ip]).stdout
    found = re.search(r"lladdr ([0-9a-f:]{17})", out)
    assert found, out
    return found.group(1)


def capture_source_macs(ns: str, action: Any, bpf: str) -> set[str]:
    """The source MACs of the IPv4 packets matching bpf seen on the namespace's eth0 while action runs."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-l", "-n", "-e", "-i", "eth0", bpf],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)
        action()
        time.sleep(0.3)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    return {line.split()[1].lower() for line in out.splitlines() if len(line.split()) > 1}


@pytest.fixture
def ovs_dvr_lab(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"l3": {"router_distributed": True}}, hosts=HOSTS,
                      network_hosts=("network1",), dvr=True, switches=dict.fromkeys(HOSTS, "ovs")) as lab:
        yield lab


def count_inner(lab: Lab, macs: dict[str, str], addresses: dict[str, str]) -> None:
    """Counters in the underlay's bridge for VXLAN frames whose inner source ("src-NAME") or destination
    ("dst-NAME") MAC is one of macs, and for inner ARP asking for one of addresses ("arp-NAME")."""
    def mac(value: str) -> str:
        return "0x" + value.replace(":", "").lower()

    def ip(value: str) -> str:
        return f"{int(ipaddress.IPv4Address(value)):#010x}"

    # after the UDP (8 bytes) and VXLAN (8) headers: inner destination MAC, source MAC, type; ARP's target IP
    matches = {f"src-{k}": f"udp dport 4789 @th,176,48 {mac(v)}" for k, v in macs.items()}
    matches |= {f"dst-{k}": f"udp dport 4789 @th,128,48 {mac(v)}" for k, v in macs.items()}
    matches |= {f"arp-{k}": f"udp dport 4789 @th,224,16 0x0806 @th,432,32 {ip(v)}" for k, v in addresses.items()}
    count_in_underlay(lab, "inner_count", matches)


def dvr_mac_of(lab: Lab, host: str) -> str:
    """The host's DVR MAC, from its br-tun flow that gives it to its router copies' frames."""
    flows = ovs_flows(lab, host, "br-tun")
    found = re.search(r"set_field:([0-9a-f:]{17})->eth_src", flows)  # mod_dl_src as OpenFlow 1.5 shows it
    assert found, f"no DVR flow on {host}:\n{flows}"
    return found.group(1)


def ovs_flows(lab: Lab, host: str, bridge: str) -> str:
    return ovs.Client(ovs.rundir(lab.state_dir, host)).ofctl("dump-flows", bridge)


def test_distributed_router_on_ovs_hosts(ovs_dvr_lab: Lab) -> None:
    """DVR with Open vSwitch compute hosts (the DVR MAC given by OpenFlow on br-tun): east-west routed on the
    sending host, straight across the underlay; no frame with a gateway MAC, and no ARP for a gateway address,
    crosses it; SNAT on the network node; a floating IP answered by its instance's host."""
    lab = ovs_dvr_lab
    ext = instances.ensure_external_network(lab.state, lab.api)
    nets = [lab.network("net1", "10.32.1.0/24"), lab.network("net2", "10.32.2.0/24")]
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    for net in nets:
        put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", 22)
    vm1, vm3 = lab.boot("net1", "compute1", "vm1"), lab.boot("net2", "compute2", "vm3")
    reach(lab, {"router": router}, [("vm1", "vm3")])
    gateways = {p["fixed_ips"][0]["ip_address"]: p["mac_address"] for p in ports_of(lab, device_id=router["id"])
                if p["device_owner"] == "network:router_interface_distributed"}
    assert len(gateways) == 2
    macs = {f"gw{i}": mac for i, mac in enumerate(gateways.values())}
    macs |= {h: dvr_mac_of(lab, h) for h in ("compute1", "compute2")}
    count_inner(lab, macs, {f"gw{i}": ip for i, ip in enumerate(gateways)})
    count_underlay_icmp(lab)

    # across hosts, each packet crosses the underlay once, straight between the compute hosts, with the
    # sending host's DVR MAC as source; the instances ask their own host's copy for the gateway (neighbours
    # flushed), so no ARP for a gateway address and no frame from or to a gateway MAC crosses
    for vm in (vm1, vm3):
        netns.run(["ip", "-n", vm.netns, "neigh", "flush", "all"])
    before = underlay_counts(lab, "inner_count")
    assert crossed(lab, lambda: pings(vm1.netns, vm3.ip, 50)) == {"i-compute1": 50, "o-compute2": 50,
                                                                  "i-compute2": 50, "o-compute1": 50}
    moved = {k: v - before[k] for k, v in underlay_counts(lab, "inner_count").items() if v != before[k]}
    assert moved.get("src-compute1", 0) >= 50 and moved.get("src-compute2", 0) >= 50, moved
    assert not any(k.endswith(("gw0", "gw1")) for k in moved), moved
    assert not any(k.startswith("dst-compute") for k in moved), moved

    # no floating IP: SNAT on network1, the outside sees the router's address
    router = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}"))["router"]
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    with tcp_listener(lab.state.external, 8080) as listener:
        lab.wait(lambda: tcp_connects(vm1.netns, EXTERNAL_GATEWAY, 8080), 20, "vm1 to reach the internet")
        assert next_peer(listener) == gateway_ip

    # a floating IP of vm3 is answered by compute2's own floating-IP gateway port
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm3.port_id})
    address = fip["floating_ip_address"]
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 20, "the floating IP to answer")
    gateway = ports_of(lab, device_owner="network:floatingip_agent_gateway", network_id=ext["id"])
    assert neighbour_mac(lab.state.external, address) == {
        p["binding:host_id"]: p["mac_address"].lower() for p in gateway}["compute2"]
    with tcp_listener(vm3.netns, 22) as listener:
        assert tcp_connects(lab.state.external, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY
    after = underlay_counts(lab, "inner_count")  # nor while SNAT and the floating IP were used
    assert not any(k.endswith(("gw0", "gw1")) and v != before[k] for k, v in after.items()), after
