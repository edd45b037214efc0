"""The port extensions of issue 15 (point 8) as a client sees them: uplink-status-propagation(-updatable),
data-plane-status, port-device-profile, port-numa-affinity-policy(-socket), port-trusted-vif, port-hints,
port-hardware-offload-type, ip_allocation, port-mac-address-regenerate and tag-ports-during-bulk-creation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.test_binding import report
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")
ALIASES = ("binding-extended", "port-mac-address-regenerate", "tag-ports-during-bulk-creation",
           "uplink-status-propagation", "uplink-status-propagation-updatable", "data-plane-status",
           "port-device-profile", "port-numa-affinity-policy", "port-numa-affinity-policy-socket",
           "port-trusted-vif", "port-hints", "port-hardware-offload-type", "ip_allocation")
PROJECT = "proj-a"


@pytest.fixture
def member(api: Api) -> Api:
    return api.as_(PROJECT, "member")


@pytest.fixture
def net(member: Api) -> dict[str, Any]:
    net = member.network(name="n")
    member.subnet(net["id"], "10.0.0.0/24")
    return net


def _post(api: Api, **attrs: Any) -> Any:
    return api.post("/v2.0/ports", json={"port": attrs})


def _put(api: Api, port_id: str, **attrs: Any) -> Any:
    return api.put(f"/v2.0/ports/{port_id}", json={"port": attrs})


def _show(api: Api, port_id: str) -> dict[str, Any]:
    r = api.get(f"/v2.0/ports/{port_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["port"])


def _listed(api: Api, port_id: str) -> dict[str, Any]:
    found = api.get(f"/v2.0/ports?id={port_id}").json()["ports"]
    assert len(found) == 1
    return dict(found[0])


def test_the_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    for alias in ALIASES:
        assert alias in aliases, alias
        r = api.get(f"/v2.0/extensions/{alias}")
        assert r.status_code == 200 and r.json()["extension"]["alias"] == alias


def test_a_new_port_shows_the_defaults_in_create_show_and_list(api: Api, member: Api,
                                                                net: dict[str, Any]) -> None:
    port = member.port(net["id"])
    expect = {"propagate_uplink_status": True, "data_plane_status": None, "device_profile": None,
              "numa_affinity_policy": None, "hardware_offload_type": None, "ip_allocation": "immediate"}
    for seen in (port, _show(member, port["id"]), _listed(member, port["id"])):
        assert {k: seen[k] for k in expect} == expect
        assert "trusted" not in seen and "hints" not in seen  # admin-only, as in Neutron
    as_admin = _show(api, port["id"])
    assert as_admin["trusted"] is None and as_admin["hints"] is None
    assert _listed(api, port["id"])["trusted"] is None


# ---------------------------------------------------------------- uplink-status-propagation(-updatable)
def test_propagate_uplink_status_on_create_and_update(member: Api, net: dict[str, Any]) -> None:
    port = member.port(net["id"], propagate_uplink_status=False)
    assert port["propagate_uplink_status"] is False
    assert _listed(member, port["id"])["propagate_uplink_status"] is False
    r = _put(member, port["id"], propagate_uplink_status=True)
    assert r.status_code == 200 and r.json()["port"]["propagate_uplink_status"] is True
    assert _show(member, port["id"])["propagate_uplink_status"] is True
    assert_fault(_post(member, network_id=net["id"], propagate_uplink_status="sometimes"), 400)
    assert_fault(_put(member, port["id"], propagate_uplink_status=None), 400)


# ---------------------------------------------------------------- data-plane-status
def test_data_plane_status_is_set_by_admins_only(api: Api, member: Api, net: dict[str, Any]) -> None:
    port = member.port(net["id"])
    assert_fault(_post(member, network_id=net["id"], data_plane_status="ACTIVE"), 400)
    assert_fault(_put(member, port["id"], data_plane_status="DOWN"), 403, "PolicyNotAuthorized")
    for value in ("ACTIVE", "DOWN", None):
        r = _put(api, port["id"], data_plane_status=value)
        assert r.status_code == 200, r.text
        assert r.json()["port"]["data_plane_status"] == value
        assert _show(member, port["id"])["data_plane_status"] == value
    assert_fault(_put(api, port["id"], data_plane_status="UP"), 400)
    integrator = api.as_(PROJECT, "member,data_plane_integrator")
    assert _put(integrator, port["id"], data_plane_status="DOWN").status_code == 200


# ---------------------------------------------------------------- port-device-profile
def test_device_profile_is_set_on_create_only(member: Api, net: dict[str, Any]) -> None:
    port = member.port(net["id"], device_profile="gpu-profile")
    assert port["device_profile"] == "gpu-profile"
    assert _listed(member, port["id"])["device_profile"] == "gpu-profile"
    assert_fault(_put(member, port["id"], device_profile="other"), 400)
    assert_fault(_post(member, network_id=net["id"], device_profile="x" * 256), 400)
    assert_fault(_post(member, network_id=net["id"], device_profile=5), 400)


# ---------------------------------------------------------------- port-numa-affinity-policy(-socket)
def test_numa_affinity_policy_values(member: Api, net: dict[str, Any]) -> None:
    for policy in ("required", "preferred", "legacy", "socket"):
        assert member.port(net["id"], numa_affinity_policy=policy)["numa_affinity_policy"] == policy
    port = member.port(net["id"], numa_affinity_policy="socket")
    r = _put(member, port["id"], numa_affinity_policy=None)
    assert r.status_code == 200 and r.json()["port"]["numa_affinity_policy"] is None
    assert _put(member, port["id"], numa_affinity_policy="required").json()["port"]["numa_affinity_policy"] == \
        "required"
    err = assert_fault(_post(member, network_id=net["id"], numa_affinity_policy="nearby"), 400)
    assert "numa_affinity_policy" in err["message"]


# ---------------------------------------------------------------- port-trusted-vif
def test_trusted_is_admin_only_and_shown_in_the_binding_profile(api: Api, member: Api,
                                                                 net: dict[str, Any]) -> None:
    assert_fault(_post(member, network_id=net["id"], trusted=True), 403, "PolicyNotAuthorized")
    r = _post(api, network_id=net["id"], project_id=PROJECT, trusted=True, **{"binding:profile": {"a": 1}})
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    assert port["trusted"] is True and port["binding:profile"] == {"a": 1, "trusted": True}
    assert "trusted" not in _show(member, port["id"])
    assert_fault(_put(member, port["id"], trusted=False), 403, "PolicyNotAuthorized")
    upd = _put(api, port["id"], trusted=False).json()["port"]
    assert upd["trusted"] is False and upd["binding:profile"] == {"a": 1, "trusted": False}
    # a new profile keeps showing what `trusted` says
    upd = _put(api, port["id"], **{"binding:profile": {"b": 2}}).json()["port"]
    assert upd["binding:profile"] == {"b": 2, "trusted": False} and upd["trusted"] is False
    assert_fault(_put(api, port["id"], trusted="perhaps"), 400)


# ---------------------------------------------------------------- port-hints
def test_hints_are_admin_only_and_validated(api: Api, member: Api, net: dict[str, Any]) -> None:
    hints = {"openvswitch": {"other_config": {"tx-steering": "hash"}}}
    assert_fault(_post(member, network_id=net["id"], hints=hints), 403, "PolicyNotAuthorized")
    port = api.port(net["id"], project_id=PROJECT, hints=hints)
    assert port["hints"] == hints and _show(api, port["id"])["hints"] == hints
    assert "hints" not in _show(member, port["id"])
    err = assert_fault(_put(api, port["id"], hints={"ovn": {}}), 400)
    assert "Unexpected keys supplied: ovn" in err["message"]
    assert_fault(_put(api, port["id"], hints={"openvswitch": {"other_config": {"tx-steering": "random"}}}), 400)
    assert_fault(_put(api, port["id"], hints="fast"), 400)
    assert _put(api, port["id"], hints={"openvswitch": {}}).json()["port"]["hints"] == {"openvswitch": {}}
    assert _put(api, port["id"], hints=None).json()["port"]["hints"] is None


# ---------------------------------------------------------------- port-hardware-offload-type
def test_hardware_offload_type(api: Api, member: Api, net: dict[str, Any]) -> None:
    port = member.port(net["id"], hardware_offload_type="switchdev")
    assert port["hardware_offload_type"] == "switchdev"
    assert _listed(member, port["id"])["hardware_offload_type"] == "switchdev"
    assert _show(api, port["id"])["binding:profile"] == {"capabilities": ["switchdev"]}
    assert_fault(_put(member, port["id"], hardware_offload_type="switchdev"), 400)
    assert_fault(_post(member, network_id=net["id"], hardware_offload_type="smartnic"), 400)


# ---------------------------------------------------------------- ip_allocation
def test_ip_allocation_reports_unaddressed_ports_and_filters(member: Api, net: dict[str, Any]) -> None:
    plain = member.port(net["id"])
    bare = member.port(net["id"], fixed_ips=[])
    assert plain["ip_allocation"] == "immediate" and bare["ip_allocation"] == "none"
    assert bare["fixed_ips"] == []
    found = member.get("/v2.0/ports?ip_allocation=none").json()["ports"]
    assert [p["id"] for p in found] == [bare["id"]]
    ordered = member.get("/v2.0/ports?sort_key=ip_allocation&sort_dir=asc").json()["ports"]
    assert [p["ip_allocation"] for p in ordered] == ["immediate", "none"]
    assert_fault(_post(member, network_id=net["id"], ip_allocation="deferred"), 400)
    assert_fault(_put(member, plain["id"], ip_allocation="none"), 400)


def test_attributes_neutron_cannot_filter_on_are_refused(member: Api, net: dict[str, Any]) -> None:
    for key in ("numa_affinity_policy", "propagate_uplink_status", "device_profile", "data_plane_status"):
        assert_fault(member.get(f"/v2.0/ports?{key}=x"), 400)


# ---------------------------------------------------------------- port-mac-address-regenerate
def test_mac_address_null_regenerates_an_unbound_ports_mac(api: Api, member: Api, net: dict[str, Any]) -> None:
    port = member.port(net["id"])
    assert_fault(_put(member, port["id"], mac_address=None), 403, "PolicyNotAuthorized")
    r = _put(api, port["id"], mac_address=None)
    assert r.status_code == 200, r.text
    new_mac = r.json()["port"]["mac_address"]
    assert MAC.match(new_mac) and new_mac != port["mac_address"]
    assert _show(member, port["id"])["mac_address"] == new_mac
    # on create, null is a generated MAC as when it is left out
    assert MAC.match(api.port(net["id"], mac_address=None)["mac_address"])


def test_a_bound_ports_mac_cannot_be_regenerated(client: SyncClient, api: Api, net: dict[str, Any]) -> None:
    report(client, "compute-1")
    port = api.port(net["id"], project_id=PROJECT, **{"binding:host_id": "compute-1"})
    assert port["binding:vif_type"] == "bridge"
    err = assert_fault(_put(api, port["id"], mac_address=None), 409, "PortBound")
    assert f"port {port['id']}, port is already bound, port type: bridge, old_mac {port['mac_address']}" in \
        err["message"]
    assert _show(api, port["id"])["mac_address"] == port["mac_address"]


# ---------------------------------------------------------------- tag-ports-during-bulk-creation
def test_bulk_port_create_tags_each_port(member: Api, net: dict[str, Any]) -> None:
    tags = [["tag-1", "tag-2", "tag-3"], ["tag-1", "tag-2"], ["tag-1", "tag-3"], []]
    body = {"ports": [{"network_id": net["id"], "name": "-".join(t), "tags": t} for t in tags]}
    r = member.post("/v2.0/ports", json=body)
    assert r.status_code == 201, r.text
    by_name = {p["name"]: p for p in r.json()["ports"]}
    for t in tags:
        assert by_name["-".join(t)]["tags"] == sorted(t)
        assert _show(member, by_name["-".join(t)]["id"])["tags"] == sorted(t)
    tagged = member.get("/v2.0/ports?tags=tag-3").json()["ports"]
    assert sorted(p["name"] for p in tagged) == ["tag-1-tag-2-tag-3", "tag-1-tag-3"]
    assert_fault(member.post("/v2.0/ports", json={"ports": [{"network_id": net["id"], "tags": ["a,b"]}]}), 400)
    assert len(member.get("/v2.0/ports").json()["ports"]) == 4  # the refused bulk left nothing behind
