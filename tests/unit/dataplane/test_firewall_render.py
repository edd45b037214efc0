"""Rendering and diffing of the nftables security-group tables, without root.

Commands run through a small fake of the kernel's nf_tables (tests/unit/dataplane/fakes.py) that refuses
what the kernel refuses, so "an incremental update leaves exactly what a full recompute would" is checked
on behaviour, not on text.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.dataplane.firewall import (
    STATELESS,
    TABLE,
    FirewallState,
    Group,
    Model,
    PortFilter,
    Rule,
    allocate_marks,
    canonical,
    diff,
    full_commands,
    profiles,
    render,
)
from tests.unit.dataplane.fakes import FakeKernelFirewall, FakeNft, Snapshot


def as_fake(model: Model) -> Snapshot:
    return {t.family: (dict(t.chains), {k: (s.kind, s.spec, dict(s.elements)) for k, s in t.sets.items()})
            for t in model.tables()}


def kernel_after(*lines: list[str]) -> Snapshot:
    fake = FakeNft()
    for batch in lines:
        fake.run(batch)
    return fake.snapshot()


# ------------------------------------------------------------------------------------------------ fixtures
EGRESS_ANY = (Rule("egress", "IPv4", None), Rule("egress", "IPv6", None))
WEB = Group("web", True, (*EGRESS_ANY, Rule("ingress", "IPv4", 6, 22, 22),
                          Rule("ingress", "IPv4", 6, 80, 80, remote_group="clients")))
CLIENTS = Group("clients", True, EGRESS_ANY)


def port(n: int, *groups: str, **changes: object) -> PortFilter:
    p = PortFilter(f"port-{n}", f"tapport-{n}", f"fa:16:3e:00:00:{n:02x}", (f"10.0.0.{n}", f"2001:db8::{n}"),
                   groups=groups)
    return dataclasses.replace(p, **changes)  # type: ignore[arg-type]


def base_state(**members: tuple[str, ...]) -> FirewallState:
    return FirewallState((port(1, "web"), port(2, "clients"), port(3, "clients", "web")), (WEB, CLIENTS),
                         {"clients": ("10.0.0.2",), **members})


def models(old: FirewallState, new: FirewallState) -> tuple[Model, Model]:
    marks = allocate_marks(profiles(old), {})
    return render(old, marks), render(new, allocate_marks(profiles(new), marks))


def rendered(state: FirewallState) -> Model:
    return render(state, allocate_marks(profiles(state), {}))


def profile_chain(model: Model, device: str, direction: str) -> tuple[str, ...]:
    """The inet chain ("in" or "out") a port's traffic goes through, found the way the kernel finds it."""
    mark = int(model.bridge.sets["port_profile"].elements[f'"{device}"'] or "0", 16)
    return model.inet.chains[f"{direction}-p{mark & ~STATELESS}"]


def objects(lines: list[str]) -> set[str]:
    """The chains and sets the commands touch ("<verb> <what> <family> fermion_sg <name> ...")."""
    return {line.split()[4] for line in lines if len(line.split()) > 4}


# ------------------------------------------------------------------------------------------------ tests
def test_full_render_builds_both_tables_from_scratch_in_one_transaction() -> None:
    model = rendered(base_state())
    lines = full_commands(model)
    assert lines[:3] == [f"add table bridge {TABLE}", f"delete table bridge {TABLE}", f"add table bridge {TABLE}"]
    assert f"delete table inet {TABLE}" in lines
    assert kernel_after(lines) == as_fake(model)
    assert kernel_after(lines, lines) == as_fake(model), "replaces what was there"
    inet = model.inet.chains
    assert {"sg-web-in", "sg-web-out", "sg-clients-in", "sg-clients-out"} <= set(inet)
    assert {"in-p1", "out-p1", "in-p2", "out-p2", "in-p3", "out-p3"} <= set(inet), "three group combinations"
    assert {"to-p1", "to-p2", "to-p3"} <= set(model.bridge.chains)
    for n in (1, 2, 3):
        assert f'"tapport-{n}"' in model.bridge.sets["port_profile"].elements
        assert f'"tapport-{n}"' in model.bridge.sets["to_port"].elements
    assert set(model.inet.sets["rg-clients-v4"].elements) == {"10.0.0.2"}


def test_ports_with_the_same_groups_share_chains_so_a_thousand_ports_are_few_commands() -> None:
    ports = tuple(port(n % 250 + 1, "web", id=f"port-{n}", device=f"tap{n}") for n in range(1000))
    model = rendered(FirewallState(ports, (WEB, CLIENTS), {}))
    assert len(model.bridge.sets["port_profile"].elements) == 1000
    assert len(set(model.bridge.sets["port_profile"].elements.values())) == 1
    few = rendered(FirewallState(ports[:10], (WEB, CLIENTS), {}))
    assert len(full_commands(model)) == len(full_commands(few)), "a port adds elements, not commands"


