"""The `openstack` CLI against the router extensions of issue 15: conntrack helpers, flavors and profiles,
service providers, routers with a flavor, the auto-allocated topology's checks."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat
SINGLE_NODE = "neutron.services.l3_router.service_providers.single_node.SingleNodeDriver"


def test_conntrack_helpers_with_the_cli(cli: Cli) -> None:
    router = cli.json("router", "create", f"cth-{uuid.uuid4().hex[:6]}")
    helper = cli.json("network", "l3", "conntrack", "helper", "create", "--helper", "ftp", "--protocol", "tcp",
                      "--port", "21", router["id"])
    assert (helper["helper"], helper["protocol"], helper["port"]) == ("ftp", "tcp", 21)
    cli.run("network", "l3", "conntrack", "helper", "set", "--port", "2121", router["id"], helper["id"])
    shown = cli.json("network", "l3", "conntrack", "helper", "show", router["id"], helper["id"])
    assert shown["port"] == 2121
    listed = cli.json("network", "l3", "conntrack", "helper", "list", router["id"])
    assert [h["ID"] for h in listed] == [helper["id"]]
    assert cli.json("router", "show", router["id"])["conntrack_helpers"] == [
        {"protocol": "tcp", "port": 2121, "helper": "ftp"}]
    bad = cli.run("network", "l3", "conntrack", "helper", "create", "--helper", "nope", "--protocol", "tcp",
                  "--port", "1", router["id"], check=False)
    assert bad.returncode != 0 and "Conntrack Helper nope is not allowed" in bad.stderr
    cli.run("network", "l3", "conntrack", "helper", "delete", router["id"], helper["id"])
    assert cli.json("network", "l3", "conntrack", "helper", "list", router["id"]) == []
    cli.run("router", "delete", router["id"])


def test_flavors_profiles_and_providers_with_the_cli(cli: Cli) -> None:
    providers = cli.json("network", "service", "provider", "list")
    assert {"Service Type": "L3_ROUTER_NAT", "Name": "single_node", "Default": False} in providers
    name = f"gold-{uuid.uuid4().hex[:6]}"
    profile = cli.json("network", "flavor", "profile", "create", "--driver", SINGLE_NODE, "--description", "sn")
    flavor = cli.json("network", "flavor", "create", "--service-type", "L3_ROUTER_NAT", "--description", "fast",
                      name)
    assert flavor["service_type"] == "L3_ROUTER_NAT" and flavor["enabled"] is True
    cli.run("network", "flavor", "add", "profile", name, profile["id"])
    assert cli.json("network", "flavor", "show", name)["service_profile_ids"] == [profile["id"]]
    router = cli.json("router", "create", "--flavor", name, f"flavored-{uuid.uuid4().hex[:6]}")
    assert router["flavor_id"] == flavor["id"]
    in_use = cli.run("network", "flavor", "delete", name, check=False)
    assert in_use.returncode != 0
    cli.run("router", "delete", router["id"])
    cli.run("network", "flavor", "remove", "profile", name, profile["id"])
    cli.run("network", "flavor", "delete", name)
    cli.run("network", "flavor", "profile", "delete", profile["id"])


def test_auto_allocated_topology_check_with_the_cli(cli: Cli) -> None:
    # no default external network and no default subnet pool here: the check fails as Neutron's does
    proc = cli.run("network", "auto", "allocated", "topology", "create", "--check-resources", check=False)
    assert proc.returncode != 0 and "Deployment error" in proc.stderr, proc.stderr
