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


def test_floating_ip_router_with_the_cli(cli: Cli) -> None:
    """floating-ip-router-writable: `floating ip create --router` and `floating ip set --router`, for an instance
    behind an inner router while the outer router has the gateway."""
    tag = uuid.uuid4().hex[:6]
    ext = cli.json("network", "create", "--external", f"fipr-public-{tag}")
    cli.run("subnet", "create", "--network", ext["id"], "--subnet-range", "198.18.151.0/24", "--no-dhcp",
            f"fipr-public-{tag}")
    outer = cli.json("router", "create", "--external-gateway", ext["id"], f"fipr-outer-{tag}")
    inner = cli.json("router", "create", f"fipr-inner-{tag}")
    net = cli.json("network", "create", f"fipr-inner-{tag}")
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.41.0.0/24", f"fipr-{tag}")
    cli.run("router", "add", "subnet", inner["id"], sub["id"])
    port = cli.json("port", "create", "--network", net["id"], f"fipr-vm-{tag}")

    computed = cli.run("floating", "ip", "create", "--port", port["id"], ext["id"], check=False)
    assert computed.returncode != 0 and "is not reachable from subnet" in computed.stderr
    fip = cli.json("floating", "ip", "create", "--port", port["id"], "--router", outer["name"], ext["id"])
    assert (fip["router_id"], fip["port_id"]) == (outer["id"], port["id"])
    spare = cli.json("floating", "ip", "create", ext["id"])
    cli.run("floating", "ip", "set", "--router", outer["id"], spare["id"])
    assert cli.json("floating", "ip", "show", spare["id"])["router_id"] == outer["id"]
    assert {f["ID"] for f in cli.json("floating", "ip", "list", "--router", outer["id"])} == {fip["id"], spare["id"]}
    bad = cli.run("floating", "ip", "set", "--router", inner["id"], spare["id"], check=False)
    assert bad.returncode != 0 and "has no external gateway on network" in bad.stderr

    cli.run("floating", "ip", "delete", fip["id"], spare["id"])
    cli.run("router", "remove", "subnet", inner["id"], sub["id"])
    cli.run("router", "delete", inner["id"], outer["id"])
