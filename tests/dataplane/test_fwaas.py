"""FWaaS v2 with real packets (issue 17 point 5): a firewall group on a router's internal port, its ingress policy
first-match, stateful, with the implicit deny; security groups still apply behind it; statuses turn ACTIVE."""

from __future__ import annotations

import subprocess
from typing import Any

from fermion.dataplane import fwaas as dp
from fermion.dataplane import naming
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.lab import Lab, ping_ns, tcp_connects, tcp_listener
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of

FW = "/v2.0/fwaas"


def fw_post(lab: Lab, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    member = {"firewall_rules": "firewall_rule", "firewall_policies": "firewall_policy",
              "firewall_groups": "firewall_group"}[collection]
    return lab.api._ok(lab.api.http.post(f"{FW}/{collection}", json={member: body}))[member]  # type: ignore[no-any-return]


def fw_put(lab: Lab, path: str, body: dict[str, Any]) -> Any:
    return lab.api._ok(lab.api.http.put(f"{FW}/{path}", json=body))


def group_status(lab: Lab, group_id: str) -> str:
    return str(lab.api._ok(lab.api.http.get(f"{FW}/firewall_groups/{group_id}"))["firewall_group"]["status"])


def wait_status(lab: Lab, group_id: str, wanted: str) -> None:
    lab.wait(lambda: group_status(lab, group_id) == wanted, 20, f"firewall group {group_id} to be {wanted}")


def protected_instance(lab: Lab) -> dict[str, Any]:
    """vm1 behind a router with a floating IP; its security group admits ICMP and TCP 22 and 80 from anywhere."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("net1", "10.1.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": router["id"],
                                                                "device_owner": "network:router_interface"}))
    vm = lab.boot("net1", "compute1", "vm1")
    for proto, port in (("icmp", None), ("tcp", 22), ("tcp", 80)):
        allow_from_anywhere(lab, proto, port)
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm.port_id})
    return {"router": router, "qr_port": ports["ports"][0]["id"], "vm": vm, "fip": fip["floating_ip_address"]}


def test_group_filters_first_match_statefully_and_goes_away(lab: Lab) -> None:
    t = protected_instance(lab)
    ext, vm, fip = lab.state.external, t["vm"], t["fip"]
    lab.wait(lambda: ping_ns(ext, fip, count=1), 20, "the floating IP to answer")
    with tcp_listener(vm.netns, 80), tcp_listener(vm.netns, 22), tcp_listener(vm.netns, 8080):
        assert tcp_connects(ext, fip, 80) and tcp_connects(ext, fip, 22)

        deny_http = fw_post(lab, "firewall_rules", {"protocol": "tcp", "destination_port": "80", "action": "deny"})
        allow_tcp = fw_post(lab, "firewall_rules", {"protocol": "tcp", "action": "allow"})
        policy = fw_post(lab, "firewall_policies", {"name": "web-closed",
                                                    "firewall_rules": [deny_http["id"], allow_tcp["id"]]})
        group = fw_post(lab, "firewall_groups", {"name": "edge", "ingress_firewall_policy_id": policy["id"],
                                                 "ports": [t["qr_port"]]})
        assert group["status"] == "PENDING_CREATE"
        wait_status(lab, group["id"], "ACTIVE")
        # a deny rule for TCP 80 from the external namespace blocks it while TCP 22 passes
        assert not tcp_connects(ext, fip, 80, timeout=1.0)
        assert tcp_connects(ext, fip, 22)
        assert not ping_ns(ext, fip, count=1)  # the implicit deny: the policy allows no ICMP
        # the egress direction has no policy: the instance still reaches the outside
        with tcp_listener(ext, 8081):
            assert tcp_connects(vm.netns, EXTERNAL_GATEWAY, 8081)
        # security groups still apply behind it: 8080 passes the firewall but not vm1's group
        assert not tcp_connects(ext, fip, 8080, timeout=1.0)
        router_ns = naming.router_namespace(t["router"]["id"], lab.host_ns("network1"))
        table = subprocess.run(["ip", "netns", "exec", router_ns, "nft", "list", "table", "inet", dp.TABLE],
                               capture_output=True, text=True, check=True).stdout
        assert naming.router_interface(t["qr_port"]) in table

        # rule order matters: the same rules the other way round let TCP 80 in (first match wins)
        fw_put(lab, f"firewall_policies/{policy['id']}", {"firewall_policy": {
            "firewall_rules": [allow_tcp["id"], deny_http["id"]]}})
        wait_status(lab, group["id"], "ACTIVE")
        assert tcp_connects(ext, fip, 80)
        fw_put(lab, f"firewall_policies/{policy['id']}/remove_rule", {"firewall_rule_id": allow_tcp["id"]})
        wait_status(lab, group["id"], "ACTIVE")
        assert not tcp_connects(ext, fip, 80, timeout=1.0) and not tcp_connects(ext, fip, 22, timeout=1.0)

        # removing the group from the port restores the traffic
        fw_put(lab, f"firewall_groups/{group['id']}", {"firewall_group": {"ports": []}})
        assert group_status(lab, group["id"]) == "INACTIVE"
        lab.wait(lambda: tcp_connects(ext, fip, 80), 15, "TCP 80 to pass again")
        assert tcp_connects(ext, fip, 22) and ping_ns(ext, fip, count=1)
        lab.api._ok(lab.api.http.delete(f"{FW}/firewall_groups/{group['id']}"))


def test_admin_down_group_drops_and_reads_down(lab: Lab) -> None:
    t = protected_instance(lab)
    ext, vm, fip = lab.state.external, t["vm"], t["fip"]
    lab.wait(lambda: ping_ns(ext, fip, count=1), 20, "the floating IP to answer")
    allow_all = fw_post(lab, "firewall_rules", {"action": "allow"})
    policy = fw_post(lab, "firewall_policies", {"firewall_rules": [allow_all["id"]]})
    group = fw_post(lab, "firewall_groups", {"ingress_firewall_policy_id": policy["id"],
                                             "egress_firewall_policy_id": policy["id"], "ports": [t["qr_port"]]})
    wait_status(lab, group["id"], "ACTIVE")
    with tcp_listener(vm.netns, 22):
        assert tcp_connects(ext, fip, 22) and ping_ns(ext, fip, count=1)
        fw_put(lab, f"firewall_groups/{group['id']}", {"firewall_group": {"admin_state_up": False}})
        wait_status(lab, group["id"], "DOWN")
        assert not tcp_connects(ext, fip, 22, timeout=1.0)
        fw_put(lab, f"firewall_groups/{group['id']}", {"firewall_group": {"admin_state_up": True}})
        wait_status(lab, group["id"], "ACTIVE")
        assert tcp_connects(ext, fip, 22)
