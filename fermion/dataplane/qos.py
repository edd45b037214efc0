"""QoS in the kernel: bandwidth limits with tc, DSCP marking with nftables.

This kernel has tbf and htb but no police action (docs/kernel.md), so traffic a device *receives* is
redirected (u32 match-all + mirred) to an ifb device and shaped on its way out of that.

Instance taps (the L2 agent): what leaves the instance arrives on its tap (tap ingress -> ifb<port> -> tbf),
what goes to the instance leaves through the tap (tap root tbf). Changes replace the qdisc parameters in place,
so the port's connections carry on. DSCP: a bridge-family table marks what enters the bridges from a tap
(a verdict map tap -> chain of its mark: a change is one element).

Router gateways (the L3 agent): per floating IP or gateway address an htb class on the qg device (its
source address after SNAT, going out) and on the ifb its traffic is redirected to (its destination before
DNAT, coming in); unclassified traffic is not shaped. A change rebuilds that device's classes.

Every change set is one `tc -batch`, one `ip -batch` and one `nft -f`.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field

from fermion.dataplane import DataplaneError, naming

LOG = logging.getLogger(__name__)
TABLE = "fermion_qos"
LATENCY = "50ms"
MIN_BURST = 16000  # bytes: a few full-size frames, whatever the rate
DEFAULT_BURST = 0.8  # burst 0: 80 % of the rate for one second, as Neutron's drivers


@dataclass(frozen=True)
class Limit:
    kbps: int
    burst_kbps: int = 0

    def burst_bytes(self) -> int:
        kbits = self.burst_kbps or int(self.kbps * DEFAULT_BURST)
        return max(MIN_BURST, kbits * 1000 // 8)

    def tc(self) -> str:
        return f"rate {self.kbps}kbit burst {self.burst_bytes()}b"


@dataclass(frozen=True)
class PortQos:
    """An instance port's limits: egress leaves the instance, ingress goes to it (Neutron's directions)."""

    device: str
    egress: Limit | None = None
    ingress: Limit | None = None
    dscp: int | None = None

    @property
    def ifb(self) -> str:
        return ifb_name(self.device)


def ifb_name(device: str) -> str:
    """ifb<the port id part of the device name>: 15 characters at most, like the device's."""
    return "ifb" + device[3:14]


def _netns_args(tool: str, netns: str | None) -> list[str]:
    if not netns:
        return [tool]
    return ["ip", "netns", "exec", netns, tool] if tool == "nft" else [tool, "-n", netns]


def _run(argv: list[str], script: str) -> list[str]:
    """Run a batch; the lines it complained about (an empty list when all went through)."""
    if not script:
        return []
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 0:
        return []
    return [line for line in proc.stderr.splitlines() if line.strip()] or [f"exit {proc.returncode}"]


