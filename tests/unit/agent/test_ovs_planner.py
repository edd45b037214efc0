"""The OVS planner: applying views one after another leaves exactly what a full recompute wants (OVN's
CHECK_NO_CHANGE_AFTER_RECOMPUTE idea), and the same bridges, ports and flows as a host built from scratch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.agent.ovs.planner import DEAD_VLAN, OvsConfig, plan, tunnel_port
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import L2Network, L2Port, L2View, RemotePort, Segment

CFG = OvsConfig("198.18.0.11", {"physnet1": "br-eth1"}, ("vxlan", "gre", "geneve"))
NETS = [(f"00000000-0000-4000-8000-00000000000{i}", seg) for i, seg in enumerate([
    Segment("vxlan", None, 100), Segment("gre", None, 200), Segment("geneve", None, 300),
    Segment("vlan", "physnet1", 101), Segment("flat", "physnet1", None), Segment("local", None, None)])]
VTEPS = ["198.18.0.12", "198.18.0.13", "198.18.0.14"]


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
    return L2View(host="h", networks=nets, ports=ports), taps


def step(state: o.OvsState, view: L2View, taps: set[str]) -> o.OvsState:
    state.links = taps
    return apply(state, plan(view, state, CFG).ops)


@settings(max_examples=150, deadline=None)
@given(st.lists(views(), min_size=1, max_size=5))
def test_incremental_equals_full_recompute(history: list[tuple[L2View, set[str]]]) -> None:
    state = o.OvsState()
    for view, taps in history:
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


def test_port_down_gets_the_dead_vlan_and_is_reported_down() -> None:
    net_id, seg = NETS[3]
    view = L2View("h", [L2Network(net_id, 1500, True, seg)], [L2Port("p1", net_id, "fa:16:3e:00:00:01", 2, False, "")])
    result = plan(view, o.OvsState(links={naming.tap("p1")}), CFG)
    ports = {op.name: op.port for op in result.ops if isinstance(op, o.AddPort)}
    assert ports[naming.tap("p1")].tag == DEAD_VLAN and result.down == ["p1"] and not result.up
