"""Policy: Neutron's rule language, defaults, enforcement and residual predicates for list queries."""

from fermion.policy.defaults import BASE_RULES
from fermion.policy.enforcer import Enforcer, load_policy_file
from fermion.policy.errors import PolicyNotAuthorized, PolicySyntaxError
from fermion.policy.rules import Rule, parse

__all__ = [
    "BASE_RULES",
    "Enforcer",
    "PolicyNotAuthorized",
    "PolicySyntaxError",
    "Rule",
    "load_policy_file",
    "parse",
]
