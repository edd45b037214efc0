"""Behaviours the upstream API tests (tempest, neutron-tempest-plugin) found different from Neutron's
(issue 15, point 0): each test here failed before the fix it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.neutron import assert_fault, ids

MISSING = "6a1c4d9e-8f0b-4a52-9d3e-1f2a3b4c5d6e"


def group(api: Api, **attrs: Any) -> dict[str, Any]:
    r = api.post("/v2.0/security-groups", json={"security_group": attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group"])


def rule(api: Api, **attrs: Any) -> dict[str, Any]:
    r = api.post("/v2.0/security-group-rules", json={"security_group_rule": attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group_rule"])


@pytest.fixture
def alice(api: Api) -> Api:
    return api.as_("alice", "member")


@pytest.fixture
def ext(api: Api) -> dict[str, Any]:
    net = api.network(name="public", **{"router:external": True})
    sub = api.subnet(net["id"], "198.18.100.0/24")
    return {"network": net, "subnet": sub}


# ---------------------------------------------------------------- quotas
def test_quota_update_accepts_force_and_check_limit(api: Api, alice: Api) -> None:
    alice.network(name="a")
    alice.network(name="b")
    r = api.put("/v2.0/quotas/alice", json={"quota": {"network": 1, "force": True}})
    assert r.status_code == 200, r.text
    assert r.json()["quota"]["network"] == 1 and "force" not in r.json()["quota"]
    # check_limit: a limit below what is used is refused, naming both
    err = assert_fault(api.put("/v2.0/quotas/alice", json={"quota": {"network": 1, "check_limit": True}}), 400)
    assert "must be greater than or equal to already used 2" in err["message"]
    r = api.put("/v2.0/quotas/alice", json={"quota": {"network": 2, "check_limit": True}})
    assert r.status_code == 200 and r.json()["quota"]["network"] == 2, r.text
    assert_fault(api.put("/v2.0/quotas/alice", json={"quota": {"network": 3, "force": "maybe"}}), 400)
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert "quota-check-limit" in aliases


def test_every_quota_default_is_configurable(tmp_path: Path) -> None:
    limits = {"network": 7, "subnet": 8, "port": 9, "router": 3, "floatingip": 4, "security_group": 5,
              "security_group_rule": 60}
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"quotas": limits}) as client:
        api = Api(client, "admin-project", "admin")
        quota = api.get("/v2.0/quotas/p1").json()["quota"]
        assert {k: quota[k] for k in limits} == limits
        alice = api.as_("alice", "member")
        for i in range(3):
            alice.create("routers", name=f"r{i}")
        assert_fault(alice.post("/v2.0/routers", json={"router": {"name": "r3"}}), 409, "OverQuota")


# ---------------------------------------------------------------- subnets, networks, MTU
def test_subnets_filter_by_their_networks_shared(api: Api) -> None:
    shared = api.network(name="s", shared=True)
    private = api.network(name="p")
    s1 = api.subnet(shared["id"], "10.1.0.0/24")
    s2 = api.subnet(private["id"], "10.2.0.0/24")
    assert ids(api.get("/v2.0/subnets?shared=true"), "subnets") == [s1["id"]]
    assert ids(api.get("/v2.0/subnets?shared=False"), "subnets") == [s2["id"]]
    assert "shared" not in s1  # a filter only, as Neutron
    assert_fault(api.post("/v2.0/subnets", json={"subnet": {"network_id": shared["id"], "cidr": "10.3.0.0/24",
                                                            "ip_version": 4, "shared": True}}), 400)


def test_mtu_minimums_are_the_subnets(api: Api) -> None:
    tiny = api.network(name="tiny", mtu=67)
    assert tiny["mtu"] == 67
    assert api.network(name="zero", mtu=0)["mtu"] == 0
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": tiny["id"], "cidr": "10.0.0.0/24",
                                                    "ip_version": 4}})
    err = assert_fault(r, 409, "NetworkMTUSubnetConflict")
    assert err["message"] == f"MTU of {tiny['id']} is not valid, subnet requires a minimum of 68"
    small = api.network(name="small", mtu=1279)
    api.subnet(small["id"], "10.0.0.0/24")  # IPv4 is fine with 1279
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": small["id"], "cidr": "2001:db8::/64",
                                                    "ip_version": 6}})
    assert_fault(r, 409, "NetworkMTUSubnetConflict")
    # lowering the MTU below what the subnets need is refused too; above it is fine
    v6 = api.network(name="v6", mtu=1400)
    api.subnet(v6["id"], "2001:db8::/64")
    err = assert_fault(api.put(f"/v2.0/networks/{v6['id']}", json={"network": {"mtu": 1279}}), 409,
                       "NetworkMTUSubnetConflict")
    assert err["message"].endswith("subnet requires a minimum of 1280")
    assert api.put(f"/v2.0/networks/{v6['id']}", json={"network": {"mtu": 1280}}).json()["network"]["mtu"] == 1280
    assert_fault(api.put(f"/v2.0/networks/{small['id']}", json={"network": {"mtu": 67}}), 409)


def test_revisions_start_at_one_and_subnets_bump_their_network(api: Api, ext: dict[str, Any]) -> None:
    net = api.network(name="n")
    assert net["revision_number"] == 1
    sub = api.subnet(net["id"], "10.0.0.0/24")
    assert sub["revision_number"] == 1
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"] == 2
    port = api.port(net["id"])
    assert port["revision_number"] == 1
    assert api.create("routers", name="r")["revision_number"] == 1
    assert api.create("floatingips", floating_network_id=ext["network"]["id"])["revision_number"] == 1
    sg = group(api, name="g")
    assert sg["revision_number"] == 1
    assert all(rule["revision_number"] == 1 for rule in sg["security_group_rules"])
    made = rule(api, security_group_id=sg["id"], direction="ingress")
    assert made["revision_number"] == 1
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"] == 3


def test_a_stale_if_match_is_always_412(api: Api, ext: dict[str, Any]) -> None:
    stale = {"If-Match": "revision_number=0"}  # what a client's "current - 1" is for a new resource
    net = api.network(name="n")
    sub = api.subnet(net["id"], "10.0.0.0/24")
    port = api.port(net["id"])
    router = api.create("routers", name="r")
    fip = api.create("floatingips", floating_network_id=ext["network"]["id"])
    sg = group(api, name="g")
    cases = [("networks", net), ("subnets", sub), ("ports", port), ("routers", router), ("floatingips", fip),
             ("security-groups", sg)]
    for path, item in cases:
        member = path.replace("-", "_")[:-1]
        for body in ({member: {}}, {member: {"description": "changed"}}):
            assert_fault(api.put(f"/v2.0/{path}/{item['id']}", json=body, headers=stale), 412,
                         "RevisionNumberConstraintFailed")
        assert_fault(api.delete(f"/v2.0/{path}/{item['id']}", headers=stale), 412, "RevisionNumberConstraintFailed")
    made = rule(api, security_group_id=sg["id"], direction="ingress")
    assert_fault(api.delete(f"/v2.0/security-group-rules/{made['id']}", headers=stale), 412)
    # a negative revision is a constraint no resource meets; the stale revision is said before "in use"
    for header in ("revision_number=-1", "revision_number=+0"):
        assert_fault(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "x"}},
                             headers={"If-Match": header}), 412)
    assert_fault(api.delete(f"/v2.0/networks/{net['id']}", headers=stale), 412)
    revision = api.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"]
    current = {"If-Match": f"revision_number={revision}"}
    assert_fault(api.delete(f"/v2.0/networks/{net['id']}", headers=current), 409, "NetworkInUse")


# ---------------------------------------------------------------- routers
def test_router_routes_null_means_none(alice: Api) -> None:
    router = alice.create("routers", name="r")
    r = alice.put(f"/v2.0/routers/{router['id']}", json={"router": {"routes": None}})
    assert r.status_code == 200, r.text
    assert r.json()["router"]["routes"] == []


# ---------------------------------------------------------------- security groups
def test_rule_with_a_missing_remote_group_is_404(alice: Api) -> None:
    sg = group(alice, name="g")
    for remote in (MISSING, "not-a-group"):
        r = alice.post("/v2.0/security-group-rules", json={"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "remote_group_id": remote}})
        assert_fault(r, 404, "SecurityGroupNotFound")


@pytest.mark.parametrize(("protocol", "lo", "hi", "message"), [
    ("tcp", -16, 80, "Invalid value for port -16"),
    ("tcp", 80, 79, "port_range_min must be <= port_range_max"),
    ("tcp", 80, 65536, "Invalid value for port 65536"),
    ("tcp", None, 6, "port_range_min must be <= port_range_max"),
    ("tcp", "x", 6, "Invalid value for port x"),
    ("icmp", 1, 256, "Invalid value for ICMP code (port_range_max) 256"),
    ("icmp", -1, 25, "Invalid value for port -1"),
    ("icmp", None, 6, "ICMP type (port-range-min) is missing"),
    ("icmp", 300, 1, "Invalid value for ICMP type (port_range_min) 300"),
])
def test_rule_port_range_messages(alice: Api, protocol: str, lo: Any, hi: Any, message: str) -> None:
    sg = group(alice, name="g")
    r = alice.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": protocol, "port_range_min": lo,
        "port_range_max": hi}})
    assert message in assert_fault(r, 400)["message"]


def test_a_port_cannot_mix_stateful_and_stateless_groups(alice: Api) -> None:
    net = alice.network(name="n")
    stateful = group(alice, name="on")
    stateless = group(alice, name="off", stateful=False)
    r = alice.post("/v2.0/ports", json={"port": {"network_id": net["id"],
                                                 "security_groups": [stateful["id"], stateless["id"]]}})
    assert "stateful and stateless" in assert_fault(r, 409, "SecurityGroupConflict")["message"]
    port = alice.port(net["id"], security_groups=[stateless["id"]])
    r = alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"security_groups": [stateful["id"],
                                                                                   stateless["id"]]}})
    assert_fault(r, 409, "SecurityGroupConflict")
    r = alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"security_groups": [stateful["id"]]}})
    assert r.status_code == 200 and r.json()["port"]["security_groups"] == [stateful["id"]], r.text


def test_bulk_create_takes_wrapped_items(alice: Api) -> None:
    r = alice.post("/v2.0/security-groups", json={"security_groups": [
        {"security_group": {"name": "one"}}, {"security_group": {"name": "two", "stateful": False}}]})
    assert r.status_code == 201, r.text
    assert [(g["name"], g["stateful"]) for g in r.json()["security_groups"]] == [("one", True), ("two", False)]
    r = alice.post("/v2.0/networks", json={"networks": [{"network": {"name": "a"}}, {"name": "b"}]})
    assert r.status_code == 201, r.text
    assert [n["name"] for n in r.json()["networks"]] == ["a", "b"]


def test_listing_groups_of_a_project_creates_its_default_group(api: Api, alice: Api) -> None:
    groups = api.get("/v2.0/security-groups?project_id=bob").json()["security_groups"]
    assert [(g["name"], g["project_id"]) for g in groups] == [("default", "bob")]
    groups = alice.get("/v2.0/security-groups?project_id=alice").json()["security_groups"]
    assert [(g["name"], g["project_id"]) for g in groups] == [("default", "alice")]
    # a project filtering by another creates nothing for it
    assert alice.get("/v2.0/security-groups?project_id=carol").json()["security_groups"] == []
    assert api.get("/v2.0/security-groups?project_id=carol&name=default").json()["security_groups"] != []


# ---------------------------------------------------------------- pagination
def test_a_full_page_always_has_a_next_link(api: Api) -> None:
    for i in range(4):
        api.network(name=f"n{i}")
    seen, path, pages = [], "/v2.0/networks?limit=2", 0
    while True:
        body = api.get(path).json()
        pages += 1
        links = {link["rel"]: link["href"] for link in body.get("networks_links", [])}
        if not body["networks"]:
            assert "next" not in links
            break
        seen += [n["id"] for n in body["networks"]]
        assert "next" in links  # both pages are full: the client learns the end from an empty page
        path = links["next"].split("://", 1)[1].split("/", 1)[1]
        path = "/" + path
    assert pages == 3 and len(seen) == len(set(seen)) == 4


# ---------------------------------------------------------------- floating IPs
@pytest.fixture
def wired(alice: Api, ext: dict[str, Any]) -> dict[str, Any]:
    router = alice.create("routers", name="r", external_gateway_info={"network_id": ext["network"]["id"]})
    net = alice.network(name="n")
    sub = alice.subnet(net["id"], "10.1.0.0/24")
    assert alice.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                     json={"subnet_id": sub["id"]}).status_code == 200
    return {"network": net, "ext": ext, "router": router}


@pytest.mark.parametrize("body", [{}, {"port_id": None}])
def test_an_empty_floating_ip_update_disassociates(alice: Api, wired: dict[str, Any], body: Any) -> None:
    vm = alice.port(wired["network"]["id"], device_owner="compute:nova")
    fip = alice.create("floatingips", floating_network_id=wired["ext"]["network"]["id"], port_id=vm["id"])
    assert fip["port_id"] == vm["id"]
    r = alice.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": body})
    assert r.status_code == 200, r.text
    assert (r.json()["floatingip"]["port_id"], r.json()["floatingip"]["fixed_ip_address"]) == (None, None)
    # a description-only update keeps the association
    alice.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": vm["id"]}})
    r = alice.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"description": "d"}})
    assert r.json()["floatingip"]["port_id"] == vm["id"]


def test_floating_ip_with_another_projects_port_is_400(api: Api, alice: Api, wired: dict[str, Any]) -> None:
    theirs = api.port(wired["network"]["id"], project_id="bob", device_owner="compute:nova")
    fip = alice.create("floatingips", floating_network_id=wired["ext"]["network"]["id"])
    r = alice.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": theirs["id"]}})
    assert "owned by a different tenant" in assert_fault(r, 400, "BadRequest")["message"]
    # a port it cannot see at all is still not found
    hidden_net = api.network(name="hidden", project_id="bob")
    hidden = api.port(hidden_net["id"], project_id="bob")
    r = alice.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": hidden["id"]}})
    assert_fault(r, 404, "PortNotFound")


def test_a_port_for_another_project_needs_admin(api: Api, alice: Api) -> None:
    hidden = api.network(name="hidden", project_id="bob")
    mine = alice.network(name="mine")
    for net in (hidden, mine):
        r = alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "project_id": "bob"}})
        err = assert_fault(r, 400, "HTTPBadRequest")
        assert err["message"] == ("Specifying 'project_id' or 'tenant_id' other than the authenticated project "
                                  "in request requires admin privileges")
    assert_fault(alice.post("/v2.0/networks", json={"network": {"tenant_id": "bob"}}), 400, "HTTPBadRequest")
    assert alice.post("/v2.0/networks", json={"network": {"project_id": "alice"}}).status_code == 201


def test_deleting_an_external_network_deletes_its_idle_floating_ips(api: Api, alice: Api,
                                                                    wired: dict[str, Any]) -> None:
    ext_id = wired["ext"]["network"]["id"]
    idle = alice.create("floatingips", floating_network_id=ext_id)
    vm = alice.port(wired["network"]["id"], device_owner="compute:nova")
    used = alice.create("floatingips", floating_network_id=ext_id, port_id=vm["id"])
    # still in use: the router's gateway and an associated floating IP; nothing is deleted
    assert_fault(api.delete(f"/v2.0/networks/{ext_id}"), 409, "NetworkInUse")
    assert api.get(f"/v2.0/floatingips/{idle['id']}").status_code == 200
    assert alice.put(f"/v2.0/floatingips/{used['id']}", json={"floatingip": {"port_id": None}}).status_code == 200
    r = alice.put(f"/v2.0/routers/{wired['router']['id']}", json={"router": {"external_gateway_info": None}})
    assert r.status_code == 200, r.text
    r = api.delete(f"/v2.0/networks/{ext_id}")
    assert r.status_code == 204, (r.text, api.get(f"/v2.0/ports?network_id={ext_id}").json())
    assert ids(api.get("/v2.0/floatingips"), "floatingips") == []
    assert api.get("/v2.0/quotas/alice/details").json()["quota"]["floatingip"]["used"] == 0


# ---------------------------------------------------------------- IPv6 auto-address subnets
@pytest.mark.parametrize("mode", ["slaac", "dhcpv6-stateless"])
def test_deleting_an_auto_address_subnet_takes_its_addresses(alice: Api, mode: str) -> None:
    net = alice.network(name="n")
    v4 = alice.subnet(net["id"], "10.0.0.0/24")
    v6 = alice.subnet(net["id"], "2001:db8::/64", ipv6_address_mode=mode, ipv6_ra_mode=mode)
    port = alice.port(net["id"])
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {v4["id"], v6["id"]}
    assert alice.delete(f"/v2.0/subnets/{v6['id']}").status_code == 204
    after = alice.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert [f["subnet_id"] for f in after["fixed_ips"]] == [v4["id"]]
    assert after["revision_number"] > port["revision_number"]
    # a stateful (DHCPv6) subnet with ports is still in use
    v6s = alice.subnet(net["id"], "2001:db8:1::/64", ipv6_address_mode="dhcpv6-stateful",
                       ipv6_ra_mode="dhcpv6-stateful")
    alice.port(net["id"])
    assert_fault(alice.delete(f"/v2.0/subnets/{v6s['id']}"), 409, "SubnetInUse")


def test_an_auto_address_subnet_with_a_router_interface_is_in_use(alice: Api) -> None:
    net = alice.network(name="n")
    v6 = alice.subnet(net["id"], "2001:db8::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    router = alice.create("routers", name="r")
    assert alice.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                     json={"subnet_id": v6["id"]}).status_code == 200
    assert_fault(alice.delete(f"/v2.0/subnets/{v6['id']}"), 409, "SubnetInUse")


# ---------------------------------------------------------------- agents
def test_agents_for_a_non_admin(alice: Api) -> None:
    r = alice.get("/v2.0/agents")
    assert r.status_code == 200 and r.json() == {"agents": []}, r.text
    assert_fault(alice.get(f"/v2.0/agents/{MISSING}"), 404)
