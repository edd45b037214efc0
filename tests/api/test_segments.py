"""Segments (segment, standard-attr-segment) and network segment ranges (network-segment-range), as an
admin sees and manages them, and what tenant networks and subnets get from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.neutron import assert_fault

SEGMENT_KEYS = {"id", "network_id", "name", "description", "network_type", "physical_network", "segmentation_id",
                "created_at", "updated_at", "revision_number", "tags"}


def segments(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/segments{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["segments"])


def ranges(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/network_segment_ranges{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["network_segment_ranges"])


def new_range(api: Api, **attrs: Any) -> dict[str, Any]:
    return api.create("network_segment_ranges", **attrs)


def test_a_networks_segment_is_a_resource(api: Api) -> None:
    net = api.as_("p1").network(name="n")
    (seg,) = segments(api, f"?network_id={net['id']}")
    assert set(seg) == SEGMENT_KEYS  # the project is taken, never shown (as Neutron)
    assert seg["network_type"] == "vxlan" and seg["physical_network"] is None
    assert 1000 <= seg["segmentation_id"] <= 1999
    assert seg["name"] is None and seg["description"] is None
    shown = api.get(f"/v2.0/segments/{seg['id']}").json()["segment"]
    assert shown == seg
    r = api.put(f"/v2.0/segments/{seg['id']}", json={"segment": {"name": "blue", "description": "d"}})
    assert r.status_code == 200, r.text
    assert r.json()["segment"]["name"] == "blue"
    assert r.json()["segment"]["revision_number"] == seg["revision_number"] + 1
    assert_fault(api.put(f"/v2.0/segments/{seg['id']}", json={"segment": {"segmentation_id": 7}}), 400)
    assert [s["id"] for s in segments(api, "?name=blue")] == [seg["id"]]


def test_segments_are_the_admins(api: Api) -> None:
    user = api.as_("p1")
    net = user.network()
    assert segments(user) == []
    assert_fault(user.post("/v2.0/segments", json={"segment": {"network_id": net["id"], "network_type": "vxlan"}}),
                 403, "PolicyNotAuthorized")
    assert ranges(user) == []
    assert_fault(user.post("/v2.0/network_segment_ranges", json={"network_segment_range": {
        "network_type": "vxlan", "minimum": 5000, "maximum": 5001}}), 403, "PolicyNotAuthorized")


def test_adding_and_removing_segments_of_a_network(api: Api) -> None:
    net = api.network(name="multi")
    r = api.post("/v2.0/segments", json={"segment": {"network_id": net["id"], "network_type": "vlan",
                                                     "physical_network": "physnet1", "segmentation_id": 150,
                                                     "name": "rack2"}})
    assert r.status_code == 201, r.text
    vlan = r.json()["segment"]
    assert (vlan["network_type"], vlan["physical_network"], vlan["segmentation_id"]) == ("vlan", "physnet1", 150)
    shown = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert [s["provider:network_type"] for s in shown["segments"]] == ["vxlan", "vlan"]
    # the id is taken: by this network's segment, so by no other
    again = {"segment": {"network_id": net["id"], "network_type": "vlan", "physical_network": "physnet1",
                         "segmentation_id": 150}}
    assert_fault(api.post("/v2.0/segments", json=again), 409, "VlanIdInUse")
    auto = api.create("segments", network_id=net["id"], network_type="vlan", physical_network="physnet1")
    assert 100 <= auto["segmentation_id"] <= 199  # from the configured range
    assert_fault(api.post("/v2.0/segments", json={"segment": {"network_id": "1" * 32, "network_type": "vxlan"}}),
                 404, "NetworkNotFound")
    assert_fault(api.post("/v2.0/segments", json={"segment": {"network_id": net["id"], "network_type": "carrier"}}),
                 400)
    assert api.delete(f"/v2.0/segments/{vlan['id']}").status_code == 204
    assert api.get(f"/v2.0/segments/{vlan['id']}").status_code == 404
    assert api.post("/v2.0/segments", json=again).status_code == 201  # released with the segment


def test_subnets_on_segments(api: Api) -> None:
    net = api.network(name="routed")
    (first,) = segments(api, f"?network_id={net['id']}")
    second = api.create("segments", network_id=net["id"], network_type="vlan", physical_network="physnet1")
    a = api.subnet(net["id"], "10.1.0.0/24", segment_id=first["id"])
    b = api.subnet(net["id"], "10.2.0.0/24", segment_id=second["id"])
    assert (a["segment_id"], b["segment_id"]) == (first["id"], second["id"])
    r = api.get(f"/v2.0/subnets?segment_id={second['id']}")
    assert [s["id"] for s in r.json()["subnets"]] == [b["id"]]
    body = {"subnet": {"network_id": net["id"], "cidr": "10.3.0.0/24", "ip_version": 4}}
    assert_fault(api.post("/v2.0/subnets", json=body), 400, "SubnetsNotAllAssociatedWithSegments")
    other = api.network(name="other")
    (foreign,) = segments(api, f"?network_id={other['id']}")
    body["subnet"]["segment_id"] = foreign["id"]
    assert_fault(api.post("/v2.0/subnets", json=body), 400, "NetworkIdsDontMatch")
    body["subnet"]["segment_id"] = "2" * 32
    assert_fault(api.post("/v2.0/subnets", json=body), 404, "SegmentNotFound")
    r = api.delete(f"/v2.0/segments/{second['id']}")
    assert_fault(r, 409, "SegmentInUse")
    assert b["id"] in r.json()["NeutronError"]["message"]
    assert api.delete(f"/v2.0/subnets/{b['id']}").status_code == 204
    assert api.delete(f"/v2.0/segments/{second['id']}").status_code == 204
    plain = api.network(name="plain")
    api.subnet(plain["id"], "10.4.0.0/24")
    (seg,) = segments(api, f"?network_id={plain['id']}")
    body = {"subnet": {"network_id": plain["id"], "cidr": "10.5.0.0/24", "ip_version": 4, "segment_id": seg["id"]}}
    assert_fault(api.post("/v2.0/subnets", json=body), 400, "SubnetsNotAllAssociatedWithSegments")


def test_default_ranges_mirror_the_configuration(api: Api) -> None:
    listed = {(r["network_type"], r["physical_network"]): r for r in ranges(api, "?default=true")}
    assert set(listed) == {("vlan", "physnet1"), ("vxlan", None), ("gre", None), ("geneve", None)}
    vxlan = listed[("vxlan", None)]
    assert (vxlan["minimum"], vxlan["maximum"]) == (1000, 1999)
    assert vxlan["default"] is True and vxlan["shared"] is True and vxlan["project_id"] is None
    assert vxlan["used"] == {} and len(vxlan["available"]) == 1000
    net = api.as_("p1").network()
    (seg,) = segments(api, f"?network_id={net['id']}")
    vxlan = api.get(f"/v2.0/network_segment_ranges/{vxlan['id']}").json()["network_segment_range"]
    assert vxlan["used"] == {str(seg["segmentation_id"]): "p1"}
    assert seg["segmentation_id"] not in vxlan["available"] and len(vxlan["available"]) == 999
    r = api.put(f"/v2.0/network_segment_ranges/{vxlan['id']}", json={"network_segment_range": {"maximum": 1500}})
    assert_fault(r, 400, "NetworkSegmentRangeDefaultReadOnly")
    assert_fault(api.delete(f"/v2.0/network_segment_ranges/{vxlan['id']}"), 400,
                 "NetworkSegmentRangeDefaultReadOnly")


def test_a_projects_own_range_comes_first_then_the_shared_ones(api: Api) -> None:
    own = new_range(api, name="p1-only", shared=False, project_id="p1", network_type="vxlan", minimum=5000,
                    maximum=5001)
    assert own["shared"] is False and own["project_id"] == "p1" and own["default"] is False
    assert own["available"] == [5000, 5001] and own["used"] == {}
    p1, p2 = api.as_("p1"), api.as_("p2")
    ids = []
    for _ in range(3):
        net = p1.network()
        ids.append(segments(api, f"?network_id={net['id']}")[0]["segmentation_id"])
    assert sorted(ids[:2]) == [5000, 5001]
    assert 1000 <= ids[2] <= 1999  # the project's range is full: the shared one
    other = p2.network()
    assert 1000 <= segments(api, f"?network_id={other['id']}")[0]["segmentation_id"] <= 1999
    own = api.get(f"/v2.0/network_segment_ranges/{own['id']}").json()["network_segment_range"]
    assert own["used"] == {"5000": "p1", "5001": "p1"} and own["available"] == []
    url = f"/v2.0/network_segment_ranges/{own['id']}"
    assert_fault(api.delete(url), 409, "NetworkSegmentRangeReferencedByProject")
    assert_fault(api.put(url, json={"network_segment_range": {"maximum": 5000}}), 409,
                 "NetworkSegmentRangeReferencedByProject")
    r = api.put(url, json={"network_segment_range": {"maximum": 5010, "name": "wider"}})
    assert r.status_code == 200, r.text
    assert r.json()["network_segment_range"]["name"] == "wider"
    assert len(r.json()["network_segment_range"]["available"]) == 9


def test_a_projects_range_is_kept_from_the_others(tmp_path: Path) -> None:
    """Ids inside a project's own range are not handed to other projects from the shared ranges, so the
    project gets all of them (the default vxlan range, 1100-1110 here, contains the project's 1100-1105)."""
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"ml2": {"vxlan_vni_ranges": ["1100:1110"]}}) as c:
        api = Api(c, "admin-project", "admin")
        new_range(api, shared=False, project_id="p1", network_type="vxlan", minimum=1100, maximum=1105)
        others = {segments(api, f"?network_id={api.as_('p2').network()['id']}")[0]["segmentation_id"]
                  for _ in range(5)}
        assert others == set(range(1106, 1111))
        assert_fault(api.as_("p2").post("/v2.0/networks", json={"network": {}}), 503, "NoNetworkAvailable")
        mine = {segments(api, f"?network_id={api.as_('p1').network()['id']}")[0]["segmentation_id"]
                for _ in range(6)}
        assert mine == set(range(1100, 1106))


