"""dnsmasq's files for a network: host names from dns_assignment, per-port tagged extra options."""

from __future__ import annotations

from pathlib import Path

from fermion.dataplane import dnsmasq as dm

SUBNET = dm.Subnet(id="s4", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1", dns_nameservers=(),
                   host_routes=())
SUBNET6 = dm.Subnet(id="s6", cidr="2001:db8::/64", ip_version=6, gateway_ip=None, dns_nameservers=(),
                    host_routes=(), ipv6_address_mode="dhcpv6-stateful")


def _cfg(*hosts: dm.Host, domain: str = "openstacklocal.") -> dm.Config:
    return dm.Config(network_id="n", namespace="qdhcp-n", interface="ns-1", mtu=1450, server_ips=("10.0.0.2",),
                     subnets=(SUBNET, SUBNET6), hosts=hosts, domain=domain)


def test_a_host_without_names_is_host_address_in_the_domain() -> None:
    files = dm.render(_cfg(dm.Host(mac="fa:16:3e:00:00:01", ip="10.0.0.5", subnet_id="s4", port_id="p1")))
    assert files["host"] == "fa:16:3e:00:00:01,host-10-0-0-5.openstacklocal.,10.0.0.5\n"
    assert files["addn_hosts"] == "10.0.0.5\thost-10-0-0-5.openstacklocal host-10-0-0-5\n"
    assert "tag:port-" not in files["opts"]


def test_names_from_the_dns_assignment() -> None:
    host = dm.Host(mac="fa:16:3e:00:00:01", ip="10.0.0.5", subnet_id="s4", port_id="p1", hostname="vm1",
                   fqdn="vm1.example.org.")
    files = dm.render(_cfg(host, domain="example.org."))
    assert files["host"] == "fa:16:3e:00:00:01,vm1.example.org.,10.0.0.5\n"
    assert files["addn_hosts"] == "10.0.0.5\tvm1.example.org vm1\n"
    assert "--domain=example.org" in dm.command(_cfg(host, domain="example.org."), Path("/w"))
    assert not [a for a in dm.command(_cfg(host, domain=""), Path("/w"))
                if a.startswith("--domain")]


def test_a_port_with_options_is_tagged_and_its_options_follow_the_subnets() -> None:
    opts = (dm.Option("bootfile-name", "pxelinux.0"), dm.Option("66", "198.18.0.9"),
            dm.Option("tag:ipxe,bootfile-name", "http://boot/x.ipxe"), dm.Option("router", ""),
            dm.Option("dns-server", "2001:db8::53", 6), dm.Option("client-id", "abc"))
    v4 = dm.Host(mac="fa:16:3e:00:00:01", ip="10.0.0.5", subnet_id="s4", port_id="p1", options=opts)
    v6 = dm.Host(mac="fa:16:3e:00:00:01", ip="2001:db8::5", subnet_id="s6", port_id="p1", options=opts)
    other = dm.Host(mac="fa:16:3e:00:00:02", ip="10.0.0.6", subnet_id="s4", port_id="p2")
    files = dm.render(_cfg(v4, v6, other))
    assert files["host"].splitlines() == [
        "fa:16:3e:00:00:01,set:port-p1,host-10-0-0-5.openstacklocal.,10.0.0.5",
        "fa:16:3e:00:00:01,set:port-p1,host-2001-db8--5.openstacklocal.,[2001:db8::5]",
        "fa:16:3e:00:00:02,host-10-0-0-6.openstacklocal.,10.0.0.6",
    ]
    lines = files["opts"].splitlines()
    port_lines = [line for line in lines if line.startswith("tag:port-p1")]
    assert port_lines == [
        "tag:port-p1,option:bootfile-name,pxelinux.0",
        "tag:port-p1,66,198.18.0.9",
        "tag:port-p1,tag:ipxe,option:bootfile-name,http://boot/x.ipxe",
        "tag:port-p1,option:router",
        "tag:port-p1,option6:dns-server,2001:db8::53",
    ]
    assert lines[-len(port_lines):] == port_lines  # after the subnets' own options
    assert "client-id" not in files["opts"]
