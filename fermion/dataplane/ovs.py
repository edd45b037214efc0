"""Open vSwitch through its command-line clients: one ovsdb-server and ovs-vswitchd per (emulated) host, each
with its own run directory, datapath netdev (this kernel has no OVS module, docs/kernel.md).

OvsHost observes the bridges, ports and our flows' cookies and applies plan ops (fermion/agent/ovs/planner.py).
A flow is known by its cookie: the agent's 32 high bits and a hash of the flow's text and of the OpenFlow port
numbers of the ports it names, so observing needs no parsing of OVS's rendering of a match, a restarted agent
finds its flows unchanged, and a flow naming a port that was made again with another number (OVS resolves
names when a flow is installed) is installed again."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import threading
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.dataplane import DataplaneError, netns, rtnl, veth

COOKIE_BASE = 0xFE5E0000 << 32  # the agent's cookie (high bits) on every flow it installs
COOKIE_MASK = 0xFFFFFFFF << 32
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
IFINDEX_KEY = "fermion-ifindex"  # Interface external_ids: the kernel ifindex of the device when it was added
LV_KEY = "fermion-lv-"  # br-int external_ids: fermion-lv-<network id> = the network's local VLAN


_TOKEN = re.compile(r"[,=:()\s]+")


def cookie(bridge: str, flow: str, ofports: Mapping[str, int] | None = None) -> int:
    """ofports: the bridge's port names -> their numbers; those the flow names are part of its identity."""
    key = f"{bridge} {flow}"
    if ofports:
        key += "".join(f" {t}={ofports[t]}" for t in sorted(_tokens(flow) & ofports.keys()))
    return COOKIE_BASE | zlib.crc32(key.encode())


def cookies(bridge: str, flows: list[str], ofports: Mapping[str, int]) -> list[int]:
    """cookie() of each flow; those naming none of the ports (most: the firewall names taps by number) come
    from a cache, as every sync computes the cookies of all the host's flows (10,000 at 200 ports)."""
    names = frozenset(ofports)
    return [_plain(bridge, f) if _tokens(f).isdisjoint(names) else cookie(bridge, f, ofports) for f in flows]


def plain_cookies(bridge: str, flows: list[str]) -> list[int]:
    """cookie() of flows that name no port (by name), from the cache."""
    return [_plain(bridge, f) for f in flows]


@functools.lru_cache(maxsize=1 << 16)
def _plain(bridge: str, flow: str) -> int:
    return cookie(bridge, flow)


@functools.lru_cache(maxsize=1 << 16)
def _tokens(flow: str) -> frozenset[str]:
    """The words of a flow (every sync computes the cookies of all the host's flows, thousands at 200 ports)."""
    return frozenset(_TOKEN.split(flow))


# ---------------------------------------------------------------- observed state and ops
@dataclass(frozen=True)
class Port:
    bridge: str
    tag: int | None = None
    type: str = ""
    options: tuple[tuple[str, str], ...] = ()
    # OVS holds the device it opened: False when a tap was deleted and made again under the same name (OVS's
    # netdev datapath keeps reading the old one; found by the ifindex recorded when the port was added)
    ok: bool = True


@dataclass
class OvsState:
    bridges: set[str] = field(default_factory=set)
    ports: dict[str, Port] = field(default_factory=dict)
    flows: dict[str, set[int]] = field(default_factory=dict)  # bridge -> cookies of our flows
    local_vlans: dict[str, int] = field(default_factory=dict)  # network id -> local VLAN (br-int)
    links: set[str] = field(default_factory=set)  # kernel interfaces of the host (instance taps)
    ofports: dict[str, int] = field(default_factory=dict)  # interface -> its OpenFlow port number (when it has one)


@dataclass(frozen=True)
class AddBridge:
    name: str


@dataclass(frozen=True)
class DelBridge:
    name: str


