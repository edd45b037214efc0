"""A small predicate algebra: what is left of a rule once the caller's roles are known.

``Rule.residual(roles, rules)`` folds every role-only check into a constant and keeps target-dependent
checks as predicates over resource attributes.  The right-hand side of a comparison may be a ``Cred``
(a credential, e.g. the caller's project) resolved by ``bind``.  Services translate a bound predicate
into a SQL filter for list queries; ``evaluate`` checks the same predicate against one item.

Semantics shared with ``Rule.check``: a missing target attribute (or a missing/``None`` credential)
makes a comparison false; ``Not`` simply negates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MISSING = object()


def synonyms(key: str) -> tuple[str, ...]:
    """``key`` plus its tenant_id spelling: project_id and tenant_id name the same thing."""
    parts = key.split(":")
    alt = ":".join("tenant_id" if p == "project_id" else p for p in parts)
    return (key,) if alt == key else (key, alt)


def normalize(key: str) -> str:
    """Spell every ``tenant_id`` segment of a (possibly colon-separated) key as ``project_id``."""
    return ":".join("project_id" if p == "tenant_id" else p for p in key.split(":"))


def lookup(mapping: Mapping[str, object], key: str) -> object:
    """``mapping[key]`` accepting either tenant_id or project_id spelling; MISSING if absent."""
    for k in synonyms(normalize(key)):
        if k in mapping:
            return mapping[k]
    return MISSING


@dataclass(frozen=True)
class Cred:
    """A reference to a credential value (``project_id``, ``user_id``, ...)."""

    name: str


@dataclass(frozen=True)
class Const:
    value: bool

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        return self.value

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return self


TRUE = Const(True)
FALSE = Const(False)


def _resolve(value: object, creds: Mapping[str, object]) -> object:
    if isinstance(value, Cred):
        v = lookup(creds, value.name)
        return MISSING if v is None else v
    return value


@dataclass(frozen=True)
class Eq:
    """``target[attr] == value``; ``value`` is a literal or a ``Cred``."""

    attr: str
    value: object

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        left = lookup(target, self.attr)
        right = _resolve(self.value, creds)
        return left is not MISSING and right is not MISSING and left == right

    def bind(self, creds: Mapping[str, object]) -> Pred:
        if not isinstance(self.value, Cred):
            return self
        right = _resolve(self.value, creds)
        return FALSE if right is MISSING else Eq(self.attr, right)


@dataclass(frozen=True)
class Match:
    """``re.match(pattern, str(target[attr]))``."""

    attr: str
    pattern: str

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        left = lookup(target, self.attr)
        return left is not MISSING and re.match(self.pattern, str(left)) is not None

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return self


@dataclass(frozen=True)
class CredEq:
    """``creds[name] == value``: a credential compared with a literal (no target involved)."""

    name: str
    value: object

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        left = _resolve(Cred(self.name), creds)
        return left is not MISSING and left == self.value

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return TRUE if self.evaluate({}, creds) else FALSE


@dataclass(frozen=True)
class And:
    items: tuple[Pred, ...]

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        return all(i.evaluate(target, creds) for i in self.items)

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return all_of(i.bind(creds) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Pred, ...]

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        return any(i.evaluate(target, creds) for i in self.items)

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return any_of(i.bind(creds) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Pred

    def evaluate(self, target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
        return not self.item.evaluate(target, creds)

    def bind(self, creds: Mapping[str, object]) -> Pred:
        return negate(self.item.bind(creds))


Pred = Const | Eq | Match | CredEq | And | Or | Not


def _combine(items: Iterable[Pred], kind: type[And] | type[Or]) -> Pred:
    absorbing, neutral = (FALSE, TRUE) if kind is And else (TRUE, FALSE)
    out: list[Pred] = []
    for item in items:
        flat = item.items if isinstance(item, kind) else (item,)
        for p in flat:
            if p == absorbing:
                return absorbing
            if p != neutral and p not in out:
                out.append(p)
    if not out:
        return neutral
    if len(out) == 1:
        return out[0]
    return kind(tuple(out))


def all_of(items: Iterable[Pred]) -> Pred:
    """Simplifying conjunction: flattens, drops TRUE, FALSE absorbs, dedupes, collapses one item."""
    return _combine(items, And)


def any_of(items: Iterable[Pred]) -> Pred:
    """Simplifying disjunction: flattens, drops FALSE, TRUE absorbs, dedupes, collapses one item."""
    return _combine(items, Or)


def negate(item: Pred) -> Pred:
    """Simplifying negation: folds constants and double negation."""
    if isinstance(item, Const):
        return FALSE if item.value else TRUE
    if isinstance(item, Not):
        return item.item
    return Not(item)


def simplify(pred: Pred) -> Pred:
    """Recursively apply the folding rules to a predicate built with the raw constructors."""
    if isinstance(pred, And):
        return all_of(simplify(i) for i in pred.items)
    if isinstance(pred, Or):
        return any_of(simplify(i) for i in pred.items)
    if isinstance(pred, Not):
        return negate(simplify(pred.item))
    return pred
