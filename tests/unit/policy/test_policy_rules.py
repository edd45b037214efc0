import pytest

from fermion.policy import PolicySyntaxError, parse
from fermion.policy.rules import (
    AndRule,
    ConstRule,
    FieldCheck,
    GenericCheck,
    NotRule,
    OrRule,
    RoleCheck,
    TargetRef,
)


def creds(project="p1", roles=("member", "reader"), user="u1", is_admin=False):
    return {
        "project_id": project,
        "tenant_id": project,
        "user_id": user,
        "roles": list(roles),
        "is_admin": is_admin,
    }


def check(text, target=None, c=None, rules=None):
    return parse(text).check(target or {}, c or creds(), rules or {})


# ------------------------------------------------------------------------------------------- parsing


def test_empty_and_constants():
    assert parse("") == ConstRule(True)
    assert parse("   ") == ConstRule(True)
    assert parse("@") == ConstRule(True)
    assert parse("!") == ConstRule(False)
    assert check("")
    assert check("@")
    assert not check("!")


def test_and_binds_tighter_than_or():
    a, b, c = RoleCheck("a"), RoleCheck("b"), RoleCheck("c")
    assert parse("role:a or role:b and role:c") == OrRule((a, AndRule((b, c))))
    assert parse("role:a and role:b or role:c") == OrRule((AndRule((a, b)), c))


def test_not_binds_tighter_than_and():
    a, b = RoleCheck("a"), RoleCheck("b")
    assert parse("not role:a and role:b") == AndRule((NotRule(a), b))
    assert parse("not (role:a and role:b)") == NotRule(AndRule((a, b)))
    assert parse("not not role:a") == NotRule(NotRule(a))


def test_parentheses_glued_and_spaced():
    a, b, c = RoleCheck("a"), RoleCheck("b"), RoleCheck("c")
    expected = AndRule((OrRule((a, b)), c))
    assert parse("(role:a or role:b) and role:c") == expected
    assert parse("( role:a or role:b ) and role:c") == expected
    assert parse("((role:a or role:b)) and (role:c)") == expected


def test_keywords_are_case_insensitive():
    assert parse("role:a AND role:b") == AndRule((RoleCheck("a"), RoleCheck("b")))


def test_target_reference_keeps_its_parentheses():
    rule = parse("(role:admin) or (role:member and project_id:%(project_id)s)")
    assert rule == OrRule(
        (
            RoleCheck("admin"),
            AndRule((RoleCheck("member"), GenericCheck("project_id", TargetRef("project_id")))),
        )
    )


def test_tenant_id_normalized_to_project_id():
    assert parse("tenant_id:%(tenant_id)s") == GenericCheck("project_id", TargetRef("project_id"))
    assert parse("tenant_id:%(network:tenant_id)s") == GenericCheck(
        "project_id", TargetRef("network:project_id")
    )


def test_field_check_parsing():
    assert parse("field:networks:shared=True") == FieldCheck("networks", "shared", True)
    assert parse("field:networks:router:external=False") == FieldCheck("networks", "router:external", False)
    assert parse("field:port:device_owner=~^network:") == FieldCheck(
        "port", "device_owner", "^network:", regex=True
    )
    assert parse("field:ports:name=x") == FieldCheck("ports", "name", "x")


def test_regex_with_parentheses_survives_tokenizing():
    rule = parse("(field:port:device_owner=~^(compute|baremetal):)")
    assert rule == FieldCheck("port", "device_owner", "^(compute|baremetal):", regex=True)


@pytest.mark.parametrize(
    "text",
    [
        "role:a and",
        "or role:a",
        "role:a role:b",
        "(role:a",
        "role:a)",
        "()",
        "not",
        "role:a and or role:b",
        "nocolon",
        "role:",
        ":x",
        "field:networks",
        "field:networks:shared",
        "field:networks:=True",
        "field:port:device_owner=~(",
        "project_id:%(project_id",
    ],
)
def test_syntax_errors(text):
    with pytest.raises(PolicySyntaxError):
        parse(text)


def test_syntax_error_is_value_error():
    with pytest.raises(ValueError):
        parse("role:a or")


def test_non_string_rule_rejected():
    with pytest.raises(PolicySyntaxError):
        parse(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- evaluation


def test_role_check_is_case_insensitive():
    assert check("role:Admin", c=creds(roles=["admin"]))
    assert check("role:admin", c=creds(roles=["ADMIN"]))
    assert not check("role:admin", c=creds(roles=["member"]))
    assert not check("role:admin", c={"project_id": "p1"})


def test_rule_reference():
    rules = {"is_admin_rule": parse("role:admin"), "loop": parse("rule:loop")}
    assert check("rule:is_admin_rule", c=creds(roles=["admin"]), rules=rules)
    assert not check("rule:is_admin_rule", c=creds(roles=["member"]), rules=rules)
    assert not check("rule:unknown", rules=rules)
    assert check("not rule:unknown", rules=rules)
    assert not check("rule:loop", rules=rules)


def test_generic_target_reference():
    assert check("project_id:%(project_id)s", {"project_id": "p1"})
    assert not check("project_id:%(project_id)s", {"project_id": "p2"})
    assert check("user_id:%(user_id)s", {"user_id": "u1"})


def test_generic_tenant_project_synonyms_both_sides():
    c_tenant_only = {"tenant_id": "p1", "roles": []}
    assert check("project_id:%(project_id)s", {"tenant_id": "p1"})
    assert check("tenant_id:%(tenant_id)s", {"project_id": "p1"})
    assert check("project_id:%(project_id)s", {"project_id": "p1"}, c=c_tenant_only)
    assert check("tenant_id:%(network:tenant_id)s", {"network:project_id": "p1"})
    assert check("project_id:%(network:project_id)s", {"network:tenant_id": "p1"})
    assert not check("tenant_id:%(network:tenant_id)s", {"network:tenant_id": "p2"})


def test_generic_literals():
    assert check("is_admin:True", c=creds(is_admin=True))
    assert not check("is_admin:True", c=creds(is_admin=False))
    assert check("is_admin:False", c=creds(is_admin=False))
    assert check("user_id:u1")
    assert not check("user_id:u2")
    assert not check("system_scope:all")


def test_field_check_boolean_and_string():
    assert check("field:networks:shared=True", {"shared": True})
    assert not check("field:networks:shared=True", {"shared": False})
    assert not check("field:networks:shared=True", {"shared": "True"})
    assert check("field:networks:shared=False", {"shared": False})
    assert check("field:networks:router:external=True", {"router:external": True})
    assert check("field:networks:name=x", {"name": "x"})


def test_field_regex_uses_match_on_str():
    rule = "field:port:device_owner=~^network:"
    assert check(rule, {"device_owner": "network:dhcp"})
    assert not check(rule, {"device_owner": "compute:nova"})
    assert not check(rule, {"device_owner": "xnetwork:dhcp"})  # anchored at the start (re.match)
    assert check("field:ports:mtu=~^15", {"mtu": 1500})  # str() of the value


def test_missing_attribute_is_false_never_raises():
    assert not check("project_id:%(project_id)s", {})
    assert not check("tenant_id:%(network:tenant_id)s", {"project_id": "p1"})
    assert not check("field:networks:shared=True", {})
    assert not check("field:port:device_owner=~^network:", {})
    assert check("not field:port:device_owner=~^network:", {})


def test_missing_credential_never_matches_missing_target():
    # A context without a project must not "own" resources that have no project either.
    assert not check("project_id:%(project_id)s", {"project_id": None}, c=creds(project=None))
