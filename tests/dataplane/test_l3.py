"""Routers, SNAT and floating IPs with real packets, in embedded mode: instances on emulated hosts, the
router on the network node, and the lab's "external" namespace playing the internet. The tests marked
HOST_KINDS run on Linux-bridge hosts, Open vSwitch hosts and a mixed lab (tests/dataplane/conftest.py)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from fermion.dataplane import naming, netns
from fermion.dataplane.router import NAT_TABLE
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import HOST_KINDS
from tests.dataplane.ftp import FTP_PORT, ftp_download, ftp_server
from tests.dataplane.lab import Lab, next_peer, ping_ns, tcp_connects, tcp_listener


def put(lab: Lab, path: str, body: dict[str, Any]) -> Any:
    return lab.api._ok(lab.api.http.put(path, json=body))


def routed_pair(lab: Lab) -> dict[str, Any]:
    """Two subnets behind one router with a gateway; vm1 on compute1 (net1), vm2 on compute2 (net2)."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net1 = lab.network("net1", "10.1.0.0/24")
    net2 = lab.network("net2", "10.2.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    for net in (net1, net2):
        put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    # the default group lets members reach each other; the outside needs rules (added per test)
    vm1 = lab.boot("net1", "compute1", "vm1")
    vm2 = lab.boot("net2", "compute2", "vm2")
    router = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}"))["router"]
    return {"ext": ext, "router": router, "vm1": vm1, "vm2": vm2}


def subnet_of(lab: Lab, network_id: str) -> str:
    subnets = lab.api._ok(lab.api.http.get("/v2.0/subnets", params={"network_id": network_id}))["subnets"]
    return str(subnets[0]["id"])


def allow_from_anywhere(lab: Lab, protocol: str, port: int | None = None) -> dict[str, Any]:
    groups = lab.api._ok(lab.api.http.get("/v2.0/security-groups", params={"name": "default"}))
    sg = groups["security_groups"][0]
    body: dict[str, Any] = {"security_group_id": sg["id"], "direction": "ingress", "protocol": protocol,
                            "remote_ip_prefix": "0.0.0.0/0"}
    if port is not None:
        body.update(port_range_min=port, port_range_max=port)
    return lab.api.post("security-group-rules", body)


