"""fermion trace --probe on an OVS host: the planner's plan against OVS as it is, kept to one port's part (its tap
and its network's flows, or its firewall flows), with extra flows read back as OVS renders them."""

from __future__ import annotations

from fermion.agent.ovs import probe as ovsprobe
from fermion.agent.ovs.planner import plan
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import (
    Firewall,
    L2Network,
    L2Port,
    L2View,
    PortSecurity,
    ProbeResult,
    RemotePort,
    SecurityGroup,
    SecurityRule,
)
from tests.unit.agent.test_ovs_planner import CFG, NETS

(NET_A, VXLAN), (NET_B, VLAN) = NETS[0], NETS[3]
MAC1, MAC2, MAC3 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3e:00:00:03"
VTEP = "198.18.0.12"


class Host:
    """OVS in memory: the state the planner sees, and every flow's text by cookie (what a dump shows)."""

    def __init__(self, view: L2View) -> None:
        self.state = o.OvsState(links={naming.tap("p1"), naming.tap("p2")})
        self.texts: dict[str, dict[int, str]] = {}
        self.sync(view)

    def sync(self, view: L2View) -> None:
        ops = plan(view, self.state, CFG).ops
        for op in ops:
            if isinstance(op, o.AddFlows):
                self.texts.setdefault(op.bridge, {}).update(zip(op.cookies, op.flows, strict=True))
        self.state = o.applied(self.state, ops)

    def dump(self, bridge: str) -> str:
        """OpenFlow 1.5's way: table first (none for 0), then the match, a space, the actions."""
        lines = []
        for k in sorted(self.state.flows.get(bridge, ())):
            table, rest = self.texts[bridge][k].split(",", 1)
            match, actions = rest.split(",actions=")
            shown = "" if table == "table=0" else f"{table}, "
            lines.append(f" cookie={k:#x}, {shown}{match} actions={actions}")
        return "\n".join(lines)

    def remove(self, bridge: str, wanted: str) -> None:
        self.state.flows[bridge] -= {k for k, f in self.texts[bridge].items() if f.startswith(wanted)}

    def add(self, bridge: str, flow: str) -> None:
        k = o.cookie(bridge, flow)
        self.texts.setdefault(bridge, {})[k] = flow
        self.state.flows.setdefault(bridge, set()).add(k)

    def probe(self, view: L2View, ports: list[str] = (), filters: list[str] = ()) -> dict[str, ProbeResult]:
        return ovsprobe.probe(view, self.state, CFG, ports, filters, self.dump)


def cloud() -> L2View:
    """p1 (VXLAN, a remote port on another host, filtered: ssh and its group's members) and p2 (a VLAN)."""
    rules = [SecurityRule("ingress", "IPv4", 6, 22, 22), SecurityRule("ingress", "IPv4", None, remote_group="g1")]
    firewall = Firewall([PortSecurity("p1", MAC1, ["10.0.0.5"], [], ["g1"], True, NET_A),
                         PortSecurity("p2", MAC2, ["10.9.0.5"], [], [], False, NET_B)],
                        [SecurityGroup("g1", True, rules)], {"g1": ["10.0.0.5", "10.0.0.7"]})
    nets = [L2Network(NET_A, 1450, True, VXLAN, [VTEP], [RemotePort(MAC3, ["10.0.0.7"], VTEP)]),
            L2Network(NET_B, 1500, True, VLAN)]
    return L2View("h", nets, [L2Port("p1", NET_A, MAC1, 1, True, ""), L2Port("p2", NET_B, MAC2, 1, True, "")],
                  firewall=firewall)


def test_a_host_as_its_plan_left_it_is_ok_and_says_what_it_looked_at() -> None:
    view = cloud()
    host = Host(view)
    found = host.probe(view, ["p1", "p2"], ["p1"])
    assert all(not r.missing and not r.extra for r in found.values()), found
    lv = host.state.local_vlans[NET_A]
    assert found["port p1"].checked == [f"{naming.tap('p1')} on br-int (local VLAN {lv})",
                                        "br-tun: vxlan id 100, 1 tunnels, 1 unicast and 1 ARP responder entries"]
    assert found["port p2"].checked[1].startswith("br-eth1: vlan 101 <-> local VLAN")
    assert found["filters p1"].checked == [f"firewall flows of {naming.tap('p1')} (OpenFlow port "
                                           f"{host.state.ofports[naming.tap('p1')]}, zone {lv}) and 1 conjunctions "
                                           "on br-int"]


