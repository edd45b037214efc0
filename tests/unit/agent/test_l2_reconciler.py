"""The Linux-bridge reconciler (desired L2 view + observed host -> plan) against an in-memory kernel (FakeHost).

Properties checked: it builds what the view asks for, converges (planning again after applying gives no
operations), only ever deletes what carries our marker, and incremental (per-network) reconciliation reaches
the same host as a full recompute (OVN's CHECK_NO_CHANGE_AFTER_RECOMPUTE).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from fermion.agent.l2.reconciler import L2Config, Plan, plan
from fermion.dataplane import naming
from fermion.dataplane import plan as p
from fermion.dataplane.fake import FakeHost
from fermion.rpc.contracts import L2Network, L2Port, L2View, RemotePort, Segment

LOCAL_IP = "198.18.0.11"
CFG = L2Config(local_ip=LOCAL_IP, interface_mappings={"physnet1": "eth1"})
NET_A = "aaaaaaaa-1111-4111-8111-000000000001"
NET_B = "bbbbbbbb-2222-4222-8222-000000000002"
NET_C = "cccccccc-3333-4333-8333-000000000003"
NET_D = "dddddddd-4444-4444-8444-000000000004"
PORT_A1 = "a1a1a1a1-0000-4000-8000-000000000011"
PORT_A2 = "a2a2a2a2-0000-4000-8000-000000000012"
PORT_B1 = "b1b1b1b1-0000-4000-8000-000000000021"
PORT_C1 = "c1c1c1c1-0000-4000-8000-000000000031"
PORT_D1 = "d1d1d1d1-0000-4000-8000-000000000041"
R1 = RemotePort(mac="fa:16:3e:00:01:01", ips=["10.0.0.5"], vtep="198.18.0.12")
R2 = RemotePort(mac="fa:16:3e:00:01:02", ips=["10.0.0.6", "2001:db8::6"], vtep="198.18.0.13")


# ---------------------------------------------------------------- building views by hand
def vxlan_net(net_id: str, vni: int, remote: Sequence[RemotePort] = (), mtu: int = 1450,
              admin_state_up: bool = True) -> L2Network:
    return L2Network(id=net_id, mtu=mtu, admin_state_up=admin_state_up, segment=Segment("vxlan", None, vni),
                     vteps=sorted({r.vtep for r in remote}), remote_ports=list(remote))


def flat_net(net_id: str, physnet: str = "physnet1", mtu: int = 1500, admin_state_up: bool = True) -> L2Network:
    return L2Network(id=net_id, mtu=mtu, admin_state_up=admin_state_up, segment=Segment("flat", physnet, None))


def local_net(net_id: str, mtu: int = 1500) -> L2Network:
    return L2Network(id=net_id, mtu=mtu, admin_state_up=True, segment=Segment("local", None, None))


def port(port_id: str, network_id: str, revision: int = 1, admin_state_up: bool = True) -> L2Port:
    return L2Port(id=port_id, network_id=network_id, mac="fa:16:3e:aa:" + port_id[:2] + ":01", revision=revision,
                  admin_state_up=admin_state_up, device_owner="compute:nova")


def view(networks: Sequence[L2Network], ports: Sequence[L2Port] = ()) -> L2View:
    return L2View(host="compute-1", networks=list(networks), ports=list(ports))


def partial(full: L2View, scope: set[str]) -> L2View:
    """What the server answers to a request naming these networks."""
    return L2View(host=full.host, networks=[n for n in full.networks if n.id in scope],
                  ports=[x for x in full.ports if x.network_id in scope], partial=True)


def converge(host: FakeHost, desired: L2View, scope: set[str] | None = None, cfg: L2Config = CFG) -> Plan:
    result = plan(desired, host.observe(), cfg, scope)
    assert host.apply(result.ops) == []
    return result


def assert_converged(host: FakeHost, desired: L2View, cfg: L2Config = CFG) -> Plan:
    again = plan(desired, host.observe(), cfg, None)
    assert again.ops == [], f"not converged, a full recompute still wants: {again.ops}"
    return again


def names(ops: Sequence[p.Op]) -> set[str]:
    return {getattr(op, "name", None) or getattr(op, "dev", None) or "" for op in ops}


# ---------------------------------------------------------------- (a) building a VXLAN network
def test_empty_host_gets_bridge_vxlan_and_l2_population_entries() -> None:
    host = FakeHost()
    net = vxlan_net(NET_A, 1001, remote=[R1, R2])
    result = plan(view([net]), host.observe(), CFG, None)
    br, vx = naming.bridge(NET_A), "vxlan-1001"
    assert br == "brqaaaaaaaa-11"
    assert result.ops[0] == p.EnsureBridge(br, 1450)
    assert result.ops[1] == p.EnsureVxlan(vx, 1001, LOCAL_IP, 1450, br)
    assert set(result.ops[2:]) == {
        p.FdbAdd(vx, p.FLOOD, "198.18.0.12"), p.FdbAdd(vx, p.FLOOD, "198.18.0.13"),  # flooding per remote host
        p.FdbAdd(vx, R1.mac, R1.vtep), p.FdbAdd(vx, R2.mac, R2.vtep),  # unicast per remote port
        p.NeighAdd(vx, "10.0.0.5", R1.mac), p.NeighAdd(vx, "10.0.0.6", R2.mac),  # ARP/ND proxy per address
        p.NeighAdd(vx, "2001:db8::6", R2.mac),
    }
    assert len(result.ops) == 9
    assert result.up == {} and result.down == []

    assert host.apply(result.ops) == []
    links = host.state.links
    assert (links[br].kind, links[br].mtu, links[br].up, links[br].ours) == ("bridge", 1450, True, True)
    assert (links[vx].kind, links[vx].vni, links[vx].mtu, links[vx].master, links[vx].ours) == \
        ("vxlan", 1001, 1450, br, True)
    assert host.state.fdb[vx] == {(p.FLOOD, "198.18.0.12"), (p.FLOOD, "198.18.0.13"), (R1.mac, R1.vtep),
                                  (R2.mac, R2.vtep)}
    assert host.state.neigh[vx] == {("10.0.0.5", R1.mac), ("10.0.0.6", R2.mac), ("2001:db8::6", R2.mac)}
    assert_converged(host, view([net]))


def test_vxlan_without_a_local_ip_is_only_a_bridge() -> None:
    host = FakeHost()
    result = plan(view([vxlan_net(NET_A, 1001, [R1])]), host.observe(), L2Config(local_ip=None), None)
    assert result.ops == [p.EnsureBridge(naming.bridge(NET_A), 1450)]


def test_a_remote_address_change_replaces_the_neighbour_entry() -> None:
    host = FakeHost()
    converge(host, view([vxlan_net(NET_A, 1001, [R1])]))
    moved = replace(R1, ips=["10.0.0.50"])
    result = converge(host, view([vxlan_net(NET_A, 1001, [moved])]))
    assert set(result.ops) == {p.NeighDel("vxlan-1001", "10.0.0.5", R1.mac),
                               p.NeighAdd("vxlan-1001", "10.0.0.50", R1.mac)}
    assert host.state.neigh["vxlan-1001"] == {("10.0.0.50", R1.mac)}


def test_mtu_change_is_applied_to_bridge_vxlan_and_taps() -> None:
    host = FakeHost()
    host.add_device(naming.tap(PORT_A1))
    converge(host, view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A)]))
    desired = view([vxlan_net(NET_A, 1001, mtu=1400)], [port(PORT_A1, NET_A)])
    result = converge(host, desired)
    br, tap = naming.bridge(NET_A), naming.tap(PORT_A1)
    assert {p.EnsureBridge(br, 1400), p.EnsureVxlan("vxlan-1001", 1001, LOCAL_IP, 1400, br),
            p.Attach(tap, br, 1400)} == set(result.ops)
    assert {host.state.links[n].mtu for n in (br, "vxlan-1001", tap)} == {1400}
    assert_converged(host, desired)


# ---------------------------------------------------------------- (b) taps and port states
def test_present_tap_is_attached_and_reported_up() -> None:
    host = FakeHost()
    tap = naming.tap(PORT_A1)
    assert tap == "tapa1a1a1a1-00"
    host.add_device(tap)
    desired = view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A, revision=7), port(PORT_A2, NET_A, revision=2)])
    result = converge(host, desired)
    br = naming.bridge(NET_A)
    assert p.Attach(tap, br, 1450) in result.ops
    assert result.up == {PORT_A1: 7}
    assert result.down == [PORT_A2]  # no tap for it (yet)
    assert result.taps == {tap: NET_A, naming.tap(PORT_A2): NET_A}
    link = host.state.links[tap]
    assert (link.master, link.mtu, link.up) == (br, 1450, True)
    again = assert_converged(host, desired)
    assert again.up == {PORT_A1: 7} and again.down == [PORT_A2]

    # the instance of A2 starts: its tap appears
    host.add_device(naming.tap(PORT_A2))
    result = converge(host, desired)
    assert result.ops == [p.Attach(naming.tap(PORT_A2), br, 1450)]
    assert result.up == {PORT_A1: 7, PORT_A2: 2} and result.down == []


def test_a_tap_that_vanishes_is_reported_down() -> None:
    host = FakeHost()
    host.add_device(naming.tap(PORT_A1))
    desired = view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A)])
    assert converge(host, desired).up == {PORT_A1: 1}
    del host.state.links[naming.tap(PORT_A1)]
    result = assert_converged(host, desired)
    assert result.up == {} and result.down == [PORT_A1]


def test_admin_down_port_is_detached_and_reported_down() -> None:
    host = FakeHost()
    tap = naming.tap(PORT_A1)
    host.add_device(tap)
    converge(host, view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A)]))
    disabled = view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A, revision=2, admin_state_up=False)])
    result = converge(host, disabled)
    assert result.ops == [p.Detach(tap)]
    assert result.up == {} and result.down == [PORT_A1]
    assert (host.state.links[tap].master, host.state.links[tap].up) == (None, False)
    assert assert_converged(host, disabled).down == [PORT_A1]
    # enabled again
    enabled = view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A, revision=3)])
    result = converge(host, enabled)
    assert result.ops == [p.Attach(tap, naming.bridge(NET_A), 1450)] and result.up == {PORT_A1: 3}


def test_admin_down_network_detaches_its_taps() -> None:
    host = FakeHost()
    tap = naming.tap(PORT_A1)
    host.add_device(tap)
    converge(host, view([vxlan_net(NET_A, 1001)], [port(PORT_A1, NET_A)]))
    desired = view([vxlan_net(NET_A, 1001, admin_state_up=False)], [port(PORT_A1, NET_A)])
    result = converge(host, desired)
    assert p.Detach(tap) in result.ops and result.down == [PORT_A1] and result.up == {}
    assert host.state.links[tap].master is None
    assert_converged(host, desired)


# ---------------------------------------------------------------- (c) removal, and what is not ours
def test_a_network_gone_from_the_view_is_removed() -> None:
    host = FakeHost()
    tap = naming.tap(PORT_A1)
    host.add_device(tap)
    converge(host, view([vxlan_net(NET_A, 1001, [R1]), local_net(NET_D)], [port(PORT_A1, NET_A)]))
    result = converge(host, view([local_net(NET_D)]))
    br = naming.bridge(NET_A)
    assert set(result.ops) == {p.Detach(tap), p.DeleteLink("vxlan-1001"), p.DeleteLink(br)}
    assert result.ops.index(p.DeleteLink("vxlan-1001")) < result.ops.index(p.DeleteLink(br))
    assert br not in host.state.links and "vxlan-1001" not in host.state.links
    assert "vxlan-1001" not in host.state.fdb
    assert naming.bridge(NET_D) in host.state.links  # the other network stays
    link = host.state.links[tap]  # the tap belongs to the instance: detached, never deleted
    assert (link.master, link.up) == (None, False)
    assert_converged(host, view([local_net(NET_D)]))
    # and everything goes
    result = converge(host, view([]))
    assert result.ops == [p.DeleteLink(naming.bridge(NET_D))]
    assert set(host.state.links) == {tap}


def foreign_host() -> FakeHost:
    """A host with devices someone else made, some named like ours."""
    host = FakeHost()
    host.add_device("br-foo", kind="bridge")
    host.add_device("brqxyz", kind="bridge")
    host.add_device(naming.bridge(NET_B), kind="bridge")  # a bridge named after a network we no longer have
    host.add_device("vxlan-77", kind="vxlan")
    host.state.links["vxlan-77"].vni = 77
    host.add_device("tapforeign0")
    host.state.links["tapforeign0"].master = "br-foo"
    host.add_device("tapforeign1")
    host.state.links["tapforeign1"].master = "brqxyz"
    host.add_device("eth0", kind="device")
    return host


FOREIGN = {"br-foo", "brqxyz", naming.bridge(NET_B), "vxlan-77", "tapforeign0", "tapforeign1", "eth0"}


@pytest.mark.parametrize("scope", [None, {NET_B}, {NET_A, NET_B}], ids=["full", "partial", "partial-both"])
def test_devices_without_our_marker_are_never_touched(scope: set[str] | None) -> None:
    host = foreign_host()
    before = {n: (link.master, link.up, link.mtu) for n, link in host.state.links.items()}
    desired = view([vxlan_net(NET_A, 1001, [R1])], [port(PORT_A1, NET_A)])
    if scope is not None:
        desired = partial(desired, scope)
    converge(host, desired, scope)
    for removal in (view([]), partial(view([]), {NET_A, NET_B})):
        result = converge(host, removal, None if removal.partial is False else {NET_A, NET_B})
        assert not names(result.ops) & FOREIGN, result.ops
    assert {n: (link.master, link.up, link.mtu) for n, link in host.state.links.items() if n in FOREIGN} == before
    assert set(host.state.links) == FOREIGN


def test_a_foreign_vxlan_device_with_our_name_is_not_deleted() -> None:
    host = FakeHost()
    host.add_device("vxlan-1001", kind="vxlan")
    host.state.links["vxlan-1001"].vni = 77  # someone else's VXLAN, named like the one we would make
    result = plan(view([vxlan_net(NET_A, 1001)]), host.observe(), CFG, None)
    assert p.DeleteLink("vxlan-1001") not in result.ops


def test_a_partial_plan_does_not_touch_taps_in_an_unmarked_bridge() -> None:
    host = FakeHost()
    legacy = naming.bridge(NET_B)  # e.g. left by another agent, with an instance still plugged in
    host.add_device(legacy, kind="bridge")
    host.add_device("tapforeign2")
    host.state.links["tapforeign2"].master = legacy
    host.state.links["tapforeign2"].up = True
    assert plan(view([]), host.observe(), CFG, None).ops == []
    result = plan(partial(view([]), {NET_B}), host.observe(), CFG, {NET_B})
    assert result.ops == [], "incremental and full reconciliation disagree"


# ---------------------------------------------------------------- (d) incremental == full recompute
def _steps() -> list[tuple[str, set[str], L2View]]:
    """(what changed, the networks a hint would name, the full desired view after the change)."""
    a1, a2, b1, c1, d1 = (port(PORT_A1, NET_A), port(PORT_A2, NET_A), port(PORT_B1, NET_B),
                          port(PORT_C1, NET_C), port(PORT_D1, NET_D))
    rb = RemotePort(mac="fa:16:3e:00:02:01", ips=["10.1.0.5"], vtep="198.18.0.12")
    ra = RemotePort(mac="fa:16:3e:00:03:01", ips=["10.0.0.9"], vtep="198.18.0.13")
    a = vxlan_net(NET_A, 1001)
    b = vxlan_net(NET_B, 1002, [rb])
    c = flat_net(NET_C)
    d = local_net(NET_D)
    steps: list[tuple[str, set[str], L2View]] = []
    steps.append(("A appears with a port", {NET_A}, view([a], [a1])))
    steps.append(("B appears with a remote port", {NET_B}, view([a, b], [a1, b1])))
    a = vxlan_net(NET_A, 1001, [ra])
    steps.append(("A gains a remote port and a local one", {NET_A}, view([a, b], [a1, a2, b1])))
    b = vxlan_net(NET_B, 1002, [replace(rb, vtep="198.18.0.14")])
    steps.append(("B's remote port moves", {NET_B}, view([a, b], [a1, a2, b1])))
    a = vxlan_net(NET_A, 1001, [ra], mtu=1400)
    steps.append(("A's MTU shrinks", {NET_A}, view([a, b], [a1, a2, b1])))
    a1 = port(PORT_A1, NET_A, revision=2, admin_state_up=False)
    steps.append(("A1 disabled", {NET_A}, view([a, b], [a1, a2, b1])))
    steps.append(("flat C appears", {NET_C}, view([a, b, c], [a1, a2, b1, c1])))
    steps.append(("B goes", {NET_B}, view([a, c], [a1, a2, c1])))
    a = vxlan_net(NET_A, 1005, [ra], mtu=1400)
    steps.append(("A's VNI changes", {NET_A}, view([a, c], [a1, a2, c1])))
    steps.append(("local D appears", {NET_D}, view([a, c, d], [a1, a2, c1, d1])))
    a1 = port(PORT_A1, NET_A, revision=3)
    steps.append(("A2 deleted, A1 enabled", {NET_A}, view([a, c, d], [a1, c1, d1])))
    c = flat_net(NET_C, admin_state_up=False)
    steps.append(("C disabled", {NET_C}, view([a, c, d], [a1, c1, d1])))
    steps.append(("A goes", {NET_A}, view([c, d], [c1, d1])))
    steps.append(("C goes", {NET_C}, view([d], [d1])))
    steps.append(("D goes", {NET_D}, view([])))
    return steps


def _environment() -> FakeHost:
    host = FakeHost()
    host.add_device("eth1", kind="device")
    for pid in (PORT_A1, PORT_A2, PORT_B1, PORT_C1, PORT_D1):
        host.add_device(naming.tap(pid))
    return host


def _ours(host: FakeHost) -> dict[str, Any]:
    links = host.state.links
    return {"ours": {n: (x.kind, x.mtu, x.up, x.master, x.vni) for n, x in links.items() if x.ours},
            "masters": {n: x.master for n, x in links.items()},
            "fdb": {k: v for k, v in host.state.fdb.items() if k in links},
            "neigh": {k: v for k, v in host.state.neigh.items() if k in links}}


def test_incremental_plans_reach_what_a_full_recompute_wants() -> None:
    host = _environment()
    for what, scope, full in _steps():
        step = converge(host, partial(full, scope), scope)
        recompute = plan(full, host.observe(), CFG, None)
        assert recompute.ops == [], f"after '{what}' (partial on {scope}), a full recompute still wants " \
                                   f"{recompute.ops}"
        in_scope = {x.id for x in full.ports if x.network_id in scope}
        assert step.up == {k: v for k, v in recompute.up.items() if k in in_scope}, what
        assert sorted(step.down) == sorted(k for k in recompute.down if k in in_scope), what
        # and the host is the one a fresh agent would build from scratch
        fresh = _environment()
        converge(fresh, full)
        assert _ours(host) == _ours(fresh), what
    assert not any(x.ours for x in host.state.links.values())


class _World:
    """Random changes to what the server wants on the host, keeping the server's invariants (VNIs unique, one
    network per mapped physical network)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nets: dict[str, L2Network] = {}
        self.ports: dict[str, L2Port] = {}
        self.net_pool = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(1, 7)]
        self.port_pool = [f"{0xf0 + i:08x}-1111-4111-8111-{i:012x}" for i in range(12)]
        self.vteps = ["198.18.0.12", "198.18.0.13", "198.18.0.14"]

    def full(self) -> L2View:
        return view(sorted(self.nets.values(), key=lambda n: n.id), sorted(self.ports.values(), key=lambda x: x.id))

    def _free_vni(self) -> int:
        used = {n.segment.segmentation_id for n in self.nets.values()}
        return self.rng.choice([v for v in range(2000, 2010) if v not in used])

    def _remote(self) -> RemotePort:
        n = self.rng.randrange(256)
        return RemotePort(mac=f"fa:16:3e:00:05:{n:02x}", ips=[f"10.9.0.{n}"], vtep=self.rng.choice(self.vteps))

    def change(self) -> set[str]:
        """Make one change; return the networks it concerns (what a hint would name)."""
        rng = self.rng
        free = [n for n in self.net_pool if n not in self.nets]
        if not self.nets or (free and rng.random() < 0.2):
            net_id = rng.choice(free)
            kind = rng.choice(["vxlan", "vxlan", "flat", "local"])
            if kind == "vxlan":
                self.nets[net_id] = vxlan_net(net_id, self._free_vni(), [self._remote()])
            elif kind == "flat":
                physnet = "physnet2" if any(n.segment.physical_network == "physnet1" for n in self.nets.values()) \
                    else "physnet1"
                self.nets[net_id] = flat_net(net_id, physnet)
            else:
                self.nets[net_id] = local_net(net_id)
            return {net_id}
        net_id = rng.choice(sorted(self.nets))
        net = self.nets[net_id]
        mine = [x for x in self.ports.values() if x.network_id == net_id]
        action = rng.choice(["remove", "mtu", "admin", "add_port", "add_port", "drop_port", "port_admin",
                             "remote", "remote", "vni"])
        if action == "remove":
            del self.nets[net_id]
            for x in mine:
                del self.ports[x.id]
        elif action == "mtu":
            self.nets[net_id] = replace(net, mtu=rng.choice([1300, 1400, 1450, 1500]))
        elif action == "admin":
            self.nets[net_id] = replace(net, admin_state_up=not net.admin_state_up)
        elif action == "add_port":
            unused = [x for x in self.port_pool if x not in self.ports]
            if unused:
                pid = rng.choice(unused)
                self.ports[pid] = port(pid, net_id, revision=rng.randrange(5))
        elif action == "drop_port" and mine:
            del self.ports[rng.choice(mine).id]
        elif action == "port_admin" and mine:
            x = rng.choice(mine)
            self.ports[x.id] = replace(x, admin_state_up=not x.admin_state_up, revision=x.revision + 1)
        elif action == "remote" and net.segment.network_type == "vxlan":
            remote = list(net.remote_ports)
            if remote and rng.random() < 0.5:
                i = rng.randrange(len(remote))
                remote[i] = replace(remote[i], vtep=rng.choice(self.vteps)) if rng.random() < 0.5 else remote[i]
                if rng.random() < 0.3:
                    del remote[i]
            else:
                fresh = self._remote()
                if fresh.mac not in {r.mac for r in remote}:
                    remote.append(fresh)
            self.nets[net_id] = replace(net, remote_ports=remote, vteps=sorted({r.vtep for r in remote}))
        elif action == "vni" and net.segment.network_type == "vxlan":
            self.nets[net_id] = replace(net, segment=Segment("vxlan", None, self._free_vni()))
        return {net_id}


