import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.context import Context
from fermion.policy import BASE_RULES, Enforcer, PolicyNotAuthorized, PolicySyntaxError
from fermion.policy.predicates import FALSE, TRUE, Cred, Eq, Or

ADMIN = Context(project_id="p1", roles=frozenset({"admin", "member", "reader"}))
MEMBER = Context(project_id="p1", roles=frozenset({"member", "reader"}))
OTHER = Context(project_id="p2", roles=frozenset({"member", "reader"}))
READER = Context(project_id="p1", roles=frozenset({"reader"}))
SERVICE = Context(project_id="svc", roles=frozenset({"service"}))
NOBODY = Context(project_id="p3", roles=frozenset({"member"}))

OWN = Eq("project_id", Cred("project_id"))


@pytest.fixture(scope="module")
def enforcer():
    return Enforcer(BASE_RULES)


def net(project="p1", shared=False, external=False):
    return {"project_id": project, "tenant_id": project, "shared": shared, "router:external": external}


def port(project="p1", network_project="p1", device_owner="compute:nova"):
    return {
        "project_id": project,
        "tenant_id": project,
        "network:tenant_id": network_project,
        "network:project_id": network_project,
        "device_owner": device_owner,
    }


# ------------------------------------------------------------------------------------ default rules


def test_all_defaults_parse_and_references_resolve(enforcer):
    import re

    for name, text in BASE_RULES.items():
        for ref in re.findall(r"rule:([\w:]+)", text):
            assert ref in BASE_RULES, (name, ref)


def test_networks(enforcer):
    assert enforcer.check("get_network", net(), MEMBER)
    assert not enforcer.check("get_network", net(), OTHER)
    assert enforcer.check("get_network", net(shared=True), OTHER)
    assert enforcer.check("get_network", net(external=True), OTHER)
    assert enforcer.check("get_network", net("p2"), ADMIN)
    assert enforcer.check("create_network", net(), MEMBER)
    assert not enforcer.check("create_network", net(), READER)
    assert not enforcer.check("create_network", net("p2"), MEMBER)
    assert not enforcer.check("create_network:shared", net(), MEMBER)
    assert enforcer.check("create_network:shared", net(), ADMIN)
    assert enforcer.check("get_network:router:external", net("p2"), READER)
    assert not enforcer.check("get_network:provider:network_type", net(), MEMBER)
    assert not enforcer.check("update_network", net(shared=True, project="p2"), NOBODY)
    assert enforcer.check("delete_network", net(), MEMBER)
    assert not enforcer.check("delete_network", net(shared=True), OTHER)
    assert not enforcer.check("delete_network", net(), READER)


def test_subnets(enforcer):
    subnet = {"project_id": "p1", "shared": False, "network:project_id": "p1"}
    assert enforcer.check("get_subnet", subnet, READER)
    assert not enforcer.check("get_subnet", subnet, OTHER)
    assert enforcer.check("get_subnet", {**subnet, "shared": True}, OTHER)
    assert enforcer.check("create_subnet", subnet, MEMBER)
    assert not enforcer.check("create_subnet", subnet, READER)
    assert not enforcer.check("create_subnet", {**subnet, "project_id": "p2"}, OTHER)
    assert not enforcer.check("create_subnet:segment_id", subnet, MEMBER)


def test_ports(enforcer):
    mine = port()
    on_my_net = port(project="p2", network_project="p1")
    assert enforcer.check("get_port", mine, READER)
    assert enforcer.check("get_port", on_my_net, READER)  # network owner sees ports on its network
    assert not enforcer.check("get_port", port("p2", "p2"), MEMBER)
    assert enforcer.check("get_port", port("p2", "p2"), SERVICE)
    assert enforcer.check("update_port", mine, MEMBER)
    assert not enforcer.check("update_port", mine, READER)
    assert enforcer.check("delete_port", on_my_net, MEMBER)
    assert not enforcer.check("delete_port", on_my_net, READER)
    assert not enforcer.check("create_port", mine, READER)
    # device_owner: anything but network:* for members of a foreign network
    foreign = port(project="p2", network_project="p1")
    assert enforcer.check("create_port:device_owner", {**foreign, "device_owner": "compute:x"}, OTHER)
    assert not enforcer.check("create_port:device_owner", {**foreign, "device_owner": "network:dhcp"}, OTHER)
    assert enforcer.check("create_port:device_owner", {**mine, "device_owner": "network:dhcp"}, MEMBER)
    assert not enforcer.check("create_port:mac_address", foreign, OTHER)
    assert enforcer.check("create_port:mac_address", mine, MEMBER)
    assert enforcer.check("create_port:fixed_ips:subnet_id", {**foreign, "shared": True}, OTHER)
    assert not enforcer.check("create_port:fixed_ips:ip_address", {**foreign, "shared": True}, OTHER)
    # binding is for admins and services (e.g. Nova), not for members
    assert not enforcer.check("update_port:binding:host_id", mine, MEMBER)
    assert enforcer.check("update_port:binding:host_id", mine, SERVICE)
    assert enforcer.check("update_port:binding:profile", mine, ADMIN)
    assert not enforcer.check("get_port:binding:vif_details", mine, MEMBER)


