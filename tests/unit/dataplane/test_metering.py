"""The metering table's rules as nft text: Neutron's iptables driver semantics (directions on the gateway
device, remote_ip_prefix's meaning, excluded rules first), without a kernel."""

from fermion.dataplane.metering import MeterLabel, MeterRule, render

LABEL = "0b7f3d1e-0000-4000-8000-000000000001"


def rules_of(*rules: MeterRule, gateway: str | None = "qg-1") -> list[str]:
    return [line.split(f"r-{LABEL} ", 1)[1] for line in render(gateway, [MeterLabel(LABEL, rules)])
            if line.startswith(f"add rule inet fermion_meter r-{LABEL} ")]


def test_directions_and_remote_prefixes_as_neutron() -> None:
    assert rules_of(MeterRule("egress", remote="10.0.0.5/24"), MeterRule("ingress", remote="10.0.0.0/24")) == [
        f'oifname "qg-1" ip saddr 10.0.0.0/24 counter name "c-{LABEL}" return',
        f'iifname "qg-1" ip daddr 10.0.0.0/24 counter name "c-{LABEL}" return']


def test_excluded_rules_come_first_and_only_return() -> None:
    found = rules_of(MeterRule("egress", source="10.0.0.0/24"),
                     MeterRule("egress", excluded=True, source="10.0.0.7/32", destination="198.18.0.0/15"))
    assert found == ['oifname "qg-1" ip saddr 10.0.0.7/32 ip daddr 198.18.0.0/15 return',
                     f'oifname "qg-1" ip saddr 10.0.0.0/24 counter name "c-{LABEL}" return']


def test_ipv6_mixed_versions_and_no_gateway() -> None:
    assert rules_of(MeterRule("ingress", destination="2001:db8::/64")) == [
        f'iifname "qg-1" ip6 daddr 2001:db8::/64 counter name "c-{LABEL}" return']
    assert rules_of(MeterRule("ingress", source="10.0.0.0/8", destination="2001:db8::/64")) == []
    assert rules_of(MeterRule("ingress", destination="10.0.0.0/8"), gateway=None) == []
    lines = render(None, [MeterLabel(LABEL)])
    assert f"add counter inet fermion_meter c-{LABEL}" in lines  # counted (zero) all the same
