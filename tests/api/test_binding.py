"""Port binding (ML2, Linux-bridge mechanism driver) and port status, as users see them through the API while
agents (played by the test over the in-process RPC transport) report their state, their ports and ask for
their host's L2 view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from fermion.db import models as m
from fermion.rpc.contracts import L2View, PortReport, StateReport, ViewRequest, decode, encode
from fermion.services.common import now
from tests.conftest import Api
from tests.support.asgi import SyncClient

LB = "Linux bridge agent"
LB_CONF = {"tunneling_ip": "198.18.0.11", "tunnel_types": ["vxlan"], "interface_mappings": {"physnet1": "eth1"}}
NO_TUNNEL = {"tunnel_types": [], "interface_mappings": {"physnet1": "eth1"}}
NO_MAPPINGS = {"tunneling_ip": "198.18.0.11", "tunnel_types": ["vxlan"], "interface_mappings": {}}
BRIDGE_DETAILS = {"port_filter": True, "connectivity": "l2"}


def report(client: SyncClient, host: str, configurations: dict[str, Any] | None = None,
           start_flag: bool = True) -> None:
    msg = StateReport(host=host, agent_type=LB, binary="neutron-linuxbridge-agent", topic="N/A",
                      configurations=LB_CONF if configurations is None else configurations, start_flag=start_flag)
    client.app.transport.call("report_state", encode(msg))


def report_ports(client: SyncClient, host: str, up: dict[str, int] | None = None,
                 down: list[str] | None = None) -> int:
    reply = client.app.transport.call("report_ports", encode(PortReport(host=host, up=up or {}, down=down or [])))
    return int(reply["changed"])


def l2_view(client: SyncClient, host: str, network_ids: list[str] | None = None) -> L2View:
    return decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest(host, LB, network_ids))))


def show(api: Api, port_id: str) -> dict[str, Any]:
    r = api.get(f"/v2.0/ports/{port_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["port"])


def bind_to(api: Api, port_id: str, host: str) -> dict[str, Any]:
    r = api.put(f"/v2.0/ports/{port_id}", json={"port": {"binding:host_id": host}})
    assert r.status_code == 200, r.text
    return dict(r.json()["port"])


# ---------------------------------------------------------------- binding
def test_no_agent_on_the_host_fails_then_binds_when_the_agent_reports(client: SyncClient, api: Api) -> None:
    net = api.network(name="n")
    api.subnet(net["id"])
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:host_id"] == "compute-1"
    assert port["binding:vif_type"] == "binding_failed"
    assert "compute-1" in port["binding:vif_details"]["error"]
    assert port["status"] == "DOWN"
    shown = show(api, port["id"])
    assert shown["binding:vif_type"] == "binding_failed" and "compute-1" in shown["binding:vif_details"]["error"]

    report(client, "compute-1", start_flag=True)
    shown = show(api, port["id"])
    assert shown["binding:vif_type"] == "bridge"
    assert shown["binding:vif_details"] == BRIDGE_DETAILS
    assert shown["status"] == "DOWN"  # bound is not wired: ACTIVE comes from the agent's port report
    assert shown["revision_number"] > port["revision_number"]


def test_a_new_port_on_a_host_with_an_agent_is_bound_at_once(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    net = api.network(name="n")
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "bridge" and port["binding:vif_details"] == BRIDGE_DETAILS
    unbound = api.port(net["id"])
    assert unbound["binding:host_id"] == "" and unbound["binding:vif_type"] == "unbound"


def test_binding_details_are_hidden_from_members(client: SyncClient, api: Api) -> None:
    member = api.as_("project-1", "member")
    net = member.network(name="mine")
    port = api.port(net["id"], project_id="project-1", **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "binding_failed"
    seen = show(member, port["id"])
    assert "binding:vif_details" not in seen and "binding:host_id" not in seen


def test_a_dead_or_disabled_agent_does_not_bind(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    (agent,) = api.get("/v2.0/agents?host=compute-1").json()["agents"]
    api.put(f"/v2.0/agents/{agent['id']}", json={"agent": {"admin_state_up": False}})
    net = api.network(name="n")
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "binding_failed"
    assert "compute-1" in port["binding:vif_details"]["error"]
    api.put(f"/v2.0/agents/{agent['id']}", json={"agent": {"admin_state_up": True}})
    port = bind_to(api, port["id"], "compute-1")  # asking again retries the binding
    assert port["binding:vif_type"] == "bridge"


def test_a_dead_agent_does_not_bind_until_it_reports_again(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    old = now() - timedelta(seconds=600)
    client.app.services.db.write(lambda conn: conn.execute(
        update(m.agents).where(m.agents.c.host == "compute-1").values(heartbeat_timestamp=old)))
    net = api.network(name="n")
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "binding_failed"
    assert "not alive" in port["binding:vif_details"]["error"]
    report(client, "compute-1", start_flag=False)  # back from the dead: the server retries its failed ports
    shown = show(api, port["id"])
    assert shown["binding:vif_type"] == "bridge" and shown["binding:vif_details"] == BRIDGE_DETAILS


@pytest.mark.parametrize("provider,conf,bound,error_words", [
    ({}, LB_CONF, True, ()),
    ({}, NO_TUNNEL, False, ("compute-1", "vxlan")),
    ({"provider:network_type": "vxlan", "provider:segmentation_id": 1500}, LB_CONF, True, ()),
    ({"provider:network_type": "flat", "provider:physical_network": "physnet1"}, LB_CONF, True, ()),
    ({"provider:network_type": "flat", "provider:physical_network": "physnet1"}, NO_MAPPINGS, False,
     ("physnet1",)),
    ({"provider:network_type": "flat", "provider:physical_network": "physnet2"}, LB_CONF, False, ("physnet2",)),
    ({"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100},
     LB_CONF, False, ("802.1Q", "carries local, flat (physical networks physnet1) and vxlan segments")),
    ({"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 101},
     NO_TUNNEL, False, ("802.1Q", "carries local and flat (physical networks physnet1) segments")),
    ({"provider:network_type": "local"}, LB_CONF, True, ()),
    ({"provider:network_type": "local"}, NO_TUNNEL, True, ()),
    ({"provider:network_type": "gre", "provider:segmentation_id": 7}, LB_CONF, False,
     ("gre", "carries local, flat (physical networks physnet1) and vxlan segments")),
], ids=["vxlan", "vxlan-no-tunnel-ip", "vxlan-provider", "flat-mapped", "flat-no-mappings", "flat-unmapped",
        "vlan", "vlan-no-tunnel-ip", "local", "local-no-tunnel", "gre"])
def test_binding_by_segment_and_agent_configuration(client: SyncClient, api: Api, provider: dict[str, Any],
                                                    conf: dict[str, Any], bound: bool,
                                                    error_words: tuple[str, ...]) -> None:
    report(client, "compute-1", conf)
    net = api.network(name="n", **provider)
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    if bound:
        assert port["binding:vif_type"] == "bridge", port["binding:vif_details"]
        assert port["binding:vif_details"] == BRIDGE_DETAILS
    else:
        assert port["binding:vif_type"] == "binding_failed"
        error = port["binding:vif_details"]["error"]
        for word in error_words:
            assert word.lower() in error.lower(), error
        assert "openvswitch" not in error, error  # the hint names what exists here, not a missing driver
    assert show(api, port["id"])["binding:vif_type"] == port["binding:vif_type"]


def test_agent_configuration_change_rebinds_failed_ports_on_restart(client: SyncClient, api: Api) -> None:
    report(client, "compute-1", NO_TUNNEL)
    net = api.network(name="n")
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "binding_failed"
    report(client, "compute-1", LB_CONF, start_flag=True)  # restarted with a tunnel address
    assert show(api, port["id"])["binding:vif_type"] == "bridge"


# ---------------------------------------------------------------- status
@pytest.fixture
def bound_port(client: SyncClient, api: Api) -> dict[str, Any]:
    report(client, "compute-1")
    report(client, "compute-2", {**LB_CONF, "tunneling_ip": "198.18.0.12"})
    net = api.network(name="n")
    api.subnet(net["id"])
    port = api.port(net["id"], **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "bridge" and port["status"] == "DOWN"
    return port


def test_port_becomes_active_when_the_agent_reports_it_up(client: SyncClient, api: Api,
                                                          bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    assert report_ports(client, "compute-1", up={pid: bound_port["revision_number"]}) == 1
    assert show(api, pid)["status"] == "ACTIVE"
    assert report_ports(client, "compute-1", up={pid: bound_port["revision_number"]}) == 0  # already
    assert show(api, pid)["status"] == "ACTIVE"
    assert report_ports(client, "compute-1", down=[pid]) == 1
    assert show(api, pid)["status"] == "DOWN"


def test_a_report_of_an_older_revision_does_not_activate(client: SyncClient, api: Api,
                                                         bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    r = api.put(f"/v2.0/ports/{pid}", json={"port": {"name": "renamed"}})
    assert r.status_code == 200, r.text
    current = r.json()["port"]["revision_number"]
    assert current > bound_port["revision_number"]
    report_ports(client, "compute-1", up={pid: current - 1})
    assert show(api, pid)["status"] == "DOWN"
    report_ports(client, "compute-1", up={pid: current})
    assert show(api, pid)["status"] == "ACTIVE"


def test_a_newer_revision_than_current_activates(client: SyncClient, api: Api, bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    report_ports(client, "compute-1", up={pid: bound_port["revision_number"] + 5})
    assert show(api, pid)["status"] == "ACTIVE"


def test_a_report_from_another_host_changes_nothing(client: SyncClient, api: Api,
                                                    bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    assert report_ports(client, "compute-2", up={pid: bound_port["revision_number"]}) == 0
    assert show(api, pid)["status"] == "DOWN"
    report_ports(client, "compute-1", up={pid: bound_port["revision_number"]})
    assert report_ports(client, "compute-2", down=[pid]) == 0
    assert show(api, pid)["status"] == "ACTIVE"


def test_unknown_ports_in_a_report_are_ignored(client: SyncClient, api: Api, bound_port: dict[str, Any]) -> None:
    ghost = "2f1e0d9c-8b7a-4654-9321-0fedcba98765"
    assert report_ports(client, "compute-1", up={ghost: 3, bound_port["id"]: bound_port["revision_number"]},
                        down=[ghost]) == 1
    assert show(api, bound_port["id"])["status"] == "ACTIVE"


def test_moving_a_port_to_another_host(client: SyncClient, api: Api, bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    report_ports(client, "compute-1", up={pid: bound_port["revision_number"]})
    assert show(api, pid)["status"] == "ACTIVE"

    moved = bind_to(api, pid, "compute-2")
    assert moved["binding:host_id"] == "compute-2"
    assert moved["status"] == "DOWN"
    assert moved["binding:vif_type"] == "bridge"
    # the old host's agent no longer owns the port
    report_ports(client, "compute-1", up={pid: moved["revision_number"]})
    assert show(api, pid)["status"] == "DOWN"
    report_ports(client, "compute-2", up={pid: moved["revision_number"]})
    assert show(api, pid)["status"] == "ACTIVE"

    # to a host without an agent: DOWN and the binding is re-evaluated (fails)
    gone = bind_to(api, pid, "compute-9")
    assert gone["status"] == "DOWN"
    assert gone["binding:vif_type"] == "binding_failed"
    assert "compute-9" in gone["binding:vif_details"]["error"]


def test_clearing_the_host_unbinds(client: SyncClient, api: Api, bound_port: dict[str, Any]) -> None:
    pid = bound_port["id"]
    report_ports(client, "compute-1", up={pid: bound_port["revision_number"]})
    cleared = bind_to(api, pid, "")
    assert cleared["binding:host_id"] == ""
    assert cleared["binding:vif_type"] == "unbound"
    assert cleared["binding:vif_details"] == {}
    assert cleared["status"] == "DOWN"
    assert show(api, pid)["binding:vif_type"] == "unbound"
    assert l2_view(client, "compute-1").ports == []


# ---------------------------------------------------------------- the L2 agent's view
def test_l2_view_lists_bound_ports_and_remote_ports(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    report(client, "compute-2", {**LB_CONF, "tunneling_ip": "198.18.0.12"})
    net = api.network(name="n")
    api.subnet(net["id"])
    other = api.network(name="other")
    a = api.port(net["id"], name="a", **{"binding:host_id": "compute-1"})
    b = api.port(net["id"], name="b", **{"binding:host_id": "compute-2"})
    failed = api.port(net["id"], name="c", **{"binding:host_id": "compute-3"})  # no agent there
    api.port(net["id"], name="unbound")
    o = api.port(other["id"], name="o", **{"binding:host_id": "compute-1"})
    assert failed["binding:vif_type"] == "binding_failed"

    view = l2_view(client, "compute-1")
    assert view.host == "compute-1" and view.partial is False
    assert {p.id for p in view.ports} == {a["id"], o["id"]}
    pa = next(p for p in view.ports if p.id == a["id"])
    assert (pa.network_id, pa.mac, pa.revision, pa.admin_state_up) == (net["id"], a["mac_address"],
                                                                       a["revision_number"], True)
    nets = {n.id: n for n in view.networks}
    assert set(nets) == {net["id"], other["id"]}
    mine = nets[net["id"]]
    assert mine.mtu == net["mtu"] and mine.admin_state_up is True
    assert mine.segment.network_type == "vxlan"
    assert mine.segment.segmentation_id == net["provider:segmentation_id"]
    assert mine.segment.physical_network is None
    assert mine.vteps == ["198.18.0.12"]
    (remote,) = mine.remote_ports
    assert remote.mac == b["mac_address"] and remote.vtep == "198.18.0.12"
    assert remote.ips == [f["ip_address"] for f in b["fixed_ips"]]
    assert nets[other["id"]].vteps == [] and nets[other["id"]].remote_ports == []

    # the other side sees compute-1's port through compute-1's tunnel address
    view2 = l2_view(client, "compute-2")
    assert [p.id for p in view2.ports] == [b["id"]]
    (net2,) = view2.networks
    assert net2.vteps == ["198.18.0.11"]
    assert [(r.mac, r.vtep) for r in net2.remote_ports] == [(a["mac_address"], "198.18.0.11")]

    # partial views: only the networks asked for
    partial = l2_view(client, "compute-1", [other["id"]])
    assert partial.partial is True
    assert [n.id for n in partial.networks] == [other["id"]] and [p.id for p in partial.ports] == [o["id"]]
    # a host without an agent gets nothing
    assert l2_view(client, "compute-3").networks == []


def test_l2_view_follows_port_changes(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    report(client, "compute-2", {**LB_CONF, "tunneling_ip": "198.18.0.12"})
    net = api.network(name="n")
    api.subnet(net["id"])
    a = api.port(net["id"], **{"binding:host_id": "compute-1"})
    b = api.port(net["id"], **{"binding:host_id": "compute-2"})
    assert [r.mac for r in l2_view(client, "compute-1").networks[0].remote_ports] == [b["mac_address"]]
    r = api.put(f"/v2.0/ports/{a['id']}", json={"port": {"admin_state_up": False}})
    assert r.status_code == 200
    (pa,) = l2_view(client, "compute-1").ports
    assert pa.admin_state_up is False and pa.revision == r.json()["port"]["revision_number"]
    api.delete(f"/v2.0/ports/{b['id']}")
    assert l2_view(client, "compute-1").networks[0].remote_ports == []
    assert l2_view(client, "compute-1").networks[0].vteps == []
    api.delete(f"/v2.0/ports/{a['id']}")
    assert l2_view(client, "compute-1").networks == []


def test_l2_view_of_a_flat_network(client: SyncClient, api: Api) -> None:
    report(client, "compute-1")
    report(client, "compute-2", {**LB_CONF, "tunneling_ip": "198.18.0.12"})
    net = api.network(**{"provider:network_type": "flat", "provider:physical_network": "physnet1"})
    api.port(net["id"], **{"binding:host_id": "compute-1"})
    api.port(net["id"], **{"binding:host_id": "compute-2"})
    (n,) = l2_view(client, "compute-1").networks
    assert (n.segment.network_type, n.segment.physical_network, n.segment.segmentation_id) == \
        ("flat", "physnet1", None)
    assert n.remote_ports == [] and n.vteps == []  # no tunnels on a flat network
