"""Metering (metering, metering_source_and_destination_fields) as an API user sees it: labels and rules under
/v2.0/metering with Neutron's validation and admin-only policy, the labels in the L3 agents' view, and the
counters the agents report, read back through the label's counters and /metrics."""

from __future__ import annotations

from typing import Any

import pytest

from fermion.rpc.contracts import (
    L3View,
    MeteringCounter,
    MeteringReport,
    StateReport,
    ViewRequest,
    decode,
    encode,
)
from tests.conftest import Api
from tests.support.neutron import assert_fault

LABELS = "/v2.0/metering/metering-labels"
RULES = "/v2.0/metering/metering-label-rules"
L3 = "L3 agent"


def label(api: Api, **attrs: Any) -> dict[str, Any]:
    r = api.post(LABELS, json={"metering_label": attrs})
    assert r.status_code == 201, r.text
    return r.json()["metering_label"]  # type: ignore[no-any-return]


def add_rule(api: Api, label_id: str, direction: str = "ingress", **attrs: Any) -> Any:
    return api.post(RULES, json={"metering_label_rule": {"metering_label_id": label_id, "direction": direction,
                                                         **attrs}})


def test_both_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"metering", "metering_source_and_destination_fields"} <= aliases


def test_label_lifecycle(admin: Api) -> None:
    made = label(admin, name="web", description="web traffic")
    assert made == {"id": made["id"], "name": "web", "description": "web traffic", "shared": False,
                    "project_id": "admin-project", "tenant_id": "admin-project"}
    assert admin.get(f"{LABELS}/{made['id']}").json()["metering_label"] == made
    other = label(admin, name="all", shared=True, project_id="p2")
    assert (other["shared"], other["project_id"]) == (True, "p2")
    listed = admin.get(LABELS, params={"shared": "true"}).json()["metering_labels"]
    assert [x["id"] for x in listed] == [other["id"]]
    assert admin.get(LABELS, params={"id": "33"}).json() == {"metering_labels": []}  # no error for a bad id
    names = [x["name"] for x in admin.get(LABELS, params={"sort_key": "name"}).json()["metering_labels"]]
    assert names == ["all", "web"]
    assert_fault(admin.put(f"{LABELS}/{made['id']}", json={"metering_label": {"name": "x"}}), 400)
    assert admin.delete(f"{LABELS}/{made['id']}").status_code == 204
    assert_fault(admin.get(f"{LABELS}/{made['id']}"), 404, "MeteringLabelNotFound")
    assert_fault(admin.delete(f"{LABELS}/{made['id']}"), 404, "MeteringLabelNotFound")


def test_label_names_are_checked(admin: Api) -> None:
    assert label(admin, name="x" * 255)["name"] == "x" * 255
    assert_fault(admin.post(LABELS, json={"metering_label": {"name": "x" * 256}}), 400)
    assert_fault(admin.post(LABELS, json={"metering_label": {"shared": "maybe"}}), 400)


def test_metering_is_for_admins(admin: Api, tenant: Api) -> None:
    made = label(admin, name="theirs", project_id="tenant-a")
    assert_fault(tenant.post(LABELS, json={"metering_label": {"name": "mine"}}), 403)
    assert tenant.get(LABELS).json() == {"metering_labels": []}
    assert_fault(tenant.get(f"{LABELS}/{made['id']}"), 404)
    assert_fault(tenant.get(f"{LABELS}/{made['id']}/counters"), 404, "MeteringLabelNotFound")
    assert_fault(tenant.delete(f"{LABELS}/{made['id']}"), 404)
    assert_fault(add_rule(tenant, made["id"], remote_ip_prefix="10.0.0.0/24"), 403)


