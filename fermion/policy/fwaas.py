"""neutron-fwaas's default policy (neutron_fwaas/policies): owners manage their firewall objects, anyone reads
shared ones, only an admin shares (the ``:shared`` rules come from the definitions, fermion/resources/fwaas.py)."""

from __future__ import annotations

OWNER = "rule:admin_or_owner"

FWAAS: dict[str, str] = {
    "shared_firewalls": "field:firewall_groups:shared=True",
    "shared_firewall_policies": "field:firewall_policies:shared=True",
    "shared_firewall_rules": "field:firewall_rules:shared=True",
    **{f"{verb}_{member}": "rule:regular_user" if verb == "create" else OWNER
       for member in ("firewall_group", "firewall_policy", "firewall_rule")
       for verb in ("create", "update", "delete")},
    "get_firewall_group": f"{OWNER} or rule:shared_firewalls",
    "get_firewall_policy": f"{OWNER} or rule:shared_firewall_policies",
    "get_firewall_rule": f"{OWNER} or rule:shared_firewall_rules",
    "insert_rule": OWNER,
    "remove_rule": OWNER,
    **{f"{verb}_{collection}_tags": "rule:admin_or_ext_parent_owner"
       for collection in ("firewall_groups", "firewall_policies", "firewall_rules")
       for verb in ("get", "create", "update", "delete")},
}
