"""What `nft list table` prints, read back: the table's chains (their rules) and the elements of its sets and
maps, normalized so they compare equal to the text our renderers write. One comparison (drift) serves
`fermion trace --probe`, which describes it, and the agents' full resyncs, which repair it (repair): the probe
says what the next full sync will change."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

_TABLE = re.compile(r"^table (\S+) (\S+) \{(.*?)^\}", re.DOTALL | re.MULTILINE)
_BLOCK = re.compile(r"^\s*(set|map|chain) (\S+) \{(.*?)^\s*\}", re.DOTALL | re.MULTILINE)
_ELEMENTS = re.compile(r"elements = \{(.*?)\}", re.DOTALL)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")


def normalize(element: str) -> str:
    """One element as comparable text: single spaces, numbers in hex without leading zeros."""
    return _HEX.sub(lambda m: hex(int(m.group(0), 16)), " ".join(element.split()))


def elements_text(items: str) -> set[str]:
    return {normalize(e) for e in items.split(",") if e.strip()}


@dataclass
class Listing:
    """One table: chain -> its rules (a base chain's hook line apart, in hooks), set or map -> its elements
    ("key" or "key : value", normalized) and how to declare it ("set"/"map", "type ...; flags ...;")."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)
    sets: dict[str, set[str]] = field(default_factory=dict)
    specs: dict[str, tuple[str, str]] = field(default_factory=dict)


def read(listing: str) -> Listing:
    """One table's listing, or the nft input we render (a block per set, map and chain)."""
    out = Listing()
    for kind, name, body in _BLOCK.findall(listing):
        if kind == "chain":
            lines = [" ".join(line.split()) for line in body.splitlines() if line.strip()]
            out.hooks.update((name, line) for line in lines if line.startswith("type "))
            out.chains[name] = tuple(line for line in lines if not line.startswith("type "))
            continue
        found = _ELEMENTS.search(body)
        out.sets[name] = elements_text(found.group(1)) if found else set()
        spec = [p.strip() for p in re.split(r"[;\n]", _ELEMENTS.sub("", body)) if p.strip()]
        out.specs[name] = (kind, "".join(f"{p}; " for p in spec if p.startswith(("type ", "typeof ", "flags "))))
    return out


def parse(listing: str) -> tuple[set[str], dict[str, set[str]]]:
    """(chain names, set or map name -> its elements) of one table's listing or of what we render."""
    found = read(listing)
    return set(found.chains), found.sets


def tables(text: str) -> dict[tuple[str, str], str]:
    """(family, name) -> the table's block, of a ruleset's listing or of rendered input with several tables."""
    return {(family, name): f"table {family} {name} {{{body}}}\n" for family, name, body in _TABLE.findall(text)}


@dataclass
class Drift:
    """What a table in the kernel lacks (missing_*) or has beyond what we want (extra_*). Chains are compared
    by their number of rules (the kernel rewrites a rule's text): a chain flushed or with a rule deleted or
    added by hand is refilled; a rule edited in place is not seen."""

    table: bool = False  # the whole table is missing
    missing_chains: list[str] = field(default_factory=list)
    changed_chains: list[str] = field(default_factory=list)
    extra_chains: list[str] = field(default_factory=list)
    missing_sets: list[str] = field(default_factory=list)
    extra_sets: dict[str, str] = field(default_factory=dict)  # name -> "set" | "map"
    missing_elements: dict[str, list[str]] = field(default_factory=dict)
    extra_elements: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.table or self.missing_chains or self.changed_chains or self.extra_chains
                    or self.missing_sets or self.extra_sets or self.missing_elements or self.extra_elements)


def drift(want: Listing, have: Listing | None) -> Drift:
    """How the kernel's table (have; None: no such table) differs from want."""
    if have is None:
        return Drift(table=True)
    out = Drift()
    for name, rules in want.chains.items():
        if name not in have.chains:
            out.missing_chains.append(name)
        elif len(have.chains[name]) != len(rules):
            out.changed_chains.append(name)
    out.extra_chains = [name for name in have.chains if name not in want.chains]
    for name, elements in want.sets.items():
        found = have.sets.get(name)
        if found is None:
            out.missing_sets.append(name)
            found = set()
        if lost := sorted(elements - found):
            out.missing_elements[name] = lost
        if more := sorted(found - elements):
            out.extra_elements[name] = more
    out.extra_sets = {name: have.specs[name][0] for name in have.sets if name not in want.sets}
    return out


