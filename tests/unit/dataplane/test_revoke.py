"""A security-group change cuts the tracked connections it no longer allows, and only those (no root: the
firewall runs against fakes of nf_tables and of the conntrack table)."""

from __future__ import annotations

import dataclasses

from fermion.dataplane import DataplaneError
from fermion.dataplane.conntrack import Flow
from fermion.dataplane.firewall import FirewallState, Group, PortFilter, Rule
from fermion.dataplane.revoke import Judge
from tests.unit.dataplane.fakes import FakeConntrack, FakeKernelFirewall

EGRESS_ANY = (Rule("egress", "IPv4", None), Rule("egress", "IPv6", None))
SSH = Rule("ingress", "IPv4", 6, 22, 22)
PING = Rule("ingress", "IPv4", 1, 8)
WEB = Group("web", True, (*EGRESS_ANY, SSH, PING, Rule("ingress", "IPv4", 6, 5432, 5432, remote_group="app")))
APP = Group("app", True, (*EGRESS_ANY, Rule("ingress", "IPv4", 6, 80, 80)))


def port(n: int, *groups: str, network: str = "net-a", **changes: object) -> PortFilter:
    p = PortFilter(f"{network}-port-{n}", f"tap{network[-1]}{n}", f"fa:16:3e:00:00:{n:02x}", (f"10.0.0.{n}",),
                   groups=groups, network=network)
    return dataclasses.replace(p, **changes)  # type: ignore[arg-type]


def tcp(src: int, dst: int, dport: int, zone: int = 1, sport: int = 40000) -> Flow:
    return Flow(zone, 4, 6, f"10.0.0.{src}", f"10.0.0.{dst}", sport, dport, tuple_attr=b"t")


def ping(src: int, dst: int, zone: int = 1) -> Flow:
    return Flow(zone, 4, 1, f"10.0.0.{src}", f"10.0.0.{dst}", icmp_type=8, icmp_code=0, tuple_attr=b"p")


def base(*extra: PortFilter, web: Group = WEB, app_members: tuple[str, ...] = ("10.0.0.2",)) -> FirewallState:
    return FirewallState((port(1, "web"), port(2, "app"), port(3, "app"), *extra), (web, APP),
                         {"app": app_members})


def firewall(state: FirewallState, *flows: Flow) -> tuple[FakeKernelFirewall, FakeConntrack]:
    fw = FakeKernelFirewall()
    fw.apply(state)
    table = fw.conntrack
    assert isinstance(table, FakeConntrack)
    table.table = list(flows)
    return fw, table


def test_a_deleted_rule_cuts_what_it_allowed_and_nothing_else() -> None:
    fw, ct = firewall(base(), ping(2, 1), tcp(2, 1, 22), tcp(1, 2, 80), tcp(9, 1, 22))
    fw.apply(base(web=dataclasses.replace(WEB, rules=tuple(r for r in WEB.rules if r != PING))))
    assert ct.table == [tcp(2, 1, 22), tcp(1, 2, 80), tcp(9, 1, 22)]
    assert fw.revoked == 1


def test_changing_a_ports_groups_cuts_what_the_new_groups_refuse() -> None:
    ssh_only = Group("ssh-only", True, (*EGRESS_ANY, SSH))
    fw, ct = firewall(base(), ping(2, 1), tcp(2, 1, 22), tcp(2, 1, 23))
    changed = base()
    changed = dataclasses.replace(changed, ports=(port(1, "ssh-only"), *changed.ports[1:]),
                                  groups=(*changed.groups, ssh_only))
    fw.apply(changed)
    assert ct.table == [tcp(2, 1, 22)], "the established ssh session stays, the ping and tcp 23 go"


def test_a_member_leaving_a_remote_group_loses_its_connections() -> None:
    fw, ct = firewall(base(app_members=("10.0.0.2", "10.0.0.3")), tcp(2, 1, 5432), tcp(3, 1, 5432))
    fw.apply(base(app_members=("10.0.0.3",)))
    assert ct.table == [tcp(3, 1, 5432)]


