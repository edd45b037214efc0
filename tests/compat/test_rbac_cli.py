"""RBAC policies through the real clients: openstacksdk creates and retargets them (the `openstack network rbac
create/set` commands need a Keystone to resolve projects), the `openstack` CLI lists, shows and deletes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openstack
import pytest
from openstack import exceptions

from tests.compat.conftest import Cli

pytestmark = [pytest.mark.compat, pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]


@pytest.fixture
def conn(endpoint: str) -> Iterator[openstack.connection.Connection]:
    c = openstack.connection.Connection(auth_type="none", network_endpoint_override=endpoint)
    yield c
    c.close()


def test_network_rbac_through_sdk_and_cli(conn: openstack.connection.Connection, cli: Cli) -> None:
    net = conn.network.create_network(name=f"rbac-{uuid.uuid4().hex[:8]}")
    pol = conn.network.create_rbac_policy(object_type="network", object_id=net.id, action="access_as_shared",
                                          target_project_id="*")
    assert (pol.object_type, pol.object_id, pol.action, pol.target_project_id) == (
        "network", net.id, "access_as_shared", "*")
    assert conn.network.get_network(net.id).is_shared is True
    assert pol.id in [p.id for p in conn.network.rbac_policies(object_id=net.id)]

    listed = cli.json("network", "rbac", "list", "--long")
    assert {"ID": pol.id, "Object Type": "network", "Object ID": net.id, "Action": "access_as_shared"}.items() \
        <= next(p for p in listed if p["ID"] == pol.id).items()
    assert [p["ID"] for p in cli.json("network", "rbac", "list", "--type", "security_group")
            if p["ID"] == pol.id] == []
    shown = cli.json("network", "rbac", "show", pol.id)
    assert (shown["id"], shown["target_project_id"], shown["action"]) == (pol.id, "*", "access_as_shared")

    conn.network.update_rbac_policy(pol, target_project_id="project-b")
    assert cli.json("network", "rbac", "show", pol.id)["target_project_id"] == "project-b"
    assert conn.network.get_network(net.id).is_shared is False

    ext = conn.network.create_rbac_policy(object_type="network", object_id=net.id,
                                          action="access_as_external", target_project_id="project-c")
    assert conn.network.get_network(net.id).is_router_external is True
    cli.run("network", "rbac", "delete", pol.id, ext.id)
    assert {p["ID"] for p in cli.json("network", "rbac", "list")}.isdisjoint({pol.id, ext.id})
    assert conn.network.get_network(net.id).is_router_external is False
    with pytest.raises(exceptions.BadRequestException):
        conn.network.create_rbac_policy(object_type="network", object_id=net.id, action="access_as_owner",
                                        target_project_id="*")
    with pytest.raises(exceptions.ConflictException):
        for _ in range(2):
            conn.network.create_rbac_policy(object_type="network", object_id=net.id,
                                            action="access_as_shared", target_project_id="project-e")
    missing = cli.run("network", "rbac", "show", str(uuid.uuid4()), check=False)
    assert missing.returncode != 0


def test_security_group_rbac(conn: openstack.connection.Connection, cli: Cli) -> None:
    sg = conn.network.create_security_group(name=f"rbac-{uuid.uuid4().hex[:8]}")
    pol = conn.network.create_rbac_policy(object_type="security_group", object_id=sg.id,
                                          action="access_as_shared", target_project_id="project-d")
    assert cli.json("network", "rbac", "show", pol.id)["object_type"] == "security_group"
    cli.run("network", "rbac", "delete", pol.id)
    with pytest.raises(exceptions.NotFoundException):
        conn.network.get_rbac_policy(pol.id)
