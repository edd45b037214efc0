"""The oslo.policy rule language as Neutron uses it: parser, evaluator and partial evaluator.

Grammar (``not`` binds tighter than ``and``, ``and`` tighter than ``or``)::

    expr  := conj ("or" conj)*
    conj  := neg ("and" neg)*
    neg   := "not" neg | "(" expr ")" | check
    check := "@" | "!" | "rule:NAME" | "role:NAME" | "field:RESOURCE:ATTR=VALUE" | "KEY:VALUE"

An empty rule string always passes.  Tokens are separated by whitespace; parentheses may also be glued
to the start or end of a check (``(role:admin)``), while a check's own ``%(attr)s`` is left alone.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from fermion.policy import predicates as p
from fermion.policy.errors import PolicySyntaxError

RuleMap = Mapping[str, "Rule"]
Attrs = Mapping[str, object]
Seen = tuple[str, ...]
_MAX_DEPTH = 64


class Rule(ABC):
    """A parsed rule.  ``rules`` resolves ``rule:NAME`` references (an unknown name is false)."""

    def check(self, target: Mapping[str, object], creds: Mapping[str, object], rules: RuleMap) -> bool:
        return self._check(target, creds, rules, ())

    def residual(self, roles: frozenset[str], rules: RuleMap) -> p.Pred:
        """Fold everything that depends only on ``roles``; keep target checks as predicates."""
        lowered = frozenset(r.lower() for r in roles)
        return self._residual(lowered, rules, ())

    @abstractmethod
    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool: ...

    @abstractmethod
    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred: ...


@dataclass(frozen=True)
class ConstRule(Rule):
    value: bool

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return self.value

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return p.TRUE if self.value else p.FALSE


@dataclass(frozen=True)
class RuleRef(Rule):
    name: str

    def _target(self, rules: RuleMap, seen: tuple[str, ...]) -> Rule | None:
        # Unknown names and reference cycles evaluate to false rather than raising.
        if self.name in seen or len(seen) >= _MAX_DEPTH:
            return None
        return rules.get(self.name)

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        rule = self._target(rules, seen)
        return rule is not None and rule._check(target, creds, rules, (*seen, self.name))

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        rule = self._target(rules, seen)
        return p.FALSE if rule is None else rule._residual(roles, rules, (*seen, self.name))


@dataclass(frozen=True)
class RoleCheck(Rule):
    role: str

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        roles = creds.get("roles") or ()
        return isinstance(roles, list | tuple | set | frozenset) and self.role.lower() in {
            str(r).lower() for r in roles
        }

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return p.TRUE if self.role.lower() in roles else p.FALSE


@dataclass(frozen=True)
class FieldCheck(Rule):
    """Neutron's ``field:RESOURCE:ATTR=VALUE``; a VALUE starting with ``~`` is a regular expression."""

    resource: str
    attr: str
    value: object
    regex: bool = False

    def _pred(self) -> p.Pred:
        return p.Match(self.attr, str(self.value)) if self.regex else p.Eq(self.attr, self.value)

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return self._pred().evaluate(target, creds)

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return self._pred()


@dataclass(frozen=True)
class TargetRef:
    """``%(attr)s`` on the right-hand side of a generic check."""

    attr: str


@dataclass(frozen=True)
class GenericCheck(Rule):
    """``KEY:VALUE``: ``creds[KEY]`` equals a target attribute or a literal."""

    key: str
    match: object  # TargetRef or literal (str | bool)

    def _pred(self) -> p.Pred:
        if isinstance(self.match, TargetRef):
            return p.Eq(self.match.attr, p.Cred(self.key))
        return p.CredEq(self.key, self.match)

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return self._pred().evaluate(target, creds)

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        if self.key == "is_admin" and isinstance(self.match, bool):
            return p.TRUE if ("admin" in roles) == self.match else p.FALSE
        return self._pred()


@dataclass(frozen=True)
class AndRule(Rule):
    items: tuple[Rule, ...]

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return all(r._check(target, creds, rules, seen) for r in self.items)

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return p.all_of(r._residual(roles, rules, seen) for r in self.items)