def qdiscs(netns: str | None) -> list[dict[str, object]]:
    proc = subprocess.run([*_netns_args("tc", netns), "-j", "qdisc", "show"], capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        raise DataplaneError(f"tc qdisc show in {netns or 'root namespace'}: {proc.stderr.strip()}")
    found: list[dict[str, object]] = json.loads(proc.stdout or "[]")
    return found


@dataclass
class Observed:
    tbf: dict[str, tuple[int, int]] = field(default_factory=dict)  # device -> (rate kbit/s, burst bytes)
    ingress: set[str] = field(default_factory=set)  # devices with an ingress qdisc
    htb: set[str] = field(default_factory=set)  # devices with a root htb
    devices: set[str] = field(default_factory=set)  # every device (each has a qdisc, noqueue at least)


def observe(netns: str | None) -> Observed:
    out = Observed()
    for q in qdiscs(netns):
        dev, kind = str(q.get("dev")), q.get("kind")
        out.devices.add(dev)
        opts = q.get("options") or {}
        assert isinstance(opts, dict)
        if kind == "tbf" and q.get("root"):
            out.tbf[dev] = (int(opts.get("rate", 0)) * 8 // 1000, int(opts.get("burst", 0)))
        elif kind == "ingress":
            out.ingress.add(dev)
        elif kind == "htb" and q.get("root"):
            out.htb.add(dev)
    return out


class TapQos:
    """The QoS of the instance taps of one host (namespace)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.marks: dict[str, int] | None = None  # tap -> DSCP mark as last written (None: not yet)
        self.shaped: set[str] = set()  # taps with limits or a mark, as last applied

    def idle(self, wanted: dict[str, PortQos], present: set[str]) -> bool:
        """Nothing to do: nothing wanted, and none of these taps was shaped (no kernel read needed)."""
        return not wanted and not (present & self.shaped)

    def apply(self, wanted: dict[str, PortQos], present: set[str], full: bool) -> int:
        """Make the taps in ``present`` (the host's taps this sync looked at) match ``wanted`` (keyed by tap);
        a full sync also removes what is left on taps that are no longer anyone's. Returns the number of
        commands run; raises DataplaneError with the kernel's complaints."""
        observed = observe(self.netns)
        tc: list[str] = []
        ip: list[str] = []
        looked_at = set(present) | set(wanted)
        if full:
            looked_at |= {d for d in observed.tbf if d.startswith("tap")} | {
                d for d in observed.ingress if d.startswith("tap")}
            # the ifb of a tap that is gone (ifb + 11 characters: never the system's ifb0, ifb1)
            ip += [f"link del {d}\n" for d in sorted(observed.devices)
                   if d.startswith("ifb") and len(d) == 14 and "tap" + d[3:] not in observed.devices]
        for dev in sorted(looked_at):
            if dev not in observed.devices:  # not plugged (yet): its limits come when the tap does
                continue
            self._tap(dev, wanted.get(dev), observed, tc, ip, full)
        errors = _run([*_netns_args("ip", self.netns), "-force", "-batch", "-"], "".join(ip))
        errors += _run([*_netns_args("tc", self.netns), "-force", "-batch", "-"], "".join(tc))
        marks = {dev: q.dscp for dev, q in wanted.items() if q.dscp is not None}
        self.shaped = (self.shaped - looked_at) | set(wanted)
        nft = 0
        if full or self.marks is None or any((self.marks or {}).get(d) != marks.get(d) for d in looked_at):
            current = dict(self.marks or {}) if not full else {}
            for dev in looked_at:
                current.pop(dev, None)
            current.update(marks)
            errors += self._write_marks(current)
            nft = 1
        if errors:
            raise DataplaneError("qos: " + "; ".join(errors[:5]))
        return len(tc) + len(ip) + nft

    @staticmethod
    def _tap(dev: str, want: PortQos | None, observed: Observed, tc: list[str], ip: list[str], full: bool) -> None:
        ifb = ifb_name(dev)
        # to the instance: the tap's own root qdisc
        ingress = want.ingress if want else None
        have = observed.tbf.get(dev)
        if ingress is not None:
            if have != (ingress.kbps, ingress.burst_bytes()):
                tc.append(f"qdisc replace dev {dev} root tbf {ingress.tc()} latency {LATENCY}\n")
        elif have is not None:
            tc.append(f"qdisc del dev {dev} root\n")
        # from the instance: redirected to its ifb, shaped there
        egress = want.egress if want else None
        if egress is not None:
            if ifb not in observed.devices:
                ip.append(f"link add {ifb} type ifb\nlink set dev {ifb} alias {naming.MARKER} up\n")
            if observed.tbf.get(ifb) != (egress.kbps, egress.burst_bytes()):
                tc.append(f"qdisc replace dev {ifb} root tbf {egress.tc()} latency {LATENCY}\n")
            if dev not in observed.ingress or full or ifb not in observed.tbf:
                tc.append(f"qdisc replace dev {dev} ingress\n"
                          f"filter replace dev {dev} parent ffff: prio 1 handle 800::800 u32 match u32 0 0 "
                          f"action mirred egress redirect dev {ifb}\n")
        else:
            if dev in observed.ingress:
                tc.append(f"qdisc del dev {dev} ingress\n")
            if ifb in observed.devices:
                ip.append(f"link del {ifb}\n")

    def _write_marks(self, marks: dict[str, int]) -> list[str]:
        """The whole marking table, replaced in one transaction (a few lines per marked tap); no table when
        nothing is marked (no hook for the bridges' packets to pass)."""
        chains = sorted(set(marks.values()))
        lines = [f"table bridge {TABLE} {{}}", f"delete table bridge {TABLE}"]
        if not marks:
            errors = _run([*_netns_args("nft", self.netns), "-f", "-"], "\n".join(lines) + "\n")
            if not errors:
                self.marks = marks
            return errors
        lines.append(f"table bridge {TABLE} {{")
        elements = ", ".join(f'"{dev}" : jump dscp_{mark}' for dev, mark in sorted(marks.items()))
        lines.append("  map marks { type ifname : verdict")
        if elements:
            lines.append(f"    elements = {{ {elements} }}")
        lines.append("  }")
        lines.append("  chain prerouting { type filter hook prerouting priority -300; policy accept;")
        lines.append("    iifname vmap @marks")
        lines.append("  }")
        for mark in chains:
            lines.append(f"  chain dscp_{mark} {{")
            lines.append(f"    ether type ip ip dscp set {mark} return")
            lines.append(f"    ether type ip6 ip6 dscp set {mark} return")
            lines.append("  }")
        lines.append("}")
        errors = _run([*_netns_args("nft", self.netns), "-f", "-"], "\n".join(lines) + "\n")
        if not errors:
            self.marks = marks
        return errors


# ---------------------------------------------------------------- router gateways (L3)
@dataclass(frozen=True)
class AddressLimit:
    """The limits of one address on a router's gateway: egress goes out to the external network."""

    address: str
    egress: Limit | None = None
    ingress: Limit | None = None


class GatewayQos:
    """The shaped addresses of each router gateway device (qg-), per namespace."""

    def __init__(self) -> None:
        self.applied: dict[tuple[str, str], tuple[AddressLimit, ...]] = {}

    def apply(self, netns: str, device: str, limits: tuple[AddressLimit, ...], check: bool = False) -> bool:
        """Make the device's classes match; True when something changed. check: look at the kernel too (a full
        sync: the qdisc may have gone with the namespace)."""
        key = (netns, device)
        if check and limits:
            observed = observe(netns)
            if device not in observed.htb:
                self.applied.pop(key, None)
        if self.applied.get(key, ()) == limits and (key in self.applied or not limits):
            return False
        ifb = ifb_name(device)
        # start from nothing (what is absent makes harmless complaints)
        _run(["tc", "-n", netns, "-force", "-batch", "-"],
             f"qdisc del dev {device} root\nqdisc del dev {device} ingress\n")
        _run(["ip", "-n", netns, "-force", "-batch", "-"], f"link del {ifb}\n")
        tc: list[str] = []
        ip: list[str] = []
        errors: list[str] = []
        if limits:
            out = [a for a in limits if a.egress is not None]
            into = [a for a in limits if a.ingress is not None]
            if out:
                tc.append(f"qdisc add dev {device} root handle 1: htb\n")
                tc += _classes(device, [(a.address, a.egress) for a in out if a.egress], "src")
            if into:
                ip.append(f"link add {ifb} type ifb\nlink set dev {ifb} alias {naming.MARKER} up\n")
                tc.append(f"qdisc add dev {ifb} root handle 1: htb\n")
                tc += _classes(ifb, [(a.address, a.ingress) for a in into if a.ingress], "dst")
                tc.append(f"qdisc add dev {device} ingress\n"
                          f"filter add dev {device} parent ffff: prio 1 u32 match u32 0 0 "
                          f"action mirred egress redirect dev {ifb}\n")
            errors += _run(["ip", "-n", netns, "-force", "-batch", "-"], "".join(ip))
            errors += _run(["tc", "-n", netns, "-force", "-batch", "-"], "".join(tc))
        if errors:
            self.applied.pop(key, None)
            raise DataplaneError(f"qos on {device} in {netns}: " + "; ".join(errors[:5]))
        if limits:
            self.applied[key] = limits
        else:
            self.applied.pop(key, None)
        return True

    def forget(self, netns: str) -> None:
        for key in [k for k in self.applied if k[0] == netns]:
            del self.applied[key]


def _classes(device: str, limits: list[tuple[str, Limit]], side: str) -> list[str]:
    out = []
    for minor, (address, limit) in enumerate(sorted(limits), start=2):
        version = "ip6" if ":" in address else "ip"
        prefix = 128 if version == "ip6" else 32
        proto = "ipv6" if version == "ip6" else "ip"
        out.append(f"class add dev {device} parent 1: classid 1:{minor:x} htb rate {limit.kbps}kbit "
                   f"ceil {limit.kbps}kbit burst {limit.burst_bytes()}b\n")
        out.append(f"filter add dev {device} parent 1: protocol {proto} prio 1 u32 match {version} {side} "
                   f"{address}/{prefix} flowid 1:{minor:x}\n")
    return out
