#!/usr/bin/env python
"""Data-plane benchmark (needs root): an embedded Fermion (server, in-process transport and agents in this
process, SQLite) with emulated hosts in namespaces, and prints a table:

  * port create (bound to a host, instance plugged right away) -> ACTIVE, and -> first ping reply to a peer
    instance on another host, p50/p99 over --ports ports on one host (no DHCP: the instance takes the port's
    address statically, so the L2 path is what is timed); with --plug-delay MS each instance is plugged that
    long after its port is created, as a Nova boot binds the port well before it plugs the tap, and the time
    from the plug to ACTIVE is printed too
  * L2 agent full resync with --resync-ports bound ports on one host: cold (empty kernel: bridge, vxlan,
    security-group tables, every tap attached, statuses reported) and warm (agent restart, everything already in place)
  * instance-to-instance TCP throughput over VXLAN (iperf3) compared, in the same run, with a bare
    veth + bridge + vxlan path built by hand between two other namespaces (the kernel's limit here)

With --agent ovs the hosts are Open vSwitch hosts (their own ovsdb-server/ovs-vswitchd, netdev datapath) run by
the OVS agent: cold resync starts from an OVS without the agent's bridges and flows (br-int, br-tun gone), and
there are two hand-built paths: two OVS netdev hosts with a br-int-like bridge and a userspace VXLAN port, and
the same on the lab's own compute1 and compute2 (a bridge br-hb beside br-int: the same ovs-vswitchd, polling
the same ports, so that the ratio to it measures Fermion's pipeline). Ports keep
port security (the OpenFlow firewall filters them); it is turned off only for hosts that refuse to bind such
ports (an older agent), judged from a probe port.

Everything lives in namespaces named fb<random>-*, addresses are 198.18.0.0/15 (underlay) and 10.x inside
namespaces, and everything is removed at the end, even on errors.

    sudo .venv/bin/python bench/dataplane.py            # defaults: 200 ports, 1000 for resync
    sudo .venv/bin/python bench/dataplane.py --quick    # 40 ports, 200 for resync
    sudo .venv/bin/python bench/dataplane.py --agent ovs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fermion.config import settings as cfg  # noqa: E402
from fermion.dataplane import firewall as fw  # noqa: E402
from fermion.dataplane import naming, netns, ovs, veth  # noqa: E402
from fermion.db import migrate  # noqa: E402
from fermion.db.engine import Database  # noqa: E402
from fermion.lab import instances, topology  # noqa: E402
from fermion.lab.instances import Api  # noqa: E402
from fermion.lab.state import LabState, state_path  # noqa: E402
from fermion.runtime.embedded import build_app  # noqa: E402
from fermion.runtime.lab import LabSupervisor, build_agents  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def embedded() -> tuple[Path, cfg.Settings, Any]:
    """A state directory, settings without quotas, and the embedded app on a fresh SQLite database there."""
    tmp = Path(tempfile.mkdtemp(prefix="fermion-bench-"))
    url = f"sqlite:///{tmp / 'bench.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    settings = (cfg.Settings().replace("database", url=url)
                .replace("quotas", network=-1, subnet=-1, port=-1)
                .replace("agents", report_interval=2.0, agent_down_time=10.0, resync_interval=60.0))
    app = build_app(settings)
    app.services.quotas.defaults.update(security_group_rule=-1, security_group=-1, router=-1, floatingip=-1)
    return tmp, settings, app


def print_table(rows: list[tuple[str, str, str]], value_width: int) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{width}} | {'measured':<{value_width}} | target")
    print("-" * (width + value_width + 16))
    for name, value, target in rows:
        print(f"{name:<{width}} | {value:<{value_width}} | {target}")


def ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def plug_static(ns_name: str, host_ns: str, port: dict, mtu: int, prefixlen: int) -> None:
    netns.create(ns_name)
    ip = port["fixed_ips"][0]["ip_address"]
    veth.plug(host_ns, naming.tap(port["id"]), ns_name, "eth0", port["mac_address"], mtu, [f"{ip}/{prefixlen}"])


def port_extra(api: Api, network_id: str) -> dict[str, Any]:
    """What the benchmark's ports need to bind on these hosts: port security off where a host refuses ports
    with it (an agent without a firewall), judged from a probe port's binding."""
    probe = api.create_port({"network_id": network_id, "binding:host_id": "compute1", "device_owner": "compute:nova",
                             "device_id": "bench-probe"})
    api.delete_port(probe["id"])
    if probe["binding:vif_type"] != "binding_failed":
        return {}
    print("ports are bound with port security off (the hosts refuse it)", file=sys.stderr)
    return {"port_security_enabled": False}