def test_rule_lifecycle(admin: Api) -> None:
    lab = label(admin, name="l")
    r = add_rule(admin, lab["id"], remote_ip_prefix="10.0.0.0/24")
    assert r.status_code == 201, r.text
    rule = r.json()["metering_label_rule"]
    assert rule == {"id": rule["id"], "metering_label_id": lab["id"], "direction": "ingress", "excluded": False,
                    "remote_ip_prefix": "10.0.0.0/24", "source_ip_prefix": None, "destination_ip_prefix": None}
    assert admin.get(f"{RULES}/{rule['id']}").json()["metering_label_rule"] == rule
    r = add_rule(admin, lab["id"], "egress", source_ip_prefix="10.0.0.5", excluded=True)
    spelt = r.json()["metering_label_rule"]
    assert (spelt["source_ip_prefix"], spelt["excluded"]) == ("10.0.0.5/32", True)  # netaddr's spelling
    r = admin.put(f"{RULES}/{spelt['id']}", json={"metering_label_rule": {"destination_ip_prefix": "2001:db8::/64"}})
    assert r.status_code == 200, r.text
    assert r.json()["metering_label_rule"]["destination_ip_prefix"] == "2001:db8::/64"
    by_label = admin.get(RULES, params={"metering_label_id": lab["id"], "direction": "egress"}).json()
    assert [x["id"] for x in by_label["metering_label_rules"]] == [spelt["id"]]
    assert admin.get(RULES, params={"id": "33"}).json() == {"metering_label_rules": []}
    assert admin.delete(f"{RULES}/{rule['id']}").status_code == 204
    assert_fault(admin.get(f"{RULES}/{rule['id']}"), 404, "MeteringLabelRuleNotFound")
    assert admin.delete(f"{LABELS}/{lab['id']}").status_code == 204  # its rules go with it
    assert_fault(admin.get(f"{RULES}/{spelt['id']}"), 404)


@pytest.mark.parametrize(("attrs", "status"), [
    ({}, 400),  # no prefix at all
    ({"remote_ip_prefix": "10.0.0.0/24", "source_ip_prefix": "10.1.0.0/24"}, 400),
    ({"remote_ip_prefix": "10.0.0.0/24", "destination_ip_prefix": "10.1.0.0/24"}, 400),
    ({"source_ip_prefix": "10.0.0.0/33"}, 400),
    ({"destination_ip_prefix": "not-an-address"}, 400),
    ({"remote_ip_prefix": "10.0.0.0/24", "direction": "sideways"}, 400),
    ({"remote_ip_prefix": "10.0.0.0/24", "excluded": "perhaps"}, 400),
])
def test_rules_are_checked_as_neutron_does(admin: Api, attrs: dict[str, Any], status: int) -> None:
    lab = label(admin)
    direction = attrs.pop("direction", "ingress")
    assert_fault(add_rule(admin, lab["id"], direction, **attrs), status)
    assert admin.get(RULES).json() == {"metering_label_rules": []}


def test_rules_need_their_label_and_a_direction(admin: Api) -> None:
    assert_fault(add_rule(admin, "6b8e0c5e-4b9d-4b8e-9d3c-0a1b2c3d4e5f", remote_ip_prefix="10.0.0.0/8"), 404,
                 "MeteringLabelNotFound")
    lab = label(admin)
    body = {"metering_label_id": lab["id"], "remote_ip_prefix": "10.0.0.0/8"}
    assert_fault(admin.post(RULES, json={"metering_label_rule": body}), 400)


def test_a_labels_remote_prefixes_may_not_overlap(admin: Api) -> None:
    lab, other = label(admin), label(admin)
    assert add_rule(admin, lab["id"], remote_ip_prefix="10.0.0.0/16").status_code == 201
    assert_fault(add_rule(admin, lab["id"], remote_ip_prefix="10.0.5.0/24"), 409, "MeteringLabelRuleOverlaps")
    # another direction, the excluded kind, another label, or no remote prefix: no overlap to speak of
    assert add_rule(admin, lab["id"], "egress", remote_ip_prefix="10.0.5.0/24").status_code == 201
    assert add_rule(admin, lab["id"], remote_ip_prefix="10.0.5.0/24", excluded=True).status_code == 201
    assert add_rule(admin, other["id"], remote_ip_prefix="10.0.5.0/24").status_code == 201
    assert add_rule(admin, lab["id"], source_ip_prefix="10.0.5.0/24").status_code == 201


def _l3_agent(client: Any, host: str) -> None:
    msg = StateReport(host=host, agent_type=L3, binary="fermion-l3-agent", topic="l3_agent",
                      configurations={"routers": 0}, start_flag=True)
    client.app.transport.call("report_state", encode(msg))