def test_an_address_leaving_an_address_group_loses_its_connections() -> None:
    office = Rule("ingress", "IPv4", 6, 443, 443, remote_address_group="office")
    web = dataclasses.replace(WEB, rules=(*WEB.rules, office))
    wide = dataclasses.replace(base(web=web), address_groups={"office": ("10.0.0.0/30", "10.0.0.9/32")})
    fw, ct = firewall(wide, tcp(2, 1, 443), tcp(9, 1, 443), tcp(7, 1, 443), tcp(2, 1, 22))
    assert ct.table == [tcp(2, 1, 443), tcp(9, 1, 443), tcp(7, 1, 443), tcp(2, 1, 22)]
    fw.apply(dataclasses.replace(wide, address_groups={"office": ("10.0.0.9/32",)}))
    assert ct.table == [tcp(9, 1, 443), tcp(2, 1, 22)], "10.0.0.2 left the group; 10.0.0.7 was never in it"
    assert Judge(wide, {"net-a": 1}).allows(tcp(2, 1, 443))
    assert not Judge(wide, {"net-a": 1}).allows(tcp(7, 1, 443))


def test_an_address_joining_an_address_group_cuts_nothing() -> None:
    office = Rule("ingress", "IPv4", 6, 443, 443, remote_address_group="office")
    state = dataclasses.replace(base(web=dataclasses.replace(WEB, rules=(*WEB.rules, office))),
                                address_groups={"office": ("10.0.0.2/32",)})
    fw, ct = firewall(state, tcp(2, 1, 443), tcp(2, 1, 22))
    revoked = fw.revoked
    fw.apply(dataclasses.replace(state, address_groups={"office": ("10.0.0.2/32", "10.0.0.3/32")}))
    assert ct.table == [tcp(2, 1, 443), tcp(2, 1, 22)] and fw.revoked == revoked


def test_turning_port_security_on_cuts_what_its_groups_do_not_allow() -> None:
    open_port = port(4, port_security=False)
    fw, ct = firewall(base(open_port), tcp(2, 4, 8080), tcp(4, 2, 80), ping(1, 4))
    fw.apply(base(port(4, "web")))
    assert ct.table == [tcp(4, 2, 80), ping(1, 4)], "web admits ping, not tcp 8080"


def test_a_deleted_port_takes_its_connections_with_it() -> None:
    fw, ct = firewall(base(port(4, port_security=False)), tcp(2, 4, 8080), tcp(2, 1, 22))
    fw.apply(base())
    assert ct.table == [tcp(2, 1, 22)]


def test_egress_rules_are_enforced_on_the_sender() -> None:
    quiet = Group("app", True, (Rule("egress", "IPv4", 6, 443, 443), Rule("ingress", "IPv4", 6, 80, 80)))
    fw, ct = firewall(base(), tcp(2, 99, 443), tcp(2, 99, 80), tcp(99, 2, 80))
    state = base()
    fw.apply(dataclasses.replace(state, groups=(WEB, quiet)))
    assert ct.table == [tcp(2, 99, 443), tcp(99, 2, 80)], "10.0.0.99 is not on this host: its side is not ours"


def test_the_same_addresses_in_another_network_keep_their_connections() -> None:
    other = port(1, "web", network="net-b")  # 10.0.0.1 again, in another tenant's network (zone 2)
    fw, ct = firewall(base(other), ping(2, 1, zone=1), ping(2, 1, zone=2))
    assert fw._zones == {"net-a": 1, "net-b": 2}
    narrowed = dataclasses.replace(WEB, id="narrow", rules=(*EGRESS_ANY, SSH))
    state = base(dataclasses.replace(other, groups=("web",)))
    fw.apply(dataclasses.replace(state, ports=(port(1, "narrow"), *state.ports[1:]), groups=(*state.groups, narrowed)))
    assert ct.table == [ping(2, 1, zone=2)]