@dataclass(frozen=True)
class OrRule(Rule):
    items: tuple[Rule, ...]

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return any(r._check(target, creds, rules, seen) for r in self.items)

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return p.any_of(r._residual(roles, rules, seen) for r in self.items)


@dataclass(frozen=True)
class NotRule(Rule):
    item: Rule

    def _check(self, target: Attrs, creds: Attrs, rules: RuleMap, seen: Seen) -> bool:
        return not self.item._check(target, creds, rules, seen)

    def _residual(self, roles: frozenset[str], rules: RuleMap, seen: Seen) -> p.Pred:
        return p.negate(self.item._residual(roles, rules, seen))


# --------------------------------------------------------------------------------------------- parsing

_KEYWORDS = {"and", "or", "not"}


def _literal(text: str) -> object:
    return {"True": True, "False": False}.get(text, text)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for word in text.split():
        lead = len(word) - len(word.lstrip("("))
        tokens.extend("(" * lead)
        word = word[lead:]
        trail: list[str] = []
        # Strip closing parens glued to the end unless they close a "%(" inside the check itself.
        while word.endswith(")") and word.count(")") > word.count("("):
            trail.append(")")
            word = word[:-1]
        if word:
            tokens.append(word)
        tokens.extend(trail)
    return tokens


def parse_check(token: str) -> Rule:
    if token == "@":
        return ConstRule(True)
    if token == "!":
        return ConstRule(False)
    kind, sep, match = token.partition(":")
    if not sep or not kind or not match:
        raise PolicySyntaxError(f"malformed check {token!r}")
    if kind == "rule":
        return RuleRef(match)
    if kind == "role":
        return RoleCheck(match)
    if kind == "field":
        resource, sep1, rest = match.partition(":")
        attr, sep2, value = rest.partition("=")
        if not (sep1 and sep2 and resource and attr and value):
            raise PolicySyntaxError(f"malformed field check {token!r}")
        attr = p.normalize(attr)
        if value.startswith("~"):
            try:
                re.compile(value[1:])
            except re.error as exc:
                raise PolicySyntaxError(f"bad regular expression in {token!r}: {exc}") from None
            return FieldCheck(resource, attr, value[1:], regex=True)
        return FieldCheck(resource, attr, _literal(value))
    ref = re.fullmatch(r"%\((.+)\)s", match)
    if ref:
        return GenericCheck(p.normalize(kind), TargetRef(p.normalize(ref.group(1))))
    if "%(" in match:
        raise PolicySyntaxError(f"malformed target reference in {token!r}")
    return GenericCheck(p.normalize(kind), _literal(match))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _keyword(self, word: str) -> bool:
        tok = self._peek()
        if tok is not None and tok.lower() == word:
            self.pos += 1
            return True
        return False

    def _error(self, why: str) -> PolicySyntaxError:
        return PolicySyntaxError(f"{why} in rule {self.text!r}")

    def parse(self) -> Rule:
        if not self.tokens:
            return ConstRule(True)
        rule = self._expr()
        if self._peek() is not None:
            raise self._error(f"unexpected {self._peek()!r}")
        return rule

    def _expr(self) -> Rule:
        items = [self._conj()]
        while self._keyword("or"):
            items.append(self._conj())
        return items[0] if len(items) == 1 else OrRule(tuple(items))

    def _conj(self) -> Rule:
        items = [self._neg()]
        while self._keyword("and"):
            items.append(self._neg())
        return items[0] if len(items) == 1 else AndRule(tuple(items))

    def _neg(self) -> Rule:
        if self._keyword("not"):
            return NotRule(self._neg())
        tok = self._peek()
        if tok is None:
            raise self._error("unexpected end")
        self.pos += 1
        if tok == "(":
            inner = self._expr()
            if self._peek() != ")":
                raise self._error("missing ')'")
            self.pos += 1
            return inner
        if tok == ")" or tok.lower() in _KEYWORDS:
            raise self._error(f"unexpected {tok!r}")
        return parse_check(tok)


def parse(text: str) -> Rule:
    """Parse a rule string; raise ``PolicySyntaxError`` (a ``ValueError``) when it is malformed."""
    if not isinstance(text, str):
        raise PolicySyntaxError(f"rule must be a string, not {type(text).__name__}")
    return _Parser(text).parse()
