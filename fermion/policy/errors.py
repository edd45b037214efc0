"""Exceptions raised by the policy engine."""

from __future__ import annotations


class PolicySyntaxError(ValueError):
    """A rule string (default or operator override) does not parse."""


class PolicyNotAuthorized(Exception):
    """The caller's credentials do not satisfy the rule for ``action``."""

    def __init__(self, action: str) -> None:
        super().__init__(f"rule:{action} is disallowed by policy")
        self.action = action
