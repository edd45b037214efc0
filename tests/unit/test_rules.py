"""The security-group rule matcher the firewalls' revocation and the trace share."""

from __future__ import annotations

from fermion.dataplane.secgroups import Rule
from fermion.rules import ICMP, ICMPV6, admits

TCP = 6


def rule(**kw: object) -> Rule:
    return Rule(**{"direction": "ingress", "ethertype": "IPv4", "protocol": TCP, **kw})  # type: ignore[arg-type]


def test_a_port_range_must_hold_every_port_the_packet_may_have() -> None:
    ssh = rule(port_min=22, port_max=22)
    assert admits(ssh, 4, TCP, (22, 22), None, None, "10.0.0.5", {}, {})
    assert not admits(ssh, 4, TCP, (23, 23), None, None, "10.0.0.5", {}, {})
    # replies go to the client's ephemeral port, any of a range: only a rule holding all of it matches them
    assert not admits(rule(port_min=32768, port_max=40000), 4, TCP, (32768, 60999), None, None, "10.0.0.5", {}, {})
    assert admits(rule(), 4, TCP, (32768, 60999), None, None, "10.0.0.5", {}, {})


def test_icmp_in_an_ipv6_rule_is_icmpv6_and_type_and_code_must_match() -> None:
    echo6 = rule(ethertype="IPv6", protocol=ICMP, port_min=128, port_max=0)
    assert admits(echo6, 6, ICMPV6, None, 128, 0, "2001:db8::5", {}, {})
    assert not admits(echo6, 6, ICMPV6, None, 129, 0, "2001:db8::5", {}, {})
    assert not admits(echo6, 4, ICMP, None, 128, 0, "10.0.0.5", {}, {})


def test_remotes_prefix_group_and_address_group() -> None:
    assert admits(rule(remote_ip_prefix="10.0.0.0/24"), 4, TCP, (80, 80), None, None, "10.0.0.5", {}, {})
    assert not admits(rule(remote_ip_prefix="10.0.0.0/24"), 4, TCP, (80, 80), None, None, "10.0.1.5", {}, {})
    assert not admits(rule(remote_ip_prefix="2001:db8::/64"), 4, TCP, (80, 80), None, None, "10.0.0.5", {}, {})
    members = {"g": ["10.0.0.7"]}
    assert admits(rule(remote_group="g"), 4, TCP, (80, 80), None, None, "10.0.0.7", members, {})
    assert not admits(rule(remote_group="g"), 4, TCP, (80, 80), None, None, "10.0.0.8", members, {})
    groups = {"a": ["10.9.0.0/16"]}
    assert admits(rule(remote_address_group="a"), 4, TCP, (80, 80), None, None, "10.9.3.3", {}, groups)
    assert not admits(rule(remote_address_group="a"), 4, TCP, (80, 80), None, None, "10.8.3.3", {}, groups)
