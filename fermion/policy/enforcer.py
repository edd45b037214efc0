"""Policy enforcement: named rules (defaults + operator overrides), checks and cached residuals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from fermion.context import Context
from fermion.policy import predicates as p
from fermion.policy.defaults import BASE_RULES
from fermion.policy.errors import PolicyNotAuthorized, PolicySyntaxError
from fermion.policy.rules import Rule, parse

DEFAULT_RULE = "default"
_FALLBACK_DEFAULT = "rule:admin_or_owner"


def load_policy_file(path: str | Path) -> dict[str, str]:
    """Read a Neutron-style policy.yaml / policy.json: a mapping of rule name to rule string."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicySyntaxError(f"{path}: not valid {path.suffix.lstrip('.') or 'yaml'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise PolicySyntaxError(f"{path}: expected a mapping of rule names to rule strings")
    return data


class Enforcer:
    """Holds the effective rules: registered defaults, each replaced by an override of the same name.

    Overrides (from ``policy_file`` or ``overrides``) always win over defaults, including defaults
    registered later; override names no default knows are kept (operators may define helper rules).
    """

    def __init__(
        self,
        defaults: Mapping[str, str] | None = None,
        policy_file: str | Path | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        if defaults is None:
            defaults = BASE_RULES
        self._defaults: dict[str, tuple[str, Rule]] = {}
        self._overrides: dict[str, tuple[str, Rule]] = {}
        self._rules: dict[str, Rule] = {}
        self._residuals: dict[tuple[str, frozenset[str]], p.Pred] = {}
        self.register_defaults(defaults)
        if policy_file is not None:
            self.load_policy_file(policy_file)
        if overrides:
            self.set_overrides({**{k: t for k, (t, _) in self._overrides.items()}, **overrides})

    # ------------------------------------------------------------------------------------ rule set
    def register_defaults(self, rules: Mapping[str, str]) -> None:
        """Add (or replace) default rules; an operator override of the same name still wins."""
        self._defaults.update({name: (text, parse(text)) for name, text in rules.items()})
        self._rebuild()

    def set_overrides(self, rules: Mapping[str, str]) -> None:
        """Replace the operator overrides with ``rules`` (all parsed before anything changes)."""
        self._overrides = {name: (text, parse(text)) for name, text in rules.items()}
        self._rebuild()

    def load_policy_file(self, path: str | Path) -> None:
        """Replace the operator overrides with the contents of a policy.yaml / policy.json."""
        self.set_overrides(load_policy_file(path))

    def _effective(self) -> dict[str, tuple[str, Rule]]:
        return {**self._defaults, **self._overrides}

    def _rebuild(self) -> None:
        rules = {name: rule for name, (_, rule) in self._effective().items()}
        if DEFAULT_RULE not in rules:
            rules[DEFAULT_RULE] = parse(_FALLBACK_DEFAULT)
        self._rules = rules
        self._residuals = {}

    @property
    def rules(self) -> Mapping[str, Rule]:
        return self._rules

    def rule_text(self, action: str) -> str | None:
        """The effective rule string registered for ``action``; None when it has none."""
        entry = self._effective().get(action)
        return entry[0] if entry else None

    def has_rule(self, action: str) -> bool:
        """True when ``action`` has a rule of its own (default or override), not the fallback."""
        return action in self._defaults or action in self._overrides

    def _rule_for(self, action: str) -> Rule:
        return self._rules.get(action) or self._rules[DEFAULT_RULE]

    # ----------------------------------------------------------------------------------- checking
    def check(self, action: str, target: Mapping[str, object], ctx: Context) -> bool:
        return self._rule_for(action).check(target, ctx.credentials(), self._rules)

    def enforce(self, action: str, target: Mapping[str, object], ctx: Context) -> None:
        if not self.check(action, target, ctx):
            raise PolicyNotAuthorized(action)

    def residual(self, action: str, roles: frozenset[str]) -> p.Pred:
        """What ``action`` still requires of a target once the caller's ``roles`` are known.

        Compiled once per (action, roles) and cached; ``bind(ctx.credentials())`` the result to get a
        predicate with literal values (e.g. the caller's project id) for a SQL filter.
        """
        key = (action, frozenset(roles))
        pred = self._residuals.get(key)
        if pred is None:
            pred = self._rule_for(action).residual(key[1], self._rules)
            self._residuals[key] = pred
        return pred
