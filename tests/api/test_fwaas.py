"""FWaaS v2 (fwaas_v2) as a Neutron user sees it: rules, policies with ordered rules (insert/remove_rule,
audited), groups on router ports, the project's default group, neutron-fwaas's errors and policy, and the
statuses the L3 agent reports (played here through the RPC endpoints)."""

from __future__ import annotations

from typing import Any

from fermion.rpc.contracts import FirewallReport, FirewallStatus, encode
from tests.api.test_floatingip_status import topology
from tests.api.test_l3_ha import l3_agent, l3_view
from tests.conftest import Api
from tests.support.neutron import assert_fault

FW = "/v2.0/fwaas"
MEMBERS = {"firewall_rules": "firewall_rule", "firewall_policies": "firewall_policy",
           "firewall_groups": "firewall_group"}
MISSING = "00000000-0000-4000-8000-000000000000"


def make(who: Api, collection: str, **attrs: Any) -> dict[str, Any]:
    r = who.post(f"{FW}/{collection}", json={MEMBERS[collection]: attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()[MEMBERS[collection]])


def show(who: Api, collection: str, ident: str) -> dict[str, Any]:
    r = who.get(f"{FW}/{collection}/{ident}")
    assert r.status_code == 200, r.text
    return dict(r.json()[MEMBERS[collection]])


def edit(who: Api, collection: str, ident: str, **attrs: Any) -> Any:
    return who.put(f"{FW}/{collection}/{ident}", json={MEMBERS[collection]: attrs})


def test_rule_defaults_ranges_and_validation(tenant: Api) -> None:
    rule = make(tenant, "firewall_rules", protocol="TCP", destination_port="8000:8080", source_port=22)
    assert {k: rule[k] for k in ("protocol", "ip_version", "action", "enabled", "shared", "source_port",
                                 "destination_port", "firewall_policy_id", "source_ip_address")} == {
        "protocol": "tcp", "ip_version": 4, "action": "deny", "enabled": True, "shared": False,
        "source_port": "22", "destination_port": "8000:8080", "firewall_policy_id": None, "source_ip_address": None}
    assert {"tags", "revision_number", "created_at", "tenant_id"} <= set(rule)
    cases = [({"protocol": "icmp", "destination_port": "80"}, "FirewallRuleInvalidICMPParameter"),
             ({"destination_port": "80"}, "FirewallRuleWithPortWithoutProtocolInvalid"),
             ({"protocol": "tcp", "destination_port": "90:80"}, "FirewallRuleInvalidPortValue"),
             ({"ip_version": 6, "source_ip_address": "10.0.0.0/8"}, "FirewallIpAddressConflict")]
    for body, kind in cases:
        assert_fault(tenant.post(f"{FW}/firewall_rules", json={"firewall_rule": body}), 400, kind)
    assert_fault(tenant.post(f"{FW}/firewall_rules", json={"firewall_rule": {"action": "drop"}}), 400)
    assert_fault(tenant.post(f"{FW}/firewall_rules", json={"firewall_rule": {"shared": True}}), 403,
                 "PolicyNotAuthorized")
    # an update is checked merged with what the rule has
    assert_fault(edit(tenant, "firewall_rules", rule["id"], protocol="icmp"), 400, "FirewallRuleInvalidICMPParameter")
    r = edit(tenant, "firewall_rules", rule["id"], destination_port=None, source_port=None, protocol="icmp")
    assert r.status_code == 200 and r.json()["firewall_rule"]["protocol"] == "icmp"


def test_policy_rules_are_ordered_and_audited_resets(tenant: Api) -> None:
    a, b, c = (make(tenant, "firewall_rules", name=n, protocol="tcp", action="allow") for n in "abc")
    policy = make(tenant, "firewall_policies", name="p", firewall_rules=[a["id"]], audited=True)
    assert policy["firewall_rules"] == [a["id"]] and policy["audited"] is True
    url = f"{FW}/firewall_policies/{policy['id']}"
    r = tenant.put(f"{url}/insert_rule", json={"firewall_rule_id": b["id"]})  # no reference: first
    assert r.status_code == 200, r.text
    assert r.json()["firewall_rules"] == [b["id"], a["id"]] and r.json()["audited"] is False  # unwrapped
    r = tenant.put(f"{url}/insert_rule", json={"firewall_rule_id": c["id"], "insert_after": b["id"]})
    assert r.json()["firewall_rules"] == [b["id"], c["id"], a["id"]]
    assert show(tenant, "firewall_rules", c["id"])["firewall_policy_id"] == [policy["id"]]
    assert_fault(tenant.put(f"{url}/insert_rule", json={"firewall_rule_id": c["id"]}), 409,
                 "FirewallRuleAlreadyAssociated")
    assert_fault(tenant.put(f"{url}/insert_rule", json={}), 400, "FirewallRuleInfoMissing")
    assert_fault(tenant.put(f"{url}/insert_rule", json={"firewall_rule_id": MISSING}), 404, "FirewallRuleNotFound")
    d = make(tenant, "firewall_rules")
    assert_fault(tenant.put(f"{url}/insert_rule", json={"firewall_rule_id": d["id"], "insert_before": MISSING}),
                 400, "FirewallRuleNotAssociatedWithPolicy")
    r = tenant.put(f"{url}/remove_rule", json={"firewall_rule_id": b["id"]})
    assert r.status_code == 200 and r.json()["firewall_rules"] == [c["id"], a["id"]]
    assert_fault(tenant.put(f"{url}/remove_rule", json={"firewall_rule_id": d["id"]}), 400,
                 "FirewallRuleNotAssociatedWithPolicy")
    assert edit(tenant, "firewall_policies", policy["id"], audited=True).json()["firewall_policy"]["audited"] is True
    # changing a rule in the policy, or the policy itself, makes it unaudited
    edit(tenant, "firewall_rules", a["id"], name="renamed")
    assert show(tenant, "firewall_policies", policy["id"])["audited"] is False
    edit(tenant, "firewall_policies", policy["id"], audited=True)
    assert edit(tenant, "firewall_policies", policy["id"], name="q").json()["firewall_policy"]["audited"] is False
    assert_fault(tenant.delete(f"{FW}/firewall_rules/{a['id']}"), 409, "FirewallRuleInUse")
    r = edit(tenant, "firewall_policies", policy["id"], firewall_rules=[a["id"], b["id"]])
    assert r.json()["firewall_policy"]["firewall_rules"] == [a["id"], b["id"]]


def test_sharing_between_projects(admin: Api, alice: Api, bob: Api) -> None:
    shared_rule = make(admin, "firewall_rules", protocol="udp", shared=True)
    private_rule = make(admin, "firewall_rules")
    shared = make(admin, "firewall_policies", name="common", shared=True, firewall_rules=[shared_rule["id"]])
    assert show(alice, "firewall_policies", shared["id"])["shared"] is True
    assert_fault(alice.get(f"{FW}/firewall_rules/{private_rule['id']}"), 404, "FirewallRuleNotFound")
    assert_fault(admin.post(f"{FW}/firewall_policies", json={"firewall_policy": {
        "shared": True, "firewall_rules": [private_rule["id"]]}}), 404, "FirewallRuleSharingConflict")
    own = make(admin, "firewall_policies", firewall_rules=[private_rule["id"]])
    assert_fault(edit(admin, "firewall_policies", own["id"], shared=True), 409, "FirewallPolicySharingConflict")
    # alice may use the shared policy (and its shared rule) but not bob's private one
    group = make(alice, "firewall_groups", ingress_firewall_policy_id=shared["id"])
    assert group["status"] == "INACTIVE"
    bobs = make(bob, "firewall_policies")
    assert_fault(alice.post(f"{FW}/firewall_groups", json={"firewall_group": {
        "egress_firewall_policy_id": bobs["id"]}}), 404, "FirewallPolicyNotFound")
    alices = make(alice, "firewall_policies")
    assert_fault(alice.put(f"{FW}/firewall_policies/{alices['id']}/insert_rule", json={
        "firewall_rule_id": private_rule["id"]}), 404, "FirewallRuleNotFound")
    assert_fault(edit(admin, "firewall_policies", shared["id"], shared=False), 409, "FirewallPolicyInUse")
    assert_fault(admin.delete(f"{FW}/firewall_policies/{shared['id']}"), 409, "FirewallPolicyInUse")
    assert_fault(bob.delete(f"{FW}/firewall_groups/{group['id']}"), 404, "FirewallGroupNotFound")
    assert_fault(alice.put(f"{FW}/firewall_policies/{shared['id']}", json={"firewall_policy": {"name": "x"}}), 403)


def test_default_group_per_project(alice: Api, admin: Api) -> None:
    groups = alice.get(f"{FW}/firewall_groups").json()["firewall_groups"]
    assert [g["name"] for g in groups] == ["default"]
    default = groups[0]
    assert default["status"] == "INACTIVE" and default["ports"] == [] and default["project_id"] == "alice"
    ingress = show(alice, "firewall_policies", default["ingress_firewall_policy_id"])
    egress = show(alice, "firewall_policies", default["egress_firewall_policy_id"])
    assert (ingress["name"], egress["name"]) == ("default ingress", "default egress")
    rules = [show(alice, "firewall_rules", r) for r in ingress["firewall_rules"] + egress["firewall_rules"]]
    assert [(r["name"], r["action"], r["ip_version"]) for r in rules] == [
        ("default ingress ipv4", "deny", 4), ("default ingress ipv6", "deny", 6),
        ("default egress ipv4", "allow", 4), ("default egress ipv6", "allow", 6)]
    assert len(alice.get(f"{FW}/firewall_groups").json()["firewall_groups"]) == 1  # made once
    assert_fault(alice.post(f"{FW}/firewall_groups", json={"firewall_group": {"name": "default"}}), 409,
                 "FirewallDefaultParameterExists")
    assert_fault(alice.post(f"{FW}/firewall_policies", json={"firewall_policy": {"name": "default ingress"}}), 409,
                 "FirewallDefaultParameterExists")
    assert_fault(edit(alice, "firewall_groups", default["id"], description="x"), 409,
                 "FirewallDefaultObjectUpdateRestricted")
    assert_fault(edit(alice, "firewall_policies", ingress["id"], name="x"), 409,
                 "FirewallDefaultObjectUpdateRestricted")
    assert_fault(alice.delete(f"{FW}/firewall_groups/{default['id']}"), 409, "FirewallGroupCannotRemoveDefault")
    assert admin.delete(f"{FW}/firewall_groups/{default['id']}").status_code == 204  # with its policies
    assert_fault(alice.get(f"{FW}/firewall_policies/{ingress['id']}"), 404, "FirewallPolicyNotFound")


def test_groups_take_router_ports_of_their_project_once(admin: Api, tenant: Api, alice: Api) -> None:
    t = topology(admin, tenant)
    ports = tenant.get("/v2.0/ports", params={"device_id": t["router"]}).json()["ports"]
    qr = next(p["id"] for p in ports if p["device_owner"] == "network:router_interface")
    policy = make(tenant, "firewall_policies")
    group = make(tenant, "firewall_groups", ingress_firewall_policy_id=policy["id"], ports=[qr])
    assert group["status"] == "PENDING_CREATE" and group["ports"] == [qr]
    assert_fault(tenant.post(f"{FW}/firewall_groups", json={"firewall_group": {"ports": [qr]}}), 409,
                 "FirewallGroupPortInUse")
    assert_fault(tenant.post(f"{FW}/firewall_groups", json={"firewall_group": {"ports": [t["vm"]]}}), 409,
                 "FirewallGroupPortNotSupported")
    other = tenant.port(t["network"], device_owner="network:dhcp")
    assert_fault(tenant.post(f"{FW}/firewall_groups", json={"firewall_group": {"ports": [other["id"]]}}), 409,
                 "FirewallGroupPortInvalid")
    assert_fault(admin.post(f"{FW}/firewall_groups", json={"firewall_group": {"ports": [qr], "project_id": "x"}}),
                 409, "FirewallGroupPortInvalidProject")
    assert_fault(alice.post(f"{FW}/firewall_groups", json={"firewall_group": {"ports": [qr]}}), 404, "PortNotFound")
    assert_fault(tenant.delete(f"{FW}/firewall_groups/{group['id']}"), 409, "FirewallGroupInUse")
    # a group waiting for its agent refuses changes, as in Neutron
    assert_fault(edit(tenant, "firewall_groups", group["id"], name="x"), 409, "FirewallGroupInPendingState")


def test_statuses_come_from_the_l3_agent(client: Any, admin: Api, tenant: Api) -> None:
    l3_agent(client, "net1")
    t = topology(admin, tenant)
    qr = next(p["id"] for p in tenant.get("/v2.0/ports", params={"device_id": t["router"]}).json()["ports"]
              if p["device_owner"] == "network:router_interface")
    deny = make(tenant, "firewall_rules", protocol="tcp", destination_port="80", action="reject")
    off = make(tenant, "firewall_rules", protocol="udp", enabled=False)
    policy = make(tenant, "firewall_policies", firewall_rules=[deny["id"], off["id"]])
    group = make(tenant, "firewall_groups", ingress_firewall_policy_id=policy["id"], ports=[qr])
    seen = [g for r in l3_view(client, "net1").routers for g in r.firewall_groups]
    assert len(seen) == 1 and seen[0].id == group["id"] and seen[0].ports == [qr] and seen[0].egress is None
    assert [(r.action, r.protocol, r.destination_port) for r in seen[0].ingress or []] == [("reject", 6, "80")]

    def report(status: str, revision: int) -> None:
        client.app.transport.call("report_firewall_statuses", encode(FirewallReport(
            host="net1", statuses={group["id"]: FirewallStatus(revision=revision, status=status)})))

    report("ACTIVE", seen[0].revision)
    assert show(tenant, "firewall_groups", group["id"])["status"] == "ACTIVE"
    # a rule change puts it back to PENDING_UPDATE; a report from the older view changes nothing
    edit(tenant, "firewall_rules", deny["id"], destination_port="81")
    assert show(tenant, "firewall_groups", group["id"])["status"] == "PENDING_UPDATE"
    report("ACTIVE", seen[0].revision)
    assert show(tenant, "firewall_groups", group["id"])["status"] == "PENDING_UPDATE"
    fresh = [g for r in l3_view(client, "net1").routers for g in r.firewall_groups][0]
    assert fresh.ingress is not None and fresh.ingress[0].destination_port == "81"
    report("ACTIVE", fresh.revision)
    assert show(tenant, "firewall_groups", group["id"])["status"] == "ACTIVE"
    r = edit(tenant, "firewall_groups", group["id"], ports=[])
    assert r.json()["firewall_group"]["status"] == "INACTIVE"
    assert not [g for r in l3_view(client, "net1").routers for g in r.firewall_groups]
