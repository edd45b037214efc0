"""Security groups through the real clients: openstacksdk and the `openstack` CLI against a live server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openstack
import pytest
from openstack import exceptions

from tests.compat.conftest import Cli

pytestmark = [
    pytest.mark.compat,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


@pytest.fixture
def conn(endpoint: str) -> Iterator[openstack.connection.Connection]:
    c = openstack.connection.Connection(auth_type="none", network_endpoint_override=endpoint)
    yield c
    c.close()


def test_sdk_groups_rules_and_ports(conn: openstack.connection.Connection) -> None:
    name = f"sdk-sg-{uuid.uuid4().hex[:8]}"
    group = conn.network.create_security_group(name=name, description="web servers")
    assert group.name == name and len(group.security_group_rules) == 2
    assert conn.network.find_security_group(name, ignore_missing=False).id == group.id
    assert "default" in {g.name for g in conn.network.security_groups()}

    ssh = conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="tcp",
                                                  port_range_min=22, port_range_max=22,
                                                  remote_ip_prefix="0.0.0.0/0")
    assert (ssh.protocol, ssh.port_range_min, ssh.port_range_max) == ("tcp", 22, 22)
    ping = conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                   protocol="icmp", ether_type="IPv4")
    with pytest.raises(exceptions.ConflictException, match="Rule id is"):
        conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="6",
                                                port_range_min=22, port_range_max=22)
    listed = {r.id for r in conn.network.security_group_rules(security_group_id=group.id)}
    assert {ssh.id, ping.id} <= listed and len(listed) == 4

    net = conn.network.create_network(name=name)
    port = conn.network.create_port(network_id=net.id, security_group_ids=[group.id])
    assert port.security_group_ids == [group.id]
    with pytest.raises(exceptions.ConflictException):
        conn.network.delete_security_group(group, ignore_missing=False)
    conn.network.delete_port(port)
    conn.network.delete_network(net)

    conn.network.delete_security_group_rule(ping, ignore_missing=False)
    group = conn.network.update_security_group(group, description="ssh only")
    assert group.description == "ssh only" and len(group.security_group_rules) == 3
    conn.network.delete_security_group(group, ignore_missing=False)
    assert conn.network.find_security_group(name) is None


def test_cli_rule_with_a_destination_port(cli: Cli) -> None:
    name = f"cli-sg-{uuid.uuid4().hex[:8]}"
    group = cli.json("security", "group", "create", "--description", "from the cli", name)
    rule = cli.json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", name)
    assert (rule["protocol"], rule["port_range_min"], rule["port_range_max"]) == ("tcp", 22, 22)
    assert rule["direction"] == "ingress" and rule["security_group_id"] == group["id"]
    rules = cli.json("security", "group", "rule", "list", name)
    assert rule["id"] in {r["ID"] for r in rules} and len(rules) == 3
    cli.run("security", "group", "delete", name)
    assert cli.run("security", "group", "show", name, check=False).returncode != 0
