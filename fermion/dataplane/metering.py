"""Metering in a router namespace: `table inet fermion_meter`, with a named counter per label (c-<label>) and
a chain per label (r-<label>) that the forward hook jumps to, Neutron's iptables driver in nftables.

A label's chain holds its excluded rules first (they return: the packet is not counted for this label) and
then its other rules (count and return, so a packet counts once per label). Directions are seen from the
router's internal networks, on the gateway device qg-: ingress arrives through it, egress leaves through it.
remote_ip_prefix keeps Neutron's meaning (egress: the source address, ingress: the destination address, both
the internal side's); source_ip_prefix and destination_ip_prefix match what they say. A router without a
gateway counts nothing. IPv6 prefixes are matched too (Neutron's driver meters IPv4 only).

Named counters are objects of the table: each change is one `nft -f` transaction that replaces the chains
and leaves the counters of the remaining labels counting. The table's comment carries an *epoch*, chosen
when the table is made: counts are cumulative within an epoch, and a new epoch (a rebuilt namespace, a
deleted table) tells the server the counters started again from zero."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

from fermion.dataplane import DataplaneError, netns

TABLE = "fermion_meter"
PRIORITY = 100  # after the filters at priority 0: what they drop is not counted
_COMMENT = re.compile(r'comment "fermion meter epoch=([0-9a-f]+)"')
_COUNTER = re.compile(r"counter c-(\S+) \{\s*packets (\d+) bytes (\d+)")
_CHAIN = re.compile(r"chain r-(\S+) \{")


@dataclass(frozen=True)
class MeterRule:
    direction: str  # ingress | egress
    excluded: bool = False
    remote: str | None = None
    source: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class MeterLabel:
    id: str
    rules: tuple[MeterRule, ...] = ()


@dataclass(frozen=True)
class Count:
    label_id: str
    packets: int
    bytes: int


@dataclass
class _Applied:
    inode: int
    epoch: str | None  # None: no table (no labels)
    digest: str
    labels: frozenset[str]


def _family(*prefixes: str | None) -> str | None:
    """'ip' or 'ip6' for the rule's prefixes; None when they mix versions (the rule matches nothing)."""
    versions = {netaddr.IPNetwork(p).version for p in prefixes if p}
    if len(versions) != 1:
        return None
    return "ip" if versions == {4} else "ip6"


def _cidr(prefix: str) -> str:
    return str(netaddr.IPNetwork(prefix).cidr)  # nft refuses host bits


def match(rule: MeterRule, gateway: str) -> str | None:
    """The rule's match as nft text; None when it can match nothing."""
    side = f'oifname "{gateway}"' if rule.direction == "egress" else f'iifname "{gateway}"'
    if rule.remote:
        family = _family(rule.remote)
        field = "saddr" if rule.direction == "egress" else "daddr"
        return f"{side} {family} {field} {_cidr(rule.remote)}"
    family = _family(rule.source, rule.destination)
    if family is None:
        return None
    parts = [side]
    if rule.source:
        parts.append(f"{family} saddr {_cidr(rule.source)}")
    if rule.destination:
        parts.append(f"{family} daddr {_cidr(rule.destination)}")
    return " ".join(parts)


def render(gateway: str | None, labels: Iterable[MeterLabel]) -> list[str]:
    """The table's chains and counters as nft commands (after the table exists). Deterministic."""
    t = f"inet {TABLE}"
    out = [f"add chain {t} forward {{ type filter hook forward priority {PRIORITY}; policy accept; }}",
           f"flush chain {t} forward"]
    for label in sorted(labels, key=lambda x: x.id):
        chain, counter = f"r-{label.id}", f"c-{label.id}"
        out += [f"add counter {t} {counter}", f"add chain {t} {chain}", f"flush chain {t} {chain}"]
        if gateway is not None:
            for rule in sorted(label.rules, key=lambda r: not r.excluded):  # excluded first
                found = match(rule, gateway)
                if found is not None:
                    verdict = "return" if rule.excluded else f'counter name "{counter}" return'
                    out.append(f"add rule {t} {chain} {found} {verdict}")
        out.append(f"add rule {t} forward jump {chain}")
    return out