class PortChanges:
    """The server's live feed (GET /ui/events, the console's): a port's status is read when the feed names it,
    as Nova waits for network-vif-plugged, not by polling. Polling every 5 ms was 200 API requests a second
    in this process, beside the agents (the GIL): it slowed what it timed."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.changed: dict[str, threading.Event] = {}
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True, name="bench-feed")
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("no answer from the server's event feed (/ui/events)")

    def watch(self, port_id: str) -> threading.Event:
        return self.changed.setdefault(port_id, threading.Event())

    def _listen(self) -> None:
        while not self.stop.is_set():
            try:
                with self.api.http.stream("GET", "/ui/events", timeout=None) as resp:
                    event = ""
                    for line in resp.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                            self.ready.set()
                        elif line.startswith("data: ") and event == "change":
                            for change in json.loads(line[6:]):
                                if change.get("kind") == "port":
                                    self.watch(change["id"]).set()
                        if self.stop.is_set():
                            return
            except (httpx.HTTPError, ValueError):
                time.sleep(0.1)


def bench_activation(api: Api, state: LabState, n: int, patience: float = 10,
                     plug_delay: float = 0.0) -> dict[str, list[float]]:
    net = api._ok(api.http.post("/v2.0/networks", json={"network": {"name": "bench"}}))["network"]
    api._ok(api.http.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.60.0.0/20",
                                                              "ip_version": 4, "enable_dhcp": False}}))
    extra = port_extra(api, net["id"])
    peer = api.create_port({"network_id": net["id"], "binding:host_id": "compute2", "device_owner": "compute:nova",
                            **extra})
    peer_ns = f"{state.prefix}-vm-peer"
    plug_static(peer_ns, state.hosts["compute2"].netns, peer, net["mtu"], 20)
    instances.wait_port_status(api, peer["id"], "ACTIVE")
    peer_ip = peer["fixed_ips"][0]["ip_address"]
    feed = PortChanges(api)
    active, first_reply, from_plug = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        port = api.create_port({"network_id": net["id"], "binding:host_id": "compute1",
                                "device_owner": "compute:nova", "device_id": f"bench-{i}", **extra})
        ns_name = f"{state.prefix}-vm-b{i}"
        time.sleep(plug_delay)  # Nova binds the port, then boots the guest and plugs its tap
        plugged = time.perf_counter()
        plug_static(ns_name, state.hosts["compute1"].netns, port, net["mtu"], 20)
        changed = feed.watch(port["id"])
        while True:
            changed.wait(0.1)  # the feed names the port; looked at every 0.1 s anyway
            changed.clear()
            got = api.port(port["id"])
            if got and got["status"] == "ACTIVE":
                active.append(time.perf_counter() - t0)
                from_plug.append(time.perf_counter() - plugged)
                break
            if time.perf_counter() - t0 > patience:
                raise RuntimeError(f"port {port['id']} not ACTIVE after {patience:.0f} s")
        # like Nova, the guest starts once the port is ACTIVE (network-vif-plugged)
        pinger = subprocess.run(["ip", "netns", "exec", ns_name, "ping", "-n", "-q", "-c", "1", "-i", "0.01", "-w",
                                 str(int(patience)), peer_ip], stdout=subprocess.DEVNULL, check=False)
        if pinger.returncode != 0:
            raise RuntimeError(f"no ping reply from instance b{i}")
        first_reply.append(time.perf_counter() - t0)
    feed.stop.set()
    return {"active": active, "reply": first_reply, "from_plug": from_plug}


def bench_resync(api: Api, state: LabState, settings: cfg.Settings, app: object, state_dir: Path,
                 n: int) -> dict[str, float]:
    net = api._ok(api.http.post("/v2.0/networks", json={"network": {"name": "resync"}}))["network"]
    api._ok(api.http.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.70.0.0/16",
                                                              "ip_version": 4, "enable_dhcp": False}}))
    host = state.hosts["compute1"]
    # the ports are bound while the host's agent is alive (binding needs it); then it stops
    binder = build_agents(settings, app.transport, state, host, state_dir)  # type: ignore[attr-defined]
    for agent in binder:
        agent.start()
    binder[0].synced.wait(30)
    extra = port_extra(api, net["id"])
    ids = []
    for start in range(0, n, 100):
        body = {"ports": [{"network_id": net["id"], "binding:host_id": "compute1", "device_owner": "compute:nova",
                           "device_id": f"r{j}", **extra} for j in range(start, min(n, start + 100))]}
        ids += [p["id"] for p in api._ok(api.http.post("/v2.0/ports", json=body))["ports"]]
    for agent in binder:
        agent.stop()
    # taps as a hypervisor would leave them: present, not yet in a bridge (peer ends stay in the host)
    from pyroute2 import IPRoute

    with IPRoute(netns=host.netns) as ipr:
        for i, pid in enumerate(ids):
            ipr.link("add", ifname=naming.tap(pid), kind="veth", peer={"ifname": f"bp{i}"})
            ipr.link("set", index=ipr.link_lookup(ifname=naming.tap(pid))[0], state="up")
    out = {}
    for label in ("cold", "warm"):
        if label == "cold" and host.switch == "ovs":
            ovs_fresh(ovs.rundir(state_dir, host.name))
        elif label == "cold":
            netns.run(["ip", "-n", host.netns, "link", "del", naming.bridge(net["id"])], check=False)
            for family, table in (("bridge", fw.TABLE), ("inet", fw.TABLE), ("inet", fw.STAMP_TABLE)):
                netns.run(["ip", "netns", "exec", host.netns, "nft", "delete", "table", family, table], check=False)
        agents = build_agents(settings, app.transport, state, host, state_dir)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for agent in agents:
            agent.start()
        l2 = agents[0]
        if not l2.synced.wait(120):
            raise RuntimeError("agent did not finish its full sync")
        deadline = time.monotonic() + 120
        while True:  # until the server shows every port ACTIVE
            ports = api._ok(api.http.get("/v2.0/ports", params={"network_id": net["id"], "fields": "status"}))
            if all(p["status"] == "ACTIVE" for p in ports["ports"]):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("ports did not all become ACTIVE")
            time.sleep(0.05)
        out[label] = time.perf_counter() - t0
        out[f"{label}_sync"] = l2.last_sync_seconds
        phases = {**l2.last_sync_phases, **getattr(l2.driver, "last_phases", {})}
        print(f"{label} resync phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()), file=sys.stderr)
        for agent in agents:
            agent.stop()
    return out


def ovs_fresh(run: Path) -> None:
    """The host's OVS as before any agent ran: no br-int or br-tun, none of the agent's flows or patch ports on
    the operator's bridges (br-ul with the underlay address, the physical networks' bridges stay)."""
    client = ovs.Client(run)
    client.vsctl("--if-exists", "del-br", "br-int", "--", "--if-exists", "del-br", "br-tun")
    for bridge in client.vsctl("list-br").split():
        for port in client.vsctl("list-ports", bridge).split():
            if port.startswith("phy-br-"):
                client.vsctl("del-port", bridge, port)
        client.ofctl("del-flows", bridge, f"cookie={ovs.COOKIE_BASE:#x}/{ovs.COOKIE_MASK:#x}")


def only_two_instances(api: Api, state: LabState, state_dir: Path) -> None:
    """OVS hosts: every netdev port costs vswitchd's main thread a poll on each pass (40 idle instances on a host
    took a third off the throughput), so the throughput is measured, like the hand-built path's, with the two
    instances alone: the others are deleted (ports and taps) and the agent takes them out of br-int."""
    ports = api._ok(api.http.get("/v2.0/ports", params={"device_owner": "compute:nova"}))["ports"]
    gone = [p for p in ports if p["device_id"].startswith("bench-") and p["device_id"] != "bench-0"]
    for port in gone:
        api.delete_port(port["id"])
        netns.delete(f"{state.prefix}-vm-b{port['device_id'].split('-')[1]}")
    client, taps = ovs.Client(ovs.rundir(state_dir, "compute1")), {naming.tap(p["id"]) for p in gone}
    deadline = time.monotonic() + 60
    while taps & set(client.vsctl("list-ports", "br-int").split()):
        if time.monotonic() > deadline:
            raise RuntimeError("the OVS agent did not unplug the deleted instances")
        time.sleep(0.1)


def unfiltered(api: Api, state_dir: Path, names: list[str]) -> None:
    """Port security off on the throughput instances' ports (OVS hosts), until neither host has a firewall flow
    (table 71 with a port's reg5: a filtered port's egress) left."""
    for port in api._ok(api.http.get("/v2.0/ports", params={"device_owner": "compute:nova"}))["ports"]:
        api._ok(api.http.put(f"/v2.0/ports/{port['id']}",
                             json={"port": {"port_security_enabled": False, "security_groups": []}}))
    deadline = time.monotonic() + 30
    while any("reg5=" in ovs.Client(ovs.rundir(state_dir, h)).ofctl("dump-flows", "br-int", "table=71")
              for h in ("compute1", "compute2")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"firewall flows of {names} still there")
        time.sleep(0.2)


def iperf(client_ns: str, server_ns: str, server_ip: str, seconds: int) -> float:
    # client and server pinned to their own CPU: both paths then run with the same placement, which
    # otherwise moves the result by more than the difference being measured
    pin = [["-A", "0"], ["-A", "1"]] if (os.cpu_count() or 1) > 1 else [[], []]
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", *pin[1]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        proc = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", str(seconds), "-J",
                               *pin[0]],
                              capture_output=True, text=True, timeout=seconds + 30, check=True)
        return float(json.loads(proc.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.kill()
        server.wait()


def throughput(args: argparse.Namespace, ours: tuple[str, str, str],
               *bare: tuple[str, str, str]) -> tuple[list[float], list[list[float]], list[float]]:
    """--iperf-runs rounds of runs (Fermion's path, then each hand-built one), after a short warm-up run of each
    (ARP, flows, conntrack and CPU frequency settled); the order reverses every round (ABBA), so that a drift in
    the other load on the machine weighs on every path alike. Returns Fermion's series, each hand-built path's
    and the load averages seen."""
    paths = [ours, *bare]
    for path in paths:
        iperf(*path, 1)
    got: list[list[float]] = [[] for _ in paths]
    loads = []
    for i in range(args.iperf_runs):
        loads.append(os.getloadavg()[0])
        for k in (range(len(paths)) if i % 2 == 0 else reversed(range(len(paths)))):
            got[k].append(iperf(*paths[k], args.iperf_seconds))
    loads.append(os.getloadavg()[0])
    return got[0], got[1:], loads


def paired(ours: list[float], bare: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(ours, bare, strict=True))


def hand_built(prefix: str) -> tuple[str, str, str]:
    """Two hosts + two instances wired by hand exactly like the agent does (bridge, vxlan, veth), MTU 1450."""
    ul, h1, h2, i1, i2 = (f"{prefix}-hb-{x}" for x in ("ul", "h1", "h2", "i1", "i2"))
    for ns_name in (ul, h1, h2, i1, i2):
        netns.create(ns_name)
    cmds = [["ip", "-n", ul, "link", "add", "br-ul", "type", "bridge"], ["ip", "-n", ul, "link", "set", "br-ul", "up"]]
    for h, ip, peer in ((h1, "198.18.1.1", "198.18.1.2"), (h2, "198.18.1.2", "198.18.1.1")):
        short = h[-2:]
        cmds += [["ip", "link", "add", "ul0", "netns", h, "type", "veth", "peer", "name", f"ul-{short}", "netns", ul],
                 ["ip", "-n", ul, "link", "set", f"ul-{short}", "master", "br-ul", "up"],
                 ["ip", "-n", h, "link", "set", "ul0", "up"], ["ip", "-n", h, "addr", "add", f"{ip}/24", "dev", "ul0"],
                 ["ip", "-n", h, "link", "add", "br0", "type", "bridge"], ["ip", "-n", h, "link", "set", "br0", "up"],
                 ["ip", "-n", h, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", ip, "dev", "ul0",
                  "dstport", "4789", "nolearning"],
                 ["ip", "-n", h, "link", "set", "vx0", "master", "br0", "up"],
                 ["bridge", "-n", h, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", peer]]
    for inst, h, ip in ((i1, h1, "10.99.0.1"), (i2, h2, "10.99.0.2")):
        cmds += [["ip", "link", "add", "eth0", "netns", inst, "type", "veth", "peer", "name", "tapx", "netns", h],
                 ["ip", "-n", h, "link", "set", "tapx", "master", "br0", "mtu", "1450", "up"],
                 ["ip", "-n", inst, "link", "set", "eth0", "mtu", "1450", "up"],
                 ["ip", "-n", inst, "addr", "add", f"{ip}/24", "dev", "eth0"]]
    for c in cmds:
        netns.run(c)
    subprocess.run(["ip", "netns", "exec", i1, "ping", "-c", "3", "-i", "0.2", "10.99.0.2"], check=True,
                   capture_output=True)
    return i1, i2, "10.99.0.2"


def hand_built_ovs(prefix: str, base: Path, mtu: int) -> tuple[str, str, str]:
    """Two OVS netdev hosts (own ovsdb-server/ovs-vswitchd each, run dirs base/ovs-hb-h1, -h2) and two
    instances, as docs/kernel.md: the underlay address on br-phy (ul0 a port of it), br-int with the
    instance's veth and a userspace VXLAN port, tx checksum offload off on every veth."""
    ul, h1, h2, i1, i2 = (f"{prefix}-hb-{x}" for x in ("ul", "h1", "h2", "i1", "i2"))
    for ns_name in (ul, h1, h2, i1, i2):
        netns.create(ns_name)
    netns.run(["ip", "-n", ul, "link", "add", "br-ul", "type", "bridge"])
    netns.run(["ip", "-n", ul, "link", "set", "br-ul", "up"])
    for h, ip, peer in ((h1, "198.18.1.1", "198.18.1.2"), (h2, "198.18.1.2", "198.18.1.1")):
        short = h[-2:]
        run = ovs.rundir(base, f"hb-{short}")
        netns.run(["ip", "link", "add", "ul0", "netns", h, "type", "veth", "peer", "name", f"ul-{short}",
                   "netns", ul])
        netns.run(["ip", "-n", ul, "link", "set", f"ul-{short}", "master", "br-ul", "up"])
        netns.run(["ip", "-n", h, "link", "set", "ul0", "up"])
        ovs.uplink(h, "ul0")
        veth.no_tx_offload(ul, f"ul-{short}")
        ovs.start_daemons(run, h)
        ovs.wait_ready(run)
        vs = ovs.Client(run).vsctl
        vs("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev", "--", "add-port", "br-phy",
           "ul0")
        vs("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        netns.run(["ip", "-n", h, "link", "set", "br-phy", "up"])
        netns.run(["ip", "-n", h, "addr", "add", f"{ip}/24", "dev", "br-phy"])
        vs("add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type=vxlan", f"options:remote_ip={peer}",
           f"options:local_ip={ip}", "options:key=42")
    for inst, h, ip in ((i1, h1, "10.99.0.1"), (i2, h2, "10.99.0.2")):
        netns.run(["ip", "link", "add", "eth0", "netns", inst, "type", "veth", "peer", "name", "tapx", "netns", h])
        netns.run(["ip", "-n", h, "link", "set", "tapx", "mtu", str(mtu), "up"])
        netns.run(["ip", "-n", inst, "link", "set", "eth0", "mtu", str(mtu), "up"])
        netns.run(["ip", "-n", inst, "addr", "add", f"{ip}/24", "dev", "eth0"])
        veth.no_tx_offload(h, "tapx")
        veth.no_tx_offload(inst, "eth0")
        ovs.Client(ovs.rundir(base, f"hb-{h[-2:]}")).vsctl("add-port", "br-int", "tapx")
    subprocess.run(["ip", "netns", "exec", i1, "ping", "-c", "3", "-i", "0.2", "-w", "10", "10.99.0.2"], check=True,
                   capture_output=True)
    return i1, i2, "10.99.0.2"


def hand_built_in_lab(state: LabState, base: Path, mtu: int) -> tuple[str, str, str]:
    """The hand-built path on the lab's own OVS hosts: a bridge br-hb beside br-int on compute1 and compute2
    (their ovs-vswitchd, their underlay address on br-ul) with an instance's veth and a userspace VXLAN port
    (VNI 42), NORMAL only. Both paths are then forwarded by the same ovs-vswitchd main threads, which poll the
    same ports (the lab's provider and external wires, every bridge's own port): what differs is Fermion's
    pipeline."""
    hosts = [state.hosts["compute1"], state.hosts["compute2"]]
    out = []
    for host, peer, ip in ((hosts[0], hosts[1], "10.98.0.1"), (hosts[1], hosts[0], "10.98.0.2")):
        vs = ovs.Client(ovs.rundir(base, host.name)).vsctl
        vs("add-br", "br-hb", "--", "set", "bridge", "br-hb", "datapath_type=netdev", "--", "add-port", "br-hb",
           "hbvx", "--", "set", "interface", "hbvx", "type=vxlan", f"options:remote_ip={peer.underlay_ip}",
           f"options:local_ip={host.underlay_ip}", "options:key=42")
        inst = f"{state.prefix}-hbl-{host.name}"
        netns.create(inst)
        # checksum offload off on both ends, no IPv6 address on the tap: as Fermion's instances (veth.plug)
        veth.plug(host.netns, "hbtap0", inst, "eth0", f"fa:16:3e:98:00:0{len(out) + 1}", mtu, [f"{ip}/24"])
        vs("add-port", "br-hb", "hbtap0")
        out.append(inst)
    subprocess.run(["ip", "netns", "exec", out[0], "ping", "-c", "3", "-i", "0.2", "-w", "10", "10.98.0.2"],
                   check=True, capture_output=True)
    return out[0], out[1], "10.98.0.2"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--resync-ports", type=int, default=1000)
    ap.add_argument("--iperf-seconds", type=int, default=10)
    ap.add_argument("--iperf-runs", type=int, default=6, help="iperf runs of each path, alternating")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plug-delay", type=int, default=0, metavar="MS",
                    help="plug each instance this long after its port is created (as Nova: bind, then boot)")
    ap.add_argument("--agent", choices=["linuxbridge", "ovs"], default="linuxbridge",
                    help="the emulated hosts' L2: Linux bridge or Open vSwitch (netdev datapath)")
    ap.add_argument("--only", choices=["activation", "throughput", "resync"], action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    parts = set(args.only or ["activation", "throughput", "resync"])
    if args.quick:
        args.ports, args.resync_ports, args.iperf_seconds, args.iperf_runs = 40, 200, 3, 2
    tmp, settings, app = embedded()
    prefix = "fb" + uuid.uuid4().hex[:6]
    state = LabState(prefix=prefix, mode="embedded", endpoint="")
    rows: list[tuple[str, str, str]] = []
    try:
        with serve_in_thread(app) as endpoint:
            state.endpoint = endpoint
            hosts = ["compute1", "compute2"]
            switches = dict.fromkeys(hosts, "ovs") if args.agent == "ovs" else None
            topology.build(state, hosts, ["compute2"], switches=switches, state_dir=tmp)
            state.save(state_path(tmp))
            supervisor = LabSupervisor(settings, app.transport, state_path(tmp), poll=0.2)
            supervisor.start()
            api = Api(endpoint)
            deadline = time.monotonic() + 30
            while sum(a["alive"] for a in api.agents()) < 3:
                if time.monotonic() > deadline:
                    raise RuntimeError("agents did not report")
                time.sleep(0.1)
            if parts & {"activation", "throughput"}:  # the throughput instances come from this part
                # OVS hosts: each port added costs vswitchd more the more ports it has (netdev datapath), so
                # a slow port is waited for and counted rather than ending the run
                act = bench_activation(api, state, args.ports if "activation" in parts else 2,
                                       60 if args.agent == "ovs" else 10, args.plug_delay / 1000)
            if "activation" in parts:
                rows.append((f"port create -> ACTIVE ({args.ports} ports, 1 host)",
                             f"p50 {ms(pct(act['active'], .5))} / p99 {ms(pct(act['active'], .99))}", "p99 <= 1 s"))
                rows.append(("port create -> first ping reply (guest starts at ACTIVE)",
                             f"p50 {ms(pct(act['reply'], .5))} / p99 {ms(pct(act['reply'], .99))}", ""))
                if args.plug_delay:
                    rows.append((f"tap plugged ({args.plug_delay} ms after create) -> ACTIVE",
                                 f"p50 {ms(pct(act['from_plug'], .5))} / p99 {ms(pct(act['from_plug'], .99))}", ""))
            if "throughput" in parts and args.agent == "ovs":
                only_two_instances(api, state, tmp)
            if "throughput" in parts:
                client_ns, server_ns = f"{prefix}-vm-b0", f"{prefix}-vm-peer"
                server_ip = instances.address(server_ns) or ""
                mtu = int(netns.run(["ip", "netns", "exec", client_ns, "cat", "/sys/class/net/eth0/mtu"]).stdout)
                hb = [hand_built_ovs(prefix, tmp, mtu), hand_built_in_lab(state, tmp, mtu)] if args.agent == "ovs" \
                    else [hand_built(prefix)]
                ours, bare, loads = throughput(args, (client_ns, server_ns, server_ip), *hb)
                rows.append(("TCP over VXLAN, instance to instance (Fermion)",
                             " / ".join(f"{x:.2f}" for x in ours) + " Gbit/s", ""))
                names = ["OVS netdev br-int+vxlan by hand, hosts of its own",
                         "by hand on the lab's OVS hosts (br-hb)"] if args.agent == "ovs" else \
                    ["bare veth+bridge+vxlan by hand"]
                for name, series in zip(names, bare, strict=True):
                    rows.append((f"TCP over VXLAN, {name}", " / ".join(f"{x:.2f}" for x in series) + " Gbit/s", ""))
                for name, series in zip(names, bare, strict=True):
                    rows.append((f"Fermion / {name.split(',')[0]} (median of the paired runs)",
                                 f"{paired(ours, series):.0%} (ratio of the medians "
                                 f"{statistics.median(ours) / statistics.median(series):.0%})", ">= 90%"))
                rows.append(("load average (1 min) during the iperf runs", f"{min(loads):.1f} - {max(loads):.1f}", ""))
                if args.agent == "ovs":  # what the OpenFlow firewall's conntrack costs: the same, unfiltered
                    unfiltered(api, tmp, [client_ns, server_ns])
                    open_, bare2, loads2 = throughput(args, (client_ns, server_ns, server_ip), *hb)
                    for name, series in zip(names, bare2, strict=True):
                        rows.append((f"TCP, Fermion with port security off / {name.split(',')[0]} (paired)",
                                     f"{paired(open_, series):.0%} ({statistics.median(open_):.2f} / "
                                     f"{statistics.median(series):.2f} Gbit/s, load {min(loads2):.1f} - "
                                     f"{max(loads2):.1f})", ""))
            supervisor.stop()  # from here the benchmark drives agents itself; the kernel state stays
            for n in netns.names(f"{prefix}-vm-"):
                netns.delete(n)
            if "resync" in parts:
                rs = bench_resync(api, state, settings, app, tmp, args.resync_ports)
                agent = "OVS agent" if args.agent == "ovs" else "L2 agent"
                rows.append((f"{agent} resync, {args.resync_ports} ports, cold (to all ACTIVE)",
                             f"{rs['cold']:.2f} s (agent sync {rs['cold_sync']:.2f} s)", "<= 5 s"))
                rows.append((f"{agent} resync, {args.resync_ports} ports, warm restart",
                             f"{rs['warm']:.2f} s (agent sync {rs['warm_sync']:.2f} s)", "<= 5 s"))
    finally:
        for side in ("hb-h1", "hb-h2"):  # the hand-built OVS hosts' daemons (nothing when not started)
            ovs.stop_daemons(ovs.rundir(tmp, side))
        topology.destroy(state, tmp)
    print_table(rows, 34)
    return 0


if __name__ == "__main__":
    sys.exit(main())