def _view(client: Any, host: str) -> dict[str, Any]:
    view = decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest(host, L3))))
    return {r.id: r for r in view.routers}


def test_labels_reach_the_routers_of_their_project(client: Any, admin: Api, alice: Api, bob: Api) -> None:
    _l3_agent(client, "net-1")
    r_alice, r_bob = alice.create("routers"), bob.create("routers")
    own = label(admin, name="alice's", project_id="alice")
    add_rule(admin, own["id"], "egress", remote_ip_prefix="10.0.0.0/24")
    add_rule(admin, own["id"], "egress", remote_ip_prefix="10.0.1.0/24", excluded=True)
    shared = label(admin, name="everyone", shared=True)
    add_rule(admin, shared["id"], "ingress", destination_ip_prefix="10.9.0.0/16")
    routers = _view(client, "net-1")
    assert [x.id for x in routers[r_alice["id"]].metering_labels] == sorted([own["id"], shared["id"]])
    assert [x.id for x in routers[r_bob["id"]].metering_labels] == [shared["id"]]
    (mine,) = [x for x in routers[r_alice["id"]].metering_labels if x.id == own["id"]]
    assert [(x.direction, x.remote_ip_prefix, x.excluded) for x in mine.rules] in (
        [("egress", "10.0.0.0/24", False), ("egress", "10.0.1.0/24", True)],
        [("egress", "10.0.1.0/24", True), ("egress", "10.0.0.0/24", False)])
    admin.delete(f"{LABELS}/{shared['id']}")
    assert _view(client, "net-1")[r_bob["id"]].metering_labels == []


def _report(client: Any, host: str, *counters: MeteringCounter) -> None:
    client.app.transport.call("report_metering", encode(MeteringReport(host=host, counters=list(counters))))


def _counters(api: Api, label_id: str) -> dict[str, Any]:
    r = api.get(f"{LABELS}/{label_id}/counters")
    assert r.status_code == 200, r.text
    return r.json()["counters"]  # type: ignore[no-any-return]


def test_counters_add_up_across_restarts_and_hosts(client: Any, admin: Api) -> None:
    lab = label(admin, name="counted")
    assert _counters(admin, lab["id"]) == {"metering_label_id": lab["id"], "packets": 0, "bytes": 0, "routers": []}
    r1, r2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    _report(client, "net-1", MeteringCounter(r1, lab["id"], packets=10, bytes=1000, epoch="a"))
    _report(client, "net-1", MeteringCounter(r1, lab["id"], packets=15, bytes=1500, epoch="a"))  # cumulative
    _report(client, "net-1", MeteringCounter(r1, lab["id"], packets=15, bytes=1500, epoch="a"))  # agent restarted
    assert (_counters(admin, lab["id"])["packets"], _counters(admin, lab["id"])["bytes"]) == (15, 1500)
    _report(client, "net-1", MeteringCounter(r1, lab["id"], packets=2, bytes=200, epoch="b"))  # namespace rebuilt
    _report(client, "net-1", MeteringCounter(r1, lab["id"], packets=1, bytes=100, epoch="b"))  # a missed restart
    _report(client, "net-2", MeteringCounter(r1, lab["id"], packets=5, bytes=500, epoch="a"),  # HA: other instance
            MeteringCounter(r2, lab["id"], packets=1, bytes=60, epoch="c"),
            MeteringCounter(r2, "6b8e0c5e-4b9d-4b8e-9d3c-0a1b2c3d4e5f", packets=1, bytes=1, epoch="c"))
    got = _counters(admin, lab["id"])
    assert (got["packets"], got["bytes"]) == (15 + 2 + 1 + 5 + 1, 1500 + 200 + 100 + 500 + 60)
    assert [(x["router_id"], x["packets"], x["bytes"]) for x in got["routers"]] == [(r1, 23, 2300), (r2, 1, 60)]
    metrics = admin.get("/metrics").text
    assert f'fermion_metering_label_bytes_total{{label_id="{lab["id"]}",router_id="{r1}"}} 2300.0' in metrics
    assert f'fermion_metering_label_packets_total{{label_id="{lab["id"]}",router_id="{r2}"}} 1.0' in metrics
    admin.delete(f"{LABELS}/{lab['id']}")
    assert lab["id"] not in admin.get("/metrics").text