def _random_environment(world: _World) -> FakeHost:
    host = FakeHost()
    host.add_device("eth1", kind="device")
    for pid in world.port_pool[::2] + world.port_pool[1::4]:  # some instances have started, some not
        host.add_device(naming.tap(pid))
    return host


@pytest.mark.parametrize("seed", range(6))
def test_random_incremental_changes_match_a_full_recompute(seed: int) -> None:
    world = _World(random.Random(seed))
    host = _random_environment(world)
    for step in range(60):
        scope = world.change()
        full = world.full()
        converge(host, partial(full, scope), scope)
        recompute = plan(full, host.observe(), CFG, None)
        assert recompute.ops == [], f"seed {seed} step {step}: a full recompute still wants {recompute.ops}"
        fresh = _random_environment(world)
        converge(fresh, full)
        assert _ours(host) == _ours(fresh), f"seed {seed} step {step}"


def test_a_partial_plan_leaves_other_networks_alone() -> None:
    host = _environment()
    both = view([vxlan_net(NET_A, 1001, [R1]), vxlan_net(NET_B, 1002, [R2])],
                [port(PORT_A1, NET_A), port(PORT_B1, NET_B)])
    converge(host, both)
    # a view for A only (B is not in scope: it must stay as it is)
    result = plan(partial(both, {NET_A}), host.observe(), CFG, {NET_A})
    assert result.ops == []
    result = plan(partial(view([]), {NET_A}), host.observe(), CFG, {NET_A})
    assert names(result.ops) == {naming.bridge(NET_A), "vxlan-1001", naming.tap(PORT_A1)}
    assert host.apply(result.ops) == []
    assert naming.bridge(NET_B) in host.state.links and "vxlan-1002" in host.state.links
    assert host.state.links[naming.tap(PORT_B1)].master == naming.bridge(NET_B)


