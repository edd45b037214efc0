"""The catalog is the single source of truth: lint it and check what is derived from it."""

from fermion.policy import Enforcer
from fermion.resources.catalog import EXTENSIONS, RESOURCES, attribute_policies, check_definitions, openapi_document


def test_definitions_lint_clean() -> None:
    assert check_definitions() == []


def test_every_resource_has_the_standard_attributes() -> None:
    standard = {"id", "project_id", "tenant_id", "name", "description", "tags", "created_at", "updated_at",
                "revision_number"}
    unnamed = {"floatingips": {"name"}, "security_group_rules": {"name", "tags"},  # as in Neutron
               # rule templates are no standard-attribute resource in Neutron
               "default_security_group_rules": {"name", "tags", "created_at", "updated_at", "revision_number"},
               # not a standard-attribute resource in Neutron: ids and projects only
               "rbac_policies": {"name", "description", "tags", "created_at", "updated_at", "revision_number"}}
    for res in RESOURCES.values():
        if not res.standard:  # Neutron's flavors, service profiles and metering have none
            assert res.collection in ("flavors", "service_profiles", "metering_labels", "metering_label_rules")
            assert "id" in res.by_name
            continue
        assert standard - unnamed.get(res.collection, set()) <= set(res.by_name), res.collection


def test_admin_only_attributes_become_policy_rules() -> None:
    rules = attribute_policies()
    assert rules["create_network:shared"] == "rule:admin_only"
    assert rules["update_network:router:external"] == "rule:admin_only"
    assert rules["get_port:binding:host_id"] == "rule:admin_only"
    enforcer = Enforcer()
    enforcer.register_defaults(rules)
    for name in rules:
        assert enforcer.has_rule(name)


def test_openapi_document_covers_every_collection_and_writable_attribute() -> None:
    doc = openapi_document()
    for res in RESOURCES.values():
        assert f"/v2.0/{res.path}" in doc["paths"]
        create = doc["components"]["schemas"][f"{res.member.capitalize()}Create"]
        props = create["properties"][res.member]["properties"]
        assert set(props) == {a.name for a in res.attributes if a.post}


def test_extension_aliases_are_unique() -> None:
    aliases = [e.alias for e in EXTENSIONS]
    assert len(aliases) == len(set(aliases))