def test_quotas(enforcer):
    assert enforcer.check("get_quota", {"project_id": "p1"}, READER)
    assert not enforcer.check("get_quota", {"project_id": "p2"}, READER)
    assert not enforcer.check("update_quota", {"project_id": "p1"}, MEMBER)
    assert enforcer.check("update_quota", {"project_id": "p2"}, ADMIN)
    assert not enforcer.check("delete_quota", {"project_id": "p1"}, MEMBER)


def test_tags(enforcer):
    target = {"ext_parent:project_id": "p1"}
    assert enforcer.check("get_networks_tags", target, READER)
    assert not enforcer.check("create_networks_tags", target, READER)
    assert enforcer.check("create_networks_tags", target, MEMBER)
    assert not enforcer.check("update_ports_tags", target, OTHER)


# ---------------------------------------------------------------------------------------- enforcer


def test_unknown_action_falls_back_to_default(enforcer):
    assert not enforcer.has_rule("get_widget")
    assert enforcer.check("get_widget", {"project_id": "p1"}, MEMBER)
    assert not enforcer.check("get_widget", {"project_id": "p2"}, MEMBER)


def test_missing_default_rule_means_admin_or_owner():
    e = Enforcer(
        {
            "context_is_admin": "role:admin",
            "owner": "project_id:%(project_id)s",
            "admin_or_owner": "rule:context_is_admin or rule:owner",
        }
    )
    assert not e.has_rule("default")
    assert e.check("anything", {"project_id": "p1"}, MEMBER)
    assert not e.check("anything", {"project_id": "p2"}, MEMBER)
    assert e.check("anything", {"project_id": "p2"}, ADMIN)


def test_enforce_raises_with_action(enforcer):
    enforcer.enforce("get_network", net(), MEMBER)
    with pytest.raises(PolicyNotAuthorized) as info:
        enforcer.enforce("delete_network", net(), READER)
    assert info.value.action == "delete_network"


def test_register_defaults_adds_attribute_rules():
    e = Enforcer()
    assert not e.has_rule("create_widget:secret")
    e.register_defaults({"create_widget:secret": "rule:admin_only"})
    assert e.has_rule("create_widget:secret")
    assert not e.check("create_widget:secret", {"project_id": "p1"}, MEMBER)
    assert e.check("create_widget:secret", {"project_id": "p1"}, ADMIN)


def test_bad_default_rejected():
    with pytest.raises(PolicySyntaxError):
        Enforcer({"x": "role:a and"})


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_override_file_replaces_defaults(tmp_path, fmt):
    overrides = {
        "get_network": "role:auditor or rule:admin_only",
        "delete_network": "!",
        "my_helper": "role:netops",
        "create_network": "rule:my_helper",
    }
    path = tmp_path / f"policy.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(overrides))
    else:
        path.write_text("".join(f'"{k}": "{v}"\n' for k, v in overrides.items()))
    e = Enforcer(BASE_RULES, policy_file=path)
    auditor = Context(project_id="p9", roles=frozenset({"auditor"}))
    assert e.check("get_network", net("p1"), auditor)
    assert not e.check("get_network", net("p1"), MEMBER)  # the default's owner clause is gone
    assert not e.check("delete_network", net(), ADMIN)
    assert e.has_rule("my_helper")
    assert e.rule_text("create_network") == "rule:my_helper"
    assert e.check("create_network", {}, Context("p1", roles=frozenset({"netops"})))
    assert not e.check("create_network", net(), MEMBER)
    assert e.check("update_network", net(), MEMBER)  # untouched defaults stay
    # a later default registration does not undo an operator override
    e.register_defaults({"delete_network": "@"})
    assert not e.check("delete_network", net(), ADMIN)


