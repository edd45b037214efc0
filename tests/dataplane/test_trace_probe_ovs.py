"""`fermion trace --probe` on Open vSwitch hosts: on a working path between instances on two OVS hosts every
probed hop is ok; then flows are deleted by hand from the hosts' vswitchd (compute1's L2-population flow to vm2's
MAC on br-tun, compute2's firewall flow admitting vm1's address as a member of vm2's remote group) and the probe
names each one as missing (and flows added by hand as extra), while the real ping agrees with the probe.

Deterministic: the agents' full resync is 10 minutes apart and nothing the test does sends a hint (deleting a
flow makes no link event), so no agent repairs what was deleted before the probe looks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fermion.cli.trace import render
from fermion.dataplane import naming, ovs
from tests.dataplane.conftest import KINDS, embedded_lab
from tests.dataplane.lab import Lab
from tests.dataplane.test_trace_probe import probe, probed


@pytest.fixture
def quiet_ovs_lab(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"agents": {"resync_interval": 600.0}}, switches=KINDS["ovs"]) as lab:
        yield lab


def test_probe_on_ovs_hosts_is_ok_then_names_the_flows_deleted_by_hand(quiet_ovs_lab: Lab) -> None:
    lab, api = quiet_ovs_lab, quiet_ovs_lab.api
    lab.network("onet", "10.43.2.0/24")
    vm1 = lab.boot("onet", "compute1", "vm1")
    vm2 = lab.boot("onet", "compute2", "vm2")
    lab.wait(lambda: lab.ping("vm1", "vm2", count=1), 30, "vm1 to reach vm2")

    found = probe(lab, "vm1", "vm2")
    print(render(found))
    assert found["verdict"] == "reachable" and found["probe"] == "ok", probed(found)
    hops = probed(found)
    assert set(hops) == {"source port", "anti-spoofing", "egress security groups", "network onet",
                         "ingress security groups", "destination port"}
    assert {h["agent"] for p in hops.values() for h in p["hosts"]} == {"Open vSwitch agent"}
    assert any(c.startswith("br-tun: vxlan id") for c in hops["source port"]["hosts"][0]["checked"])

    c1, c2 = (ovs.Client(ovs.rundir(lab.state_dir, h)) for h in ("compute1", "compute2"))
    lv1 = int(c1.vsctl("get", "port", naming.tap(vm1.port_id), "tag"))
    vni = api._ok(api.http.get(f"/v2.0/networks/{vm1.network_id}"))["network"]["provider:segmentation_id"]
    # 1. compute1's unicast flow to vm2's MAC (L2 population): what goes to vm2 is flooded instead
    c1.ofctl("--strict", "del-flows", "br-tun", f"table=20,priority=2,dl_vlan={lv1},dl_dst={vm2.mac}")
    # 2. compute2's flow that makes vm1's address a member of the default group (its remote group rule)
    c2.ofctl("--strict", "del-flows", "br-int", f"table=82,priority=71,ip,nw_src={vm1.ip}/32")
    # 3. flows with the agent's cookie that it does not want: one of the network's on compute1, one of vm2's
    # filters on compute2 (telnet admitted), read back as OVS shows them
    n2 = int(c2.vsctl("get", "interface", naming.tap(vm2.port_id), "ofport"))
    c1.ofctl("add-flow", "br-tun", f"cookie={ovs.COOKIE_BASE | 1:#x},table=20,priority=2,dl_vlan={lv1},"
                                   "dl_dst=fa:16:3e:99:99:99,actions=drop")
    c2.ofctl("add-flow", "br-int", f"cookie={ovs.COOKIE_BASE | 2:#x},table=82,priority=70,reg5={n2},tcp,tp_dst=23,"
                                   f"actions=output:{n2}")

    found = probe(lab, "vm1", "vm2")
    print(render(found))
    assert found["verdict"] == "reachable" and found["probe"] == "drift"  # the model still says reachable
    hops = probed(found)
    tunnel = "vxlan-" + f"{int.from_bytes(bytes(map(int, lab.state.hosts['compute2'].underlay_ip.split('.')))):08x}"
    assert hops["source port"]["missing"] == [
        f"compute1: flow on br-tun: table=20,priority=2,dl_vlan={lv1},dl_dst={vm2.mac},actions=strip_vlan,"
        f"set_tunnel:{vni:#x},output:{tunnel}"]
    assert hops["source port"]["extra"] == [
        f"compute1: flow on br-tun: table=20, priority=2,dl_vlan={lv1},dl_dst=fa:16:3e:99:99:99 actions=drop"]
    assert hops["network onet"]["result"] == "drift" and hops["destination port"]["result"] == "ok"
    ingress = hops["ingress security groups"]
    assert ingress["result"] == "drift" and len(ingress["missing"]) == 1, ingress
    assert ingress["missing"][0].startswith(f"compute2: flow on br-int: table=82,priority=71,ip,nw_src={vm1.ip}/32,"
                                            "actions=conjunction(")
    assert ingress["extra"] == [f"compute2: flow on br-int: table=82, priority=70,tcp,reg5={n2:#x},tp_dst=23 "
                                f"actions=output:{n2}"]
    assert hops["anti-spoofing"]["result"] == "ok" and hops["egress security groups"]["result"] == "ok"
    assert not lab.ping("vm1", "vm2", count=1)  # the host agrees with the probe, not with the model
