"""Fakes of the kernel for the firewall's unit tests.

FakeNft is a small model of nf_tables for the subset of commands we emit: it refuses what the kernel
refuses (a rule or element naming a missing chain or set, deleting a chain or set still referenced, adding a
key that exists, deleting one that does not, deleting a rule by a handle it does not have) and gives rules
handles as the kernel does.  FakeConntrack is a conntrack table in memory.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
from collections.abc import Iterable

from fermion.dataplane import DataplaneError
from fermion.dataplane.conntrack import Conntrack, Flow
from fermion.dataplane.firewall import TABLE, Firewall


@dataclasses.dataclass
class FakeTable:
    chains: dict[str, list[tuple[int, str]]] = dataclasses.field(default_factory=dict)  # (handle, rule)
    sets: dict[str, tuple[str, str, dict[str, str | None]]] = dataclasses.field(default_factory=dict)


Snapshot = dict[str, tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, str, dict[str, str | None]]]]]


class FakeNft:
    """Our two tables as the kernel would hold them; each run() is one all-or-nothing transaction."""

    def __init__(self) -> None:
        self.tables: dict[str, FakeTable] = {}
        self.handle = 0  # the last rule handle given out

    def snapshot(self) -> Snapshot:
        return {family: ({k: tuple(r for _, r in v) for k, v in t.chains.items()},
                         {k: (kind, spec, dict(elements)) for k, (kind, spec, elements) in t.sets.items()})
                for family, t in self.tables.items()}

    def run(self, lines: list[str]) -> None:
        """One transaction: all or nothing."""
        before = copy.deepcopy(self.tables)
        try:
            for line in lines:
                if "fermion_sg_applied" not in line:  # the digest stamp: a table with only a comment
                    self._one(line)
        except AssertionError:
            self.tables = before
            raise

    def _table(self, family: str) -> FakeTable:
        assert family in self.tables, f"no table {family}"
        return self.tables[family]

    def _refs(self, family: str) -> tuple[set[str], set[str]]:
        """Chains and sets referenced by rules and map elements."""
        t = self._table(family)
        text = [r for rules in t.chains.values() for _, r in rules]
        text += [v for _, _, elements in t.sets.values() for v in elements.values() if v]
        jumps = {m for line in text for m in re.findall(r"(?:jump|goto) (\S+)", line)}
        used = {m for line in text for m in re.findall(r"@(\S+)", line)}
        return jumps, used

    def _one(self, line: str) -> None:
        t = re.escape(TABLE)
        if m := re.fullmatch(rf"add table (\w+) {t}", line):
            self.tables.setdefault(m[1], FakeTable())
        elif m := re.fullmatch(rf"delete table (\w+) {t}", line):
            assert self.tables.pop(m[1], None) is not None, f"no table {m[1]}"
        elif m := re.fullmatch(rf"add chain (\w+) {t} (\S+)( \{{ .* \}})?", line):
            self._table(m[1]).chains.setdefault(m[2], [])
        elif m := re.fullmatch(rf"flush chain (\w+) {t} (\S+)", line):
            chains = self._table(m[1]).chains
            assert m[2] in chains, f"flush of missing chain {m[2]}"
            chains[m[2]] = []
        elif m := re.fullmatch(rf"add rule (\w+) {t} (\S+) (.*)", line):
            table = self._table(m[1])
            assert m[2] in table.chains, f"rule in missing chain {m[2]}"
            for target in re.findall(r"(?:jump|goto) (\S+)", m[3]):
                assert target in table.chains, f"rule jumps to missing chain {target}"
            for name in re.findall(r"@(\S+)", m[3]):
                assert name in table.sets, f"rule uses missing set {name}"
            self.handle += 1
            table.chains[m[2]].append((self.handle, m[3]))
        elif m := re.fullmatch(rf"delete rule (\w+) {t} (\S+) handle (\d+)", line):
            chains = self._table(m[1]).chains
            assert m[2] in chains, f"rule delete in missing chain {m[2]}"
            kept = [(h, r) for h, r in chains[m[2]] if h != int(m[3])]
            assert len(kept) == len(chains[m[2]]) - 1, f"no rule with handle {m[3]} in {m[2]}"
            chains[m[2]] = kept
        elif m := re.fullmatch(rf"delete chain (\w+) {t} (\S+)", line):
            chains = self._table(m[1]).chains
            assert m[2] in chains, f"delete of missing chain {m[2]}"
            del chains[m[2]]  # its own rules go with it
            assert m[2] not in self._refs(m[1])[0], f"chain {m[2]} is still referenced"
        elif m := re.fullmatch(rf"add (set|map) (\w+) {t} (\S+) \{{ (.*) \}}", line):
            sets = self._table(m[2]).sets
            assert m[3] not in sets, f"set {m[3]} exists"
            sets[m[3]] = (m[1], m[4], {})
        elif m := re.fullmatch(rf"delete (set|map) (\w+) {t} (\S+)", line):
            sets = self._table(m[2]).sets
            assert m[3] in sets, f"delete of missing set {m[3]}"
            assert m[3] not in self._refs(m[2])[1], f"set {m[3]} is still referenced"
            del sets[m[3]]
        elif m := re.fullmatch(rf"(add|delete) element (\w+) {t} (\S+) \{{ (.*) \}}", line):
            table = self._table(m[2])
            assert m[3] in table.sets, f"elements of missing set {m[3]}"
            elements = table.sets[m[3]][2]
            for item in m[4].split(", "):
                key, _, value = item.partition(" : ")
                if m[1] == "add":
                    assert key not in elements, f"element {key} exists in {m[3]}"
                    if "interval" in table.sets[m[3]][1] and " . " not in key:  # the kernel refuses overlaps
                        net = ipaddress.ip_network(key)
                        assert not any(net.overlaps(ipaddress.ip_network(k)) for k in elements), \
                            f"element {key} overlaps another in {m[3]}"
                    for target in re.findall(r"(?:jump|goto) (\S+)", value):
                        assert target in table.chains, f"element jumps to missing chain {target}"
                    elements[key] = value or None
                else:
                    assert key in elements, f"delete of missing element {key} in {m[3]}"
                    del elements[key]
        else:
            raise AssertionError(f"unexpected command {line!r}")


class FakeConntrack(Conntrack):
    """A conntrack table in memory: the flows a test puts there, minus those deleted."""

    def __init__(self) -> None:
        super().__init__("fake-host")
        self.table: list[Flow] = []
        self.dumps = 0

    def flows(self, zones: Iterable[int] | None = None) -> list[Flow]:
        self.dumps += 1
        return list(self.table)

    def delete(self, flows: Iterable[Flow]) -> int:
        gone = set(flows)
        before = len(self.table)
        self.table = [f for f in self.table if f not in gone]
        return before - len(self.table)


class FakeKernelFirewall(Firewall):
    def __init__(self) -> None:
        super().__init__("fake-host", conntrack=FakeConntrack())
        self.kernel = FakeNft()
        self.transactions: list[list[str]] = []
        self.listings: list[str] = []  # chains whose handles were read

    def _nft(self, lines: list[str]) -> None:
        self.transactions.append(lines)
        try:
            self.kernel.run(lines)
        except AssertionError as err:
            raise DataplaneError(str(err)) from err

    def _chain_handles(self, chain: str) -> list[int]:
        self.listings.append(chain)
        return [h for h, _ in self.kernel.tables["inet"].chains[chain]]

    def _applied(self) -> str | None:
        return None

    def commands(self) -> list[str]:
        """The last incremental transaction without its guards and the digest stamp."""
        return self.transactions[-1][2:-3]

    def _kernel_zones(self) -> dict[str, int]:
        elements = self.kernel.tables["inet"].sets["zones"][2] if "inet" in self.kernel.tables else {}
        return {k.strip('"'): int(v or 0) for k, v in elements.items()}

    def _enable_br_netfilter(self) -> None:
        pass

    def observe(self) -> bool:
        return {"bridge", "inet"} <= set(self.kernel.tables)
