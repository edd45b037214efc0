"""The `openstack floating ip port forwarding ...` commands against Fermion (floating-ip-port-forwarding)."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat


def test_port_forwarding_with_the_cli(cli: Cli) -> None:
    tag = uuid.uuid4().hex[:6]
    ext = cli.json("network", "create", "--external", f"pf-public-{tag}")
    cli.run("subnet", "create", "--network", ext["id"], "--subnet-range", "198.18.151.0/24", "--no-dhcp",
            f"pf-public-{tag}-s")
    net = cli.json("network", "create", f"pf-inner-{tag}")
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.89.0.0/24", f"pf-inner-{tag}-s")
    router = cli.json("router", "create", f"pf-r-{tag}")
    cli.run("router", "set", "--external-gateway", ext["id"], router["id"])
    cli.run("router", "add", "subnet", router["id"], sub["id"])
    port = cli.json("port", "create", "--network", net["id"], f"pf-vm-{tag}")
    ip = port["fixed_ips"][0]["ip_address"]
    fip = cli.json("floating", "ip", "create", ext["id"])

    pf = cli.json("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", ip, "--port",
                  port["id"], "--internal-protocol-port", "22", "--external-protocol-port", "2222",
                  "--protocol", "tcp", "--description", "ssh", fip["id"])
    assert (pf["internal_port"], pf["external_port"], pf["protocol"], pf["description"]) == (22, 2222, "tcp", "ssh")
    ranged = cli.json("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", ip, "--port",
                      port["id"], "--internal-protocol-port", "9000:9009", "--external-protocol-port", "8000:8009",
                      "--protocol", "udp", fip["floating_ip_address"])
    assert (ranged["internal_port_range"], ranged["external_port_range"]) == ("9000:9009", "8000:8009")
    cli.run("floating", "ip", "port", "forwarding", "set", "--internal-protocol-port", "2022", fip["id"], pf["id"])
    shown = cli.json("floating", "ip", "port", "forwarding", "show", fip["id"], pf["id"])
    assert (shown["internal_port"], shown["external_port"]) == (2022, 2222)
    listed = cli.json("floating", "ip", "port", "forwarding", "list", fip["id"])
    assert sorted(p["ID"] for p in listed) == sorted([pf["id"], ranged["id"]])
    assert cli.json("floating", "ip", "port", "forwarding", "list", "--protocol", "udp", fip["id"])[0]["ID"] \
        == ranged["id"]
    shown_fip = cli.json("floating", "ip", "show", fip["id"])
    assert shown_fip["router_id"] == router["id"] and len(shown_fip["port_forwardings"]) == 2
    clash = cli.run("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", ip, "--port",
                    port["id"], "--internal-protocol-port", "23", "--external-protocol-port", "8005",
                    "--protocol", "udp", fip["id"], check=False)
    assert clash.returncode != 0 and "port collision" in clash.stderr, clash.stderr
    in_use = cli.run("floating", "ip", "delete", fip["id"], check=False)
    assert in_use.returncode != 0
    cli.run("floating", "ip", "port", "forwarding", "delete", fip["id"], pf["id"], ranged["id"])
    assert cli.json("floating", "ip", "port", "forwarding", "list", fip["id"]) == []
    cli.run("floating", "ip", "delete", fip["id"])
    cli.run("port", "delete", port["id"])
    cli.run("router", "remove", "subnet", router["id"], sub["id"])
    cli.run("router", "delete", router["id"])