# ---------------------------------------------------------------- (e) L2 population follows ports
def test_a_remote_port_moving_to_another_vtep() -> None:
    host = FakeHost()
    stay = RemotePort(mac="fa:16:3e:00:09:09", ips=["10.0.0.9"], vtep="198.18.0.12")
    converge(host, view([vxlan_net(NET_A, 1001, [R1, stay])]))
    moved = replace(R1, vtep="198.18.0.14")
    desired = view([vxlan_net(NET_A, 1001, [moved, stay])])
    result = converge(host, desired)
    vx = "vxlan-1001"
    assert set(result.ops) == {p.FdbDel(vx, R1.mac, "198.18.0.12"), p.FdbAdd(vx, R1.mac, "198.18.0.14"),
                               p.FdbAdd(vx, p.FLOOD, "198.18.0.14")}
    assert result.ops.index(p.FdbDel(vx, R1.mac, "198.18.0.12")) < result.ops.index(
        p.FdbAdd(vx, R1.mac, "198.18.0.14"))
    assert host.state.fdb[vx] == {(p.FLOOD, "198.18.0.12"), (p.FLOOD, "198.18.0.14"), (R1.mac, "198.18.0.14"),
                                  (stay.mac, "198.18.0.12")}
    assert host.state.neigh[vx] == {("10.0.0.5", R1.mac), ("10.0.0.9", stay.mac)}
    assert_converged(host, desired)
    # the last port leaves the first host: its flood entry goes too
    desired = view([vxlan_net(NET_A, 1001, [moved])])
    result = converge(host, desired)
    assert set(result.ops) == {p.FdbDel(vx, p.FLOOD, "198.18.0.12"), p.FdbDel(vx, stay.mac, "198.18.0.12"),
                               p.NeighDel(vx, "10.0.0.9", stay.mac)}
    assert_converged(host, desired)


