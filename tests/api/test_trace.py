"""Trace (fermion-trace) as a user sees it: POST /v2.0/traces between ports, addresses, instance names and
`external`, each kind of verdict with the hop and the rule or attribute behind it, the realized state the agents
reported, the policy (a project traces between its own ports, an admin anything), Neutron's faults for bad input,
and `fermion trace` printing it. The agents are played through the in-process RPC transport."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.cli import trace as cli
from fermion.dataplane.conntrack import Flow
from fermion.dataplane.revoke import rule_allows
from fermion.dataplane.secgroups import Rule
from fermion.rpc.contracts import (
    FloatingIpReport,
    FloatingIpStatus,
    PortReport,
    ProbeReply,
    ProbeRequest,
    ProbeResult,
    SecurityRule,
    StateReport,
    decode,
    encode,
)
from fermion.rpc.transport import agent_target
from fermion.services.trace.match import Packet, sg_rule_matches
from tests.api.test_agents import age_heartbeat
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

LB, L3 = "Linux bridge agent", "L3 agent"
FW = "/v2.0/fwaas"


# ---------------------------------------------------------------- the cloud, played
class Cloud:
    """An admin, a tenant, agents on compute1/compute2 (Linux bridge) and network1 (L3 and Linux bridge)."""

    def __init__(self, client: SyncClient, admin: Api, tenant: Api) -> None:
        self.client, self.admin, self.tenant = client, admin, tenant
        self.agents = {("compute1", LB): self.agent("compute1", LB), ("compute2", LB): self.agent("compute2", LB),
                       ("network1", LB): self.agent("network1", LB), ("network1", L3): self.agent("network1", L3)}

    def agent(self, host: str, kind: str) -> str:
        conf = {"agent_mode": "legacy"} if kind == L3 else {"tunnel_types": ["vxlan"], "tunneling_ip": {
            "compute1": "198.18.0.21", "compute2": "198.18.0.22", "network1": "198.18.0.11"}[host]}
        msg = StateReport(host=host, agent_type=kind, binary="x", topic="N/A", configurations=conf, start_flag=True)
        return str(self.client.app.transport.call("report_state", encode(msg))["agent_id"])

    def realize(self, port: dict[str, Any]) -> None:
        """The port's agent wired it at its revision: ACTIVE."""
        msg = PortReport(host=port["binding:host_id"], up={port["id"]: port["revision_number"]})
        self.client.app.transport.call("report_ports", encode(msg))

    def boot(self, network_id: str, name: str, host: str = "compute1", who: Api | None = None,
             **attrs: Any) -> dict[str, Any]:
        """An instance's port, bound to the host and realized there (what `fermion lab boot` leads to)."""
        who = who or self.tenant
        port = who.port(network_id, name=name, device_id=name, device_owner="compute:nova", **attrs)
        r = self.admin.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": host}})
        assert r.status_code == 200, r.text
        port = r.json()["port"]
        self.realize(port)
        return dict(port)

    def net(self, name: str, cidr: str, who: Api | None = None, **subnet: Any) -> tuple[str, str]:
        who = who or self.tenant
        net = who.network(name=name)
        return net["id"], who.subnet(net["id"], cidr, name=f"{name}-subnet", **subnet)["id"]

    def router(self, name: str, *subnets: str, external: str | None = None) -> dict[str, Any]:
        router = self.tenant.create("routers", name=name)
        for subnet in subnets:
            r = self.tenant.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": subnet})
            assert r.status_code == 200, r.text
        if external:
            r = self.tenant.put(f"/v2.0/routers/{router['id']}",
                                json={"router": {"external_gateway_info": {"network_id": external}}})
            assert r.status_code == 200, r.text
        self.realize_router(router["id"])
        return router

    def realize_router(self, router_id: str) -> None:
        r = self.admin.get(f"/v2.0/ports?device_id={router_id}")
        for port in r.json()["ports"]:
            if port["binding:host_id"]:
                self.realize(port)

    def external(self) -> str:
        ext = self.admin.network(name="public", **{"router:external": True})
        self.admin.subnet(ext["id"], "198.19.0.0/24", gateway_ip="198.19.0.1",
                          allocation_pools=[{"start": "198.19.0.10", "end": "198.19.0.99"}])
        return str(ext["id"])

    def fip(self, external: str, port: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs = {"port_id": port["id"]} if port else {}
        fip = self.tenant.create("floatingips", floating_network_id=external, **attrs)
        if port:  # the serving L3 agent realized it
            msg = FloatingIpReport(host="network1", statuses={fip["id"]: FloatingIpStatus(fip["revision_number"],
                                                                                         "ACTIVE")})
            self.client.app.transport.call("report_floatingip_statuses", encode(msg))
        return fip

    def group(self, name: str, *rules: dict[str, Any]) -> str:
        """A security group with only the given ingress rules (its default egress rules dropped too when
        rules name egress ones)."""
        group = make(self.tenant, "security-groups", "security_group", name=name)
        if any(r.get("direction") == "egress" for r in rules):
            for rule in group["security_group_rules"]:
                assert self.tenant.delete(f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
        for rule in rules:
            self.rule(group["id"], **rule)
        return str(group["id"])

    def rule(self, group: str, **attrs: Any) -> str:
        attrs.setdefault("direction", "ingress")
        rule = make(self.tenant, "security-group-rules", "security_group_rule", security_group_id=group, **attrs)
        return str(rule["id"])


def make(who: Api, path: str, member: str, **attrs: Any) -> dict[str, Any]:
    r = who.post(f"/v2.0/{path}", json={member: attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()[member])


def trace(who: Api, source: str, destination: str, protocol: str = "tcp", port: int | None = 22) -> dict[str, Any]:
    body: dict[str, Any] = {"source": source, "destination": destination, "protocol": protocol}
    if port is not None:
        body["port"] = port
    r = who.post("/v2.0/traces", json={"trace": body})
    assert r.status_code == 200, r.text
    return dict(r.json()["trace"])


def failed(result: dict[str, Any]) -> dict[str, Any]:
    assert result["failed_hop"] is not None, result["reason"]
    return dict(result["hops"][result["failed_hop"] - 1])


def names(result: dict[str, Any]) -> list[str]:
    return [h["name"] for h in result["hops"]]


@pytest.fixture
def cloud(client: SyncClient, admin: Api, tenant: Api) -> Cloud:
    return Cloud(client, admin, tenant)


# ---------------------------------------------------------------- one network
def test_reachable_on_one_network_names_the_rules(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    vm1 = cloud.boot(net, "vm1")
    vm2 = cloud.boot(net, "vm2", host="compute2")
    result = trace(cloud.tenant, "vm1", "vm2")
    assert result["verdict"] == "reachable" and result["reachable"] and result["failed_hop"] is None
    assert names(result) == ["source port", "anti-spoofing", "egress security groups", "network n1",
                             "ingress security groups", "destination port"]
    assert result["source"] == {"given": "vm1", "port_id": vm1["id"], "address": vm1["fixed_ips"][0]["ip_address"],
                                "external": False}
    ingress = result["hops"][4]
    default = cloud.tenant.get("/v2.0/security-groups?name=default").json()["security_groups"][0]
    from_members = [r["id"] for r in default["security_group_rules"] if r["direction"] == "ingress"
                    and r["remote_group_id"] == default["id"] and r["ethertype"] == "IPv4"]
    assert ingress["rule_id"] in from_members and ingress["group"] == "default"
    assert result["hops"][0]["realized"] == {"host": "compute1", "status": "ACTIVE", "revision": vm1["revision_number"],
                                             "agent": LB, "agent_alive": True}
    # by port id and by address, the same path; icmp too
    assert trace(cloud.tenant, vm1["id"], vm2["fixed_ips"][0]["ip_address"])["verdict"] == "reachable"
    assert trace(cloud.tenant, "vm2", "vm1", "icmp", None)["verdict"] == "reachable"


def test_blocked_by_the_destinations_ingress_rules_until_one_allows(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    web = cloud.group("web", {"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})
    cloud.boot(net, "vm1")
    cloud.boot(net, "vm2", security_groups=[web])
    result = trace(cloud.tenant, "vm1", "vm2")
    hop = failed(result)
    assert result["verdict"] == "blocked" and hop["name"] == "ingress security groups" and hop["group"] == "web"
    assert result["reason"].startswith("blocked at hop 5 (ingress security groups): no ingress rule of security "
                                       "group web allows tcp port 22 from 10.1.0.")
    assert trace(cloud.tenant, "vm1", "vm2", port=80)["reachable"]
    ssh = cloud.rule(web, protocol="tcp", port_range_min=22, port_range_max=22, remote_ip_prefix="10.1.0.0/24")
    result = trace(cloud.tenant, "vm1", "vm2")
    assert result["reachable"] and result["hops"][4]["rule_id"] == ssh
    # udp is not tcp; a prefix elsewhere does not match
    assert failed(trace(cloud.tenant, "vm1", "vm2", "udp", 22))["name"] == "ingress security groups"


def test_blocked_by_the_sources_egress_rules(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    quiet = cloud.group("quiet", {"direction": "egress", "protocol": "udp", "port_range_min": 53,
                                  "port_range_max": 53})
    cloud.boot(net, "vm1", security_groups=[quiet])
    cloud.boot(net, "vm2")
    hop = failed(trace(cloud.tenant, "vm1", "vm2"))
    assert hop["name"] == "egress security groups" and hop["decision"] == "block" and hop["group"] == "quiet"
    assert "no egress rule of security group quiet allows tcp port 22 to 10.1.0." in hop["reason"]
    # no groups at all: everything dropped; port security off: not filtered
    cloud.boot(net, "vm3", security_groups=[])
    assert "is in no security group" in failed(trace(cloud.tenant, "vm2", "vm3"))["reason"]
    cloud.boot(net, "vm4", security_groups=[], port_security_enabled=False)
    result = trace(cloud.tenant, "vm2", "vm4")
    assert result["reachable"] and result["hops"][4]["attribute"] == "port_security_enabled"


def test_stateless_groups_need_rules_for_the_replies(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    bare = make(cloud.tenant, "security-groups", "security_group", name="bare", stateful=False)
    for rule in bare["security_group_rules"]:  # the default egress rules go: only what is written passes
        cloud.tenant.delete(f"/v2.0/security-group-rules/{rule['id']}")
    cloud.rule(bare["id"], protocol="tcp", port_range_min=22, port_range_max=22)
    cloud.boot(net, "vm1")
    cloud.boot(net, "vm2", security_groups=[bare["id"]])
    hop = failed(trace(cloud.tenant, "vm1", "vm2"))
    assert hop["name"] == "replies: egress security groups (stateless)" and hop["group"] == "bare"
    assert "tcp replies (to ports 32768-60999)" in hop["reason"]
    cloud.rule(bare["id"], direction="egress", protocol="tcp")
    assert trace(cloud.tenant, "vm1", "vm2")["reachable"]


def test_allowed_address_pair_as_the_source(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    cloud.boot(net, "vm1", allowed_address_pairs=[{"ip_address": "10.1.0.200"}])
    cloud.boot(net, "vm2")
    result = trace(cloud.tenant, "10.1.0.200", "vm2")
    assert result["reachable"] and result["source"]["address"] == "10.1.0.200"
    assert result["hops"][1]["attribute"] == "allowed_address_pairs"


# ---------------------------------------------------------------- networks and routers
def test_networks_are_isolated_without_a_router(cloud: Cloud) -> None:
    a, _ = cloud.net("a", "10.1.0.0/24")
    b, _ = cloud.net("b", "10.2.0.0/24")
    cloud.boot(a, "vm1")
    cloud.boot(b, "vm2")
    result = trace(cloud.tenant, "vm1", "vm2")
    hop = failed(result)
    assert result["verdict"] == "not_routable" and hop["name"] == "network a" and hop["attribute"] == "gateway_ip"
    assert "the next hop 10.1.0.1 (gateway of subnet 10.1.0.0/24) is no router's interface" in hop["reason"]
    # the same addresses on two networks: on-link, but another network
    c, _ = cloud.net("c", "10.1.0.0/24")
    cloud.boot(c, "vm3", fixed_ips=[{"ip_address": "10.1.0.77"}])
    hop = failed(trace(cloud.tenant, "vm1", "vm3"))
    assert hop["decision"] == "not_routable" and "networks are connected only through a router" in hop["reason"]
    # no gateway at all
    d, _ = cloud.net("d", "10.4.0.0/24", gateway_ip=None)
    cloud.boot(d, "vm4")
    assert "has no gateway_ip and no host route" in failed(trace(cloud.tenant, "vm4", "vm1"))["reason"]


def test_routed_through_a_router_and_its_state(cloud: Cloud, client: SyncClient) -> None:
    a, sa = cloud.net("a", "10.1.0.0/24")
    b, sb = cloud.net("b", "10.2.0.0/24")
    cloud.boot(a, "vm1")
    cloud.boot(b, "vm2", host="compute2")
    router = cloud.router("r1", sa, sb)
    result = trace(cloud.tenant, "vm1", "vm2")
    assert result["reachable"], result["reason"]
    assert names(result) == ["source port", "anti-spoofing", "egress security groups", "network a", "router r1",
                             "network b", "ingress security groups", "destination port"]
    assert result["hops"][4]["realized"]["bindings"] == [{"host": "network1", "agent_alive": True, "ha_state": None}]
    assert failed(trace(cloud.tenant, "vm1", "external"))["reason"].endswith("(it has no external gateway)")
    # the router administratively down
    cloud.tenant.put(f"/v2.0/routers/{router['id']}", json={"router": {"admin_state_up": False}})
    hop = failed(trace(cloud.tenant, "vm1", "vm2"))
    assert hop["name"] == "router r1" and hop["attribute"] == "admin_state_up"
    cloud.tenant.put(f"/v2.0/routers/{router['id']}", json={"router": {"admin_state_up": True}})
    # its L3 agent dead
    age_heartbeat(client, cloud.agents[("network1", L3)])
    hop = failed(trace(cloud.tenant, "vm1", "vm2"))
    assert hop["name"] == "router r1" and hop["decision"] == "not_routable" and "is dead" in hop["reason"]


def test_ipv6_is_routed_between_subnets_but_not_to_the_outside(cloud: Cloud) -> None:
    cloud.external()
    a, sa = cloud.net("a", "2001:db8:1::/64")
    b, sb = cloud.net("b", "2001:db8:2::/64")
    cloud.boot(a, "vm1")
    vm2 = cloud.boot(b, "vm2")
    cloud.router("r1", sa, sb)
    result = trace(cloud.tenant, "vm1", "vm2", "icmp", None)
    assert result["reachable"] and result["ip_version"] == 6, result["reason"]
    assert result["destination"]["address"] == vm2["fixed_ips"][0]["ip_address"]
    assert "icmp echo request" in result["hops"][-2]["reason"]
    assert failed(trace(cloud.tenant, "vm1", "external"))["decision"] == "not_routable"


def test_firewall_group_on_a_router_interface(cloud: Cloud) -> None:
    a, sa = cloud.net("a", "10.1.0.0/24")
    b, sb = cloud.net("b", "10.2.0.0/24")
    cloud.boot(a, "vm1")
    cloud.boot(b, "vm2")
    router = cloud.router("r1", sa, sb)
    iface = next(p for p in cloud.admin.get(f"/v2.0/ports?device_id={router['id']}").json()["ports"]
                 if p["network_id"] == b)

    def fw(collection: str, member: str, **attrs: Any) -> dict[str, Any]:
        r = cloud.tenant.post(f"{FW}/{collection}", json={member: attrs})
        assert r.status_code == 201, r.text
        return dict(r.json()[member])

    web = fw("firewall_rules", "firewall_rule", name="web", protocol="tcp", destination_port="80", action="allow")
    policy = fw("firewall_policies", "firewall_policy", name="in", firewall_rules=[web["id"]])
    fw("firewall_groups", "firewall_group", name="fw-b", ingress_firewall_policy_id=policy["id"],
       ports=[iface["id"]])
    hop = failed(trace(cloud.tenant, "vm1", "vm2"))
    assert hop["name"] == "firewall group fw-b (ingress, router r1)" and hop["decision"] == "block"
    assert "the implicit deny" in hop["reason"]
    result = trace(cloud.tenant, "vm1", "vm2", port=80)
    assert result["reachable"]
    assert [h["rule_id"] for h in result["hops"] if h["kind"] == "firewall_group"] == [web["id"]]
    # the other way: the packets leave network b through the group's port: its egress policy (none) passes
    assert trace(cloud.tenant, "vm2", "vm1")["reachable"]


# ---------------------------------------------------------------- the external network
def test_to_and_from_the_external_network(cloud: Cloud) -> None:
    ext = cloud.external()
    a, sa = cloud.net("a", "10.1.0.0/24")
    vm1 = cloud.boot(a, "vm1")
    router = cloud.router("r1", sa, external=ext)
    result = trace(cloud.tenant, "vm1", "external")
    assert result["reachable"], result["reason"]
    assert result["destination"]["external"] and names(result)[-2:] == ["NAT", "external network"]
    assert result["hops"][-2]["reason"].startswith("SNAT 10.1.0.")
    assert "198.19.0.1" in result["hops"][-1]["reason"]
    # a network the router has no interface on: out to the external network, not to it
    c, _ = cloud.net("c", "10.3.0.0/24")
    cloud.boot(c, "vm3")
    hop = failed(trace(cloud.tenant, "vm1", "vm3"))
    assert hop["name"] == "router r1" and "its default route sends it to the external network" in hop["reason"]
    # nothing leads in without a floating IP
    hop = failed(trace(cloud.tenant, "external", "vm1"))
    assert hop["name"] == "external network" and "has no floating IP" in hop["reason"]
    fip = cloud.fip(ext, vm1)
    hop = failed(trace(cloud.tenant, "external", "vm1"))  # the default group admits only its members
    assert hop["name"] == "ingress security groups" and "from 198.19.0.1" in hop["reason"]
    cloud.rule(cloud.tenant.get("/v2.0/security-groups?name=default").json()["security_groups"][0]["id"],
               protocol="tcp", port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0")
    result = trace(cloud.tenant, "external", "vm1")
    assert result["reachable"], result["reason"]
    assert result["hops"][1]["name"] == "floating IP" and result["hops"][1]["realized"] == {"status": "ACTIVE"}
    assert f"DNAT {fip['floating_ip_address']} -> {vm1['fixed_ips'][0]['ip_address']}" in result["hops"][1]["reason"]
    # the floating IP itself names the instance behind it
    by_address = trace(cloud.tenant, "external", fip["floating_ip_address"])
    assert by_address["reachable"] and by_address["destination"]["port_id"] == vm1["id"]
    assert by_address["destination"]["address"] == vm1["fixed_ips"][0]["ip_address"]
    loose = cloud.fip(ext)
    r = cloud.tenant.post("/v2.0/traces", json={"trace": {"source": "external", "protocol": "icmp",
                                                          "destination": loose["floating_ip_address"]}})
    assert r.status_code == 404 and "is associated with no port" in r.json()["NeutronError"]["message"]
    # outbound now leaves with the floating IP
    assert trace(cloud.tenant, "vm1", "external")["hops"][-2]["reason"].endswith(fip["floating_ip_address"])
    # no SNAT and no floating IP: no way back
    vm2 = cloud.boot(a, "vm2")
    cloud.admin.put(f"/v2.0/routers/{router['id']}", json={"router": {"external_gateway_info": {
        "network_id": ext, "enable_snat": False}}})
    hop = failed(trace(cloud.tenant, vm2["id"], "external"))
    assert hop["name"] == "NAT" and hop["attribute"] == "enable_snat" and "SNAT disabled" in hop["reason"]


def test_port_forwarding_from_outside(cloud: Cloud) -> None:
    ext = cloud.external()
    a, sa = cloud.net("a", "10.1.0.0/24")
    vm1 = cloud.boot(a, "vm1")
    cloud.router("r1", sa, external=ext)
    cloud.rule(cloud.tenant.get("/v2.0/security-groups?name=default").json()["security_groups"][0]["id"],
               protocol="tcp", port_range_min=22, port_range_max=22)
    fip = cloud.fip(ext)
    r = cloud.tenant.post(f"/v2.0/floatingips/{fip['id']}/port_forwardings", json={"port_forwarding": {
        "protocol": "tcp", "internal_port_id": vm1["id"], "internal_ip_address": vm1["fixed_ips"][0]["ip_address"],
        "internal_port": 22, "external_port": 2222}})
    assert r.status_code == 201, r.text
    result = trace(cloud.tenant, "external", "vm1", port=2222)
    assert result["reachable"], result["reason"]
    assert result["hops"][1]["name"] == "port forwarding" and result["hops"][1]["resource"]["id"] == \
        r.json()["port_forwarding"]["id"]
    assert "ingress security groups" in names(result) and "tcp port 22 from" in result["hops"][-2]["reason"]
    assert "nor a port forwarding of tcp port 22" in failed(trace(cloud.tenant, "external", "vm1"))["reason"]


# ---------------------------------------------------------------- realized state of the ports
def test_ports_down_admin_down_or_with_a_dead_agent_are_not_routable(cloud: Cloud, client: SyncClient) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    cloud.boot(net, "vm1")
    vm2 = cloud.boot(net, "vm2", host="compute2")
    cloud.tenant.port(net, name="vm3", device_id="vm3", device_owner="compute:nova")  # never bound
    hop = failed(trace(cloud.tenant, "vm1", "vm3"))
    assert hop["name"] == "destination port" and hop["attribute"] == "status"
    assert hop["reason"].endswith("is DOWN (it is bound to no host)")
    cloud.tenant.put(f"/v2.0/ports/{vm2['id']}", json={"port": {"admin_state_up": False}})
    hop = failed(trace(cloud.tenant, "vm2", "vm1"))
    assert hop["name"] == "source port" and hop["attribute"] == "admin_state_up"
    cloud.tenant.put(f"/v2.0/ports/{vm2['id']}", json={"port": {"admin_state_up": True}})
    age_heartbeat(client, cloud.agents[("compute2", LB)])
    result = trace(cloud.tenant, "vm1", "vm2")
    hop = failed(result)
    assert result["verdict"] == "not_routable" and hop["name"] == "destination port"
    assert hop["reason"] == "the Linux bridge agent on host compute2 is dead"
    assert hop["realized"]["agent_alive"] is False


# ---------------------------------------------------------------- probe (the agents are played here too)
def test_probe_asks_each_hops_agents_and_shows_ok_drift_or_unanswered(cloud: Cloud, client: SyncClient,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    vm1 = cloud.boot(net, "vm1")
    cloud.boot(net, "vm2", host="compute2")
    transport = client.app.transport
    client.app.services.trace.probe_timeout = 0.5
    asked: list[ProbeRequest] = []

    def compute1(body: dict[str, Any]) -> dict[str, Any]:
        request = decode(ProbeRequest, body)
        asked.append(request)
        results = {f"port {p}": ProbeResult(checked=[f"tap{p[:11]} on brq"]) for p in request.ports}
        results |= {f"filters {p}": ProbeResult(checked=["chain inet fermion_sg out-p1"],
                                                missing=["element 10.1.0.9 of set inet fermion_sg rg-x-v4"])
                    for p in request.filters}
        return encode(ProbeReply(host="compute1", agent_type=LB, results=results))

    stop = transport.serve_agent(agent_target(LB, "compute1"), {"probe": compute1})
    try:
        body = {"source": "vm1", "destination": "vm2", "protocol": "icmp", "probe": True}
        r = cloud.admin.post("/v2.0/traces", json={"trace": body})
        assert r.status_code == 200, r.text
        result = r.json()["trace"]
        hops = {h["name"]: h for h in result["hops"]}
        # one request to compute1's agent for everything it hosts on the path
        assert asked == [ProbeRequest(host="compute1", ports=[vm1["id"]], filters=[vm1["id"]])]
        assert hops["source port"]["probe"]["result"] == "ok"
        assert hops["source port"]["probe"]["hosts"] == [{"host": "compute1", "agent": LB, "result": "ok",
                                                          "checked": [f"tap{vm1['id'][:11]} on brq"], "missing": [],
                                                          "extra": []}]
        assert hops["egress security groups"]["probe"]["result"] == "drift"
        assert hops["egress security groups"]["probe"]["missing"] == [
            "compute1: element 10.1.0.9 of set inet fermion_sg rg-x-v4"]
        # compute2's agent does not listen: unanswered, in the time given, not an error
        silent = hops["destination port"]["probe"]
        assert silent["result"] == "unanswered"
        assert silent["hosts"][0]["reason"] == "linux-bridge-agent.compute2 not answered in 0.5 s"
        assert hops["network n1"]["probe"]["result"] == "unanswered"  # both ends' agents: one is silent
        assert result["probe"] == "drift" and result["verdict"] == "reachable"  # the model's verdict stands
        # the CLI shows it under each hop
        args = argparse.Namespace(src="vm1", dst="vm2", protocol="icmp", port=None, probe=True, json=False,
                                  endpoint="-", project=None, roles=None, token=None)
        assert cli.run(args, post=lambda path, b, headers: (200, cloud.admin.post(path, json=b).json())) == 0
        out = capsys.readouterr().out
        assert "probe: ok on compute1" in out
        assert "compute1 missing: element 10.1.0.9 of set inet fermion_sg rg-x-v4" in out
        assert "compute2 (Linux bridge agent): linux-bridge-agent.compute2 not answered in 0.5 s" in out
        assert out.rstrip().endswith("probe: drift")
    finally:
        stop()
    # without probe: no agent is asked
    assert "probe" not in trace(cloud.admin, "vm1", "vm2", "icmp", None)
    assert len(asked) == 2  # the API call and the CLI's


def test_probe_is_for_admins_and_a_boolean(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    cloud.boot(net, "vm1")
    body = {"source": "vm1", "destination": "external", "protocol": "icmp", "probe": True}
    err = assert_fault(cloud.tenant.post("/v2.0/traces", json={"trace": body}), 403, "PolicyNotAuthorized")
    assert "create_trace:probe" in err["message"]
    assert_fault(cloud.admin.post("/v2.0/traces", json={"trace": {**body, "probe": "yes"}}), 400, "HTTPBadRequest")
    assert trace(cloud.tenant, "vm1", "external", "icmp", None)["verdict"] == "not_routable"  # tracing still works


# ---------------------------------------------------------------- policy and input
def test_a_project_traces_its_own_ports_an_admin_any(cloud: Cloud, alice: Api) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    vm1 = cloud.boot(net, "vm1")
    theirs, _ = cloud.net("theirs", "10.9.0.0/24", who=alice)
    other = cloud.boot(theirs, "other", who=alice)
    assert_fault(cloud.tenant.post("/v2.0/traces", json={"trace": {"source": "vm1", "destination": other["id"],
                                                                   "port": 22}}), 404, "PortNotFound")
    assert_fault(cloud.tenant.post("/v2.0/traces", json={"trace": {"source": "vm1", "destination": "other",
                                                                   "port": 22}}), 404, "PortNotFound")
    assert_fault(alice.post("/v2.0/traces", json={"trace": {"source": vm1["fixed_ips"][0]["ip_address"],
                                                            "destination": "other", "port": 22}}), 404)
    # an address is looked up in the caller's view: alice has the same one on her own network
    mine = vm1["fixed_ips"][0]["ip_address"]
    copy, _ = cloud.net("copy", "10.1.0.0/24", who=alice)
    cloud.boot(copy, "twin", who=alice, fixed_ips=[{"ip_address": mine}])
    assert trace(cloud.tenant, mine, "external", "icmp", None)["source"]["port_id"] == vm1["id"]
    err = assert_fault(cloud.admin.post("/v2.0/traces", json={"trace": {"source": mine, "destination": "external",
                                                                        "protocol": "icmp"}}), 400, "InvalidInput")
    assert f"{mine} is on 2 ports" in err["message"]
    # a reader may trace; the admin traces across projects
    reader = cloud.tenant.as_("tenant-a", "reader")
    assert trace(reader, "vm1", "external", "icmp", None)["verdict"] == "not_routable"
    result = trace(cloud.admin, vm1["id"], other["id"])
    assert result["verdict"] == "not_routable"
    assert_fault(cloud.tenant.as_("tenant-a", "guest").post("/v2.0/traces", json={"trace": {
        "source": "vm1", "destination": "external", "protocol": "icmp"}}), 403, "PolicyNotAuthorized")


def test_bad_input_gets_neutron_faults(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    cloud.boot(net, "vm1")
    cloud.boot(net, "vm2")
    t = cloud.tenant

    def post(body: Any) -> Any:
        return t.post("/v2.0/traces", json=body)

    assert_fault(post({"source": "vm1"}), 400)
    assert_fault(post({"trace": {"source": "vm1"}}), 400)
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm2", "protocol": "sctp", "port": 1}}), 400)
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm2", "protocol": "tcp"}}), 400)
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm2", "port": 70000}}), 400)
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm2", "protocol": "icmp", "port": 1}}), 400)
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm2", "port": 22, "via": "x"}}), 400)
    assert_fault(post({"trace": {"source": 5, "destination": "vm2", "port": 22}}), 400)
    assert_fault(post({"trace": {"source": "external", "destination": "external", "port": 22}}), 400,
                 "InvalidInput")
    assert_fault(post({"trace": {"source": "vm1", "destination": "vm1", "port": 22}}), 400, "InvalidInput")
    assert_fault(post({"trace": {"source": "vm1", "destination": "10.77.0.1", "port": 22}}), 404, "PortNotFound")
    assert_fault(post({"trace": {"source": "vm1", "destination": "00000000-0000-4000-8000-000000000000",
                                 "port": 22}}), 404, "PortNotFound")
    dhcp = [p for p in t.get(f"/v2.0/ports?network_id={net}").json()["ports"]
            if p["device_owner"] == "network:dhcp"]
    if dhcp:
        assert_fault(post({"trace": {"source": "vm1", "destination": dhcp[0]["id"], "port": 53}}), 400)
    assert_fault(t.get("/v2.0/traces"), 405)
    assert_fault(t.post("/v2.0/traces/x", json={}), 404)


JUNK = st.recursive(st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12)
                    | st.sampled_from(["vm1", "external", "10.1.0.1", "tcp", "icmp", "udp"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["trace", "source", "destination", "protocol", "port", "x"]), inner,
                        max_size=5), max_leaves=8)


def test_junk_bodies_get_neutron_faults(cloud: Cloud) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    cloud.boot(net, "vm1")

    @settings(max_examples=150, deadline=None)
    @given(body=JUNK | st.fixed_dictionaries({"trace": st.dictionaries(
        st.sampled_from(["source", "destination", "protocol", "port"]), JUNK, max_size=4)}))
    def run(body: Any) -> None:
        r = cloud.tenant.post("/v2.0/traces", json=body)
        assert r.status_code in (200, 400, 404), r.text
        if r.status_code != 200:
            assert set(r.json()["NeutronError"]) == {"type", "message", "detail"}

    run()


def test_the_extension_is_advertised(api: Api) -> None:
    extensions = api.get("/v2.0/extensions").json()["extensions"]
    assert "fermion-trace" in {e["alias"] for e in extensions} and len(extensions) == 107
    assert api.get("/v2.0/extensions/fermion-trace").json()["extension"]["name"] == "Fermion trace"
    assert "create_trace" == api.get("/openapi.json").json()["paths"]["/v2.0/traces"]["post"]["operationId"]


# ---------------------------------------------------------------- the CLI
def test_fermion_trace_prints_each_hop_and_exits_by_the_verdict(cloud: Cloud, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    net, _ = cloud.net("n1", "10.1.0.0/24")
    web = cloud.group("web", {"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})
    cloud.boot(net, "vm1")
    cloud.boot(net, "vm2", security_groups=[web])
    headers = cloud.tenant.headers

    def post(path: str, body: dict[str, Any], extra: dict[str, str]) -> tuple[int, Any]:
        r = cloud.client.request("POST", path, json=body, headers={**headers, **extra})
        return r.status_code, r.json()

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers(), "http://unused")
        code = cli.run(parser.parse_args(["trace", *argv]), post)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("vm1", "vm2", "--port", "80")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("trace vm1 (10.1.0.") and lines[0].endswith("tcp port 80 (IPv4)")
    assert lines[1].split()[:4] == ["1.", "pass", "source", "port"] and lines[-1] == "verdict: reachable"
    code, out, _ = run("vm1", "vm2", "--port", "22")
    assert code == 1 and "  5. BLOCK    ingress security groups" in out
    assert out.splitlines()[-1].startswith("verdict: blocked at hop 5 (ingress security groups)")
    code, out, _ = run("vm1", "external")  # icmp when no port is given
    assert code == 1 and "icmp echo" in out.splitlines()[0] and "NO PATH" in out
    code, _, err = run("vm1", "nowhere", "--port", "22")
    assert code == 2 and err.startswith("fermion trace: 404 PortNotFound: ")


# ---------------------------------------------------------------- the rules decide as the data plane does


@settings(max_examples=300, deadline=None)
@given(direction=st.sampled_from(["ingress", "egress"]), ethertype=st.sampled_from(["IPv4", "IPv6"]),
       protocol=st.sampled_from([None, 1, 6, 17, 58, 132]), low=st.none() | st.integers(0, 300),
       span=st.none() | st.integers(0, 200), prefix=st.sampled_from([None, "10.0.0.0/24", "0.0.0.0/0",
                                                                   "10.0.1.9/32", "2001:db8::/64", "::/0"]),
       remote_group=st.booleans(), packet_protocol=st.sampled_from(["tcp", "udp", "icmp"]),
       port=st.integers(1, 400), remote=st.sampled_from(["10.0.0.5", "10.0.1.9", "10.9.9.9", "2001:db8::5"]),
       reply=st.booleans())
def test_security_group_rules_match_as_the_firewall_judges_them(
        direction: str, ethertype: str, protocol: int | None, low: int | None, span: int | None, prefix: str | None,
        remote_group: bool, packet_protocol: str, port: int, remote: str, reply: bool) -> None:
    """The trace's rule test agrees with the one the firewall uses to judge tracked connections (revoke.py)."""
    high = None if low is None or span is None else low + span
    members = {"g": ("10.0.0.0/24", "2001:db8::5")}
    rule = SecurityRule(direction=direction, ethertype=ethertype, protocol=protocol, port_min=low, port_max=high,
                        remote_ip_prefix=prefix, remote_group="g" if remote_group else None)
    version = ipaddress.ip_address(remote).version
    local = "10.0.0.1" if version == 4 else "2001:db8::1"
    packet = Packet.first(version, local, remote, packet_protocol, None if packet_protocol == "icmp" else port)
    if reply and packet_protocol == "icmp":
        packet = packet.reply().reply().reply()  # an echo reply
    flow = Flow(zone=1, version=version, protocol=packet.protocol, src=local, dst=remote,
                sport=40000 if packet.dport else None, dport=packet.dport[0] if packet.dport else None,
                icmp_type=packet.icmp_type, icmp_code=packet.icmp_code)
    plane = Rule(direction=direction, ethertype=ethertype, protocol=protocol, port_min=low, port_max=high,
                 remote_ip_prefix=prefix, remote_group="g" if remote_group else None)
    assert sg_rule_matches(rule, packet, remote, members, {}) == rule_allows(plane, flow, remote, members, {})
