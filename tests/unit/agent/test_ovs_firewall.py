"""The OVS firewall's flow builder (pure) and its place in the OVS planner: port ranges as masks, the flows of
small cases, conjunctions for remote groups, and applying firewall views one after another leaves nothing for a
full recompute to change (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.agent.ovs import firewall as fw
from fermion.agent.ovs.planner import plan
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.dataplane.secgroups import FirewallState, Group, PortFilter, Rule
from fermion.rpc.contracts import (
    Firewall,
    L2Network,
    L2Port,
    L2View,
    PortSecurity,
    SecurityGroup,
    SecurityRule,
    Segment,
)
from tests.unit.agent.test_ovs_planner import CFG, apply

MAC1, MAC2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"
COMMIT = "ct(commit,zone=NXM_NX_REG6[0..15])"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 65535))
def test_port_masks_cover_exactly_the_range(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    masks = fw.port_masks(low, high)
    covered = set()
    for value, mask in masks:
        size = 0x10000 - mask if mask else 0x10000
        assert value & ~mask & 0xFFFF == 0  # aligned
        covered |= set(range(value, value + size))
    assert covered == set(range(low, high + 1))
    assert len(masks) <= 30


def state(*ports: PortFilter, groups: tuple[Group, ...] = (), members: dict[str, tuple[str, ...]] | None = None,
          ) -> FirewallState:
    return FirewallState(ports=ports, groups=groups, members=members or {})


def port(pid: str, mac: str, ip: str, groups: tuple[str, ...] = (), **kw: object) -> PortFilter:
    return PortFilter(pid, naming.tap(pid), mac, (ip,), groups=groups, network="n", **kw)  # type: ignore[arg-type]


def test_a_port_with_an_ssh_rule() -> None:
    g = Group("ssh", True, (Rule("ingress", "IPv4", 6, 22, 22), Rule("egress", "IPv4", None)))
    flows = fw.flows(state(port("p1", MAC1, "10.0.0.1", ("ssh",)), groups=(g,)),
                     {"p1": fw.Attached(5, 3, MAC1)})
    expected = {
        "table=0,priority=100,in_port=5,actions=set_field:5->reg5,set_field:3->reg6,resubmit(,71)",
        "table=60,priority=90,reg6=3,dl_dst=fa:16:3e:00:00:01,actions=set_field:5->reg5,set_field:0->vlan_tci,"
        "resubmit(,81)",
        "table=71,priority=100,reg5=5,dl_src=fa:16:3e:00:00:01,actions=resubmit(,72)",
        "table=72,priority=90,reg5=5,ip,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.1/32,"
        "actions=ct(table=73,zone=NXM_NX_REG6[0..15])",
        "table=72,priority=100,reg5=5,arp,arp_sha=fa:16:3e:00:00:01,arp_spa=10.0.0.1/32,actions=resubmit(,60)",
        f"table=73,priority=70,reg5=5,ip,ct_state=+new-est,actions={COMMIT},resubmit(,60)",
        "table=81,priority=100,reg5=5,ip,ct_state=-trk,actions=ct(table=82,zone=NXM_NX_REG6[0..15])",
        f"table=82,priority=70,reg5=5,tcp,tp_dst=22,ct_state=+new-est,actions={COMMIT},output:5",
        "table=82,priority=70,reg5=5,tcp,tp_dst=22,ct_state=+est-rel-rpl,actions=output:5",  # committed when new
        "table=82,priority=100,reg5=5,ct_state=+trk+inv,actions=drop",
        "table=82,priority=40,reg5=5,ip,ct_state=+est,actions=ct(commit,zone=NXM_NX_REG6[0..15],"
        "exec(set_field:1->ct_mark))",
    }
    assert expected <= set(flows)
    assert not [f for f in flows if "tp_dst=23" in f or "icmp," in f]
    assert len(flows) == len(set(flows))


def test_port_security_off_and_unknown_ports() -> None:
    flows = fw.flows(state(port("p1", MAC1, "10.0.0.1", port_security=False)),
                     {"p1": fw.Attached(5, 3, MAC1), "p2": fw.Attached(6, 3, MAC2)})
    assert "table=0,priority=100,in_port=5,actions=set_field:3->reg6,resubmit(,60)" in flows
    assert not [f for f in flows if "reg5=5" in f]  # no rules of its own
    assert "table=0,priority=100,in_port=6,actions=drop" in flows  # not in the firewall view: isolated
    assert fw.flows(None, {"p1": fw.Attached(5, 3, MAC1)}) == []


def test_stateless_groups_use_no_conntrack() -> None:
    g = Group("g", False, (Rule("ingress", "IPv4", 17, 53, 53),))
    flows = fw.flows(state(port("p1", MAC1, "10.0.0.1", ("g",)), groups=(g,)), {"p1": fw.Attached(5, 3, MAC1)})
    assert not [f for f in flows if "reg5=5" in f and ("ct(" in f or "ct_state" in f)]
    assert "table=82,priority=70,reg5=5,udp,tp_dst=53,actions=output:5" in flows


def test_remote_groups_are_conjunctions_shared_by_addresses() -> None:
    a = Group("a", True, (Rule("ingress", "IPv4", 6, 80, 81, remote_group="a"),))
    b = Group("b", True, (Rule("ingress", "IPv4", None, remote_group="a"),))
    st_ = state(port("p1", MAC1, "10.0.0.1", ("a",)), port("p2", MAC2, "10.0.0.2", ("b",)), groups=(a, b),
                members={"a": ("10.0.0.1", "10.0.9.0/24")})
    flows = fw.flows(st_, {"p1": fw.Attached(5, 3, MAC1), "p2": fw.Attached(6, 3, MAC2)})
    [address] = [f for f in flows if "nw_src=10.0.0.1/32" in f and f.startswith("table=82,")]
    assert address.count("conjunction(") == 2  # one flow per address, in both groups' conjunctions
    assert any("nw_src=10.0.9.0/24" in f for f in flows)
    assert any(f.startswith("table=82,priority=71,reg5=5,tcp,tp_dst=0x50/0xfffe,ct_state=+new-est") for f in flows)
    conj = [f for f in flows if "conj_id=" in f]
    assert len(conj) == 4 and all(f.endswith("output:NXM_NX_REG5[]") for f in conj)  # two per conjunction:
    assert sum(COMMIT in f for f in conj) == 2 and all(COMMIT in f for f in conj if "+new-est" in f)  # commit new
    # a member leaves: only its address flow changes
    st2 = state(*st_.ports, groups=(a, b), members={"a": ("10.0.9.0/24",)})
    flows2 = fw.flows(st2, {"p1": fw.Attached(5, 3, MAC1), "p2": fw.Attached(6, 3, MAC2)})
    assert set(flows) - set(flows2) == {address}


def test_unmatchable_port_ranges_fail_closed() -> None:
    assert fw.rule_matches(Rule("ingress", "IPv4", 33, 5, 6)) == []  # dccp: OVS cannot match its ports
    assert fw.rule_matches(Rule("ingress", "IPv6", 1, 128, 0)) == ["icmp6,icmp_type=128,icmp_code=0"]
    assert fw.rule_matches(Rule("egress", "IPv4", None, remote_ip_prefix="fd10::/64")) == []
    assert fw.rule_matches(Rule("egress", "IPv4", 132, None, None, remote_ip_prefix="10.1.0.0/16")) == [
        "sctp,nw_dst=10.1.0.0/16"]


# ---------------------------------------------------------------- in the planner
NET = "00000000-0000-4000-8000-000000000000"
PIDS = [f"port-{i}" for i in range(4)]
GROUPS = ["g1", "g2", "g3"]


@st.composite
def firewall_views(draw: st.DrawFn) -> L2View:
    ports, secured = [], []
    for i, pid in enumerate(draw(st.lists(st.sampled_from(PIDS), unique=True, max_size=4))):
        mac = f"fa:16:3e:00:01:{i:02x}"
        ports.append(L2Port(pid, NET, mac, 1, True, ""))
        if draw(st.booleans()) or i == 0:
            groups = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))
            pairs = [["10.0.5.0/28", mac]] if draw(st.booleans()) else []
            secured.append(PortSecurity(pid, mac, [f"10.0.0.{i + 1}"], pairs, groups, draw(st.booleans()), NET))
    rules = [SecurityRule("ingress", "IPv4", 6, 22, 22), SecurityRule("egress", "IPv4"),
             SecurityRule("ingress", "IPv4", None, remote_group="g1"),
             SecurityRule("ingress", "IPv6", 17, 1000, 1999, remote_group="g2")]
    groups = [SecurityGroup(g, draw(st.booleans()), draw(st.lists(st.sampled_from(rules), unique=True)))
              for g in GROUPS]
    members = {g: draw(st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "fd10::3", "10.0.7.0/24"]), unique=True))
               for g in GROUPS}
    net = L2Network(NET, 1450, True, Segment("vxlan", None, 100), ["198.18.0.12"])
    return L2View("h", [net], ports, firewall=Firewall(secured, groups, members))


@settings(max_examples=150, deadline=None)
@given(st.lists(firewall_views(), min_size=1, max_size=5))
def test_incremental_firewall_equals_full_recompute(history: list[L2View]) -> None:
    taps = {naming.tap(p) for p in PIDS}
    current = o.OvsState(links=taps)
    for view in history:
        current = apply(current, plan(view, current, CFG).ops)
        assert plan(view, current, CFG).ops == []
    fresh = apply(o.OvsState(links=taps), plan(history[-1], o.OvsState(links=taps), CFG).ops)
    assert {b: len(f) for b, f in current.flows.items() if f} == {b: len(f) for b, f in fresh.flows.items() if f}


def test_firewall_flows_come_before_the_tap_is_plugged() -> None:
    view = L2View("h", [L2Network(NET, 1450, True, Segment("vxlan", None, 100))],
                  [L2Port("p1", NET, MAC1, 1, True, "")],
                  firewall=Firewall([PortSecurity("p1", MAC1, ["10.0.0.1"], [], [], True, NET)], [], {}))
    ops = plan(view, o.OvsState(links={naming.tap("p1")}), CFG).ops
    tap = next(i for i, op in enumerate(ops) if isinstance(op, o.AddPort) and op.name == naming.tap("p1"))
    first = next(i for i, op in enumerate(ops) if isinstance(op, o.AddFlows) and op.bridge == "br-int")
    assert first < tap and isinstance(ops[first], o.AddFlows)
    number = ops[tap].ofport  # type: ignore[union-attr]
    assert number and any(f"in_port={number}," in f for f in ops[first].flows)  # type: ignore[union-attr]


def test_a_port_made_again_with_another_number_gets_its_flows_again() -> None:
    view = L2View("h", [L2Network(NET, 1450, True, Segment("vxlan", None, 100), ["198.18.0.12"])], [])
    state_ = apply(o.OvsState(), plan(view, o.OvsState(), CFG).ops)
    assert plan(view, state_, CFG).ops == []
    state_.ofports["patch-tun"] += 10  # deleted and made again behind our back: OVS gave it another number
    again = [op for op in plan(view, state_, CFG).ops if isinstance(op, o.AddFlows)]
    assert again and all("patch-tun" in f for op in again for f in op.flows)


def secured(*pids: str, members: tuple[str, ...] = ("10.0.0.1",)) -> L2View:
    """Ports of the default-like group "g1" (ingress from its members); their taps come and go with the state."""
    g1 = SecurityGroup("g1", True, [SecurityRule("ingress", "IPv4", remote_group="g1")])
    macs = {pid: f"fa:16:3e:00:01:{i:02x}" for i, pid in enumerate(PIDS)}
    return L2View("h", [L2Network(NET, 1450, True, Segment("vxlan", None, 100))],
                  [L2Port(pid, NET, macs[pid], 1, True, "") for pid in pids],
                  firewall=Firewall([PortSecurity(pid, macs[pid], [f"10.0.0.{PIDS.index(pid) + 1}"], [], ["g1"], True,
                                                  NET) for pid in pids], [g1], {"g1": list(members)}))


def test_a_port_bound_here_has_its_flows_before_its_tap_comes_then_only_its_ovsdb_port_is_left() -> None:
    view, tap = secured("port-0"), naming.tap("port-0")
    waiting = plan(view, o.OvsState(), CFG)
    assert "port-0" in waiting.down and "port-0" not in waiting.up
    assert not any(isinstance(op, o.AddPort) and op.name == tap for op in waiting.ops)
    state_ = apply(o.OvsState(), waiting.ops)
    state_.links = {tap}  # the instance is plugged
    plugged = plan(view, state_, CFG)
    assert [type(op) for op in plugged.ops] == [o.AddPort] and plugged.up == {"port-0": 1}
    number = plugged.ops[0].ofport  # type: ignore[union-attr]
    assert any(f"in_port={number}," in f for op in waiting.ops if isinstance(op, o.AddFlows) for f in op.flows)
    # the same as a host that saw the tap at once
    fresh = apply(o.OvsState(links={tap}), plan(view, o.OvsState(links={tap}), CFG).ops)
    assert apply(state_, plugged.ops).flows == fresh.flows


def test_stale_flows_go_in_the_first_bundle_unless_a_port_leaves() -> None:
    taps = {naming.tap(p) for p in PIDS}
    before = apply(o.OvsState(links=set(taps)), plan(secured("port-0"), o.OvsState(links=set(taps)), CFG).ops)
    # a new port and a member changed: the member's old conjunction flow is deleted in the new port's bundle
    ops = plan(secured("port-0", "port-1", members=("10.0.0.2",)), before, CFG).ops
    kinds = [type(op) for op in ops]
    assert kinds[:2] == [o.AddFlows, o.DelFlows] and o.AddPort in kinds[2:] and o.DelFlows not in kinds[2:]
    assert all(op.bridge == "br-int" for op in ops[:2])  # type: ignore[union-attr]
    # a port leaving: its flows go after it, never before (its packets would find no filter)
    both = apply(before, plan(secured("port-0", "port-1"), before, CFG).ops)
    ops = plan(secured("port-1", members=("10.0.0.2",)), both, CFG).ops
    kinds = [type(op) for op in ops]
    assert kinds.index(o.DelPort) < kinds.index(o.DelFlows)


def test_two_ports_with_one_mac_on_a_network_give_one_delivery_flow() -> None:
    """An allowed address pair may carry another port's MAC: one flow per match in OVS, so one of the two
    verdicts (the port sorted first), and every other flow of both ports."""
    a = port("p1", MAC1, "10.0.0.1", ("g",))
    b = port("p2", MAC2, "10.0.0.2", ("g",), allowed_pairs=(("10.0.0.9", MAC1),))
    g = Group("g", True, (Rule("ingress", "IPv4", None),))
    attached = {"p1": fw.Attached(5, 3, MAC1), "p2": fw.Attached(6, 3, MAC2)}
    both = fw.flows(state(a, b, groups=(g,)), attached)
    delivery = [f for f in both if f.startswith(f"table=60,priority=90,reg6=3,dl_dst={MAC1},")]
    assert delivery == [f"table=60,priority=90,reg6=3,dl_dst={MAC1},actions=set_field:5->reg5,"
                        "set_field:0->vlan_tci,resubmit(,81)"]
    assert len(both) == len(set(both))
    alone = [fw.flows(state(p, groups=(g,)), {p.id: attached[p.id]}) for p in (a, b)]
    assert set(both) == (set(alone[0]) | set(alone[1])) - {
        f"table=60,priority=90,reg6=3,dl_dst={MAC1},actions=set_field:6->reg5,set_field:0->vlan_tci,resubmit(,81)"}