@dataclass(frozen=True)
class AddPort:
    name: str
    port: Port
    kernel: bool = False  # a kernel veth (tap): checksum offload off, link up (netdev datapath)
    ofport: int | None = None  # asked for (ofport_request): flows can name it before it exists, and keep it
    replaces: bool = True  # OVSDB has a port of that name now (deleted in a transaction of its own first)


@dataclass(frozen=True)
class DelPort:
    name: str


@dataclass(frozen=True)
class AddFlows:
    bridge: str
    flows: tuple[str, ...]  # ovs-ofctl flow texts, without cookie
    cookies: tuple[int, ...] = ()  # one per flow (cookie() with the port numbers); () = cookie() of the text
    # the flows name ports by number only (the firewall's): ovs-ofctl then need not ask vswitchd for the
    # bridge's port names first, one wait on its main loop less
    numbered: bool = False


@dataclass(frozen=True)
class DelFlows:
    bridge: str
    cookies: tuple[int, ...]


@dataclass(frozen=True)
class SetLocalVlans:
    vlans: tuple[tuple[str, int], ...]
    stale: tuple[str, ...]


Op = AddBridge | DelBridge | AddPort | DelPort | AddFlows | DelFlows | SetLocalVlans


def applied(state: OvsState, ops: list[Op]) -> OvsState:
    """The state ops leave when they all succeed (in memory; unit tests, and the agent between full syncs)."""
    s = copy.deepcopy(state)
    for op in ops:
        if isinstance(op, AddBridge):
            s.bridges.add(op.name)
        elif isinstance(op, DelBridge):
            s.bridges.discard(op.name)
            s.flows.pop(op.name, None)
            for name in [n for n, port in s.ports.items() if port.bridge == op.name]:
                s.ports.pop(name)
                s.ofports.pop(name, None)
        elif isinstance(op, AddPort):
            s.ports[op.name] = op.port
            if op.ofport:
                s.ofports[op.name] = op.ofport
        elif isinstance(op, DelPort):
            s.ports.pop(op.name, None)
            s.ofports.pop(op.name, None)
        elif isinstance(op, AddFlows):
            s.flows.setdefault(op.bridge, set()).update(op.cookies or (cookie(op.bridge, f) for f in op.flows))
        elif isinstance(op, DelFlows):
            s.flows[op.bridge] -= set(op.cookies)
        elif isinstance(op, SetLocalVlans):
            s.local_vlans.update(dict(op.vlans))
            for net in op.stale:
                s.local_vlans.pop(net, None)
    return s
def _cookies(op: AddFlows) -> tuple[int, ...]:
    return op.cookies or tuple(cookie(op.bridge, f) for f in op.flows)


def _kind(op: Op) -> str:
    """Ops of one kind in a row are applied together: "db" (OVSDB) or "flows" (one bundle per bridge)."""
    return "flows" if isinstance(op, AddFlows | DelFlows) else "db"


def _vsctl_args(op: Op, ifindex: Mapping[str, int]) -> list[str]:
    """The op as ovs-vsctl clauses of one transaction (ifindex: the kernel taps' indexes, recorded so that a
    tap made again is noticed)."""
    if isinstance(op, AddBridge):
        return ["--", "--may-exist", "add-br", op.name, "--", "set", "bridge", op.name, "datapath_type=netdev",
                "fail_mode=secure", "other-config:disable-in-band=true"]
    if isinstance(op, DelBridge):
        return ["--", "--if-exists", "del-br", op.name]
    if isinstance(op, DelPort):
        return ["--", "--if-exists", "del-port", op.name]
    if isinstance(op, AddPort):
        args = ["--", "--may-exist", "add-port", op.port.bridge, op.name]  # its old self went first (_db)
        if op.port.tag is not None:
            args.append(f"tag={op.port.tag}")
        iface = [f"type={op.port.type}"] if op.port.type else []
        iface += [f"ofport_request={op.ofport}"] if op.ofport else []
        iface += [f"options:{k}={v}" for k, v in op.port.options]
        iface += [f"external_ids:{IFINDEX_KEY}={ifindex[op.name]}"] if op.name in ifindex else []
        if iface:
            args += ["--", "set", "interface", op.name, *iface]
        return args
    if isinstance(op, SetLocalVlans):
        args = ["--", "set", "bridge", "br-int", *[f"external_ids:{LV_KEY}{n}={v}" for n, v in op.vlans]]
        args = args if op.vlans else []
        for net in op.stale:
            args += ["--", "remove", "bridge", "br-int", "external_ids", f"{LV_KEY}{net}"]
        return args
    return []


