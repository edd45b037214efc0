"""openstacksdk against a live server, configured the three ways the README documents."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import openstack
import pytest
from openstack import exceptions

from tests.compat.conftest import client_env

pytestmark = [
    pytest.mark.compat,
    # openstacksdk's own config loader warns about InfluxDB on every openstack.connect(), even unconfigured
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def conn(endpoint: str) -> Iterator[openstack.connection.Connection]:
    c = openstack.connection.Connection(auth_type="none", network_endpoint_override=endpoint)
    yield c
    c.close()


def record_requests(conn: openstack.connection.Connection) -> list[tuple[str, str, int]]:
    """Every HTTP exchange the SDK makes, as (method, url, status)."""
    seen: list[tuple[str, str, int]] = []
    conn.session.session.hooks["response"].append(
        lambda r, *a, **kw: seen.append((r.request.method, r.url, r.status_code)))
    return seen


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- configuration --------------------------------------------------------------------------------


def test_env_vars_configure_the_sdk(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OS_AUTH_TYPE", "none")
    monkeypatch.setenv("OS_NETWORK_ENDPOINT_OVERRIDE", endpoint)
    conn = openstack.connect()
    try:
        name = unique("envvar")
        net = conn.network.create_network(name=name)
        assert [n.id for n in conn.network.networks(name=name)] == [net.id]
        conn.network.delete_network(net)
    finally:
        conn.close()


def test_env_vars_in_a_fresh_process(endpoint: str) -> None:
    """What a user pasting `export OS_AUTH_TYPE=none OS_NETWORK_ENDPOINT_OVERRIDE=...` gets."""
    script = ("import openstack\n"
              "c = openstack.connect()\n"
              "n = c.network.create_network(name='envproc')\n"
              "print(c.network.get_network(n.id).project_id)\n"
              "c.network.delete_network(n)\n")
    env = client_env(OS_AUTH_TYPE="none", OS_NETWORK_ENDPOINT_OVERRIDE=endpoint)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fermion-default"


def test_clouds_yaml_configures_the_sdk(endpoint: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n"
                      "  fermion:\n"
                      "    auth_type: none\n"
                      f"    network_endpoint_override: {endpoint}\n")
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    conn = openstack.connect(cloud="fermion")
    try:
        name = unique("clouds-yaml")
        net = conn.network.create_network(name=name)
        assert conn.network.find_network(name, ignore_missing=False).id == net.id
        conn.network.delete_network(net)
    finally:
        conn.close()


# --- resources ------------------------------------------------------------------------------------


def test_network_lifecycle(conn: openstack.connection.Connection) -> None:
    name = unique("net")
    net = conn.network.create_network(name=name, description="first", is_admin_state_up=True)
    assert net.name == name and net.status == "ACTIVE" and net.project_id == "fermion-default"
    assert net.mtu == 1450 and net.is_shared is False and net.subnet_ids == []

    assert conn.network.get_network(net.id).name == name
    assert conn.network.find_network(name, ignore_missing=False).id == net.id
    assert conn.network.find_network(net.id, ignore_missing=False).id == net.id
    assert [n.id for n in conn.network.networks(name=name)] == [net.id]

    revision = net.revision_number
    updated = conn.network.update_network(net, name=name + "-x", description="second",
                                          is_admin_state_up=False)
    assert (updated.name, updated.description, updated.is_admin_state_up) == (name + "-x", "second", False)
    assert updated.revision_number > revision
    assert net.id in {n.id for n in conn.network.networks(is_admin_state_up=False)}

    conn.network.delete_network(net, ignore_missing=False)
    assert conn.network.find_network(name + "-x") is None
    with pytest.raises(exceptions.NotFoundException) as err:
        conn.network.get_network(net.id)
    assert "could not be found" in str(err.value)
    with pytest.raises(exceptions.NotFoundException):
        conn.network.delete_network(MISSING, ignore_missing=False)
    conn.network.delete_network(MISSING)  # ignore_missing=True by default


def test_subnets_ipv4_and_ipv6(conn: openstack.connection.Connection) -> None:
    net = conn.network.create_network(name=unique("subnets"))
    v6_name = unique("v6")
    v4 = conn.network.create_subnet(
        network_id=net.id, name="v4", ip_version=4, cidr="10.42.0.0/24", gateway_ip="10.42.0.254",
        allocation_pools=[{"start": "10.42.0.10", "end": "10.42.0.99"}],
        dns_nameservers=["198.19.2.53"], host_routes=[{"destination": "10.99.0.0/16", "nexthop": "10.42.0.1"}])
    assert v4.cidr == "10.42.0.0/24" and v4.gateway_ip == "10.42.0.254" and v4.is_dhcp_enabled
    assert v4.allocation_pools == [{"start": "10.42.0.10", "end": "10.42.0.99"}]
    assert v4.dns_nameservers == ["198.19.2.53"]
    assert v4.host_routes == [{"destination": "10.99.0.0/16", "nexthop": "10.42.0.1"}]

    v6 = conn.network.create_subnet(network_id=net.id, name=v6_name, ip_version=6, cidr="2001:db8:42::/64",
                                    ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    assert v6.ip_version == 6 and v6.gateway_ip == "2001:db8:42::1"
    assert (v6.ipv6_ra_mode, v6.ipv6_address_mode) == ("slaac", "slaac")

    assert sorted(conn.network.get_network(net.id).subnet_ids) == sorted([v4.id, v6.id])
    assert {s.id for s in conn.network.subnets(network_id=net.id)} == {v4.id, v6.id}
    assert [s.id for s in conn.network.subnets(network_id=net.id, ip_version=6)] == [v6.id]
    assert conn.network.find_subnet(v6_name, ignore_missing=False).id == v6.id

    v4 = conn.network.update_subnet(v4, name="v4b", dns_nameservers=["198.19.2.54", "198.19.2.55"],
                                    is_dhcp_enabled=False)
    assert (v4.name, v4.dns_nameservers, v4.is_dhcp_enabled) == ("v4b", ["198.19.2.54", "198.19.2.55"], False)
    assert conn.network.get_subnet(v4.id).name == "v4b"

    with pytest.raises(exceptions.BadRequestException):
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.42.0.0/33")

    conn.network.delete_subnet(v6, ignore_missing=False)
    conn.network.delete_network(net, ignore_missing=False)  # takes the remaining subnet with it
    with pytest.raises(exceptions.NotFoundException):
        conn.network.get_subnet(v4.id)


def test_ports_with_fixed_ips(conn: openstack.connection.Connection) -> None:
    net = conn.network.create_network(name=unique("ports"))
    p1 = unique("p1")
    v4 = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.43.0.0/24")
    v6 = conn.network.create_subnet(network_id=net.id, ip_version=6, cidr="2001:db8:43::/64")

    port = conn.network.create_port(network_id=net.id, name=p1,
                                    fixed_ips=[{"subnet_id": v4.id, "ip_address": "10.43.0.10"}])
    assert port.fixed_ips == [{"subnet_id": v4.id, "ip_address": "10.43.0.10"}]
    assert port.mac_address.startswith("fa:16:3e:") and port.status == "DOWN"

    auto = conn.network.create_port(network_id=net.id, name="p2")
    assert {ip["subnet_id"] for ip in auto.fixed_ips} == {v4.id, v6.id}

    with pytest.raises(exceptions.ConflictException):
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.43.0.10"}])

    assert {p.id for p in conn.network.ports(network_id=net.id)} == {port.id, auto.id}
    assert [p.id for p in conn.network.ports(fixed_ips=["ip_address=10.43.0.10"])] == [port.id]
    assert conn.network.find_port(p1, ignore_missing=False).id == port.id

    port = conn.network.update_port(port, name="p1b", device_id="vm-1", device_owner="compute:nova",
                                    fixed_ips=[{"subnet_id": v4.id, "ip_address": "10.43.0.11"},
                                               {"subnet_id": v6.id}])
    assert port.name == "p1b" and port.device_id == "vm-1"
    by_subnet = {ip["subnet_id"]: ip["ip_address"] for ip in port.fixed_ips}
    assert len(port.fixed_ips) == 2 and by_subnet[v4.id] == "10.43.0.11"
    assert ipaddress.ip_address(by_subnet[v6.id]) in ipaddress.ip_network("2001:db8:43::/64")
    assert [p.id for p in conn.network.ports(device_id="vm-1")] == [port.id]

    conn.network.delete_port(port, ignore_missing=False)
    conn.network.delete_port(auto, ignore_missing=False)
    assert list(conn.network.ports(network_id=net.id)) == []
    conn.network.delete_network(net, ignore_missing=False)


def test_tags(conn: openstack.connection.Connection) -> None:
    a = conn.network.create_network(name=unique("tags-a"))
    b = conn.network.create_network(name=unique("tags-b"))
    red, blue = unique("red"), unique("blue")

    conn.network.set_tags(a, [red, blue])
    conn.network.add_tag(b, red)
    assert sorted(conn.network.get_network(a.id).tags) == sorted([red, blue])
    assert conn.network.get_network(b.id).tags == [red]

    assert {n.id for n in conn.network.networks(tags=red)} == {a.id, b.id}
    assert {n.id for n in conn.network.networks(tags=f"{red},{blue}")} == {a.id}
    assert {n.id for n in conn.network.networks(any_tags=f"{blue},nothing")} == {a.id}
    assert {n.id for n in conn.network.networks(tags=red, not_tags=blue)} == {b.id}

    conn.network.remove_tag(a, blue)
    assert conn.network.get_network(a.id).tags == [red]
    with pytest.raises(exceptions.NotFoundException):
        conn.network.remove_tag(a, blue)
    conn.network.remove_all_tags(a)
    assert conn.network.get_network(a.id).tags == []

    port = conn.network.create_port(network_id=b.id)
    conn.network.set_tags(port, [blue])
    assert [p.id for p in conn.network.ports(tags=blue)] == [port.id]
    conn.network.delete_port(port)
    conn.network.delete_network(a)
    conn.network.delete_network(b)


def test_pagination(conn: openstack.connection.Connection) -> None:
    prefix = unique("page")
    created = {conn.network.create_network(name=f"{prefix}-{i:02d}").id for i in range(25)}
    seen = record_requests(conn)

    everything = [n.id for n in conn.network.networks(limit=5)]
    ours = [i for i in everything if i in created]
    assert sorted(ours) == sorted(created) and len(everything) == len(set(everything))
    pages = [urlsplit(url) for method, url, _ in seen if method == "GET"]
    assert all(p.path == "/v2.0/networks" and parse_qs(p.query)["limit"] == ["5"] for p in pages)
    assert len(pages) >= len(everything) // 5
    assert all("marker" in parse_qs(p.query) for p in pages[1:])

    seen.clear()
    unpaged = [n.id for n in conn.network.networks()]
    assert sorted(unpaged) == sorted(everything)
    assert len([1 for method, *_ in seen if method == "GET"]) == 1

    seen.clear()
    by_name = [n.name for n in conn.network.networks(limit=5, sort_key="name", sort_dir="desc")
               if n.id in created]
    assert by_name == sorted((f"{prefix}-{i:02d}" for i in range(25)), reverse=True)
    assert len(seen) > 5

    for net_id in created:
        conn.network.delete_network(net_id)


def test_quotas(conn: openstack.connection.Connection) -> None:
    project = unique("quota-project")
    quota = conn.network.get_quota(project)
    assert (quota.networks, quota.subnets, quota.ports) == (100, 100, 500)
    assert conn.network.get_quota_default(project).networks == 100

    updated = conn.network.update_quota(project, networks=7, ports=11)
    assert (updated.networks, updated.ports) == (7, 11)
    assert conn.network.get_quota(project).networks == 7
    assert project in {q.project_id for q in conn.network.quotas()}

    details = conn.network.get_quota("fermion-default", details=True)
    assert details.networks["limit"] == 100 and details.networks["used"] >= 0

    conn.network.delete_quota(project)
    assert conn.network.get_quota(project).networks == 100


def test_cloud_layer(conn: openstack.connection.Connection) -> None:
    """The higher-level `conn.*` helpers that many tools (Ansible, Terraform-like scripts) use."""
    name = unique("cloud")
    net = conn.create_network(name)
    subnet = conn.create_subnet(name, cidr="10.44.0.0/24", ip_version=4, subnet_name=name + "-sub",
                                gateway_ip="10.44.0.1")
    port = conn.create_port(net.id, name=name + "-port",
                            fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.44.0.5"}])
    found = conn.get_network(name)
    assert found is not None and found.id == net.id
    assert [s.id for s in conn.search_subnets(filters={"network_id": net.id})] == [subnet.id]
    found_port = conn.get_port(name + "-port")
    assert found_port is not None and found_port.fixed_ips[0]["ip_address"] == "10.44.0.5"
    assert net.id in {n.id for n in conn.list_networks()}
    assert conn.delete_port(port.id) and conn.delete_subnet(subnet.id) and conn.delete_network(net.id)
    assert conn.get_network(name) is None


def test_port_extensions_and_bindings(conn: openstack.connection.Connection) -> None:
    """The issue 15 port attributes and /ports/{id}/bindings through the SDK's own resources."""
    net = conn.network.create_network(name=unique("portext"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.44.0.0/24")
    port = conn.network.create_port(network_id=net.id, propagate_uplink_status=False, numa_affinity_policy="socket",
                                    device_profile="dp1", hardware_offload_type="switchdev", trusted=True,
                                    device_owner="compute:nova")
    assert port.propagate_uplink_status is False and port.numa_affinity_policy == "socket"
    assert port.device_profile == "dp1" and port.hardware_offload_type == "switchdev" and port.trusted is True
    assert port.ip_allocation == "immediate" and port.data_plane_status is None
    port = conn.network.update_port(port, data_plane_status="DOWN", propagate_uplink_status=True)
    assert port.data_plane_status == "DOWN" and port.propagate_uplink_status is True
    old_mac = port.mac_address
    port = conn.network.update_port(port, mac_address=None)
    assert port.mac_address != old_mac and port.mac_address.startswith("fa:16:3e:")
    bindings = list(conn.network.port_bindings(port))
    assert [(b.host, b.status, b.vif_type) for b in bindings] == [("", "ACTIVE", "unbound")]
    with pytest.raises(exceptions.HttpException):  # no agent on that host: Neutron's PortBindingError
        conn.network.create_port_binding(port, host="nowhere")
    conn.network.delete_port(port, ignore_missing=False)
    conn.network.delete_network(net, ignore_missing=False)
