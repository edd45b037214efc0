"""What `nft list table` prints, read back for comparison (fermion trace --probe): the table's chains and the
elements of its sets and maps, normalized so they compare equal to the text our renderers write."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"^\s*(set|map|chain) (\S+) \{(.*?)^\s*\}", re.DOTALL | re.MULTILINE)
_ELEMENTS = re.compile(r"elements = \{(.*?)\}", re.DOTALL)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")


def normalize(element: str) -> str:
    """One element as comparable text: single spaces, numbers in hex without leading zeros."""
    return _HEX.sub(lambda m: hex(int(m.group(0), 16)), " ".join(element.split()))


def elements_text(items: str) -> set[str]:
    return {normalize(e) for e in items.split(",") if e.strip()}


def parse(listing: str) -> tuple[set[str], dict[str, set[str]]]:
    """(chain names, set or map name -> its elements ("key" or "key : value")) of one table's listing or of
    the nft input we render (a block per set, map and chain)."""
    chains: set[str] = set()
    sets: dict[str, set[str]] = {}
    for kind, name, body in _BLOCK.findall(listing):
        if kind == "chain":
            chains.add(name)
            continue
        found = _ELEMENTS.search(body)
        sets[name] = elements_text(found.group(1)) if found else set()
    return chains, sets


def compare(what: str, want: set[str], have: set[str] | None) -> tuple[list[str], list[str]]:
    """(missing, extra) descriptions of a set's (or map's) elements; have None: the set itself is missing."""
    if have is None:
        return [f"{what}"], []
    return ([f"element {e} of {what}" for e in sorted(want - have)],
            [f"element {e} of {what}" for e in sorted(have - want)])
