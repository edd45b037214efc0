"""The `openstack network meter ...` commands against metering labels and rules."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat


def test_meters_and_their_rules_with_the_cli(cli: Cli) -> None:
    name = f"meter-{uuid.uuid4().hex[:6]}"
    meter = cli.json("network", "meter", "create", "--description", "web", "--share", name)
    assert (meter["name"], meter["description"], meter["shared"]) == (name, "web", True)
    assert cli.json("network", "meter", "show", name)["id"] == meter["id"]
    assert meter["id"] in [m["ID"] for m in cli.json("network", "meter", "list")]

    rule = cli.json("network", "meter", "rule", "create", "--egress", "--remote-ip-prefix", "10.0.0.0/24", name)
    assert (rule["direction"], rule["remote_ip_prefix"], rule["is_excluded"]) == ("egress", "10.0.0.0/24", False)
    sd = cli.json("network", "meter", "rule", "create", "--ingress", "--exclude", "--source-ip-prefix",
                  "198.18.0.0/15", "--destination-ip-prefix", "10.0.0.5/32", meter["id"])
    assert (sd["source_ip_prefix"], sd["destination_ip_prefix"], sd["is_excluded"]) == (
        "198.18.0.0/15", "10.0.0.5/32", True)
    assert cli.json("network", "meter", "rule", "show", rule["id"])["metering_label_id"] == meter["id"]
    listed = {r["ID"] for r in cli.json("network", "meter", "rule", "list")}
    assert {rule["id"], sd["id"]} <= listed

    overlap = cli.run("network", "meter", "rule", "create", "--egress", "--remote-ip-prefix", "10.0.0.128/25",
                      name, check=False)
    assert overlap.returncode != 0 and "overlaps another" in overlap.stderr, overlap.stderr
    mixed = cli.run("network", "meter", "rule", "create", "--remote-ip-prefix", "10.1.0.0/24",
                    "--source-ip-prefix", "10.2.0.0/24", name, check=False)
    assert mixed.returncode != 0 and "remote-ip-prefix" in mixed.stderr, mixed.stderr

    cli.run("network", "meter", "rule", "delete", rule["id"])
    assert rule["id"] not in {r["ID"] for r in cli.json("network", "meter", "rule", "list")}
    cli.run("network", "meter", "delete", name)
    assert meter["id"] not in [m["ID"] for m in cli.json("network", "meter", "list")]
    assert cli.run("network", "meter", "rule", "show", sd["id"], check=False).returncode != 0  # gone with it
