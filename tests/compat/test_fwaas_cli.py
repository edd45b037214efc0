"""`openstack firewall group/policy/rule ...` (python-neutronclient's OSC plugin) against FWaaS v2."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat


def shown(cli: Cli, *args: str) -> dict[str, Any]:
    """The plugin prints display names ("Destination Port"): read them as the API's attribute names."""
    return {k.lower().replace(" ", "_"): v for k, v in cli.json(*args).items()}


def test_firewall_rules_policies_and_groups_with_the_cli(cli: Cli) -> None:
    tag = uuid.uuid4().hex[:6]
    web = shown(cli, "firewall", "group", "rule", "create", "--name", f"no-web-{tag}", "--protocol", "tcp",
                   "--destination-port", "80", "--action", "deny")
    ssh = shown(cli, "firewall", "group", "rule", "create", "--name", f"ssh-{tag}", "--protocol", "tcp",
                   "--destination-port", "22", "--action", "allow")
    assert (web["protocol"], web["destination_port"], web["action"]) == ("tcp", "80", "deny")
    policy = shown(cli, "firewall", "group", "policy", "create", "--firewall-rule", web["id"], f"edge-{tag}")
    cli.run("firewall", "group", "policy", "add", "rule", "--insert-after", web["id"], policy["id"], ssh["id"])
    assert shown(cli, "firewall", "group", "policy", "show", policy["id"])["firewall_rules"] == [web["id"], ssh["id"]]
    cli.run("firewall", "group", "rule", "set", "--destination-port", "8080", web["id"])
    assert shown(cli, "firewall", "group", "rule", "show", web["id"])["destination_port"] == "8080"
    group = shown(cli, "firewall", "group", "create", "--name", f"fw-{tag}", "--ingress-firewall-policy", policy["id"])
    assert group["status"] == "INACTIVE"
    listed = cli.json("firewall", "group", "list")
    names = {g.get("Name", g.get("name")) for g in listed}
    assert {f"fw-{tag}", "default"} <= names
    busy = cli.run("firewall", "group", "policy", "delete", policy["id"], check=False)
    assert busy.returncode != 0
    cli.run("firewall", "group", "set", "--no-ingress-firewall-policy", group["id"])
    cli.run("firewall", "group", "delete", group["id"])
    cli.run("firewall", "group", "policy", "remove", "rule", policy["id"], ssh["id"])
    in_use = cli.run("firewall", "group", "rule", "delete", web["id"], check=False)
    assert in_use.returncode != 0 and "is being used" in in_use.stderr
    cli.run("firewall", "group", "policy", "delete", policy["id"])
    cli.run("firewall", "group", "rule", "delete", web["id"], ssh["id"])
    assert {r["ID"] for r in cli.json("firewall", "group", "rule", "list")}.isdisjoint({web["id"], ssh["id"]})
