"""FWaaS v2 in a router namespace: `table inet fermion_fwaas`, replaced whole in one `nft -f` transaction per
change (atomic: no packet sees half a policy; conntrack untouched).

As neutron-fwaas's L3 driver, a group applies on the router's internal ports (qr-): its ingress policy to what
leaves the router through them (towards the group's networks), its egress policy to what enters through them.
Stateful: established and related packets pass first; for the rest each direction's rules are tried in order,
first match wins (allow goes on to the other port's check, deny drops, reject answers), and a policy's rules
end with FWaaS's implicit deny. A direction without a policy passes. A group that is administratively down
drops everything on its ports (neutron-fwaas's default policy)."""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import threading
from dataclasses import dataclass

from fermion.dataplane import DataplaneError, nftlist

LOG = logging.getLogger(__name__)

TABLE = "fermion_fwaas"
_DIGEST = re.compile(r"sha256=([0-9a-f]{16})")


@dataclass(frozen=True)
class Rule:
    action: str  # allow | deny | reject
    ip_version: int
    protocol: int | None = None
    source_ip: str | None = None
    destination_ip: str | None = None
    source_port: str | None = None  # "80" or "8000:8080"
    destination_port: str | None = None


@dataclass(frozen=True)
class Group:
    id: str
    devices: tuple[str, ...]  # the router's qr- devices of the group's ports
    ingress: tuple[Rule, ...] | None  # None: no policy in that direction
    egress: tuple[Rule, ...] | None
    enabled: bool = True


def _match(rule: Rule) -> str:
    family = "ip" if rule.ip_version == 4 else "ip6"
    parts = [f"meta nfproto {'ipv4' if rule.ip_version == 4 else 'ipv6'}"]
    if rule.source_ip:
        parts.append(f"{family} saddr {rule.source_ip}")
    if rule.destination_ip:
        parts.append(f"{family} daddr {rule.destination_ip}")
    if rule.protocol is not None:
        parts.append(f"meta l4proto {rule.protocol}")
    for key, value in (("sport", rule.source_port), ("dport", rule.destination_port)):
        if value:
            parts.append(f"th {key} {value.replace(':', '-')}")
    return " ".join(parts)


VERDICT = {"allow": "return", "deny": "drop", "reject": "reject"}


def _chain(name: str, rules: tuple[Rule, ...]) -> list[str]:
    return [f"  chain {name} {{", "    ct state invalid drop",
            *(f"    {_match(r)} {VERDICT[r.action]}" for r in rules),
            "    drop", "  }"]  # FWaaS's implicit deny


def render(groups: list[Group]) -> str:
    """The table as nft input; "" when no group applies here. Deterministic, with its digest in a comment."""
    body: list[str] = []
    out_map: list[str] = []  # ingress: the device packets leave through
    in_map: list[str] = []  # egress: the device packets come in through
    down: list[str] = []
    for index, group in enumerate(sorted(groups, key=lambda g: g.id)):
        devices = sorted(group.devices)
        if not devices:
            continue
        if not group.enabled:
            down += devices
            continue
        for direction, rules, vmap in (("in", group.ingress, out_map), ("out", group.egress, in_map)):
            if rules is None:
                continue
            name = f"g{index}_{direction}"
            body += _chain(name, rules)
            vmap += [f'"{d}" : jump {name}' for d in devices]
    if not (out_map or in_map or down):
        return ""
    forward = ["  chain forward {", "    type filter hook forward priority filter + 10; policy accept;"]
    if down:
        names = ", ".join(f'"{d}"' for d in sorted(down))
        forward += [f"    iifname {{ {names} }} drop", f"    oifname {{ {names} }} drop"]
    forward.append("    ct state established,related accept")
    if out_map:
        forward.append(f"    oifname vmap {{ {', '.join(sorted(out_map))} }}")
    if in_map:
        forward.append(f"    iifname vmap {{ {', '.join(sorted(in_map))} }}")
    forward.append("  }")
    text = "\n".join([*forward, *body])
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f'table inet {TABLE} {{\n  comment "fermion fwaas sha256={digest}"\n{text}\n}}\n'


def _nft(namespace: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["ip", "netns", "exec", namespace, "nft", *args], input=stdin, capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataplaneError(f"nft in {namespace}: {err}") from err


class Firewalls:
    """The FWaaS tables of one host's router namespaces. What was applied is cached by digest (a restarted
    agent reads the digest back from the kernel), so an unchanged router costs nothing."""

    def __init__(self) -> None:
        self._applied: dict[str, str] = {}  # namespace -> digest ("" : no table)
        self._lock = threading.Lock()

    def ensure(self, namespace: str, groups: list[Group], repair: bool = False) -> bool:
        """Make the namespace's table match; True when something changed. repair (full syncs): when the
        digest says it is applied, read the table back and put back what drifted (a chain flushed, the table
        deleted by hand), touching nothing else."""
        text = render(groups)
        found = _DIGEST.search(text)
        digest = found.group(1) if found else ""
        with self._lock:
            known = self._applied.get(namespace)
        if known is None:  # first look since start: the kernel may have it already
            listed = _nft(namespace, ["list", "table", "inet", TABLE])
            have = _DIGEST.search(listed.stdout) if listed.returncode == 0 else None
            known = have.group(1) if have else ("?" if listed.returncode == 0 else "")
        if known == digest:
            with self._lock:
                self._applied[namespace] = digest
            return repair and self._repair(namespace, text)
        # declare (a no-op when present), delete and recreate in ONE transaction
        script = f"table inet {TABLE}\ndelete table inet {TABLE}\n{text}"
        proc = _nft(namespace, ["-f", "-"], stdin=script)
        if proc.returncode != 0:
            raise DataplaneError(f"fwaas table in {namespace}: {proc.stderr.strip() or proc.returncode}")
        with self._lock:
            self._applied[namespace] = digest
        return True

    def _repair(self, namespace: str, text: str) -> bool:
        listed = _nft(namespace, ["list", "table", "inet", TABLE])
        lines, found = nftlist.reconcile(text, listed.stdout if listed.returncode == 0 else "", [("inet", TABLE)])
        if not lines:
            return False
        missing, extra = nftlist.described(found)
        LOG.warning("%s: FWaaS table drifted (missing: %s; extra: %s): repairing", namespace,
                    "; ".join(missing[:10]) or "none", "; ".join(extra[:10]) or "none")
        proc = _nft(namespace, ["-f", "-"], stdin="\n".join(lines) + "\n")
        if proc.returncode != 0:
            raise DataplaneError(f"repairing the fwaas table in {namespace}: {proc.stderr.strip() or proc.returncode}")
        return True

    def forget(self, namespace: str) -> None:
        """The namespace is gone (its table with it)."""
        with self._lock:
            self._applied.pop(namespace, None)
