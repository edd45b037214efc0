"""The `openstack` command line client against a live server. The first workflow runs the `openstack` script
itself (a 1-2 s subprocess per call); the others go through the client worker of tests/compat/conftest.py."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.compat.conftest import Cli, client_env
from tests.support import servers

pytestmark = pytest.mark.compat


def test_network_subnet_port_workflow(os_env: dict[str, str]) -> None:
    cli = Cli(os_env, script=True)
    net_name = f"cli-{uuid.uuid4().hex[:8]}"
    net = cli.json("network", "create", "--description", "made by the cli", net_name)
    assert net["name"] == net_name and net["status"] == "ACTIVE" and net["project_id"] == "fermion-default"

    listed = cli.json("network", "list")
    assert {"ID": net["id"], "Name": net_name, "Subnets": []} in listed

    renamed = net_name + "-b"
    cli.run("network", "set", "--name", renamed, "--description", "renamed", "--tag", "blue", net_name)
    shown = cli.json("network", "show", renamed)
    assert (shown["id"], shown["description"], shown["tags"]) == (net["id"], "renamed", ["blue"])
    assert shown["revision_number"] > net["revision_number"]

    v4 = cli.json("subnet", "create", "--network", renamed, "--subnet-range", "10.77.0.0/24",
                  "--gateway", "10.77.0.254", "--allocation-pool", "start=10.77.0.10,end=10.77.0.20",
                  "--dns-nameserver", "198.19.2.53", f"{net_name}-v4")
    assert (v4["cidr"], v4["gateway_ip"], v4["ip_version"]) == ("10.77.0.0/24", "10.77.0.254", 4)
    assert v4["allocation_pools"] == [{"start": "10.77.0.10", "end": "10.77.0.20"}]
    assert v4["dns_nameservers"] == ["198.19.2.53"]

    v6 = cli.json("subnet", "create", "--network", renamed, "--ip-version", "6", "--subnet-range",
                  "2001:db8:77::/64", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", f"{net_name}-v6")
    assert (v6["ip_version"], v6["gateway_ip"], v6["ipv6_address_mode"]) == (6, "2001:db8:77::1", "slaac")

    port = cli.json("port", "create", "--network", renamed,
                    "--fixed-ip", f"subnet={net_name}-v4,ip-address=10.77.0.15", f"{net_name}-port")
    assert port["fixed_ips"] == [{"subnet_id": v4["id"], "ip_address": "10.77.0.15"}]
    assert port["network_id"] == net["id"] and port["status"] == "DOWN"

    ports = cli.json("port", "list", "--network", renamed)
    assert [(p["ID"], p["Name"]) for p in ports] == [(port["id"], f"{net_name}-port")]

    cli.run("port", "set", "--name", f"{net_name}-port2", "--description", "second", "--tag", "red",
            "--fixed-ip", f"subnet={v6['id']}", port["id"])
    cli.run("port", "unset", "--tag", "red", "--fixed-ip", "subnet=" + v4["id"] + ",ip-address=10.77.0.15",
            port["id"])
    port = cli.json("port", "show", f"{net_name}-port2")
    assert port["description"] == "second" and port["tags"] == []
    assert [ip["subnet_id"] for ip in port["fixed_ips"]] == [v6["id"]]
    assert ipaddress.ip_address(port["fixed_ips"][0]["ip_address"]) in ipaddress.ip_network("2001:db8:77::/64")

    cli.run("port", "delete", port["id"])
    assert cli.json("port", "list", "--network", renamed) == []
    cli.run("network", "delete", renamed)  # its subnets go with it

    missing = cli.run("network", "show", renamed, check=False)
    assert missing.returncode != 0
    assert re.search(r"not found|no network found", missing.stderr + missing.stdout, re.I), missing.stderr
    assert len(cli.calls) <= 16, cli.calls


def test_clouds_yaml_entry(endpoint: str, tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n"
                      "  fermion:\n"
                      "    auth_type: none\n"
                      f"    network_endpoint_override: {endpoint}\n")
    cli = Cli(client_env(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="fermion"))
    name = f"cloud-{uuid.uuid4().hex[:8]}"
    created = cli.json("network", "create", name)
    assert created["name"] == name
    extensions = {e["Alias"] for e in cli.json("extension", "list", "--network")}
    assert {"pagination", "standard-attr-tag"} <= extensions


def banner_example(banner: str) -> list[str]:
    lines = banner.splitlines()
    start = lines.index("Try it from another shell:") + 1
    example = []
    for line in lines[start:]:
        if not line.strip():
            break
        example.append(line.strip())
    return example


def test_pasting_the_all_in_one_example_works(tmp_path: Path) -> None:
    port = servers.free_port()
    config = tmp_path / "fermion.toml"
    config.write_text(f"[server]\nhost = \"127.0.0.1\"\nport = {port}\n")
    env = client_env(FERMION_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen(servers.fermion_cmd("all-in-one", "--config", str(config), "--database",
                                                f"sqlite:///{tmp_path / 'aio.sqlite'}"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("fermion: serving"):
                break
        text = "\n".join(banner)
        assert "Fermion all-in-one is up." in text, text
        endpoint = f"http://127.0.0.1:{port}"
        assert servers.wait_until_up(endpoint, proc), text

        example = banner_example(text)
        assert example[0] == f"export OS_AUTH_TYPE=none OS_NETWORK_ENDPOINT_OVERRIDE={endpoint}"
        script = "set -euo pipefail\n" + "\n".join(example) + "\n"
        run = subprocess.run(["bash", "-c", script], env=client_env(), capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, f"{script}\n{run.stdout}\n{run.stderr}"
        assert "demo-port" in run.stdout  # `openstack port list`
        assert '"name":"demo"' in run.stdout.replace(" ", "")  # the curl of /v2.0/networks
    finally:
        servers.stop(proc)


def test_router_and_floating_ip_workflow(cli: Cli) -> None:
    tag = uuid.uuid4().hex[:6]
    ext = cli.json("network", "create", "--external", f"public-{tag}")
    assert ext["router:external"] is True
    cli.run("subnet", "create", "--network", ext["id"], "--subnet-range", "198.18.150.0/24", "--no-dhcp",
            f"public-{tag}-subnet")
    net = cli.json("network", "create", f"inner-{tag}")
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.88.0.0/24", f"inner-{tag}-s")
    router = cli.json("router", "create", f"r-{tag}")
    assert router["status"] == "ACTIVE" and router["external_gateway_info"] is None
    cli.run("router", "set", "--external-gateway", ext["id"], router["id"])
    cli.run("router", "add", "subnet", router["id"], sub["id"])
    cli.run("router", "set", "--route", "destination=10.99.0.0/24,gateway=10.88.0.50", router["id"])
    shown = cli.json("router", "show", router["id"])
    assert shown["external_gateway_info"]["network_id"] == ext["id"]
    assert shown["external_gateway_info"]["enable_snat"] is True
    assert shown["routes"] == [{"destination": "10.99.0.0/24", "nexthop": "10.88.0.50"}]
    assert [(i["subnet_id"], i["ip_address"]) for i in shown["interfaces_info"]] == [(sub["id"], "10.88.0.1")]

    port = cli.json("port", "create", "--network", net["id"], f"vm-{tag}")
    fip = cli.json("floating", "ip", "create", ext["id"])
    assert fip["floating_ip_address"].startswith("198.18.150.") and fip["port_id"] is None
    cli.run("floating", "ip", "set", "--port", port["id"], fip["id"])
    fip = cli.json("floating", "ip", "show", fip["id"])
    assert fip["port_id"] == port["id"] and fip["router_id"] == router["id"]
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert any(f["ID"] == fip["id"] for f in cli.json("floating", "ip", "list", "--port", port["id"]))
    cli.run("floating", "ip", "unset", "--port", fip["id"])
    assert cli.json("floating", "ip", "show", fip["id"])["port_id"] is None

    busy = cli.run("router", "delete", router["id"], check=False)
    assert busy.returncode != 0 and "still has ports" in busy.stderr
    cli.run("floating", "ip", "delete", fip["id"])
    cli.run("router", "unset", "--route", "destination=10.99.0.0/24,gateway=10.88.0.50", router["id"])
    cli.run("router", "remove", "subnet", router["id"], sub["id"])
    cli.run("router", "unset", "--external-gateway", router["id"])
    cli.run("router", "delete", router["id"])
    assert not any(r["ID"] == router["id"] for r in cli.json("router", "list"))


def test_address_scopes_subnet_pools_and_ip_availability(cli: Cli) -> None:
    tag = uuid.uuid4().hex[:8]
    scope = cli.json("address", "scope", "create", "--ip-version", "4", f"scope-{tag}")
    assert scope["ip_version"] == 4 and scope["shared"] is False
    pool = cli.json("subnet", "pool", "create", "--pool-prefix", "10.78.0.0/20", "--default-prefix-length", "26",
                    "--min-prefix-length", "24", "--address-scope", scope["id"], f"pool-{tag}")
    assert pool["prefixes"] == ["10.78.0.0/20"] and pool["address_scope_id"] == scope["id"]
    assert str(pool["default_prefixlen"]) == "26"
    net = cli.json("network", "create", f"net-{tag}")
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-pool", pool["id"], "--prefix-length", "25",
                   f"sub-{tag}")
    assert sub["cidr"] == "10.78.0.0/25" and sub["subnetpool_id"] == pool["id"]
    assert cli.json("network", "show", net["id"])["ipv4_address_scope"] == scope["id"]
    cli.run("subnet", "pool", "set", "--pool-prefix", "10.79.0.0/24", pool["id"])
    assert cli.json("subnet", "pool", "show", pool["id"])["prefixes"] == ["10.78.0.0/20", "10.79.0.0/24"]
    other = cli.json("network", "create", f"other-{tag}")
    cli.json("subnet", "create", "--network", other["id"], "--subnet-range", "10.80.0.0/24", f"plain-{tag}")
    cli.run("subnet", "pool", "add", "network", other["id"], pool["id"])
    assert cli.json("subnet", "show", f"plain-{tag}")["subnetpool_id"] == pool["id"]
    port = cli.json("port", "create", "--network", net["id"], "--fixed-ip", "ip-address=10.78.0.77", f"p-{tag}")
    listed = cli.json("port", "list", "--fixed-ip", "ip-substring=0.77")
    assert [p["ID"] for p in listed] == [port["id"]]
    avail = cli.json("ip", "availability", "show", net["id"])
    assert avail["network_id"] == net["id"] and int(avail["used_ips"]) >= 1


def test_port_extension_options(cli: Cli) -> None:
    """`openstack port create/set` options of the issue 15 port extensions (the client picks the API by the
    extensions advertised: `--trusted` goes out as the `trusted` attribute with port-trusted-vif)."""
    name = f"cli-ext-{uuid.uuid4().hex[:8]}"
    cli.run("network", "create", name)
    port = cli.json("port", "create", "--network", name, "--disable-uplink-status-propagation",
                    "--numa-policy-socket", "--device-profile", "dp1", "--hardware-offload-type", "switchdev",
                    "--trusted", "--no-fixed-ip", f"{name}-port")
    assert port["propagate_uplink_status"] is False and port["numa_affinity_policy"] == "socket"
    assert port["device_profile"] == "dp1" and port["hardware_offload_type"] == "switchdev"
    # (no --hint: the client offers only the tx-steering hint, which needs port-hint-ovs-tx-steering, an Open
    # vSwitch feature the Linux-bridge agent does not have)
    assert port["trusted"] is True and port["hints"] is None
    assert port["ip_allocation"] == "none" and port["binding_profile"]["trusted"] is True
    cli.run("port", "set", "--enable-uplink-status-propagation", "--numa-policy-legacy", "--not-trusted",
            f"{name}-port")
    port = cli.json("port", "show", f"{name}-port")
    assert port["propagate_uplink_status"] is True and port["numa_affinity_policy"] == "legacy"
    assert port["trusted"] is False and port["binding_profile"]["trusted"] is False
    cli.run("port", "delete", port["id"])
    cli.run("network", "delete", name)