def _nft(ns: str, argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, "nft", *argv], input=stdin, capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataplaneError(f"nft in {ns}: {err}") from err
    if check and proc.returncode != 0:
        raise DataplaneError(f"nft in {ns}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _inode(ns: str) -> int:
    try:
        return os.stat(os.path.join(netns.RUN, ns)).st_ino
    except OSError as err:
        raise DataplaneError(f"namespace {ns}: {err}") from err


def listed(ns: str) -> tuple[str | None, set[str], list[Count]]:
    """The table in the namespace: its epoch (None: no table), its label chains and its counters."""
    proc = _nft(ns, ["list", "table", "inet", TABLE], check=False)
    if proc.returncode != 0:
        return None, set(), []
    found = _COMMENT.search(proc.stdout)
    counts = [Count(label, int(p), int(b)) for label, p, b in _COUNTER.findall(proc.stdout)]
    chains = set(_CHAIN.findall(proc.stdout)) | {c.label_id for c in counts}
    # a table without our epoch (made by hand, or damaged) is replaced: counting starts again
    return (found.group(1) if found else ""), chains, counts


class MeterManager:
    """The metering tables of a host's routers. In memory only a cache of what was applied, keyed by the
    namespace's inode (a rebuilt namespace is a new one), rebuilt from the kernel after a restart."""

    def __init__(self) -> None:
        self._applied: dict[str, _Applied] = {}  # router id -> what its namespace holds

    def ensure(self, router_id: str, ns: str, gateway: str | None, labels: list[MeterLabel]) -> list[str]:
        """Make the namespace's table count for labels; returns what changed. Raises DataplaneError."""
        body = render(gateway, labels)
        digest = hashlib.sha256("\n".join(body).encode()).hexdigest()[:16]
        known = self._applied.get(router_id)
        if not labels and known is None and not netns.exists(ns):
            return []  # nothing to count, nothing to remove
        inode = _inode(ns)
        if known is not None and known.inode == inode and known.digest == digest:
            return []
        if known is not None and known.inode == inode:
            epoch, old = known.epoch, set(known.labels)
        else:
            epoch, old, _ = listed(ns)
        wanted = frozenset(x.id for x in labels)
        t = f"inet {TABLE}"
        if not labels:
            if epoch is not None:
                _nft(ns, ["-f", "-"], stdin=f"add table {t}\ndelete table {t}\n")
            self._applied[router_id] = _Applied(inode, None, digest, wanted)
            return ["removed metering"] if epoch is not None else []
        script: list[str] = []
        if not epoch:  # no table, or not ours: a new one, a new epoch
            script += [f"add table {t}", f"delete table {t}"] if epoch == "" else []
            epoch, old = uuid.uuid4().hex[:16], set()
            script.append(f'add table {t} {{ comment "fermion meter epoch={epoch}"; }}')
        script += body
        for gone in sorted(old - wanted):  # after forward no longer jumps to them
            script += [f"flush chain {t} r-{gone}", f"delete chain {t} r-{gone}", f"delete counter {t} c-{gone}"]
        _nft(ns, ["-f", "-"], stdin="\n".join(script) + "\n")
        self._applied[router_id] = _Applied(inode, epoch, digest, wanted)
        return [f"metering: {len(wanted)} labels"]

    def forget(self, router_id: str) -> None:
        self._applied.pop(router_id, None)

    def counts(self, router_id: str, ns: str) -> tuple[str, list[Count]] | None:
        """The epoch and counters of a router's table; None when it has none, or no longer the one applied
        (then it is forgotten: the next ensure makes it again)."""
        known = self._applied.get(router_id)
        if known is None or known.epoch is None:
            return None
        try:
            same = _inode(ns) == known.inode
        except DataplaneError:
            same = False
        epoch, _, counts = listed(ns) if same else (None, set(), [])
        if epoch != known.epoch:
            self.forget(router_id)
            return None
        return epoch, [c for c in counts if c.label_id in known.labels]

    def routers(self) -> list[str]:
        return sorted(r for r, a in self._applied.items() if a.epoch is not None)