def test_a_flow_removed_is_missing_for_the_ports_of_its_network_only() -> None:
    view = cloud()
    host = Host(view)
    lv = host.state.local_vlans[NET_A]
    host.remove("br-tun", f"table=22,priority=1,dl_vlan={lv},")  # the flood to the network's other hosts
    found = host.probe(view, ["p1", "p2"], ["p1"])
    assert found["port p1"].missing == [f"flow on br-tun: table=22,priority=1,dl_vlan={lv},actions=strip_vlan,"
                                        f"set_tunnel:0x64,output:vxlan-c612000c"]
    assert not found["port p2"].missing and not found["filters p1"].missing
    assert plan(view, host.state, CFG).ops  # and the next full pass puts it back


def test_the_tap_off_its_bridge_or_its_tag_changed_is_missing() -> None:
    view = cloud()
    host = Host(view)
    tap, lv = naming.tap("p2"), host.state.local_vlans[NET_B]
    host.state.ports[tap] = o.Port("br-int", 4095)
    assert host.probe(view, ["p2"])["port p2"].missing == [f"port {tap} on br-int, tag {lv}"]
    host.state.links.discard(tap)
    assert host.probe(view, ["p2"])["port p2"].missing[0] == f"{tap} (the instance's device)"
    assert host.probe(view, ["gone"])["port gone"].missing == [
        "port gone in this host's view (bound elsewhere, or deleted)"]


def test_an_extra_flow_is_named_as_ovs_shows_it_for_its_network_only() -> None:
    view = cloud()
    host = Host(view)
    lv_a, lv_b = host.state.local_vlans[NET_A], host.state.local_vlans[NET_B]
    host.add("br-tun", f"table=20,priority=2,dl_vlan={lv_a},dl_dst=fa:16:3e:99:99:99,actions=strip_vlan,"
                       "set_tunnel:0x64,output:vxlan-c612000c")
    host.add("br-eth1", f"table=0,priority=4,in_port=phy-br-eth1,dl_vlan={lv_b},actions=drop")
    found = host.probe(view, ["p1", "p2"])
    assert found["port p1"].extra == [f"flow on br-tun: table=20, priority=2,dl_vlan={lv_a},dl_dst=fa:16:3e:99:99:99 "
                                      "actions=strip_vlan,set_tunnel:0x64,output:vxlan-c612000c"]
    assert found["port p2"].extra == [f"flow on br-eth1: priority=4,in_port=phy-br-eth1,dl_vlan={lv_b} actions=drop"]
    assert not found["port p1"].missing and not found["port p2"].missing


def test_the_ports_firewall_flows_and_its_groups_members_are_filters_not_port() -> None:
    view = cloud()
    host = Host(view)
    number = host.state.ofports[naming.tap("p1")]
    host.remove("br-int", f"table=82,priority=70,reg5={number},tcp,tp_dst=22")  # its ssh rule
    host.remove("br-int", "table=82,priority=71,ip,nw_src=10.0.0.7")  # a member of its remote group
    found = host.probe(view, ["p1"], ["p1"])
    missing = found["filters p1"].missing
    assert len(missing) == 3, missing  # the ssh rule's two states, and the member
    assert sum(f"reg5={number},tcp,tp_dst=22" in m for m in missing) == 2
    assert any("ip,nw_src=10.0.0.7/32,actions=conjunction(" in m for m in missing)
    assert not found["port p1"].missing


def test_ovs_rendering_read_back_in_the_planners_tokens() -> None:
    lines = {" cookie=0xfe5e000000000000, table=4, priority=1,tun_id=0x64 actions=push_vlan:0x8100,"
             "set_field:4097->vlan_vid,output:1": {"tun_id=0x64", "mod_vlan_vid:1"},
             " cookie=0xfe5e000000000001, table=22, priority=1,dl_vlan=1 actions=pop_vlan,set_field:0x64->tun_id,"
             "output:1": {"dl_vlan=1", "set_tunnel:0x64", "strip_vlan"},
             " cookie=0xfe5e000000000005, table=60, priority=90,reg6=0x3,dl_dst=fa:16:3e:00:00:01 actions="
             "set_field:0x3->reg5,set_field:0->vlan_tci,resubmit(,81)": {"reg6=3", "set_field:3->reg5"},
             " cookie=0xfe5e000000000002, priority=100,in_port=3 actions=drop": {"table=0", "in_port=3"}}
    for line, tokens in lines.items():
        assert tokens <= ovsprobe._tokens(ovsprobe._normal(line)), ovsprobe._normal(line)
    assert ovsprobe._firewall(ovsprobe._normal(" cookie=0x1, priority=100,in_port=3 actions=drop"))