def test_empty_override_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("# nothing overridden\n")
    e = Enforcer(BASE_RULES, policy_file=path)
    assert e.rule_text("get_network") == BASE_RULES["get_network"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("policy.yaml", "- a list\n"),
        ("policy.yaml", "get_network: 5\n"),
        ("policy.yaml", "get_network: 'role:a and'\n"),
        ("policy.json", "{not json"),
        ("policy.yaml", "a: [\n"),
    ],
)
def test_bad_override_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PolicySyntaxError):
        Enforcer(BASE_RULES, policy_file=path)


def test_inline_overrides_win_over_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text('get_network: "!"\nget_subnet: "!"\n')
    e = Enforcer(BASE_RULES, policy_file=path, overrides={"get_network": "@"})
    assert e.check("get_network", {}, READER)
    assert not e.check("get_subnet", {"project_id": "p1"}, ADMIN)


# ---------------------------------------------------------------------------------------- residual


def test_residual_admin_sees_everything(enforcer):
    assert enforcer.residual("get_network", frozenset({"admin"})) == TRUE
    assert enforcer.residual("get_port", frozenset({"admin"})) == TRUE


def test_residual_member_get_network(enforcer):
    pred = enforcer.residual("get_network", frozenset({"member", "reader"}))
    assert isinstance(pred, Or)
    assert OWN in pred.items
    assert Eq("shared", True) in pred.items
    assert Eq("router:external", True) in pred.items


def test_residual_port_uses_network_owner(enforcer):
    pred = enforcer.residual("get_port", frozenset({"reader"}))
    assert isinstance(pred, Or)
    assert set(pred.items) == {OWN, Eq("network:project_id", Cred("project_id"))}
    assert pred.bind(READER.credentials()) == Or((Eq("network:project_id", "p1"), Eq("project_id", "p1")))


def test_residual_reader_cannot_write(enforcer):
    for action in (
        "create_network",
        "update_network",
        "delete_network",
        "create_port",
        "update_port",
        "delete_port",
        "create_subnet",
        "delete_subnet",
    ):
        assert enforcer.residual(action, frozenset({"reader"})) == FALSE, action


def test_residual_roles_are_case_insensitive(enforcer):
    ctx = Context(project_id="p1", roles=frozenset({"Member"}))
    assert enforcer.check("update_port", {"project_id": "p1"}, ctx)
    assert enforcer.residual("update_port", ctx.roles) == OWN


def test_residual_is_cached(enforcer):
    roles = frozenset({"member", "reader"})
    assert enforcer.residual("get_network", roles) is enforcer.residual("get_network", set(roles))


def test_residual_cache_cleared_on_change():
    e = Enforcer()
    roles = frozenset({"member"})
    assert e.residual("create_widget", roles) == OWN  # falls back to default: admin_or_owner
    e.register_defaults({"create_widget": "!"})
    assert e.residual("create_widget", roles) == FALSE


# ------------------------------------------------------------------ residual agrees with evaluation

PROJECTS = st.sampled_from(["p1", "p2"])
ROLES = st.frozensets(st.sampled_from(["admin", "member", "reader", "service", "advsvc", "Member", "READER"]))


@st.composite
def targets(draw):
    target = {}
    project = draw(st.one_of(PROJECTS, st.none()))
    if project is not None:
        target[draw(st.sampled_from(["project_id", "tenant_id"]))] = project
    for key, values in (
        ("shared", st.booleans()),
        ("router:external", st.booleans()),
        ("device_owner", st.sampled_from(["network:dhcp", "compute:nova", "", "xnetwork:"])),
    ):
        if draw(st.booleans()):
            target[key] = draw(values)
    net_project = draw(st.one_of(PROJECTS, st.none()))
    if net_project is not None:
        target[draw(st.sampled_from(["network:project_id", "network:tenant_id"]))] = net_project
    return target


@settings(max_examples=600, deadline=None)
@given(
    action=st.sampled_from(
        [
            "get_network",
            "get_port",
            "get_subnet",
            "update_port",
            "delete_port",
            "create_port:device_owner",
            "create_port:fixed_ips:subnet_id",
        ]
    ),
    target=targets(),
    roles=ROLES,
    project=st.one_of(PROJECTS, st.none()),
)
def test_residual_agrees_with_check(action, target, roles, project):
    e = _SHARED_ENFORCER
    ctx = Context(project_id=project, user_id="u", roles=roles)
    creds = ctx.credentials()
    expected = e.check(action, target, ctx)
    pred = e.residual(action, roles)
    assert pred.evaluate(target, creds) == expected
    assert pred.bind(creds).evaluate(target, {}) == expected


_SHARED_ENFORCER = Enforcer(BASE_RULES)