def test_group_chains_are_shared_and_rules_are_ored_per_port() -> None:
    model = rendered(base_state())
    assert sum("sg-web-in" in r for rules in model.inet.chains.values() for r in rules) == 2  # ports 1 and 3
    port3 = profile_chain(model, "tapport-3", "in")
    assert port3.index("jump sg-clients-in") < port3.index("drop")
    assert port3.index("jump sg-web-in") < port3.index("drop")
    assert port3[-1] == "drop", "default deny"
    assert "jump sg-web-in" not in profile_chain(model, "tapport-2", "in")


def test_no_change_is_no_command() -> None:
    old, new = models(base_state(), base_state())
    assert diff(old, new) == []


def test_a_rule_change_touches_only_that_groups_chains() -> None:
    web2 = dataclasses.replace(WEB, rules=(*WEB.rules, Rule("ingress", "IPv4", 17, 53, 53)))
    changed = dataclasses.replace(base_state(), groups=(web2, CLIENTS))
    old, new = models(base_state(), changed)
    lines = diff(old, new)
    assert lines is not None
    assert objects(lines) == {"sg-web-in"}
    assert lines == ["add rule inet fermion_sg sg-web-in meta nfproto ipv4 meta l4proto 17 th dport 53 accept"], \
        "an added rule is appended, whatever the size of the group"
    assert kernel_after(full_commands(old), lines) == as_fake(new)


def big_group(rules: int, skip: int | None = None) -> Group:
    return Group("web", True, tuple(Rule("ingress", "IPv4", 6, 1000 + i, 1000 + i) for i in range(rules) if i != skip))


def test_a_rule_change_is_one_command_whatever_the_size_of_its_group() -> None:
    fw = FakeKernelFirewall()
    ports = base_state().ports
    fw.apply(FirewallState(ports, (big_group(1000), CLIENTS), {}))
    assert fw.apply(FirewallState(ports, (big_group(1000, skip=500), CLIENTS), {})) == 1
    assert fw.commands()[0].startswith("delete rule inet fermion_sg sg-web-in handle ")
    assert fw.apply(FirewallState(ports, (big_group(1001, skip=500), CLIENTS), {})) == 1
    assert fw.commands()[0].startswith("add rule inet fermion_sg sg-web-in ")
    assert fw.listings == ["sg-web-in"], "the handles were read once, when a rule was first taken away"
    # a rule added since is taken away with one command too (its handle is read then)
    assert fw.apply(FirewallState(ports, (big_group(1000, skip=500), CLIENTS), {})) == 1
    assert fw.commands()[0].startswith("delete rule inet fermion_sg sg-web-in handle ")
    final = FirewallState(ports, (big_group(1000, skip=500), CLIENTS), {})
    assert canonical_fake(fw.kernel.snapshot()) == canonical_fake(as_fake(rendered(final)))


def test_without_known_handles_a_shrinking_group_is_refilled() -> None:
    old, new = models(FirewallState(base_state().ports, (big_group(10), CLIENTS), {}),
                      FirewallState(base_state().ports, (big_group(10, skip=3), CLIENTS), {}))
    lines = diff(old, new, {})
    assert lines is not None and lines[0] == "flush chain inet fermion_sg sg-web-in" and len(lines) == 10
    assert kernel_after(full_commands(old), lines) == as_fake(new)


def canonical_fake(snapshot: Snapshot) -> Snapshot:
    """Group chains as sorted rules: their order does not matter to what they enforce."""
    return {family: ({k: tuple(sorted(v)) if k.startswith("sg-") else v for k, v in chains.items()}, sets)
            for family, (chains, sets) in snapshot.items()}


def test_a_membership_change_is_set_elements_only() -> None:
    old, new = models(base_state(), base_state(clients=("10.0.0.2", "10.0.0.9", "2001:db8::9")))
    lines = diff(old, new)
    assert lines is not None
    assert all(" element " in line for line in lines)
    assert objects(lines) == {"rg-clients-v4", "rg-clients-v6"}
    assert kernel_after(full_commands(old), lines) == as_fake(new)
    back = diff(new, old)
    assert back is not None and len(back) == 2 and all(line.startswith("delete element") for line in back)
    assert kernel_after(full_commands(new), back) == as_fake(old)


OFFICE = Rule("ingress", "IPv4", 6, 443, 443, remote_address_group="office")