# ---------------------------------------------------------------- (f) flat and local networks
def test_flat_network_attaches_the_mapped_interface() -> None:
    host = FakeHost()
    host.add_device("eth1", kind="device")
    host.add_device(naming.tap(PORT_C1))
    desired = view([flat_net(NET_C)], [port(PORT_C1, NET_C)])
    result = converge(host, desired)
    br = naming.bridge(NET_C)
    assert set(result.ops) == {p.EnsureBridge(br, 1500), p.Attach("eth1", br), p.Attach(naming.tap(PORT_C1), br, 1500)}
    assert result.ops[0] == p.EnsureBridge(br, 1500)
    assert (host.state.links["eth1"].master, host.state.links["eth1"].up) == (br, True)
    assert not any(link.kind == "vxlan" for link in host.state.links.values())
    assert_converged(host, desired)
    # the network goes: the bridge is deleted, the physical interface survives (it is not ours)
    converge(host, view([]))
    assert "eth1" in host.state.links and host.state.links["eth1"].master is None
    assert br not in host.state.links


@pytest.mark.parametrize("cfg,device", [(L2Config(local_ip=LOCAL_IP), True),
                                        (CFG, False)], ids=["unmapped", "interface-missing"])
def test_flat_network_without_its_interface_is_only_a_bridge(cfg: L2Config, device: bool) -> None:
    host = FakeHost()
    if device:
        host.add_device("eth1", kind="device")
    result = converge(host, view([flat_net(NET_C)]), cfg=cfg)
    assert result.ops == [p.EnsureBridge(naming.bridge(NET_C), 1500)]
    if device:
        assert host.state.links["eth1"].master is None


def test_local_network_is_only_a_bridge() -> None:
    host = FakeHost()
    host.add_device("eth1", kind="device")
    host.add_device(naming.tap(PORT_D1))
    desired = view([local_net(NET_D)], [port(PORT_D1, NET_D)])
    result = converge(host, desired)
    br = naming.bridge(NET_D)
    assert result.ops == [p.EnsureBridge(br, 1500), p.Attach(naming.tap(PORT_D1), br, 1500)]
    assert host.state.links["eth1"].master is None
    assert host.state.fdb == {} and host.state.neigh == {}
    assert_converged(host, desired)