def repair(ref: str, want: Listing, found: Drift) -> list[str]:
    """nft commands (one transaction, table ref "family name" present) that change only what drifted: missing
    sets and chains added, extra elements deleted, changed chains flushed and refilled, missing elements
    added, extra chains and sets deleted, in an order where nothing is deleted while still referred to."""
    heads = [f"add {want.specs[n][0]} {ref} {n} {{ {want.specs[n][1]}}}" for n in found.missing_sets]
    heads += [f"add chain {ref} {n} {{ {want.hooks[n]} }}" if n in want.hooks else f"add chain {ref} {n}"
              for n in found.missing_chains]
    drops = [f"delete element {ref} {n} {{ {', '.join(e.split(' : ')[0] for e in items)} }}"
             for n, items in found.extra_elements.items()]
    fills = [f"flush chain {ref} {n}" for n in [*found.changed_chains, *found.extra_chains]]
    fills += [f"add rule {ref} {n} {r}" for n in [*found.missing_chains, *found.changed_chains]
              for r in want.chains[n]]
    adds = [f"add element {ref} {n} {{ {', '.join(items)} }}" for n, items in found.missing_elements.items()]
    tails = [f"delete chain {ref} {n}" for n in found.extra_chains]
    tails += [f"delete {kind} {ref} {n}" for n, kind in found.extra_sets.items()]
    return heads + drops + fills + adds + tails


def reconcile(rendered: str, listed: str, ours: Iterable[tuple[str, str]],
              ) -> tuple[list[str], dict[tuple[str, str], Drift | None]]:
    """Tables rendered as nft input (each with its own block) against a ruleset's listing: (the commands that
    repair them, in one transaction; (family, name) -> its drift, None for a table of ours that is not
    wanted). A missing table is made from its block, one not wanted deleted, the others repaired."""
    want, have = tables(rendered), tables(listed)
    lines: list[str] = []
    found: dict[tuple[str, str], Drift | None] = {}
    for key in ours:
        if key not in want:
            if key in have:
                found[key] = None
                lines.append(f"delete table {key[0]} {key[1]}")
            continue
        table = read(want[key])
        drifted = drift(table, read(have[key]) if key in have else None)
        if drifted:
            found[key] = drifted
            lines += [want[key]] if drifted.table else repair(" ".join(key), table, drifted)
    return lines, found


def described(found: Mapping[tuple[str, str], Drift | None]) -> tuple[list[str], list[str]]:
    """(missing, extra) in words of reconcile's drifts: "chain prerouting of table ip fermion_nat",
    "element 198.19.0.42 : 10.1.0.17 of fip_dnat of table ip fermion_nat"."""
    missing: list[str] = []
    extra: list[str] = []
    for (family, name), drifted in found.items():
        what = f"table {family} {name}"
        if drifted is None or drifted.table:
            (extra if drifted is None else missing).append(what)
            continue
        lost, more = describe(drifted, f"chain {{}} of {what}", f"{{}} of {what}")
        missing += lost
        extra += more
    return missing, extra


Pick = Callable[[str, str, "str | None"], bool]  # (kind "chain" | "set", name, element or None) -> shown


def describe(found: Drift, chain: str, nft_set: str, pick: Pick | None = None) -> tuple[list[str], list[str]]:
    """(missing, extra) in words; chain and nft_set name a chain or set ("chain inet fermion_sg {}"); pick
    (when given) keeps only some chains, sets and elements (a port's, in a table many ports share)."""
    def shown(kind: str, name: str, element: str | None = None) -> bool:
        return pick is None or pick(kind, name, element)

    missing = [chain.format(n) for n in found.missing_chains if shown("chain", n)]
    missing += [f"rules of {chain.format(n)}" for n in found.changed_chains if shown("chain", n)]
    missing += [nft_set.format(n) for n in found.missing_sets if shown("set", n)]
    extra = [chain.format(n) for n in found.extra_chains if pick is None]
    extra += [nft_set.format(n) for n in found.extra_sets if pick is None]
    for items, out in ((found.missing_elements, missing), (found.extra_elements, extra)):
        out += [f"element {e} of {nft_set.format(n)}" for n, elements in items.items() for e in elements
                if shown("set", n, e)]
    return missing, extra


def compare(what: str, want: set[str], have: set[str] | None) -> tuple[list[str], list[str]]:
    """(missing, extra) descriptions of a set's (or map's) elements; have None: the set itself is missing."""
    if have is None:
        return [f"{what}"], []
    return ([f"element {e} of {what}" for e in sorted(want - have)],
            [f"element {e} of {what}" for e in sorted(have - want)])