def address_group_state(*cidrs: str) -> FirewallState:
    web = dataclasses.replace(WEB, rules=(*WEB.rules, OFFICE))
    state = base_state()
    return dataclasses.replace(state, groups=(web, CLIENTS), address_groups={"office": cidrs})


def test_an_address_group_is_two_interval_sets_a_rule_names() -> None:
    model = rendered(address_group_state("192.0.2.0/24", "198.51.100.7/32", "2001:db8:1::/48", "192.0.2.128/25"))
    v4, v6 = model.inet.sets["ag-office-v4"], model.inet.sets["ag-office-v6"]
    assert "flags interval" in v4.spec and "ipv4_addr" in v4.spec and "ipv6_addr" in v6.spec
    assert set(v4.elements) == {"192.0.2.0/24", "198.51.100.7"}, "overlaps collapse: the kernel refuses them"
    assert set(v6.elements) == {"2001:db8:1::/48"}
    assert "meta nfproto ipv4 meta l4proto 6 th dport 443 ip saddr @ag-office-v4 accept" in \
        model.inet.chains["sg-web-in"]
    assert kernel_after(full_commands(model)) == as_fake(model)


def test_an_address_change_is_set_elements_only() -> None:
    old, new = models(address_group_state("10.9.0.0/24"), address_group_state("10.9.0.0/24", "10.8.0.5/32"))
    lines = diff(old, new)
    assert lines == [f"add element inet {TABLE} ag-office-v4 {{ 10.8.0.5 }}"]
    assert kernel_after(full_commands(old), lines) == as_fake(new)
    merged = rendered(address_group_state("10.9.0.0/25", "10.9.0.128/25"))  # two halves become one interval
    back = diff(new, merged)
    assert back is not None and all(" element " in line for line in back)
    assert kernel_after(full_commands(new), back) == as_fake(merged)


def test_a_new_port_with_known_groups_is_map_and_set_elements_only() -> None:
    grown = dataclasses.replace(base_state(), ports=(*base_state().ports, port(4, "web")))
    old, new = models(base_state(), grown)
    lines = diff(old, new)
    assert lines is not None
    assert all(line.startswith("add element") for line in lines)
    assert objects(lines) == {"port_macs", "port_v4", "port_v6", "port_profile", "to_port"}
    assert kernel_after(full_commands(old), lines) == as_fake(new)
    removal = diff(new, old)
    assert removal is not None and all(line.startswith("delete element") for line in removal)
    assert kernel_after(full_commands(new), removal) == as_fake(old)


def test_a_new_group_combination_adds_its_profile_chains_and_drops_them_when_unused() -> None:
    grown = dataclasses.replace(base_state(), ports=(*base_state().ports, port(4)))  # no group at all
    old, new = models(base_state(), grown)
    lines = diff(old, new)
    assert lines is not None
    assert {"to-p4", "in-p4", "out-p4"} <= objects(lines)
    assert profile_chain(new, "tapport-4", "in")[-1] == "drop", "no group: nothing comes in"
    assert kernel_after(full_commands(old), lines) == as_fake(new)
    removal = diff(new, old)
    assert removal is not None
    assert any(line.startswith("delete chain") and "in-p4" in line for line in removal)
    assert kernel_after(full_commands(new), removal) == as_fake(old)


def test_allowed_pairs_and_fixed_ips_make_mac_address_sets_without_overlaps() -> None:
    p = port(5, allowed_pairs=(("10.0.0.0/24", "fa:16:3e:00:00:05"), ("10.9.0.7", "FA:16:3E:AA:BB:CC")))
    model = rendered(FirewallState((p,), ()))
    sets = {name: set(s.elements) for name, s in model.bridge.sets.items()}
    dev = '"tapport-5"'
    assert sets["port_v4"] == {f"{dev} . fa:16:3e:aa:bb:cc . 10.9.0.7"}
    assert sets["port_v4_nets"] == {f"{dev} . fa:16:3e:00:00:05 . 10.0.0.0/24"}, "10.0.0.5 is inside the /24"
    assert sets["port_v6"] == {f"{dev} . fa:16:3e:00:00:05 . 2001:db8::5"} and not sets["port_v6_nets"]
    assert sets["port_macs"] == {f"{dev} . fa:16:3e:00:00:05", f"{dev} . fa:16:3e:aa:bb:cc"}
    # the interval set is looked up only while some port has a network in it
    assert any("@port_v4_nets" in r for r in model.bridge.chains["antispoof"])
    assert not any("@port_v6_nets" in r for r in model.bridge.chains["antispoof"])
    plain = rendered(FirewallState((port(5),), ()))
    assert not any("_nets" in r for r in plain.bridge.chains["antispoof"])


