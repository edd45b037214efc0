"""The OVS planner: applying views one after another leaves exactly what a full recompute wants (OVN's
CHECK_NO_CHANGE_AFTER_RECOMPUTE idea), and the same bridges, ports and flows as a host built from scratch."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.agent.ovs import dvr
from fermion.agent.ovs.planner import DEAD_VLAN, OvsConfig, plan, tunnel_port
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import L2Network, L2Port, L2View, RemotePort, Segment

CFG = OvsConfig("198.18.0.11", {"physnet1": "br-eth1"}, ("vxlan", "gre", "geneve"))
NETS = [(f"00000000-0000-4000-8000-00000000000{i}", seg) for i, seg in enumerate([
    Segment("vxlan", None, 100), Segment("gre", None, 200), Segment("geneve", None, 300),
    Segment("vlan", "physnet1", 101), Segment("flat", "physnet1", None), Segment("local", None, None)])]
VTEPS = ["198.18.0.12", "198.18.0.13", "198.18.0.14"]
TRUNKS = ["7a0c1e2d-1111-4000-8000-000000000001", "7a0c1e2d-2222-4000-8000-000000000002"]
DVR_MACS = ["", "fa:16:3f:00:00:01", "fa:16:3f:00:00:02"]  # "": no router copy here (or a server before 1.13)


def apply(state: o.OvsState, ops: list[o.Op]) -> o.OvsState:
    """What OvsHost.apply does to a host, in memory."""
    return o.applied(state, ops)


@st.composite
def views(draw: st.DrawFn) -> tuple[L2View, set[str]]:
    nets, ports, taps = [], [], set()
    for net_id, seg in draw(st.lists(st.sampled_from(NETS), unique=True, max_size=4)):
        vteps = draw(st.lists(st.sampled_from(VTEPS), unique=True, max_size=2))
        remote = [RemotePort(f"fa:16:3e:00:00:{i:02x}", [f"10.0.0.{i + 10}"], v) for i, v in enumerate(vteps)]
        nets.append(L2Network(net_id, 1450, draw(st.booleans()), seg, vteps, remote))
        for k in range(draw(st.integers(0, 2))):
            pid = f"{net_id[:8]}-{k}"
            ports.append(L2Port(pid, net_id, "fa:16:3e:11:11:11", draw(st.integers(1, 3)), draw(st.booleans()), ""))
            if draw(st.booleans()):
                taps.add(naming.tap(pid))
        for k in range(draw(st.integers(0, 2))):  # a distributed router's interfaces (its copy on this host)
            pid = f"{net_id[:8]}-r{k}"
            ips = draw(st.lists(st.sampled_from([f"10.0.{k}.1", f"10.1.{k}.1", f"2001:db8:{k}::1"]), unique=True))
            ports.append(L2Port(pid, net_id, f"fa:16:3e:22:22:{k:02x}", 1, True, dvr.INTERFACE_OWNER, ips=ips))
            if draw(st.booleans()):
                taps.add(naming.tap(pid))
    if ports and draw(st.booleans()):  # a trunk: the first port its parent, some ports of other networks subports
        parent = replace(ports[0], trunk_id=draw(st.sampled_from(TRUNKS)))
        vlans = iter(draw(st.lists(st.integers(1, 4094), unique=True, min_size=len(ports), max_size=len(ports))))
        ports = [parent] + [replace(x, parent_id=parent.id, segmentation_id=next(vlans))
                            if x.network_id != parent.network_id and draw(st.booleans()) else x for x in ports[1:]]
    return L2View(host="h", networks=nets, ports=ports, dvr_mac=draw(st.sampled_from(DVR_MACS))), taps


def step(state: o.OvsState, view: L2View, taps: set[str]) -> o.OvsState:
    state.links = taps
    return apply(state, plan(view, state, CFG).ops)


@settings(max_examples=150, deadline=None)
@given(st.lists(views(), min_size=1, max_size=5))
def test_incremental_equals_full_recompute(history: list[tuple[L2View, set[str]]]) -> None:
    state = o.OvsState()
    for view, taps in history:
        wanted = plan(view, o.OvsState(links=taps), CFG).ops
        for bridge in {op.bridge for op in wanted if isinstance(op, o.AddFlows)}:
            # OVS keeps one flow per (table, priority, match): two wanted flows differing only in their actions
            # would silently replace each other
            texts = [f for op in wanted if isinstance(op, o.AddFlows) and op.bridge == bridge for f in op.flows]
            matches = [f.split(",actions=")[0] for f in set(texts)]
            assert len(matches) == len(set(matches)), bridge
        state = step(state, view, taps)
        assert plan(view, state, CFG).ops == []  # a resync right after finds nothing to do
    view, taps = history[-1]
    fresh = step(o.OvsState(), view, taps)
    assert state.bridges == fresh.bridges
    assert set(state.ports) == set(fresh.ports)
    assert {b: len(f) for b, f in state.flows.items() if f} == {b: len(f) for b, f in fresh.flows.items() if f}
    assert sorted(state.local_vlans) == sorted(n.id for n in view.networks)
    assert len(set(state.local_vlans.values())) == len(state.local_vlans)  # one VLAN per network


def test_tunnel_ports_and_flooding_only_to_hosts_with_ports() -> None:
    net_id, seg = NETS[0]
    view = L2View("h", [L2Network(net_id, 1450, True, seg, ["198.18.0.12"],
                                  [RemotePort("fa:16:3e:00:00:02", ["10.0.0.2"], "198.18.0.12")])],
                  [L2Port("p1", net_id, "fa:16:3e:00:00:01", 4, True, "")])
    state = step(o.OvsState(), view, {naming.tap("p1")})
    name = tunnel_port("vxlan", "198.18.0.12")
    assert name == "vxlan-c612000c"
    assert state.ports[name].type == "vxlan" and ("remote_ip", "198.18.0.12") in state.ports[name].options
    assert not any(p.startswith(("gre-", "geneve-")) for p in state.ports)
    assert state.ports[naming.tap("p1")].tag == state.local_vlans[net_id]
    flows = plan(view, o.OvsState(links={naming.tap("p1")}), CFG).ops
    tun = [f for op in flows if isinstance(op, o.AddFlows) and op.bridge == "br-tun" for f in op.flows]
    assert any(f.startswith("table=22,") and f"output:{name}" in f for f in tun)
    assert any(f.startswith("table=21,") and "arp_tpa=10.0.0.2" in f for f in tun)
    assert any(f.startswith("table=20,") and "dl_dst=fa:16:3e:00:00:02" in f for f in tun)


def test_afxdp_taps_are_retyped_when_the_option_changes() -> None:
    net_id, seg = NETS[0]
    view = L2View("h", [L2Network(net_id, 1450, True, seg)], [L2Port("p1", net_id, "fa:16:3e:00:00:01", 1, True, "")])
    afxdp = replace(CFG, tap_type="afxdp-nonpmd")
    state = apply(o.OvsState(links={naming.tap("p1")}), plan(view, o.OvsState(links={naming.tap("p1")}), afxdp).ops)
    assert state.ports[naming.tap("p1")].type == "afxdp-nonpmd" and not plan(view, state, afxdp).ops
    back = [op for op in plan(view, state, CFG).ops if isinstance(op, o.AddPort)]
    assert [(op.name, op.port.type, op.replaces) for op in back] == [(naming.tap("p1"), "", True)]


def test_port_down_gets_the_dead_vlan_and_is_reported_down() -> None:
    net_id, seg = NETS[3]
    view = L2View("h", [L2Network(net_id, 1500, True, seg)], [L2Port("p1", net_id, "fa:16:3e:00:00:01", 2, False, "")])
    result = plan(view, o.OvsState(links={naming.tap("p1")}), CFG)
    ports = {op.name: op.port for op in result.ops if isinstance(op, o.AddPort)}
    assert ports[naming.tap("p1")].tag == DEAD_VLAN and result.down == ["p1"] and not result.up


def test_a_trunk_parent_is_on_its_trunk_bridge_and_subports_are_patches() -> None:
    (net_a, seg_a), (net_b, seg_b) = NETS[0], NETS[3]
    view = L2View("h", [L2Network(net_a, 1450, True, seg_a), L2Network(net_b, 1500, True, seg_b)],
                  [L2Port("parent-port-1", net_a, "fa:16:3e:00:00:01", 2, True, "", trunk_id=TRUNKS[0]),
                   L2Port("sub-port-0001", net_b, "fa:16:3e:00:00:01", 3, True, "trunk:subport",
                          parent_id="parent-port-1", segmentation_id=101)])
    result = plan(view, o.OvsState(links={naming.tap("parent-port-1")}), CFG)
    state = apply(o.OvsState(links={naming.tap("parent-port-1")}), result.ops)
    tbr = "tbr-" + TRUNKS[0][:11]
    assert state.ports[naming.tap("parent-port-1")] == o.Port(tbr)  # every VLAN
    assert state.ports["tpt-parent-port"].bridge == tbr and state.ports["tpt-parent-port"].tag == 0
    assert state.ports["tpi-parent-port"].tag == state.local_vlans[net_a]
    assert state.ports["spt-sub-port-00"].tag == 101 and state.ports["spt-sub-port-00"].bridge == tbr
    assert state.ports["spi-sub-port-00"].tag == state.local_vlans[net_b]
    assert result.up == {"parent-port-1": 2, "sub-port-0001": 3}
    # the trunk deleted: its bridge goes, the tap is back on br-int, the subport is just a port without a tap
    plain = L2View("h", view.networks, [replace(view.ports[0], trunk_id=""), replace(view.ports[1], parent_id="")])
    state = apply(state, plan(plain, state, CFG).ops)
    assert tbr not in state.bridges and state.ports[naming.tap("parent-port-1")].bridge == "br-int"
    assert not any(name.startswith(("tpt-", "tpi-", "spt-", "spi-")) for name in state.ports)


def test_router_copies_reach_the_fabric_with_the_hosts_dvr_mac_only() -> None:
    (tunneled, vxlan), (flat_id, flat) = NETS[0], NETS[4]
    copy = [L2Port("r1", tunneled, "FA:16:3E:00:00:01", 1, True, dvr.INTERFACE_OWNER, ips=["10.0.0.1", "2001:db8::1"]),
            L2Port("r2", flat_id, "fa:16:3e:00:00:02", 1, True, dvr.INTERFACE_OWNER, ips=["10.9.0.1"])]
    view = L2View("h", [L2Network(tunneled, 1450, True, vxlan, ["198.18.0.12"]), L2Network(flat_id, 1500, True, flat)],
                  copy, dvr_mac="fa:16:3f:aa:bb:cc")
    state = step(o.OvsState(), view, {naming.tap("r1"), naming.tap("r2")})
    lv, lv_flat = state.local_vlans[tunneled], state.local_vlans[flat_id]
    added = plan(view, o.OvsState(links={naming.tap("r1")}), CFG).ops
    tun = {f for op in added if isinstance(op, o.AddFlows) and op.bridge == "br-tun" for f in op.flows}
    phys = {f for op in added if isinstance(op, o.AddFlows) and op.bridge == "br-eth1" for f in op.flows}
    # leaving: the copy's frames carry the DVR MAC; its ARP and what asks for or goes to it stay home
    assert "table=0,priority=1,in_port=patch-int,actions=resubmit(,1)" in tun
    assert (f"table=1,priority=2,dl_vlan={lv},dl_src=fa:16:3e:00:00:01,actions=mod_dl_src:fa:16:3f:aa:bb:cc,"
            "resubmit(,2)") in tun
    assert {f"table=1,priority=3,dl_vlan={lv},{m},actions=drop" for m in (
        "arp,arp_tpa=10.0.0.1", "icmp6,icmp_type=135,nd_target=2001:db8::1", "dl_dst=fa:16:3e:00:00:01",
        "arp,dl_src=fa:16:3e:00:00:01")} <= tun
    # arriving: nothing from or to the copy's MAC, no ARP for its address, reaches br-int
    assert {f"table=4,priority=2,tun_id=0x64,{m},actions=drop" for m in (
        "dl_dst=fa:16:3e:00:00:01", "dl_src=fa:16:3e:00:00:01", "arp,arp_tpa=10.0.0.1")} <= tun
    # a flat network: the same on its physical bridge, above the flow that untags it
    assert (f"table=0,priority=5,in_port=phy-br-eth1,dl_vlan={lv_flat},dl_src=fa:16:3e:00:00:02,"
            "actions=mod_dl_src:fa:16:3f:aa:bb:cc,strip_vlan,NORMAL") in phys
    assert "table=0,priority=1,vlan_tci=0x0000/0x1fff,arp,arp_tpa=10.9.0.1,actions=drop" in phys
    # without a DVR MAC (a server before 1.13) no DVR flow
    bare = plan(replace(view, dvr_mac=""), o.OvsState(links={naming.tap("r1")}), CFG).ops
    assert not any("fa:16:3e:00:00:0" in f for op in bare if isinstance(op, o.AddFlows) for f in op.flows)