def test_provider_networks_of_a_type_also_take_the_projects_range(api: Api) -> None:
    """An admin asking only for the network type (no id) for a project: the id comes from its range, so the
    range is then in use (delete 409, shrinking past it 409), as tempest checks."""
    own = new_range(api, shared=False, project_id="p1", network_type="vxlan", minimum=1100, maximum=1105)
    net = api.network(project_id="p1", **{"provider:network_type": "vxlan"})
    assert 1100 <= net["provider:segmentation_id"] <= 1105
    url = f"/v2.0/network_segment_ranges/{own['id']}"
    assert_fault(api.delete(url), 409, "NetworkSegmentRangeReferencedByProject")
    body = {"network_segment_range": {"minimum": net["provider:segmentation_id"] + 1, "maximum": 1155}}
    assert_fault(api.put(url, json=body), 409, "NetworkSegmentRangeReferencedByProject")
    assert ranges(api, "?id=33") == []  # any id filters (Neutron: an empty list)


def test_range_validation(api: Api) -> None:
    def create(**attrs: Any) -> Any:
        return api.post("/v2.0/network_segment_ranges", json={"network_segment_range": attrs})

    first = new_range(api, network_type="vlan", physical_network="physnet2", minimum=10, maximum=20)
    assert first["physical_network"] == "physnet2" and first["project_id"] is None
    assert_fault(create(network_type="vlan", physical_network="physnet2", minimum=20, maximum=30), 409,
                 "NetworkSegmentRangeOverlaps")
    assert new_range(api, network_type="vlan", physical_network="physnet3", minimum=15, maximum=25)
    assert_fault(create(network_type="vlan", minimum=30, maximum=40), 400)  # no physical network
    assert_fault(create(network_type="vlan", physical_network="physnet2", minimum=4000, maximum=4095), 400,
                 "NetworkVlanRangeError")
    assert_fault(create(network_type="vxlan", minimum=9, maximum=8), 400, "NetworkTunnelRangeError")
    assert_fault(create(network_type="vxlan", minimum=1, maximum=2**24), 400, "NetworkTunnelRangeError")
    assert_fault(create(network_type="flat", minimum=1, maximum=2), 400)
    assert_fault(create(network_type="vxlan", minimum=1), 400)
    tunnel = new_range(api, network_type="gre", physical_network="ignored", minimum=2**31, maximum=2**31 + 2)
    assert tunnel["physical_network"] is None and tunnel["maximum"] == 2**31 + 2
    names = [r["name"] for r in ranges(api, "?network_type=vlan&default=false&sort_key=minimum")]
    assert len(names) == 2


def test_ranges_answer_at_both_spellings(api: Api) -> None:
    """Neutron's reference writes network_segment_ranges, tempest's client network-segment-ranges."""
    created = new_range(api, network_type="vxlan", minimum=8000, maximum=8001)
    r = api.get(f"/v2.0/network-segment-ranges/{created['id']}")
    assert r.status_code == 200 and r.json()["network_segment_range"]["id"] == created["id"]
    assert {x["id"] for x in api.get("/v2.0/network-segment-ranges").json()["network_segment_ranges"]} == {
        x["id"] for x in ranges(api)}


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"segment", "standard-attr-segment", "network-segment-range"} <= aliases