def test_port_security_false_ports_are_not_filtered_at_all() -> None:
    open_port = port(7, "web", port_security=False)
    model = rendered(FirewallState((port(1, "web"), open_port), (WEB,)))
    elements = [e for s in model.bridge.sets.values() for e in s.elements]
    assert not any("tapport-7" in e for e in elements), "no profile mark, no anti-spoofing"
    assert any("tapport-1" in e for e in elements)


def test_stateful_ports_get_the_conntrack_shortcut_stateless_ones_do_not() -> None:
    stateless = Group("web", False, WEB.rules)
    model = rendered(FirewallState((port(1, "web"), port(2, "clients")), (stateless, CLIENTS), {}))
    assert not any("ct state" in r for d in ("in", "out") for r in profile_chain(model, "tapport-1", d))
    assert profile_chain(model, "tapport-2", "in")[0].startswith("ct state established,related")
    # the shared shortcut for established traffic is skipped when either side carries the stateless bit
    marks = model.bridge.sets["port_profile"].elements
    assert int(marks['"tapport-1"'] or "0", 16) & STATELESS and not int(marks['"tapport-2"'] or "0", 16) & STATELESS
    assert model.inet.chains["forward"][0] == \
        f"meta mark and {STATELESS | STATELESS << 16:#x} == 0x0 ct state established,related accept"


def test_rule_matches() -> None:
    rules = (Rule("ingress", "IPv4", 6, 1000, 2000), Rule("ingress", "IPv6", 1, 128, 0),
             Rule("ingress", "IPv4", 17, remote_ip_prefix="2001:db8::/32"),  # family mismatch: never matches
             Rule("egress", "IPv6", None, remote_group="g"), Rule("ingress", "IPv4", 6, remote_ip_prefix="0.0.0.0/0"))
    state = FirewallState((port(1, "g"),), (Group("g", True, rules),), {"g": ("10.0.0.1", "2001:db8::1")})
    model = rendered(state)
    into, out = model.inet.chains["sg-g-in"], model.inet.chains["sg-g-out"]
    assert len(into) == 3 and len(out) == 1
    assert "th dport 1000-2000" in into[0] and "ip saddr" not in into[0]
    assert "meta l4proto 58 icmpv6 type 128 icmpv6 code 0" in into[1], "icmp on IPv6 means icmpv6"
    assert into[2].endswith("meta l4proto 6 accept"), "a /0 prefix matches everything"
    assert "ip6 daddr @rg-g-v6" in out[0] and out[0].endswith("goto admit")
    assert set(model.inet.sets["rg-g-v6"].elements) == {"2001:db8::1"}
    assert set(model.inet.sets["rg-g-v4"].elements) == {"10.0.0.1"}


def test_marks_are_stable_and_reused() -> None:
    web, clients, both = (("web",), True), (("clients",), True), (("clients", "web"), True)
    first = allocate_marks([web, clients, both], {})
    assert sorted(first.values()) == [1, 2, 3]
    second = allocate_marks([web, both, (("other",), False)], first)
    assert second[web] == first[web] and second[both] == first[both]
    assert second[(("other",), False)] == first[clients], "a freed index is reused"
    assert profiles(FirewallState((port(9, "web", port_security=False),), ())) == []
    assert profiles(FirewallState((port(1, "web", "clients"), port(2, "clients", "web")), ())) == [both]


def test_names_that_cannot_be_nft_identifiers_are_refused() -> None:
    with pytest.raises(ValueError):
        rendered(FirewallState((port(1, "bad group;"),), ()))
    with pytest.raises(ValueError):
        rendered(FirewallState((port(1, device='tap"x'),), ()))


# ------------------------------------------------------------------------------------------------ properties
_RULES = [Rule("ingress", "IPv4", 6, 22, 22), Rule("ingress", "IPv4", None, remote_group="g1"),
          Rule("ingress", "IPv4", 6, 443, 443, remote_address_group="a1"),
          Rule("egress", "IPv6", None, remote_address_group="a1"),
          Rule("egress", "IPv6", None, remote_group="g2"), Rule("egress", "IPv4", 17, 53, 53, "10.1.0.0/16"),
          Rule("ingress", "IPv6", 58, 128, None), *EGRESS_ANY]
_ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1", "2001:db8::2"]
_CIDRS = ["10.9.0.0/24", "10.9.0.0/25", "10.9.0.128/25", "10.9.1.7/32", "2001:db8:9::/48", "2001:db8:9::1/128"]


