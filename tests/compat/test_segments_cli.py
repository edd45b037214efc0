"""Segments, segment ranges and availability zones through the `openstack` CLI, as an operator types them."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.conftest import Cli

pytestmark = pytest.mark.compat


def test_segment_and_range_commands(cli: Cli) -> None:
    name = f"seg-{uuid.uuid4().hex[:8]}"
    net = cli.json("network", "create", name)
    seg = cli.json("network", "segment", "create", "--network", net["id"], "--network-type", "vlan",
                   "--physical-network", "physnet1", "--segment", "177", f"{name}-vlan")
    assert (seg["network_type"], seg["physical_network"], seg["segmentation_id"]) == ("vlan", "physnet1", 177)
    listed = cli.json("network", "segment", "list", "--network", net["id"])
    assert sorted(s["Network Type"] for s in listed) == ["vlan", "vxlan"]
    cli.run("network", "segment", "set", "--description", "rack 2", seg["id"])
    assert cli.json("network", "segment", "show", seg["id"])["description"] == "rack 2"
    cli.run("network", "segment", "delete", seg["id"])

    # (a --private range needs --project, which the CLI looks up in Keystone: not in noauth mode)
    rng = cli.json("network", "segment", "range", "create", "--share", "--network-type", "vxlan", "--minimum",
                   "7000", "--maximum", "7009", f"{name}-range")
    assert (rng["minimum"], rng["maximum"], rng["shared"], rng["project_id"]) == (7000, 7009, True, None)
    ranges = cli.json("network", "segment", "range", "list")
    assert f"{name}-range" in {r["Name"] for r in ranges}
    assert any(r["Default"] for r in ranges)
    cli.run("network", "segment", "range", "set", "--minimum", "7000", "--maximum", "7019", rng["id"])
    assert cli.json("network", "segment", "range", "show", rng["id"])["maximum"] == 7019
    cli.run("network", "segment", "range", "delete", rng["id"])
