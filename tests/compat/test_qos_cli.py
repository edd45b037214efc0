"""QoS through the real `openstack` CLI: `openstack network qos policy/rule/rule type ...`, and the
--qos-policy options of networks and ports."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = [pytest.mark.compat, pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]


def test_qos_policy_rules_and_bindings(cli: Cli) -> None:
    name = f"gold-{uuid.uuid4().hex[:6]}"
    pol = cli.json("network", "qos", "policy", "create", "--share", "--description", "twenty", name)
    assert (pol["name"], pol["shared"], pol["rules"]) == (name, True, [])
    egress = cli.json("network", "qos", "rule", "create", "--type", "bandwidth-limit", "--max-kbps", "20000",
                      "--max-burst-kbits", "2000", "--egress", name)
    assert (egress["max_kbps"], egress["max_burst_kbps"], egress["direction"]) == (20000, 2000, "egress")
    ingress = cli.json("network", "qos", "rule", "create", "--type", "bandwidth-limit", "--max-kbps", "10000",
                       "--ingress", name)
    dscp = cli.json("network", "qos", "rule", "create", "--type", "dscp-marking", "--dscp-mark", "26", name)
    assert dscp["dscp_mark"] == 26
    rules = cli.json("network", "qos", "rule", "list", name)
    assert {r["ID"] for r in rules} == {egress["id"], ingress["id"], dscp["id"]}
    cli.run("network", "qos", "rule", "set", "--max-kbps", "15000", "--ingress", name, ingress["id"])
    assert cli.json("network", "qos", "rule", "show", name, ingress["id"])["max_kbps"] == 15000
    assert {t["Type"] for t in cli.json("network", "qos", "rule", "type", "list")} == {
        "bandwidth_limit", "dscp_marking", "minimum_bandwidth"}
    details = cli.json("network", "qos", "rule", "type", "show", "dscp_marking")
    assert details["drivers"][0]["name"] == "linuxbridge"

    net = cli.json("network", "create", "--qos-policy", name, f"qn-{uuid.uuid4().hex[:6]}")
    assert net["qos_policy_id"] == pol["id"]
    port = cli.json("port", "create", "--network", net["id"], "--qos-policy", name, f"qp-{uuid.uuid4().hex[:6]}")
    assert port["qos_policy_id"] == pol["id"]
    refused = cli.run("network", "qos", "policy", "delete", name, check=False)
    assert refused.returncode != 0 and "in use" in (refused.stdout + refused.stderr).lower() or \
        "used by" in (refused.stdout + refused.stderr)
    cli.run("port", "unset", "--qos-policy", port["id"])
    cli.run("network", "set", "--no-qos-policy", net["id"])
    cli.run("network", "qos", "rule", "delete", name, dscp["id"])
    cli.run("network", "qos", "policy", "set", "--no-share", "--name", f"{name}-x", name)
    shown = cli.json("network", "qos", "policy", "show", f"{name}-x")
    assert shown["shared"] is False and len(shown["rules"]) == 2
    assert f"{name}-x" in {p["Name"] for p in cli.json("network", "qos", "policy", "list")}
    cli.run("port", "delete", port["id"])
    cli.run("network", "delete", net["id"])
    cli.run("network", "qos", "policy", "delete", f"{name}-x")
