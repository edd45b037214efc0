"""`fermion trace --probe` against real kernels (issue 19, point 2): on a working path every probed hop is ok;
then kernel objects are removed by hand in the lab's namespaces (a remote group's nftables set element, a
VXLAN forwarding entry, a floating IP's DNAT map element) and the probe names each one as missing.

Deterministic: the agents' periodic full resync is set to 10 minutes here, and nothing the test does sends them
a hint, so no agent puts back what was removed before the probe looks (a full resync would: test_repair.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.cli.trace import render
from fermion.dataplane import naming
from fermion.dataplane.firewall import remote_set
from fermion.lab import instances
from fermion.lab.state import LabInstance
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab
from tests.dataplane.test_trace import settle


@pytest.fixture
def quiet_lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab with full resyncs 10 minutes apart: what is removed by hand stays removed while the test looks."""
    with embedded_lab(tmp_path, sections={"agents": {"resync_interval": 600.0}}) as lab:
        yield lab


def probe(lab: Lab, source: str, destination: str) -> dict[str, Any]:
    body = {"source": source, "destination": destination, "protocol": "icmp", "probe": True}
    return lab.api._ok(lab.api.http.post("/v2.0/traces", json={"trace": body}))["trace"]  # type: ignore[no-any-return]


def probed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """hop name -> its probe, for the hops that were probed."""
    return {h["name"]: h["probe"] for h in result["hops"] if h.get("probe")}


def in_ns(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True)


def two_instances_and_a_router(lab: Lab, network: str, cidr: str) -> tuple[dict[str, Any], LabInstance,
                                                                             LabInstance, dict[str, Any]]:
    """(the external network, vm1 on compute1, vm2 on compute2, a router from their network to the outside)."""
    api = lab.api
    ext = instances.ensure_external_network(lab.state, api)
    net = lab.network(network, cidr)
    vm1 = lab.boot(network, "compute1", "vm1")
    vm2 = lab.boot(network, "compute2", "vm2")
    router = api.post("routers", {"name": f"{network}-r", "external_gateway_info": {"network_id": ext["id"]}})
    subnet = api._ok(api.http.get("/v2.0/subnets", params={"network_id": net["id"]}))["subnets"][0]
    api._ok(api.http.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": subnet["id"]}))
    return ext, vm1, vm2, router


def test_probe_is_ok_on_a_working_path_and_names_what_was_removed_by_hand(quiet_lab: Lab) -> None:
    lab, api = quiet_lab, quiet_lab.api
    ext, vm1, vm2, router = two_instances_and_a_router(lab, "pnet", "10.43.1.0/24")
    fip = api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    settle(lab, router["id"], fip, None)
    assert lab.ping("vm1", "vm2")

    # a working path: every hop's agents find what the model wants
    inside = probe(lab, "vm1", "vm2")
    assert inside["verdict"] == "reachable" and inside["probe"] == "ok", probed(inside)
    hops = probed(inside)
    assert set(hops) == {"source port", "anti-spoofing", "egress security groups", "network pnet",
                         "ingress security groups", "destination port"}
    assert {h["host"] for p in hops.values() for h in p["hosts"]} == {"compute1", "compute2"}
    outside = probe(lab, "external", fip["floating_ip_address"])
    assert outside["probe"] == "ok", probed(outside)
    nat = probed(outside)["floating IP"]
    assert [h["host"] for h in nat["hosts"]] == ["network1"]
    assert any("fermion_nat" in c for c in nat["hosts"][0]["checked"])

    # 1. vm1's address taken out of the default group's remote set on compute2: vm2 no longer admits it
    group = api._ok(api.http.get(f"/v2.0/ports/{vm2.port_id}"))["port"]["security_groups"][0]
    members = remote_set(group, False)
    in_ns(lab.host_ns("compute2"), "nft", "delete", "element", "inet", "fermion_sg", members, f"{{ {vm1.ip} }}")
    # 2. compute1's forwarding entry for vm2's MAC taken off the network's VXLAN device
    vni = api._ok(api.http.get(f"/v2.0/networks/{vm1.network_id}"))["network"]["provider:segmentation_id"]
    vtep = lab.state.hosts["compute2"].underlay_ip
    in_ns(lab.host_ns("compute1"), "bridge", "fdb", "del", vm2.mac, "dev", naming.vxlan(vni), "dst", vtep)
    # 3. the floating IP's DNAT element taken out of the router's NAT map on network1
    router_ns = naming.router_namespace(router["id"], lab.host_ns("network1"))
    in_ns(router_ns, "nft", "delete", "element", "ip", "fermion_nat", "fip_dnat", f"{{ {fip['floating_ip_address']} }}")

    inside = probe(lab, "vm1", "vm2")
    print(render(inside))
    assert inside["verdict"] == "reachable" and inside["probe"] == "drift"  # the model still says reachable
    hops = probed(inside)
    assert hops["ingress security groups"]["result"] == "drift"
    assert hops["ingress security groups"]["missing"] == [
        f"compute2: element {vm1.ip} of set inet fermion_sg {members}"]
    assert f"compute1: fdb {vm2.mac} dst {vtep} on {naming.vxlan(vni)}" in hops["source port"]["missing"]
    assert hops["destination port"]["result"] == "ok" and hops["anti-spoofing"]["result"] == "ok"
    assert not lab.ping("vm1", "vm2", count=1)  # and the host agrees with the probe, not with the model
    outside = probe(lab, "external", fip["floating_ip_address"])
    print(render(outside))
    assert probed(outside)["floating IP"]["missing"] == [
        f"network1: element {fip['floating_ip_address']} : {vm1.ip} of fip_dnat of table ip fermion_nat"]
