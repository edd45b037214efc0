"""The `openstack network trunk ...` and `openstack network subport list` commands against Fermion (trunk,
trunk-details)."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat


def test_trunk_with_the_cli(os_env: dict[str, str], endpoint: str) -> None:
    # `network trunk create/set` open the SDK's identity proxy even when no project is named, and with
    # auth_type none that needs an identity endpoint which answers version discovery: Fermion's own root
    # (its v2.0 version document) will do, nothing is asked of it
    cli = Cli({**os_env, "OS_IDENTITY_ENDPOINT_OVERRIDE": endpoint})
    tag = uuid.uuid4().hex[:6]
    net = cli.json("network", "create", f"tr-parent-{tag}")
    vlan100 = cli.json("network", "create", f"tr-v100-{tag}")
    vlan200 = cli.json("network", "create", f"tr-v200-{tag}")
    parent = cli.json("port", "create", "--network", net["id"], f"tr-p-{tag}")
    sub1 = cli.json("port", "create", "--network", vlan100["id"], f"tr-s1-{tag}")
    sub2 = cli.json("port", "create", "--network", vlan200["id"], f"tr-s2-{tag}")

    made = cli.json("network", "trunk", "create", "--parent-port", parent["name"], "--description", "two vlans",
                    "--subport", f"port={sub1['name']},segmentation-type=vlan,segmentation-id=100", f"tr-{tag}")
    assert (made["port_id"], made["status"], made["description"]) == (parent["id"], "DOWN", "two vlans")
    assert made["sub_ports"] == [{"port_id": sub1["id"], "segmentation_type": "vlan", "segmentation_id": 100}]

    cli.run("network", "trunk", "set", "--subport", f"port={sub2['id']},segmentation-type=vlan,segmentation-id=200",
            f"tr-{tag}")
    listed = cli.json("network", "subport", "list", "--trunk", f"tr-{tag}")
    want = sorted([(sub1["id"], 100), (sub2["id"], 200)])
    assert sorted((s["Port"], s["Segmentation ID"]) for s in listed) == want
    clash = cli.run("network", "trunk", "set", "--subport",
                    f"port={parent['id']},segmentation-type=vlan,segmentation-id=300", f"tr-{tag}", check=False)
    assert clash.returncode != 0 and "not eligible for use as a parent port" in clash.stderr, clash.stderr

    details = cli.json("port", "show", parent["id"])["trunk_details"]
    assert details["trunk_id"] == made["id"] and len(details["sub_ports"]) == 2
    assert cli.json("port", "show", sub2["id"])["device_owner"] == "trunk:subport"
    in_use = cli.run("port", "delete", sub2["id"], check=False)
    assert in_use.returncode != 0 and "is currently a subport for trunk" in in_use.stderr, in_use.stderr

    cli.run("network", "trunk", "unset", "--subport", sub1["name"], f"tr-{tag}")
    shown = cli.json("network", "trunk", "show", f"tr-{tag}")
    assert shown["sub_ports"] == [{"port_id": sub2["id"], "segmentation_type": "vlan", "segmentation_id": 200}]
    assert cli.json("port", "show", sub1["id"])["device_owner"] == ""

    cli.run("network", "trunk", "set", "--disable", "--name", f"tr2-{tag}", f"tr-{tag}")
    assert cli.json("network", "trunk", "show", f"tr2-{tag}")["is_admin_state_up"] is False
    disabled = cli.run("network", "trunk", "delete", f"tr2-{tag}", check=False)
    assert disabled.returncode != 0 and "is currently disabled" in disabled.stderr, disabled.stderr
    cli.run("network", "trunk", "set", "--enable", f"tr2-{tag}")
    assert [t["Name"] for t in cli.json("network", "trunk", "list") if t["ID"] == made["id"]] == [f"tr2-{tag}"]
    cli.run("network", "trunk", "delete", f"tr2-{tag}")
    assert all(t["ID"] != made["id"] for t in cli.json("network", "trunk", "list"))
    cli.run("port", "delete", parent["id"], sub1["id"], sub2["id"])
