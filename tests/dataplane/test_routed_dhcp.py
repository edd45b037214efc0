"""DHCP per segment of a routed network, with real leases (embedded mode): two racks, each a host with a
physical network of its own (rack-a, rack-b) and its own DHCP agent. Each rack's DHCP server serves only its
segment's subnet, and an instance gets its address from its own rack's server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netaddr
import pytest

from fermion.dataplane import naming, netns
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab, dhcp_env

RACKS = {"rack1": ("rack-a", "10.71.0.0/24"), "rack2": ("rack-b", "10.72.0.0/24")}


@pytest.fixture
def racks(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, hosts=list(RACKS), network_hosts=tuple(RACKS),
                      physnets={host: physnet for host, (physnet, _) in RACKS.items()}) as lab:
        yield lab


def _get(lab: Lab, path: str, **params: str) -> Any:
    return lab.api._ok(lab.api.http.get(path, params=params))


def _dnsmasq_args(lab: Lab, host: str, network_id: str) -> str:
    """The command line of the dnsmasq serving the network on the host."""
    pid = (lab.state_dir / "dhcp" / host / network_id / "pid").read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_each_rack_leases_its_own_segments_addresses(racks: Lab) -> None:
    lab = racks
    net = lab.api.post("networks", {"name": "routed", "provider:network_type": "flat",
                                    "provider:physical_network": "rack-a"})
    (seg_a,) = _get(lab, "/v2.0/segments", network_id=net["id"])["segments"]
    seg_b = lab.api.post("segments", {"network_id": net["id"], "network_type": "flat",
                                      "physical_network": "rack-b"})
    subnets = {host: lab.api.post("subnets", {"network_id": net["id"], "cidr": cidr, "ip_version": 4,
                                              "segment_id": seg["id"]})
               for (host, (_, cidr)), seg in zip(RACKS.items(), (seg_a, seg_b), strict=True)}
    hosting = _get(lab, f"/v2.0/networks/{net['id']}/dhcp-agents")["agents"]
    assert sorted(a["host"] for a in hosting) == ["rack1", "rack2"]

    vms = {host: lab.boot("routed", host, f"vm-{host}") for host in RACKS}  # each waits for its lease
    ports = {p["binding:host_id"]: p for p in _get(lab, "/v2.0/ports", network_id=net["id"],
                                                   device_owner="network:dhcp")["ports"]}
    assert sorted(ports) == ["rack1", "rack2"]
    for host, vm in vms.items():
        subnet = subnets[host]
        assert vm.ip and netaddr.IPAddress(vm.ip) in netaddr.IPNetwork(subnet["cidr"])
        (server,) = ports[host]["fixed_ips"]  # the rack's DHCP port: an address on its own segment only
        assert server["subnet_id"] == subnet["id"]
        # the lease comes from the DHCP server on the instance's own host
        env = dhcp_env(lab, vm.name)
        assert (env["ip"], env["serverid"]) == (vm.ip, server["ip_address"])
        # that dnsmasq serves its segment's subnet only, and leased to this rack's instance only
        args = _dnsmasq_args(lab, host, net["id"])
        assert f"set:subnet-{subnet['id']}," in args
        other = next(s for h, s in subnets.items() if h != host)
        assert f"set:subnet-{other['id']}" not in args
        leases = (lab.state_dir / "dhcp" / host / net["id"] / "leases").read_text()
        assert vm.mac in leases
        assert all(o.mac not in leases for h, o in vms.items() if h != host)
        qdhcp = naming.dhcp_namespace(net["id"], lab.host_ns(host))
        assert qdhcp in netns.names(lab.state.prefix)