def _no_addresses(ns: str | None, taps: list[str]) -> None:
    """IPv6 off on taps that have an address (a link-local, as a tap plugged by hand gets): for every packet
    it outputs to a port with an address, the userspace datapath looks for a tunnel that ends there, and for
    ARP and ICMPv6 it scans every port's addresses, each a scan of the host's address list. With a link-local
    on each of 200 taps, an IPv6 multicast flooded to them cost some 8 million name compares, and
    revalidating such flows kept ovs-vswitchd on a full CPU (p99 to ACTIVE 1.09 s; 0.44 s without). Taps we
    plug have none (veth.plug); errors are ignored: the tap works anyway."""
    if taps:
        netns.run([*(["ip", "netns", "exec", ns] if ns else []), "sysctl", "-qw",
                   *[f"net.ipv6.conf.{t}.disable_ipv6=1" for t in taps]], check=False)


# ---------------------------------------------------------------- daemons
def rundir(base: Path, host: str) -> Path:
    return base / f"ovs-{host}"


def start_daemons(run: Path, ns: str | None) -> None:
    """ovsdb-server and ovs-vswitchd for one host (nothing when they already run there)."""
    run.mkdir(parents=True, exist_ok=True)
    db = run / "conf.db"
    if not db.exists():
        netns.run(["ovsdb-tool", "create", str(db), SCHEMA])
    prefix = ["ip", "netns", "exec", ns] if ns else []
    env = {**os.environ, "OVS_RUNDIR": str(run), "OVS_LOGDIR": str(run), "OVS_DBDIR": str(run)}
    if not _alive(run / "ovsdb-server.pid"):
        _spawn(prefix + ["ovsdb-server", str(db), f"--remote=punix:{run}/db.sock",
                         f"--unixctl={run}/ovsdb-server.ctl", f"--pidfile={run}/ovsdb-server.pid",
                         f"--log-file={run}/ovsdb-server.log", "--detach", "--no-chdir"], env)
        Client(run).vsctl("--no-wait", "init")
    if not _alive(run / "ovs-vswitchd.pid"):
        _spawn(prefix + ["ovs-vswitchd", f"unix:{run}/db.sock", f"--unixctl={run}/ovs-vswitchd.ctl",
                         f"--pidfile={run}/ovs-vswitchd.pid", f"--log-file={run}/ovs-vswitchd.log",
                         "--detach", "--no-chdir"], env)


def stop_daemons(run: Path, timeout: float = 5.0) -> list[int]:
    """Stop the daemons started in this run directory (by their pidfiles: only ours). Returns their PIDs."""
    pids = [pid for pid in (_pid(run / f"{d}.pid") for d in ("ovs-vswitchd", "ovsdb-server")) if pid]
    netns.terminate(pids, timeout)
    return pids


def _spawn(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=False)
    if proc.returncode != 0:
        raise DataplaneError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(path: Path) -> bool:
    pid = _pid(path)
    return pid is not None and netns.alive(pid)


