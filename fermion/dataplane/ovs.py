"""Open vSwitch through its command-line clients: one ovsdb-server and ovs-vswitchd per (emulated) host, each
with its own run directory, datapath netdev (this kernel has no OVS module, PLATFORM.md §2).

OvsHost observes the bridges, ports and our flows' cookies and applies plan ops (fermion/agent/ovs/planner.py).
A flow is known by its cookie: the agent's 32 high bits and a hash of the flow's text and of the OpenFlow port
numbers of the ports it names, so observing needs no parsing of OVS's rendering of a match, a restarted agent
finds its flows unchanged, and a flow naming a port that was made again with another number (OVS resolves
names when a flow is installed) is installed again."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.dataplane import DataplaneError, netns

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
        key += "".join(f" {t}={ofports[t]}" for t in sorted(set(_TOKEN.split(flow)) & ofports.keys()))
    return COOKIE_BASE | zlib.crc32(key.encode())


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
class AddPort:
    name: str
    port: Port
    kernel: bool = False  # a kernel veth (tap): checksum offload off, link up (netdev datapath)
    ofport: int | None = None  # asked for (ofport_request): flows can name it before it exists, and keep it


@dataclass(frozen=True)
class DelPort:
    name: str


@dataclass(frozen=True)
class AddFlows:
    bridge: str
    flows: tuple[str, ...]  # ovs-ofctl flow texts, without cookie
    cookies: tuple[int, ...] = ()  # one per flow (cookie() with the port numbers); () = cookie() of the text


@dataclass(frozen=True)
class DelFlows:
    bridge: str
    cookies: tuple[int, ...]


@dataclass(frozen=True)
class SetLocalVlans:
    vlans: tuple[tuple[str, int], ...]
    stale: tuple[str, ...]


Op = AddBridge | AddPort | DelPort | AddFlows | DelFlows | SetLocalVlans


def applied(state: OvsState, ops: list[Op]) -> OvsState:
    """The state ops leave when they all succeed (in memory; unit tests, and the agent between full syncs)."""
    s = copy.deepcopy(state)
    for op in ops:
        if isinstance(op, AddBridge):
            s.bridges.add(op.name)
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

    def vsctl(self, *args: str) -> str:
        return self._cmd(["ovs-vsctl", f"--db=unix:{self.run}/db.sock", "--timeout=10", *args])

    def ofctl(self, *args: str, stdin: str | None = None) -> str:
        return self._cmd(["ovs-ofctl", "-O", "OpenFlow15", *args], stdin)

    def table(self, table: str, columns: str) -> list[dict[str, Any]]:
        out = json.loads(self.vsctl("--format=json", "--data=json", f"--columns={columns}", "list", table))
        heads = out["headings"]
        return [{h: _value(v) for h, v in zip(heads, row, strict=True)} for row in out["data"]]


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
        self.ns = ns

    def observe(self) -> OvsState:
        """One look at OVS and the host's links; the commands run side by side (each is a process)."""
        c = self.client
        state = OvsState()
        with ThreadPoolExecutor(max_workers=4) as pool:
            bridges = pool.submit(c.table, "Bridge", "name,ports,external_ids")
            links = pool.submit(netns.run, ["ip", *(["-n", self.ns] if self.ns else []), "-o", "link", "show"])
            interfaces = pool.submit(c.table, "Interface", "name,type,options,ofport,ofport_request,external_ids")
            port_rows = pool.submit(c.table, "Port", "_uuid,name,tag")
            bridge_of: dict[str, str] = {}
            for br in bridges.result():
                state.bridges.add(br["name"])
                ports = br["ports"] if isinstance(br["ports"], list) else [br["ports"]]
                bridge_of.update(dict.fromkeys(ports, br["name"]))
                if br["name"] == "br-int":
                    state.local_vlans = {k[len(LV_KEY):]: int(v) for k, v in br["external_ids"].items()
                                         if k.startswith(LV_KEY)}
            dumps = {name: pool.submit(c.ofctl, "dump-flows", name, f"cookie={COOKIE_BASE:#x}/{COOKIE_MASK:#x}")
                     for name in state.bridges}
            ifindex = {line.split(": ")[1].split("@")[0]: line.split(": ")[0]
                       for line in links.result().stdout.splitlines() if ": " in line}
            state.links = set(ifindex)
            ifaces = {i["name"]: i for i in interfaces.result()}
            for name, i in ifaces.items():  # the number it has, else the one it asked for (its device is away)
                number = next((x for x in (i["ofport"], i["ofport_request"]) if isinstance(x, int) and x > 0), None)
                if number is not None:
                    state.ofports[name] = number
            for port in port_rows.result():
                iface = ifaces.get(port["name"], {})
                tag = port["tag"] if isinstance(port["tag"], int) else None
                opts = tuple(sorted((iface.get("options") or {}).items()))
                plugged = (iface.get("external_ids") or {}).get(IFINDEX_KEY)
                ok = plugged is None or plugged == ifindex.get(port["name"])
                state.ports[port["name"]] = Port(bridge_of.get(port["_uuid"], ""), tag, iface.get("type", ""), opts,
                                                 ok)
            for name, dump in dumps.items():
                state.flows[name] = {int(x, 16) for x in _COOKIE.findall(dump.result())}
        return state

    def apply(self, ops: list[Op]) -> list[tuple[Op, str]]:
        failed: list[tuple[Op, str]] = []
        for op in ops:
            try:
                self._apply(op)
            except DataplaneError as err:
                failed.append((op, str(err)))
        return failed

    def _apply(self, op: Op) -> None:
        c = self.client
        if isinstance(op, AddBridge):
            c.vsctl("--may-exist", "add-br", op.name, "--", "set", "bridge", op.name, "datapath_type=netdev",
                    "fail_mode=secure", "other-config:disable-in-band=true")
            self._ip("link", "set", op.name, "up")
        elif isinstance(op, AddPort):
            c.vsctl("--if-exists", "del-port", op.name)  # moved, retagged or retyped: made again
            if op.kernel:
                self._ip("link", "set", op.name, "up")
                prefix = ["ip", "netns", "exec", self.ns] if self.ns else []
                netns.run([*prefix, "ethtool", "-K", op.name, "tx", "off"], check=False)
            args = ["--may-exist", "add-port", op.port.bridge, op.name]
            if op.port.tag is not None:
                args.append(f"tag={op.port.tag}")
            if op.kernel:
                args += ["--", "set", "interface", op.name, f"external_ids:{IFINDEX_KEY}={self._ifindex(op.name)}"]
            if op.port.type or op.ofport:
                args += ["--", "set", "interface", op.name]
                args += [f"type={op.port.type}"] if op.port.type else []
                args += [f"ofport_request={op.ofport}"] if op.ofport else []
                args += [f"options:{k}={v}" for k, v in op.port.options]
            c.vsctl(*args)
        elif isinstance(op, DelPort):
            c.vsctl("--if-exists", "del-port", op.name)
        elif isinstance(op, AddFlows):
            cookies = op.cookies or tuple(cookie(op.bridge, f) for f in op.flows)
            text = "".join(f"cookie={k:#x},{f}\n" for k, f in zip(cookies, op.flows, strict=True))
            c.ofctl("--bundle", "add-flows", op.bridge, "-", stdin=text)
        elif isinstance(op, DelFlows):
            text = "".join(f"cookie={k:#x}/-1\n" for k in op.cookies)
            c.ofctl("--bundle", "del-flows", op.bridge, "-", stdin=text)
        elif isinstance(op, SetLocalVlans):
            args = ["br-int", *[f"external_ids:{LV_KEY}{n}={v}" for n, v in op.vlans]]
            if op.vlans:
                c.vsctl("set", "bridge", *args)
            for net in op.stale:
                c.vsctl("remove", "bridge", "br-int", "external_ids", f"{LV_KEY}{net}")

    def _ifindex(self, name: str) -> str:
        out = netns.run(["ip", *(["-n", self.ns] if self.ns else []), "-o", "link", "show", name]).stdout
        return out.split(":")[0]

    def _ip(self, *args: str) -> None:
        netns.run(["ip", *(["-n", self.ns] if self.ns else []), *args])

    def close(self) -> None:
        pass


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
