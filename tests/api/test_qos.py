"""QoS (qos, qos-bw-limit-direction, qos-default, qos-rule-type-details, qos-fip, qos-gateway-ip): policies,
their rules, rule types, and the policy of ports, networks, floating IPs and router gateways."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

POLICIES = "/v2.0/qos/policies"


def policy(who: Api, **attrs: Any) -> dict[str, Any]:
    r = who.post(POLICIES, json={"policy": {"name": "p", **attrs}})
    assert r.status_code == 201, r.text
    return dict(r.json()["policy"])


def rule(who: Api, policy_id: str, kind: str, **attrs: Any) -> Any:
    return who.post(f"{POLICIES}/{policy_id}/{kind}_rules", json={f"{kind}_rule": attrs})


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"qos", "qos-bw-limit-direction", "qos-default", "qos-rule-type-details", "qos-fip",
            "qos-gateway-ip"} <= aliases


def test_policy_lifecycle_with_rules(admin: Api) -> None:
    p = policy(admin, description="gold")
    assert p["rules"] == [] and p["shared"] is False and p["is_default"] is False
    assert p["revision_number"] == 1 and p["project_id"] == "admin-project"
    bw = rule(admin, p["id"], "bandwidth_limit", max_kbps=20000, max_burst_kbps=2000)
    assert bw.status_code == 201, bw.text
    assert bw.json()["bandwidth_limit_rule"] == {"id": bw.json()["bandwidth_limit_rule"]["id"], "max_kbps": 20000,
                                                 "max_burst_kbps": 2000, "direction": "egress"}
    bw_in = rule(admin, p["id"], "bandwidth_limit", max_kbps=10000, direction="ingress").json()["bandwidth_limit_rule"]
    assert bw_in["max_burst_kbps"] == 0
    dscp = rule(admin, p["id"], "dscp_marking", dscp_mark=26).json()["dscp_marking_rule"]
    shown = admin.get(f"{POLICIES}/{p['id']}").json()["policy"]
    assert sorted((r["type"], r.get("direction")) for r in shown["rules"]) == [
        ("bandwidth_limit", "egress"), ("bandwidth_limit", "ingress"), ("dscp_marking", None)]
    assert all(r["qos_policy_id"] == p["id"] for r in shown["rules"])
    assert shown["revision_number"] == 4  # every rule change is a new revision of the policy
    r = admin.put(f"{POLICIES}/{p['id']}/bandwidth_limit_rules/{bw_in['id']}",
                  json={"bandwidth_limit_rule": {"max_kbps": 5000}})
    assert r.status_code == 200 and r.json()["bandwidth_limit_rule"]["max_kbps"] == 5000
    assert ids(admin.get(f"{POLICIES}/{p['id']}/bandwidth_limit_rules"), "bandwidth_limit_rules") == sorted(
        [bw.json()["bandwidth_limit_rule"]["id"], bw_in["id"]])
    assert admin.delete(f"{POLICIES}/{p['id']}/dscp_marking_rules/{dscp['id']}").status_code == 204
    assert_fault(admin.get(f"{POLICIES}/{p['id']}/dscp_marking_rules/{dscp['id']}"), 404, "QosRuleNotFound")
    assert admin.delete(f"{POLICIES}/{p['id']}").status_code == 204  # with its rules
    assert_fault(admin.get(f"{POLICIES}/{p['id']}"), 404, "QosPolicyNotFound")


def test_rule_conflicts_and_validation(admin: Api) -> None:
    p = policy(admin)
    assert rule(admin, p["id"], "bandwidth_limit", max_kbps=1000).status_code == 201
    assert_fault(rule(admin, p["id"], "bandwidth_limit", max_kbps=2000), 409, "QoSRulesConflict")
    assert rule(admin, p["id"], "dscp_marking", dscp_mark=10).status_code == 201
    assert_fault(rule(admin, p["id"], "dscp_marking", dscp_mark=12), 409, "QoSRulesConflict")
    assert_fault(rule(admin, p["id"], "dscp_marking", dscp_mark=58), 400)
    assert_fault(rule(admin, p["id"], "bandwidth_limit", max_kbps=-1, direction="ingress"), 400)
    assert_fault(rule(admin, p["id"], "bandwidth_limit", max_kbps=1, direction="sideways"), 400)
    # a minimum above the limit of its direction is refused, and the limit cannot go under a minimum
    assert_fault(rule(admin, p["id"], "minimum_bandwidth", min_kbps=5000), 409, "QoSRuleParameterConflict")
    assert rule(admin, p["id"], "minimum_bandwidth", min_kbps=500).status_code == 201
    assert_fault(rule(admin, p["id"], "minimum_bandwidth", min_kbps=100, direction="ingress"), 400)
    limit = admin.get(f"{POLICIES}/{p['id']}/bandwidth_limit_rules").json()["bandwidth_limit_rules"][0]
    assert_fault(admin.put(f"{POLICIES}/{p['id']}/bandwidth_limit_rules/{limit['id']}",
                           json={"bandwidth_limit_rule": {"max_kbps": 100}}), 409, "QoSRuleParameterConflict")
    # rule types this backend cannot enforce: a clear 400
    r = admin.post(f"{POLICIES}/{p['id']}/packet_rate_limit_rules", json={"packet_rate_limit_rule": {"max_kpps": 1}})
    assert "not supported" in assert_fault(r, 400, "QosRuleNotSupported")["message"]
    assert_fault(rule(admin, "00000000-0000-0000-0000-000000000000", "dscp_marking", dscp_mark=10), 404,
                 "QosPolicyNotFound")


def test_rule_types_and_details(admin: Api, alice: Api) -> None:
    types = admin.get("/v2.0/qos/rule-types").json()["rule_types"]
    assert types == [{"type": "bandwidth_limit"}, {"type": "dscp_marking"}, {"type": "minimum_bandwidth"}]
    assert alice.get("/v2.0/qos/rule-types").json()["rule_types"] == []  # get_rule_type is the admin's
    assert_fault(alice.get("/v2.0/qos/rule-types/bandwidth_limit"), 403)
    details = admin.get("/v2.0/qos/rule-types/bandwidth_limit").json()["rule_type"]
    assert details["type"] == "bandwidth_limit"
    params = {p["parameter_name"]: p for p in details["drivers"][0]["supported_parameters"]}
    assert params["direction"]["parameter_values"] == ["egress", "ingress"]
    assert params["max_kbps"]["parameter_type"] == "range"
    assert_fault(admin.get("/v2.0/qos/rule-types/packet_rate_limit"), 404)


def test_regular_projects_read_but_do_not_write(admin: Api, alice: Api, bob: Api) -> None:
    assert_fault(alice.post(POLICIES, json={"policy": {"name": "mine"}}), 403)
    own = policy(admin, project_id="alice")
    shared = policy(admin, shared=True)
    private = policy(admin)
    seen = set(ids(alice.get(POLICIES), "policies"))
    assert {own["id"], shared["id"]} <= seen and private["id"] not in seen
    assert alice.get(f"{POLICIES}/{shared['id']}").json()["policy"]["shared"] is True
    assert_fault(alice.get(f"{POLICIES}/{private['id']}"), 404)
    assert_fault(alice.put(f"{POLICIES}/{own['id']}", json={"policy": {"name": "x"}}), 403)
    assert_fault(rule(alice, own["id"], "dscp_marking", dscp_mark=8), 403)
    assert rule(admin, shared["id"], "dscp_marking", dscp_mark=8).status_code == 201
    assert len(alice.get(f"{POLICIES}/{shared['id']}/dscp_marking_rules").json()["dscp_marking_rules"]) == 1
    assert ids(alice.get(POLICIES, params={"shared": "true"}), "policies") == [shared["id"]]
    assert shared["id"] not in ids(bob.get(POLICIES, params={"shared": "false"}), "policies")


def test_ports_and_networks_take_usable_policies_only(admin: Api, alice: Api) -> None:
    shared = policy(admin, shared=True)
    private = policy(admin)
    net = alice.network()
    assert net["qos_policy_id"] is None
    assert_fault(alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": private["id"]}}), 404,
                 "QosPolicyNotFound")
    r = alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": shared["id"]}})
    assert r.status_code == 200 and r.json()["network"]["qos_policy_id"] == shared["id"]
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "qos_policy_id": private["id"]}}),
                 404, "QosPolicyNotFound")
    port = alice.create("ports", network_id=net["id"], qos_policy_id=shared["id"])
    assert port["qos_policy_id"] == shared["id"]
    assert ids(alice.get("/v2.0/ports", params={"qos_policy_id": shared["id"]}), "ports") == [port["id"]]
    # in use: the policy cannot go, nor stop being shared with the project that uses it
    assert_fault(admin.delete(f"{POLICIES}/{shared['id']}"), 409, "QosPolicyInUse")
    assert_fault(admin.put(f"{POLICIES}/{shared['id']}", json={"policy": {"shared": False}}), 409, "RbacPolicyInUse")
    assert alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"qos_policy_id": None}}).status_code == 200
    assert alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": None}}).status_code == 200
    assert admin.put(f"{POLICIES}/{shared['id']}", json={"policy": {"shared": False}}).status_code == 200
    assert admin.delete(f"{POLICIES}/{shared['id']}").status_code == 204


def test_rbac_shares_a_policy_with_one_project(admin: Api, alice: Api, bob: Api) -> None:
    p = policy(admin)
    r = admin.post("/v2.0/rbac-policies", json={"rbac_policy": {
        "object_type": "qos_policy", "object_id": p["id"], "action": "access_as_shared", "target_tenant": "alice"}})
    assert r.status_code == 201, r.text
    grant = r.json()["rbac_policy"]
    assert alice.get(f"{POLICIES}/{p['id']}").json()["policy"]["shared"] is True
    assert_fault(bob.get(f"{POLICIES}/{p['id']}"), 404)
    net = alice.network(qos_policy_id=p["id"])
    assert_fault(admin.delete(f"/v2.0/rbac-policies/{grant['id']}"), 409, "RbacPolicyInUse")
    alice.delete(f"/v2.0/networks/{net['id']}")
    assert admin.delete(f"/v2.0/rbac-policies/{grant['id']}").status_code == 204
    assert_fault(alice.get(f"{POLICIES}/{p['id']}"), 404)


def test_default_policy_per_project(admin: Api, alice: Api) -> None:
    default = policy(admin, project_id="alice", is_default=True)
    assert default["is_default"] is True
    assert_fault(admin.post(POLICIES, json={"policy": {"name": "d2", "project_id": "alice", "is_default": True}}),
                 409, "QoSPolicyDefaultAlreadyExists")
    other = policy(admin, project_id="alice")
    assert alice.network()["qos_policy_id"] == default["id"]
    assert alice.network(qos_policy_id=other["id"])["qos_policy_id"] == other["id"]
    assert ids(admin.get(POLICIES, params={"is_default": "true"}), "policies") == [default["id"]]
    assert admin.put(f"{POLICIES}/{default['id']}", json={"policy": {"is_default": False}}).status_code == 200
    assert alice.network()["qos_policy_id"] is None


def test_floating_ip_and_gateway_policies(admin: Api) -> None:
    p = policy(admin, shared=True)
    ext = admin.network(**{"router:external": True})
    admin.subnet(ext["id"], "198.18.50.0/24")
    router = admin.create("routers", external_gateway_info={"network_id": ext["id"], "qos_policy_id": p["id"]})
    assert router["external_gateway_info"]["qos_policy_id"] == p["id"]
    r = admin.put(f"/v2.0/routers/{router['id']}", json={"router": {"external_gateway_info": {
        "network_id": ext["id"], "enable_snat": False}}})
    assert r.json()["router"]["external_gateway_info"]["qos_policy_id"] == p["id"]  # kept when not named
    r = admin.put(f"/v2.0/routers/{router['id']}", json={"router": {"external_gateway_info": {
        "network_id": ext["id"], "qos_policy_id": None}}})
    assert r.json()["router"]["external_gateway_info"]["qos_policy_id"] is None
    fip = admin.create("floatingips", floating_network_id=ext["id"], qos_policy_id=p["id"])
    assert fip["qos_policy_id"] == p["id"]
    assert_fault(admin.delete(f"{POLICIES}/{p['id']}"), 409, "QosPolicyInUse")
    r = admin.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"qos_policy_id": None}})
    assert r.status_code == 200 and r.json()["floatingip"]["qos_policy_id"] is None
    assert_fault(admin.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
        "qos_policy_id": "00000000-0000-0000-0000-000000000000"}}), 404, "QosPolicyNotFound")
    assert admin.delete(f"{POLICIES}/{p['id']}").status_code == 204


def test_policies_page_sort_and_tag(admin: Api) -> None:
    made = [policy(admin, name=f"p{i}")["id"] for i in range(3)]
    r = admin.get(POLICIES, params={"limit": 2, "sort_key": "name", "sort_dir": "desc"})
    body = r.json()
    assert [p["name"] for p in body["policies"]] == ["p2", "p1"] and body["policies_links"]
    assert "/v2.0/qos/policies?" in body["policies_links"][0]["href"]
    assert admin.put(f"{POLICIES}/{made[0]}/tags/gold").status_code == 201
    assert ids(admin.get(POLICIES, params={"tags": "gold"}), "policies") == [made[0]]
    assert admin.get("/v2.0/policies").status_code == 404


def test_tags_on_neutrons_policies_path(admin: Api) -> None:
    """Neutron's tagging extension names QoS policies `policies` at the top: /v2.0/policies/{id}/tags."""
    p = policy(admin)
    assert admin.put(f"/v2.0/policies/{p['id']}/tags/gold").status_code == 201
    r = admin.put(f"/v2.0/policies/{p['id']}/tags", json={"tags": ["red", "blue"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["blue", "red"]
    assert sorted(admin.get(f"/v2.0/policies/{p['id']}/tags").json()["tags"]) == ["blue", "red"]
    assert admin.get(f"/v2.0/policies/{p['id']}/tags/red").status_code == 204
    found = admin.get(POLICIES, params={"tags": "red"}).json()["policies"]
    assert [x["id"] for x in found] == [p["id"]]
    assert admin.delete(f"/v2.0/policies/{p['id']}/tags").status_code == 204
    assert admin.get(f"{POLICIES}/{p['id']}").json()["policy"]["tags"] == []
    assert_fault(admin.get("/v2.0/policies"), 404)