def test_stateless_ports_need_no_cut_every_packet_meets_the_rules() -> None:
    stateless = dataclasses.replace(WEB, stateful=False)
    fw, ct = firewall(base(web=stateless), ping(2, 1))
    fw.apply(base(web=dataclasses.replace(stateless, rules=EGRESS_ANY)))
    assert ct.table == [ping(2, 1)]


def test_a_network_leaving_the_host_frees_its_zone_and_its_connections_go() -> None:
    other = port(1, "web", network="net-b")
    fw, ct = firewall(base(other), ping(5, 6, zone=2), ping(2, 1, zone=1), ping(5, 6, zone=0))
    fw.apply(base())
    assert ct.table == [ping(2, 1, zone=1), ping(5, 6, zone=0)], "zone 0 is not ours to judge"


def test_a_failed_cut_is_tried_again_at_the_next_apply() -> None:
    fw, ct = firewall(base(), ping(2, 1))
    calls = []

    def broken(flows: object) -> int:
        calls.append(flows)
        raise DataplaneError("netlink: no buffer space")

    ct.delete = broken  # type: ignore[method-assign]
    no_ping = base(web=dataclasses.replace(WEB, rules=tuple(r for r in WEB.rules if r != PING)))
    fw.apply(no_ping)
    assert calls and ct.table == [ping(2, 1)]
    del ct.delete
    assert fw.apply(no_ping) == 0, "nothing to change in the tables"
    assert ct.table == []


def test_a_change_that_only_adds_never_reads_the_conntrack_table() -> None:
    fw, ct = firewall(base(), ping(2, 1))
    dumps = ct.dumps
    more = dataclasses.replace(WEB, rules=(*WEB.rules, Rule("ingress", "IPv4", 6, 80, 80)))
    fw.apply(base(web=more))
    fw.apply(base(web=more, app_members=("10.0.0.2", "10.0.0.3")))
    grown = base(web=more, app_members=("10.0.0.2", "10.0.0.3"))
    fw.apply(dataclasses.replace(grown, ports=(port(1, "web", "app"), *grown.ports[1:])))
    assert ct.dumps == dumps and ct.table == [ping(2, 1)]
    fw.apply(grown)  # and taking the group away again looks
    assert ct.dumps == dumps + 1


def test_a_restart_audits_every_connection_in_our_zones() -> None:
    state = base(web=dataclasses.replace(WEB, rules=EGRESS_ANY))
    fw, ct = firewall(state)
    ct.table = [ping(2, 1), tcp(2, 3, 80)]
    fresh = FakeKernelFirewall()  # a new agent process: it knows nothing of what happened before
    fresh.kernel, fresh.conntrack = fw.kernel, ct
    fresh.apply(state)
    assert ct.table == [tcp(2, 3, 80)]


def test_verdicts_follow_the_rule_fields() -> None:
    rules = (Rule("ingress", "IPv4", 6, 1000, 2000, remote_ip_prefix="10.0.0.0/30"),
             Rule("ingress", "IPv6", 1, 128), Rule("ingress", "IPv4", 17))
    judge = Judge(FirewallState((port(1, "g"),), (Group("g", True, rules),)), {"net-a": 1})
    assert judge.allows(tcp(2, 1, 1500))
    assert not judge.allows(tcp(5, 1, 1500)), "outside the remote prefix"
    assert not judge.allows(tcp(2, 1, 2001)), "outside the port range"
    assert judge.allows(Flow(1, 4, 17, "10.0.0.9", "10.0.0.1", 5, 53))
    assert not judge.allows(ping(2, 1)), "the icmp rule is for IPv6 only"
    assert judge.allows(Flow(1, 4, 17, "0.0.0.0", "10.0.0.1", 67, 68)), "DHCP always passes"
    assert judge.allows(tcp(2, 1, 80, zone=2)), "another zone: not this port"