def uplink(ns: str | None, name: str) -> None:
    """A kernel interface an OVS bridge takes as its wire (the underlay's ul0 on br-ul, eth1 on br-eth1): tx
    checksum offload off (netdev datapath) and no ARP replies from the kernel on it (arp_ignore 8).

    The kernel still receives what the wire brings (OVS reads it beside the kernel, through AF_PACKET) and
    answers ARP for the host's addresses on any interface: an ARP request for the underlay address got two
    replies, br-ul's and one with this interface's MAC. OVS's tunnel neighbour table keeps the MAC of the reply
    it looked at last (later ones match a cached datapath flow and are not looked at), so when that was the
    wrong one, every tunnel packet to that host went to a MAC only its kernel takes (UDP port unreachable):
    all tunnels to the host dark for minutes (the "200 ports" runs of bench/dataplane.py, docs/ovs.md)."""
    veth.no_tx_offload(ns, name)
    netns.run([*(["ip", "netns", "exec", ns] if ns else []), "sysctl", "-qw", f"net.ipv4.conf.{name}.arp_ignore=8"])


# ---------------------------------------------------------------- clients
class Client:
    def __init__(self, run: Path) -> None:
        self.run = run
        self.env = {**os.environ, "OVS_RUNDIR": str(run)}

    def _cmd(self, argv: list[str], stdin: str | None = None) -> str:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=30,
                              check=False)
        if proc.returncode != 0:
            raise DataplaneError(f"{' '.join(argv[:4])}: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def vsctl(self, *args: str, timeout: int = 10) -> str:
        return self._cmd(["ovs-vsctl", f"--db=unix:{self.run}/db.sock", f"--timeout={timeout}", *args])

    def ofctl(self, *args: str, stdin: str | None = None) -> str:
        return self._cmd(["ovs-ofctl", "-O", "OpenFlow15", *args], stdin)

    def table(self, table: str, columns: str) -> list[dict[str, Any]]:
        return self.tables((table, columns))[0]

    def tables(self, *wanted: tuple[str, str]) -> list[list[dict[str, Any]]]:
        """The rows of each (table, columns), read in one ovs-vsctl (one JSON document a line)."""
        args = [a for table, columns in wanted for a in ("--", f"--columns={columns}", "list", table)]
        out = [json.loads(line) for line in self.vsctl("--format=json", "--data=json", *args).splitlines() if line]
        return [[{h: _value(v) for h, v in zip(o["headings"], row, strict=True)} for row in o["data"]] for o in out]


def _value(v: Any) -> Any:
    """OVSDB JSON: ["set", [...]], ["map", [[k, v]...]], ["uuid", x] or an atom."""
    if isinstance(v, list) and len(v) == 2 and v[0] in ("set", "map", "uuid"):
        if v[0] == "set":
            return [_value(x) for x in v[1]]
        if v[0] == "map":
            return {k: x for k, x in v[1]}
        return v[1]
    return v


_COOKIE = re.compile(r"cookie=(0x[0-9a-f]+)")


class OvsHost:
    """Observe and apply for one host's OVS (its run directory) and kernel namespace."""

    def __init__(self, run: Path, ns: str | None) -> None:
        self.client = Client(run)
        self.run = run
        self.ns = ns
        # our flows as last dumped and changed since, per bridge (by its OVSDB uuid) and vswitchd process:
        # a partial sync trusts them (an ovs-ofctl per bridge costs 0.1 s or more on a busy vswitchd)
        self._cached: dict[str, set[int]] = {}
        self._flows_of: tuple[int | None, dict[str, str]] | None = None  # (vswitchd PID, bridge -> uuid)
        self._rtnl: rtnl.Rtnl | None = None
        self._rtnl_lock = threading.Lock()  # observe() may come from another thread than the agent's

    def kernel(self) -> rtnl.Rtnl:
        """The host namespace's rtnetlink socket (made on first use: the namespace may come later)."""
        if self._rtnl is None:
            self._rtnl = rtnl.Rtnl(self.ns)
        return self._rtnl

    def observe(self, fresh: bool = True) -> OvsState:
        """fresh False: our flows as this host last dumped and changed them, unless vswitchd or a bridge is
        not the same as then (the agent's partial syncs; full ones look again)."""
        c = self.client
        state = OvsState()
        bridge_of: dict[str, str] = {}
        bridges, interfaces, ports = c.tables(("Bridge", "_uuid,name,ports,external_ids"),
                                              ("Interface", "name,type,options,ofport,ofport_request,external_ids"),
                                              ("Port", "_uuid,name,tag"))
        with self._rtnl_lock:
            ifindex = {link.name: str(link.index) for link in self.kernel().links()}
        state.links = set(ifindex)
        for br in bridges:
            state.bridges.add(br["name"])
            members = br["ports"] if isinstance(br["ports"], list) else [br["ports"]]
            bridge_of.update(dict.fromkeys(members, br["name"]))
            if br["name"] == "br-int":
                state.local_vlans = {k[len(LV_KEY):]: int(v) for k, v in br["external_ids"].items()
                                     if k.startswith(LV_KEY)}
        ifaces = {i["name"]: i for i in interfaces}
        for name, i in ifaces.items():  # the number it has, else the one it asked for (its device is away)
            number = next((x for x in (i["ofport"], i["ofport_request"]) if isinstance(x, int) and x > 0), None)
            if number is not None:
                state.ofports[name] = number
        for port in ports:
            iface = ifaces.get(port["name"], {})
            tag = port["tag"] if isinstance(port["tag"], int) else None
            opts = tuple(sorted((iface.get("options") or {}).items()))
            plugged = (iface.get("external_ids") or {}).get(IFINDEX_KEY)
            ok = plugged is None or plugged == ifindex.get(port["name"])
            state.ports[port["name"]] = Port(bridge_of.get(port["_uuid"], ""), tag, iface.get("type", ""), opts, ok)
        identity = (_pid(self.run / "ovs-vswitchd.pid"), {br["name"]: br["_uuid"] for br in bridges})
        if fresh or identity != self._flows_of:
            # one ovs-ofctl per bridge, side by side: each waits on vswitchd's main loop, slow with many ports
            names = sorted(state.bridges)
            with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
                dumps = pool.map(lambda b: c.ofctl("--no-stats", "--no-names", "dump-flows", b,
                                                   f"cookie={COOKIE_BASE:#x}/{COOKIE_MASK:#x}"), names)
                self._cached = {b: {int(x, 16) for x in _COOKIE.findall(d)} for b, d in zip(names, dumps, strict=True)}
            self._flows_of = identity
        state.flows = {b: set(f) for b, f in self._cached.items()}
        return state

    def apply(self, ops: list[Op]) -> list[tuple[Op, str]]:
        """In order, with each run of OVSDB ops (bridges, ports, local VLANs) one transaction, so a host's
        resync adds its 1000 ports with one ovs-vsctl and one vswitchd reconfiguration instead of 1000, and
        each run of flow ops one ovs-ofctl bundle per bridge, the bridges side by side."""
        failed: list[tuple[Op, str]] = []
        run: list[Op] = []
        for op in [*ops, None]:
            if run and (op is None or _kind(op) != _kind(run[0])):
                failed += self._db(run) if _kind(run[0]) == "db" else self._flows(run)
                run = []
            if op is not None:
                run.append(op)
        return failed

    def _db(self, ops: list[Op]) -> list[tuple[Op, str]]:
        """Kernel taps up with checksum offload off (netdev datapath), then one transaction; if that fails,
        op by op to tell which did."""
        failed, ifindex = self._kernel_up(ops)
        todo = [op for op in ops if all(op is not f for f, _ in failed)]
        args = [arg for op in todo for arg in _vsctl_args(op, ifindex)]
        if not args:
            return failed
        # a port moved, retagged, retyped or whose tap was made again goes in a transaction of its own first:
        # deleted and added in one, vswitchd would see the same port and keep reading the old device
        # (only those that exist: each ovs-vsctl waits for a vswitchd reconfiguration, 0.1-0.4 s with 200 ports)
        gone = [a for op in todo if isinstance(op, AddPort) and op.replaces
                for a in ("--", "--if-exists", "del-port", op.name)]
        try:
            if gone:
                self.client.vsctl(*gone, timeout=10 + len(todo) // 20)
            self.client.vsctl(*args, timeout=10 + len(todo) // 20)
        except DataplaneError as err:
            if len(todo) == 1:
                return [*failed, (todo[0], str(err))]
            return failed + [f for op in todo for f in self._db([op])]
        for op in todo:
            if isinstance(op, AddBridge):
                self._flows_of = None  # a new bridge: the next observation dumps
                try:
                    self._ip("link", "set", op.name, "up")
                except DataplaneError as err:
                    failed.append((op, str(err)))
            elif isinstance(op, DelBridge):
                self._cached.pop(op.name, None)
        return failed

    def _kernel_up(self, ops: list[Op]) -> tuple[list[tuple[Op, str]], dict[str, int]]:
        """Failures, and the kernel index of each tap brought up."""
        taps = [op for op in ops if isinstance(op, AddPort) and op.kernel]
        if not taps:
            return [], {}
        with self._rtnl_lock:
            k = self.kernel()
            found = {link.name: link for link in k.links()}  # a dump: find() of 1000 names overflows the socket
            there = [op for op in taps if op.name in found]
            errors = k.set_links([rtnl.LinkChange(found[op.name].index, up=True) for op in there])
            errors = [code or k.tx_checksum_off(op.name) for op, code in zip(there, errors, strict=True)]
            addressed = k.ipv6_addressed()
        _no_addresses(self.ns, [op.name for op in there if found[op.name].index in addressed])
        failed: list[tuple[Op, str]] = [(op, f"{op.name}: no such device") for op in taps if op.name not in found]
        failed += [(op, f"{op.name}: {os.strerror(code)}") for op, code in zip(there, errors, strict=True) if code]
        return failed, {op.name: found[op.name].index for op in there}

    def _flows(self, ops: list[Op]) -> list[tuple[Op, str]]:
        """One atomic ovs-ofctl bundle per bridge with its adds and deletes, the bridges side by side: a flow
        replaced by another is never missing in between, and each ovs-ofctl waits on vswitchd's main loop
        (0.1-0.3 s with 200 ports), so one call per bridge rather than one per op."""
        by_bridge: dict[str, list[AddFlows | DelFlows]] = {}
        for op in ops:
            if isinstance(op, AddFlows | DelFlows):
                by_bridge.setdefault(op.bridge, []).append(op)

        def one(bridge: str) -> str | None:
            text = "".join(
                "".join(f"add cookie={k:#x},{f}\n" for k, f in zip(_cookies(op), op.flows, strict=True))
                if isinstance(op, AddFlows) else "".join(f"delete cookie={k:#x}/-1\n" for k in op.cookies)
                for op in by_bridge[bridge])
            numbered = all(isinstance(op, DelFlows) or op.numbered for op in by_bridge[bridge])
            try:
                self.client.ofctl(*(["--no-names"] if numbered else []), "--bundle", "add-flows", bridge, "-",
                                  stdin=text)
            except DataplaneError as err:
                return str(err)
            return None

        with ThreadPoolExecutor(max_workers=len(by_bridge)) as pool:
            errors = dict(zip(by_bridge, pool.map(one, by_bridge), strict=True))
        failed: list[tuple[Op, str]] = []
        for bridge, bridge_ops in by_bridge.items():
            for op in bridge_ops:
                if errors[bridge] is not None:
                    failed.append((op, errors[bridge] or ""))
                    self._flows_of = None  # not known what happened: the next observation dumps
                elif isinstance(op, AddFlows):
                    self._cached.setdefault(op.bridge, set()).update(_cookies(op))
                else:
                    self._cached.setdefault(op.bridge, set()).difference_update(op.cookies)
        return failed

    def _ip(self, *args: str) -> None:
        netns.run(["ip", *(["-n", self.ns] if self.ns else []), *args])

    def close(self) -> None:
        with self._rtnl_lock:
            if self._rtnl is not None:
                self._rtnl.close()
                self._rtnl = None


def wait_ready(run: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            Client(run).vsctl("show")
            return
        except DataplaneError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