@HOST_KINDS
def test_routing_snat_and_floating_ip(lab: Lab) -> None:
    t = routed_pair(lab)
    vm1, vm2 = t["vm1"], t["vm2"]
    lab.wait(lambda: lab.ping("vm1", "vm2"), 20, "vm1 to reach vm2 through the router")
    assert lab.ping("vm2", "vm1")

    gateway_ip = t["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    ext_ns = lab.state.external
    with tcp_listener(ext_ns, 8080) as listener:
        lab.wait(lambda: tcp_connects(vm1.netns, EXTERNAL_GATEWAY, 8080), 20, "vm1 to reach the internet")
        assert next_peer(listener) == gateway_ip  # SNAT: the outside sees the router's address
    assert not ping_ns(ext_ns, vm1.ip or "", count=1)  # tenant addresses are not routed from outside

    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", 22)
    fip = lab.api.post("floatingips", {"floating_network_id": t["ext"]["id"], "port_id": vm1.port_id})
    address = fip["floating_ip_address"]
    lab.wait(lambda: ping_ns(ext_ns, address, count=1), 10, "the floating IP to answer")
    with tcp_listener(vm1.netns, 22) as listener:
        assert tcp_connects(ext_ns, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY  # DNAT keeps the client's address
    with tcp_listener(ext_ns, 8081) as listener:
        assert tcp_connects(vm1.netns, EXTERNAL_GATEWAY, 8081)
        assert next_peer(listener) == address  # the instance's own traffic leaves from its floating IP
    with tcp_listener(ext_ns, 8082) as listener:  # vm2 has no floating IP: still the router's address
        assert tcp_connects(vm2.netns, EXTERNAL_GATEWAY, 8082)
        assert next_peer(listener) == gateway_ip

    put(lab, f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
    lab.wait(lambda: not ping_ns(ext_ns, address, count=1), 10, "the floating IP to stop answering")


@HOST_KINDS
def test_an_admin_down_router_keeps_its_ports_active_and_routes_nothing(lab: Lab) -> None:
    """As in Neutron with OVN: the ports of a router set admin-down stay ACTIVE (plugged), the router stops
    routing, and routes again once set up."""
    t = routed_pair(lab)
    router_id = t["router"]["id"]
    lab.wait(lambda: lab.ping("vm1", "vm2"), 20, "vm1 to reach vm2 through the router")
    put(lab, f"/v2.0/routers/{router_id}", {"router": {"admin_state_up": False}})
    lab.wait(lambda: not lab.ping("vm1", "vm2", count=1), 20, "the admin-down router to stop routing")
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": router_id}))["ports"]
    assert len(ports) == 3
    for port in ports:
        assert instances.wait_port_status(lab.api, port["id"], "ACTIVE")["binding:host_id"] == "network1"
    put(lab, f"/v2.0/routers/{router_id}", {"router": {"admin_state_up": True}})
    lab.wait(lambda: lab.ping("vm1", "vm2"), 20, "vm1 to reach vm2 again")


def test_router_conntrack_helper_through_the_api(lab: Lab) -> None:
    """A conntrack helper created through the API reaches the router on the network node: active FTP from an
    instance behind SNAT works while the helper exists, and stops working when it is deleted."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("ftpnet", "10.3.0.0/24")
    router = lab.api.post("routers", {"name": "ftp", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    router = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}"))["router"]
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    vm = lab.boot("ftpnet", "compute1", "ftpvm")
    allow_from_anywhere(lab, "tcp")  # the data connection is new to the instance's own firewall
    ext_ns = lab.state.external
    with ftp_server(ext_ns):
        lab.wait(lambda: tcp_connects(vm.netns, EXTERNAL_GATEWAY, FTP_PORT, read=False), 30,
                 "the instance to reach the FTP server")
        assert ftp_download(vm.netns, EXTERNAL_GATEWAY).startswith("error 425")  # told the private address
        helpers = f"/v2.0/routers/{router['id']}/conntrack_helpers"
        helper = lab.api._ok(lab.api.http.post(helpers, json={"conntrack_helper": {
            "protocol": "tcp", "port": FTP_PORT, "helper": "ftp"}}))["conntrack_helper"]
        lab.wait(lambda: ftp_download(vm.netns, EXTERNAL_GATEWAY).startswith(f"told {gateway_ip}:"), 20,
                 "active FTP through SNAT with the helper")
        assert lab.api.http.delete(f"{helpers}/{helper['id']}").status_code == 204
        lab.wait(lambda: ftp_download(vm.netns, EXTERNAL_GATEWAY).startswith("error 425"), 20,
                 "the helper to be gone")


def test_address_scopes_through_the_api(lab: Lab) -> None:
    """A subnet from a pool in an address scope and a subnet in no scope behind one router: not routed
    between (each still reaches the internet through SNAT); onboarding the second subnet into the pool puts
    both in one scope, and the router routes between them."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    scope = lab.api.post("address-scopes", {"name": "s1", "ip_version": 4})
    pool = lab.api.post("subnetpools", {"name": "p1", "prefixes": ["10.1.0.0/16"], "default_prefixlen": 24,
                                        "min_prefixlen": 16, "address_scope_id": scope["id"]})
    net1 = lab.api.post("networks", {"name": "net1"})
    scoped = lab.api.post("subnets", {"network_id": net1["id"], "ip_version": 4, "subnetpool_id": pool["id"]})
    assert scoped["cidr"] == "10.1.0.0/24"
    net2 = lab.network("net2", "10.2.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    for subnet_id in (scoped["id"], subnet_of(lab, net2["id"])):
        put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_id})
    vm1 = lab.boot("net1", "compute1", "vm1")
    vm2 = lab.boot("net2", "compute2", "vm2")
    ext_ns = lab.state.external
    with tcp_listener(ext_ns, 8080):
        lab.wait(lambda: tcp_connects(vm1.netns, EXTERNAL_GATEWAY, 8080), 20, "vm1 to reach the internet")
        lab.wait(lambda: tcp_connects(vm2.netns, EXTERNAL_GATEWAY, 8080), 20, "vm2 to reach the internet")
    assert not lab.ping("vm1", "vm2") and not lab.ping("vm2", "vm1")  # different scopes: not routed
    put(lab, f"/v2.0/subnetpools/{pool['id']}/onboard_network_subnets", {"network_id": net2["id"]})
    lab.wait(lambda: lab.ping("vm1", "vm2"), 20, "vm1 to reach vm2 once both are in the scope")
    assert lab.ping("vm2", "vm1")


def test_floating_ip_on_a_named_router_reaches_an_instance_behind_another_router(lab: Lab) -> None:
    """floating-ip-router-writable, Neutron's two-hop case: the outer router (the gateway) hosts the floating IP
    of an instance behind the inner router; packets cross the transit network by the routes the client set."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    inner_net = lab.network("inner", "10.4.0.0/24")
    transit = lab.network("transit", "10.9.0.0/24")
    outer = lab.api.post("routers", {"name": "outer", "external_gateway_info": {"network_id": ext["id"]}})
    inner = lab.api.post("routers", {"name": "inner"})
    put(lab, f"/v2.0/routers/{outer['id']}/add_router_interface", {"subnet_id": subnet_of(lab, transit["id"])})
    hop = lab.api.post("ports", {"network_id": transit["id"], "fixed_ips": [{"ip_address": "10.9.0.2"}]})
    put(lab, f"/v2.0/routers/{inner['id']}/add_router_interface", {"port_id": hop["id"]})
    put(lab, f"/v2.0/routers/{inner['id']}/add_router_interface", {"subnet_id": subnet_of(lab, inner_net["id"])})
    put(lab, f"/v2.0/routers/{outer['id']}", {"router": {"routes": [{"destination": "10.4.0.0/24",
                                                                      "nexthop": "10.9.0.2"}]}})
    put(lab, f"/v2.0/routers/{inner['id']}", {"router": {"routes": [{"destination": "0.0.0.0/0",
                                                                      "nexthop": "10.9.0.1"}]}})
    vm = lab.boot("inner", "compute1", "vm1")
    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", 22)
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm.port_id,
                                       "router_id": outer["id"]})
    address = fip["floating_ip_address"]
    ext_ns = lab.state.external
    lab.wait(lambda: ping_ns(ext_ns, address, count=1), 20, "the floating IP to answer through two routers")
    with tcp_listener(vm.netns, 22) as listener:
        assert tcp_connects(ext_ns, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY  # DNAT on the outer router keeps the client's address
    with tcp_listener(ext_ns, 8081) as listener:
        assert tcp_connects(vm.netns, EXTERNAL_GATEWAY, 8081)
        assert next_peer(listener) == address  # and the instance leaves from its floating IP

    put(lab, f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None, "router_id": outer["id"]}})
    lab.wait(lambda: not ping_ns(ext_ns, address, count=1), 10, "the floating IP to stop answering")


def test_floating_ip_status_follows_the_data_plane(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    def reasons() -> str:
        return "\n".join(r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="fermion.agent.l3.agent"):
        floating_ip_status_scenario(lab, reasons, router_failures)


def floating_ip_status_scenario(lab: Lab, agent_log: Callable[[], str],
                                failures: Callable[[str], float] | None = None) -> None:
    """A floating IP turns ACTIVE only once it carries traffic to its instance, DOWN when disassociated, and
    ERROR while the router's NAT cannot be loaded (another program holds the router's NAT table: nft refuses
    to replace it), with the reason in the L3 agent's log (agent_log()) and a failure counted (failures(host),
    where the agents' metrics can be read); ACTIVE again once it loads."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("fipnet", "10.4.0.0/24")
    router = lab.api.post("routers", {"name": "fip", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    vm = lab.boot("fipnet", "compute1", "fipvm")
    allow_from_anywhere(lab, "tcp", 22)
    ext_ns, host_ns = lab.state.external, lab.host_ns("network1")
    router_ns = naming.router_namespace(router["id"], host_ns)

    # router ports are ACTIVE once wired: their taps in their networks' bridges on the router's host
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": router["id"]}))["ports"]
    assert {p["device_owner"] for p in ports} == {"network:router_gateway", "network:router_interface"}
    for port in ports:
        instances.wait_port_status(lab.api, port["id"], "ACTIVE")
        tap = netns.run(["ip", "-n", host_ns, "-j", "link", "show", naming.tap(port["id"])]).stdout
        assert f'"master":"{naming.bridge(port["network_id"])}"' in tap.replace(" ", "")

    def fip_status(fip_id: str) -> str:
        return str(lab.api._ok(lab.api.http.get(f"/v2.0/floatingips/{fip_id}"))["floatingip"]["status"])

    with tcp_listener(vm.netns, 22) as listener:
        lab.wait(lambda: tcp_connects(router_ns, vm.ip or "", 22), 20, "the instance's rule to let TCP in")
        next_peer(listener)
        fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm.port_id})
        address = fip["floating_ip_address"]
        assert fip["status"] == "DOWN"
        lab.wait(lambda: fip_status(fip["id"]) == "ACTIVE", 20, "the floating IP to turn ACTIVE")
        assert tcp_connects(ext_ns, address, 22)  # ACTIVE: it reaches the instance, now
        assert next_peer(listener) == EXTERNAL_GATEWAY

        got = put(lab, f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})["floatingip"]
        assert got["status"] == "DOWN"
        lab.wait(lambda: not tcp_connects(ext_ns, address, 22, timeout=1), 10, "the floating IP to be removed")

        before = failures("network1") if failures is not None else 0.0
        with nat_table_held(router_ns):
            got = put(lab, f"/v2.0/floatingips/{fip['id']}", {"floatingip": {"port_id": vm.port_id}})["floatingip"]
            assert got["status"] == "DOWN"
            lab.wait(lambda: fip_status(fip["id"]) == "ERROR", 20, "the floating IP to turn ERROR")
            assert not tcp_connects(ext_ns, address, 22, timeout=1)  # ERROR: it does not reach the instance
            if failures is not None:
                assert failures("network1") > before
            reasons = [line for line in agent_log().splitlines() if router["id"] in line]
            assert any("not realized" in m and "Operation not permitted" in m for m in reasons), reasons
        lab.wait(lambda: fip_status(fip["id"]) == "ACTIVE", 20, "the floating IP to turn ACTIVE once NAT loads")
        assert tcp_connects(ext_ns, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY


def router_failures(host: str) -> float:
    return REGISTRY.get_sample_value("fermion_agent_router_failures_total",
                                     {"host": host, "operation": "ensure"}) or 0.0


@contextmanager
def nat_table_held(router_ns: str) -> Iterator[None]:
    """Another program owns the router namespace's NAT table while this runs (an nftables table with the owner
    flag: only the process that made it may change it, and it goes when that process ends)."""
    proc = subprocess.Popen(["ip", "netns", "exec", router_ns, "nft", "-i"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"delete table ip {NAT_TABLE}\nadd table ip {NAT_TABLE} {{ flags owner; }}\n")
        proc.stdin.flush()

        def held() -> bool:
            listed = netns.run(["ip", "netns", "exec", router_ns, "nft", "list", "table", "ip", NAT_TABLE], check=False)
            return "flags owner" in listed.stdout

        deadline = time.monotonic() + 10
        while not held():
            assert time.monotonic() < deadline and proc.poll() is None, "nft did not take the table"
            time.sleep(0.1)
        yield
    finally:
        proc.kill()
        proc.wait()
