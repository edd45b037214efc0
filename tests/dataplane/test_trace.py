"""`fermion trace` against real packets (issue 19, point 4): a randomly drawn cloud (security groups and rules,
a router with or without its second interface and SNAT, a floating IP or none) on the lab's hosts, and for a
random sample of (source, destination, protocol, port) the trace's verdict is checked against a real connection
attempt between the instances and the lab's "internet". The seed is fixed and printed; FERMION_TRACE_SEED draws
another cloud."""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.lab import Lab, ping_ns, tcp_connects, tcp_listener

SEED = 19
SAMPLE = 14
RULES = [  # the pool the groups' ingress rules are drawn from
    {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
    {"protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "10.41.0.0/16"},
    {"protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080, "remote_group": "a"},
    {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "198.19.0.0/24"},
    {"protocol": "icmp"},
    {"protocol": "icmp", "remote_group": "b"},
]
SERVICES = [("tcp", 22), ("tcp", 80), ("tcp", 8080), ("icmp", None)]


def test_trace_verdicts_agree_with_real_connections(lab: Lab) -> None:
    seed = int(os.environ.get("FERMION_TRACE_SEED") or SEED)
    print(f"trace lab seed {seed}")
    rng = random.Random(seed)
    api = lab.api
    ext = instances.ensure_external_network(lab.state, api)
    lab.network("tnet1", "10.41.1.0/24")
    lab.network("tnet2", "10.41.2.0/24")
    groups = {name: api.post("security-groups", {"name": f"trace-{name}"})["id"] for name in ("a", "b")}
    drawn: dict[str, list[dict[str, Any]]] = {}
    for name, gid in groups.items():
        drawn[name] = rng.sample(RULES, rng.randint(1, 3))
        for rule in drawn[name]:
            body = {k: v for k, v in rule.items() if k != "remote_group"}
            if "remote_group" in rule:
                body["remote_group_id"] = groups[rule["remote_group"]]
            api.post("security-group-rules", {"security_group_id": gid, "direction": "ingress", **body})
    placement = {"vm1": ("tnet1", "compute1", "a"), "vm2": ("tnet1", "compute2", "b"),
                 "vm3": ("tnet2", "compute1", rng.choice("ab"))}
    for vm, (net, host, group) in placement.items():
        lab.boot(net, host, vm, security_groups=[groups[group]])
    routed, snat, fip_on = rng.random() < 0.7, rng.random() < 0.7, rng.choice(["vm1", "vm3", None])
    if fip_on == "vm3" and not routed:  # the API refuses a floating IP the router cannot reach
        fip_on = "vm1"
    print(f"  rules {drawn}, placement {placement}, second interface {routed}, snat {snat}, floating IP {fip_on}")
    router = api.post("routers", {"name": "trace-r", "external_gateway_info": {"network_id": ext["id"],
                                                                              "enable_snat": snat}})
    for net in ["tnet1", "tnet2"] if routed else ["tnet1"]:
        subnet = api._ok(api.http.get("/v2.0/subnets", params={"network_id": api.network(net)["id"]}))["subnets"][0]
        api._ok(api.http.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": subnet["id"]}))
    fip = api.post("floatingips", {"floating_network_id": ext["id"], "port_id": lab.state.instances[fip_on].port_id}
                   ) if fip_on else None
    firewall = None
    if routed and rng.random() < 0.5:  # FWaaS on tnet2's interface: in towards tnet2 only tcp 80 and icmp
        rules = [api._ok(api.http.post("/v2.0/fwaas/firewall_rules", json={"firewall_rule": {
            "protocol": proto, "action": "allow", **({"destination_port": "80"} if proto == "tcp" else {})}}))[
            "firewall_rule"]["id"] for proto in ("tcp", "icmp")]
        policy = api._ok(api.http.post("/v2.0/fwaas/firewall_policies", json={"firewall_policy": {
            "name": "trace-in", "firewall_rules": rules}}))["firewall_policy"]
        iface = [p["id"] for p in api._ok(api.http.get("/v2.0/ports", params={"device_id": router["id"]}))["ports"]
                 if p["network_id"] == api.network("tnet2")["id"]]
        firewall = api._ok(api.http.post("/v2.0/fwaas/firewall_groups", json={"firewall_group": {
            "name": "trace-fw", "ingress_firewall_policy_id": policy["id"], "ports": iface}}))["firewall_group"]
    print(f"  firewall group on tnet2's interface: {firewall is not None}")
    settle(lab, router["id"], fip, firewall)

    ends = ["vm1", "vm2", "vm3", "external"]
    tuples = [(s, d, proto, port) for s, d in itertools.permutations(ends, 2) for proto, port in SERVICES]
    wrong = []
    for src, dst, proto, port in rng.sample(tuples, SAMPLE):
        body = {"source": src, "destination": dst, "protocol": proto, **({"port": port} if port else {})}
        result = api._ok(api.http.post("/v2.0/traces", json={"trace": body}))["trace"]
        real = attempt(lab, src, dst, proto, port, fip, result["reachable"])
        print(f"  {src} -> {dst} {proto} {port or ''}: trace {result['reason']}; real {'yes' if real else 'no'}")
        if real != result["reachable"]:
            wrong.append(f"{src} -> {dst} {proto} {port}: trace says {result['reason']}, a real attempt "
                         f"{'connects' if real else 'fails'}")
    assert not wrong, f"seed {seed}: " + "; ".join(wrong)


def settle(lab: Lab, router_id: str, fip: dict[str, Any] | None, firewall: dict[str, Any] | None) -> None:
    """Every port ACTIVE (the router's too), the floating IP and firewall group realized; then the agents' last
    firewall updates (new members of remote groups) a moment to land."""
    api = lab.api

    def ready() -> bool:
        ports = api._ok(api.http.get("/v2.0/ports"))["ports"]
        wired = all(p["status"] == "ACTIVE" for p in ports if p["binding:host_id"] and
                    (p["device_owner"].startswith("compute") or p["device_id"] == router_id))
        found = fip is None or api._ok(api.http.get(f"/v2.0/floatingips/{fip['id']}"))["floatingip"]["status"] \
            == "ACTIVE"
        if firewall is not None:
            group = api._ok(api.http.get(f"/v2.0/fwaas/firewall_groups/{firewall['id']}"))["firewall_group"]
            found = found and group["status"] == "ACTIVE"
        return wired and found

    lab.wait(ready, 30, "the ports and the floating IP to be realized")
    time.sleep(2)


def attempt(lab: Lab, src: str, dst: str, proto: str, port: int | None, fip: dict[str, Any] | None,
            expected: bool) -> bool:
    """A real connection (or ping) from src to dst: from outside to the floating IP when dst has it (else to
    its fixed address), to the lab's internet at its gateway address. An answer that differs from the trace is
    asked again for a few seconds (an agent may still be applying the last change)."""
    ext_ns = lab.state.external
    src_ns = ext_ns if src == "external" else lab.state.instances[src].netns
    dst_ns = ext_ns if dst == "external" else lab.state.instances[dst].netns
    if dst == "external":
        address = EXTERNAL_GATEWAY
    elif src == "external" and fip is not None and fip["port_id"] == lab.state.instances[dst].port_id:
        address = fip["floating_ip_address"]
    else:
        address = lab.state.instances[dst].ip or ""
    deadline = time.monotonic() + 4
    while True:
        if proto == "icmp":
            real = ping_ns(src_ns, address, count=1, wait=1)
        else:
            assert port is not None
            with tcp_listener(dst_ns, port):
                real = tcp_connects(src_ns, address, port, timeout=1.5)
        if real == expected or time.monotonic() > deadline:
            return real
        time.sleep(0.5)