@st.composite
def states(draw: st.DrawFn) -> FirewallState:
    groups = tuple(Group(f"g{i}", draw(st.booleans()), tuple(draw(st.lists(st.sampled_from(_RULES), max_size=4))))
                   for i in range(3))
    ports = []
    devices = draw(st.permutations([f"tap{i}" for i in range(5)]))
    for i in draw(st.sets(st.integers(0, 4), max_size=4)):
        ports.append(PortFilter(
            f"p{i}", devices[i], draw(st.sampled_from(["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"])),
            tuple(draw(st.sets(st.sampled_from(_ADDRESSES), max_size=2))),
            tuple(draw(st.sets(st.sampled_from([("10.0.0.0/30", "fa:16:3e:00:00:09"), ("10.0.0.4", "fa:16:3e:00:00:01"),
                                                ("2001:db8::/64", "fa:16:3e:00:00:01")]), max_size=2))),
            tuple(draw(st.sets(st.sampled_from(["g0", "g1", "g2", "g3"]), max_size=2))),
            draw(st.booleans())))
    members = {f"g{i}": tuple(draw(st.sets(st.sampled_from(_ADDRESSES), max_size=3))) for i in range(3)}
    cidrs = tuple(draw(st.sets(st.sampled_from(_CIDRS), max_size=4)))
    return FirewallState(tuple(ports), groups, members, address_groups={"a1": cidrs})


@settings(max_examples=150, deadline=None)
@given(states(), states())
def test_incremental_update_leaves_what_a_full_recompute_would(old: FirewallState, new: FirewallState) -> None:
    before, after = models(old, new)
    lines = diff(before, after)
    assert lines is not None
    assert kernel_after(full_commands(before), lines) == as_fake(after)
    assert diff(after, after) == []


@settings(max_examples=150, deadline=None)
@given(states(), states(), states())
def test_rule_by_rule_edits_leave_what_a_full_recompute_would(a: FirewallState, b: FirewallState,
                                                              c: FirewallState) -> None:
    """Through two changes, with the handles read back where needed: the kernel holds exactly the model,
    and the model is the recomputed one up to the order of a group chain's rules (its canonical form, the
    digest's input, is the same)."""
    fw = FakeKernelFirewall()
    for target in (a, b, c):
        fw.apply(target)
        assert fw._model is not None
        assert fw.kernel.snapshot() == as_fake(fw._model)
        fresh = render(target, fw._marks, fw._zones)
        assert full_commands(canonical(fw._model)) == full_commands(canonical(fresh))
        assert fw.apply(target) == 0


# ------------------------------------------------------------------------------------------------ the shell
def test_firewall_applies_full_first_then_only_changes_and_rebuilds_when_tables_vanish() -> None:
    fw = FakeKernelFirewall()
    full = fw.apply(base_state())
    assert full > 20 and fw.observe()
    assert fw.apply(base_state()) == 0 and len(fw.transactions) == 1
    assert fw.apply(base_state(clients=("10.0.0.2", "10.0.0.7"))) == 1
    assert fw.apply(base_state(clients=("10.0.0.2", "10.0.0.7")), full=True) > 20
    assert len(fw.transactions) == 3
    fw.kernel.tables.pop("inet")  # someone deleted our table: the incremental transaction fails, a full one follows
    pair = port(1, "web", allowed_pairs=(("10.0.0.99", "fa:16:3e:00:00:01"),))
    pairs = dataclasses.replace(base_state(), ports=(pair, *base_state().ports[1:]))
    assert fw.apply(pairs) > 20, "even when the change is in the bridge table only"
    assert fw.apply(base_state()) < 10
    assert fw.kernel.snapshot() == as_fake(render(base_state(), fw._marks))
    fw.remove()
    assert not fw.observe()


def test_the_hosts_tunnel_packets_skip_conntrack() -> None:
    v4 = rendered(dataclasses.replace(base_state(), tunnel_ip="198.18.0.5"))
    assert v4.inet.chains["tunnel-in"] == ("ip daddr 198.18.0.5 udp dport 4789 notrack",)
    assert v4.inet.chains["tunnel-out"] == ("ip saddr 198.18.0.5 udp dport 4789 notrack",)
    assert "hook prerouting priority -300" in v4.inet.hooks["tunnel-in"], "before conntrack (-200)"
    v6 = rendered(dataclasses.replace(base_state(), tunnel_ip="2001:db8::5"))
    assert v6.inet.chains["tunnel-in"] == ("ip6 daddr 2001:db8::5 udp dport 4789 notrack",)
    assert "tunnel-in" not in rendered(base_state()).inet.chains
    assert kernel_after(full_commands(v4)) == as_fake(v4)
