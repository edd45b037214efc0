#!/usr/bin/env python
"""HA router failover benchmark (needs root): one HA router's keepalived and conntrackd in two router
namespaces (the topology of tests/dataplane/hapair.py: HA link, tenant link with the router's port on both,
a client; here also an external link with the router's gateway port on both, a server behind it, and the
router's NAT table as the L3 agent renders it, so the client reaches the server through SNAT), a continuous
ping (every 50 ms) from the client to the router's address, and one TCP connection from the client to the
server, whose server side sends a line every 50 ms. It prints:

  * failover gap, host lost: the active instance's keepalived and conntrackd SIGKILLed and its links cut
    (what a dead host looks like to the standby); the gap is the time between the last reply before and the
    first reply after, p50/max over --rounds failovers. The lost host is then healed (both restarted, links
    up) and comes back as standby: nopreempt keeps the new master, which the next round then kills.
  * TCP through SNAT, host lost: whether the connection survived each failover (the server's next line
    arrives; without the connection's state the new master would answer it with a reset), and its stall,
    the time between the last line before and the first line after
  * takeover reported: from the kill to the standby's notify datagram at its agent's socket
  * failover gap, keepalived stopped: a graceful stop (SIGTERM: the master hands over at once), --graceful rounds
  * partition healed: the active host is cut off (its ports taken off the switches) with keepalived running,
    so both are master until the ports are back; then the time until exactly one master is left, the ping
    gap and the TCP stall that the healing causes, and whether any instance changed state in the 2 s after.
    --partitions rounds; VRRP keeps the instance with the higher HA address, whichever was cut off
  * state changes while both run for --quiet seconds, optionally with --busy CPU burners running (a false
    takeover there would mean advert_int is too short for a loaded host)

--no-conntrackd runs the same without conntrackd, to see what it is for.

Everything lives in namespaces named kb<random>-*, with addresses in 198.18.0.0/15 and 169.254.192.0/18,
and is removed at the end, even on errors: keepalived, conntrackd, the TCP ends and the burners by their
pids, then the namespaces.

    sudo .venv/bin/python bench/ha_lab.py                      # the same failover in a lab, end to end
    sudo .venv/bin/python bench/ha.py                          # 10 failovers, advert_int 0.3 s
    sudo .venv/bin/python bench/ha.py --rounds 20 --advert-int 1 --busy 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fermion.dataplane import conntrackd as ct  # noqa: E402
from fermion.dataplane import keepalived as ka  # noqa: E402
from fermion.dataplane import naming, netns  # noqa: E402
from fermion.dataplane import router as rt  # noqa: E402
from tests.dataplane import hapair as hp  # noqa: E402
from tests.dataplane.lab import Pinger, Stream, ticker_server  # noqa: E402

QG = naming.router_gateway("4d4d4d4d-4d4d")  # the router's gateway port, the same on both hosts
QG_MAC = "fa:16:3e:4d:00:02"
EXTERNAL = "198.18.79.1"  # the router's address on the external link: SNAT's source
SERVER = "198.18.79.10"
PORT = 5001


class Bench(hp.HaPair):
    advert_int = ka.ADVERT_INT
    sync = True  # conntrackd

    def router(self, host: str) -> rt.Router:
        """The router as the L3 agent sees it on host, for its NAT table."""
        qr = rt.Interface("qr", hp.QR, "-", hp.QR_MAC, 1500, (f"{hp.GATEWAY}/24",))
        qg = rt.Interface("qg", QG, "-", QG_MAC, 1500, (f"{EXTERNAL}/24",))
        ha = rt.Interface("ha", naming.ha_device(hp.HA_PORTS[host]), "-", "-", 1500, (hp.HA_ADDRESSES[host],))
        return rt.Router(id=hp.ROUTER, interfaces=(qr,), gateway=qg, ha=rt.Ha(hp.VRID, ha))

    def build(self) -> None:
        super().build()
        sw = self.ns("sw")
        hp.ip(sw, "link add br-x type bridge\nlink set br-x up\n")
        for host in ("r1", "r2"):
            ns = self.ns(host)
            netns.run(["ip", "link", "add", QG, "netns", ns, "type", "veth", "peer", "name", f"qg{host}", "netns", sw])
            hp.ip(sw, f"link set qg{host} master br-x up\n")
            hp.ip(ns, f"link set {QG} address {QG_MAC} addrgenmode none up\n")
            netns.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{k}=1" for k in rt.SYSCTLS),
                       *rt.HA_SYSCTLS])
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rt.render_nat(self.router(host)),
                           text=True, check=True)
        server = self.ns("s")
        netns.create(server)
        netns.run(["ip", "link", "add", "eth0", "netns", server, "type", "veth", "peer", "name", "qrs", "netns", sw])
        hp.ip(sw, "link set qrs master br-x up\n")
        hp.ip(server, f"link set eth0 up\naddr add {SERVER}/24 dev eth0\n")
        hp.ip(self.ns("c"), f"route add default via {hp.GATEWAY}\n")

    def conntrackd(self, host: str) -> ct.Conntrackd:
        return ct.Conntrackd(self.state_dir(host) / hp.ROUTER)

    def config(self, host: str, *extra: ka.Address, routes: tuple[ka.Route, ...] = (hp.EXTRA_ROUTE,)) -> ka.Config:
        cfg = super().config(host, ka.Address(f"{EXTERNAL}/24", QG), *extra, routes=routes)
        hook = self.conntrackd(host).script if self.sync else None
        return replace(cfg, advert_int=self.advert_int, on_transition=hook)

    def revive(self, host: str) -> None:
        """conntrackd first, so that it hears keepalived's first transition (as the router manager does)."""
        if self.sync:
            self.conntrackd(host).ensure(ct.Config(hp.ROUTER, self.ns(host), naming.ha_device(hp.HA_PORTS[host]),
                                                   hp.HA_ADDRESSES[host], hp.VRID))
        self.agents[host].ensure(self.config(host))

    def start(self) -> str:
        for host in ("r1", "r2"):
            self.revive(host)
        reported = self.wait_for_master()
        hp.wait_until(lambda: self.agents[other(reported)].state() == "backup", f"{other(reported)} backup")
        return reported

    def drain(self) -> list[tuple[str, str]]:
        return [got for reader in self.readers.values() for got in reader.read(0)]

    def links(self, host: str, state: str) -> None:
        hp.ip(self.ns(host), f"link set {naming.ha_device(hp.HA_PORTS[host])} {state}\nlink set {hp.QR} {state}\n"
                             f"link set {QG} {state}\n")

    def switch_ports(self, host: str, attached: bool) -> None:
        """The host's ports off the switches (a partition: its devices stay up, keepalived keeps running) or back."""
        ports = {f"ha{host}": "br-ha", f"qr{host}": "br-t", f"qg{host}": "br-x"}
        hp.ip(self.ns("sw"), "".join(f"link set {p} {'master ' + br if attached else 'nomaster'}\n"
                                     for p, br in ports.items()))

    def holds(self, host: str) -> bool:
        """The host's conntrackd holds the client's connection in its copy of the other's table."""
        return self.sync and f"dport={PORT} " in self.conntrackd(host).client(self.ns(host), "-e").stdout

    def cleanup(self) -> None:
        super().cleanup()
        netns.delete(self.ns("s"))




def other(host: str) -> str:
    return "r2" if host == "r1" else "r1"


def longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


class Connection:
    """The client's TCP connection to the server through the router's SNAT, made again when one breaks."""

    def __init__(self, pair: Bench) -> None:
        self.pair = pair
        self.stream = Stream(pair.ns("c"), SERVER, PORT)

    def ready(self, standby: str) -> None:
        """Lines arriving (a new connection when the last one broke), and the standby holding the
        connection's state (when conntrackd runs)."""
        if not self.stream.ticks(time.time() - 1.0):  # a broken one: the client itself may not know yet
            self.stream.close()
            self.stream = Stream(self.pair.ns("c"), SERVER, PORT)
        hp.wait_until(lambda: bool(self.stream.ticks(time.time() - 0.2)), "the server's lines")
        if self.pair.sync:
            hp.wait_until(lambda: self.pair.holds(standby), f"{standby} to hold the connection's state", timeout=10)

    def stall(self, at: float, since: float | None = None, timeout: float = 10.0) -> float | None:
        """The longest time without a line from just before at until the first line after since (at by
        default: a line still on its way at `at` is no proof); None when none came (it broke)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.stream.ended() is None:
            after = self.stream.ticks(at if since is None else since)
            if after:
                return longest_gap([t for t in self.stream.ticks(at - 0.3) if t <= after[0]])
            time.sleep(0.02)
        return None

    def close(self) -> None:
        self.stream.close()


def failover(pair: Bench, active: str, crash: bool, tcp: Connection) -> tuple[float, float, float | None]:
    """Kill (crash) or stop the active instance; (ping gap, seconds until the takeover was reported, TCP
    stall or None when the connection broke). Leaves the old active running again as standby."""
    standby = other(active)
    tcp.ready(standby)
    pair.drain()
    ping = Pinger(pair.ns("c"), hp.GATEWAY)
    try:
        ping.wait(0.0)
        time.sleep(0.3)
        at = time.time()
        if crash:
            main, vrrp = pair.agents[active].pids()
            for pid in (vrrp, main, pair.conntrackd(active).pid()):
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            pair.links(active, "down")
        else:
            pair.agents[active].stop()
        if pair.wait_for_master() != standby:
            raise RuntimeError("the wrong instance took over")
        taken = time.time()
        reported = taken - at
        resumed = ping.wait(taken)  # a reply after the takeover: one on its way at the kill proves nothing
        gap = longest_gap([t for t in ping.replies if at - 0.3 <= t <= resumed])
        stall = tcp.stall(at, since=taken)
    finally:
        ping.stop()
    pair.revive(active)
    if crash:
        pair.links(active, "up")
    hp.wait_until(lambda: pair.agents[active].state() == "backup", f"{active} back as standby")
    time.sleep(0.5)
    flaps = [got for got in pair.drain() if got[1] == "master"]
    if flaps or pair.agents[standby].state() != "master":
        raise RuntimeError(f"the healed instance took the router back: {flaps}")
    return gap, reported, stall


def partition(pair: Bench, active: str, tcp: Connection) -> tuple[float, float, float | None, int, str]:
    """Cut the active host off with keepalived running, let the other take over, then heal. Returns the
    seconds from the healing to one master, the ping gap and the TCP stall (None: broken) the healing
    caused, the state changes in the 2 s after, and the master left."""
    standby = other(active)
    tcp.ready(standby)
    pair.switch_ports(active, attached=False)
    hp.wait_until(lambda: pair.agents[standby].state() == "master", f"{standby} to take over")
    flowing = tcp.stall(time.time()) is not None  # through the instance that took over
    ping = Pinger(pair.ns("c"), hp.GATEWAY)
    try:
        ping.wait(0.0)
        time.sleep(0.3)
        at = time.time()
        pair.switch_ports(active, attached=True)
        hp.wait_until(lambda: [pair.agents[h].state() for h in ("r1", "r2")].count("master") == 1, "one master")
        single = time.time() - at
        settled = time.time() + 1.0
        ping.wait(settled)
        after = tcp.stall(settled) is not None if flowing else False
        gap = longest_gap([t for t in ping.replies if at - 0.3 < t <= settled])
        lines = [t for t in tcp.stream.ticks(at - 0.3) if t <= settled] + tcp.stream.ticks(settled)[:1]
        stall = longest_gap(lines) if after else None
    finally:
        ping.stop()
    time.sleep(0.5)
    pair.drain()
    time.sleep(2.0)
    changes = len(pair.drain())
    masters = [h for h in ("r1", "r2") if pair.agents[h].state() == "master"]
    return single, gap, stall, changes, masters[0] if len(masters) == 1 else "both"


def burners(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def row(name: str, values: list[float], unit: str = "s") -> tuple[str, str, str, str]:
    if not values:
        return name, "-", "-", "0"
    return (name, f"{statistics.median(values):.2f} {unit}", f"{max(values):.2f} {unit}", str(len(values)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="failovers with the host lost (default 10)")
    parser.add_argument("--graceful", type=int, default=3, help="failovers by a keepalived stop (default 3)")
    parser.add_argument("--advert-int", type=float, default=ka.ADVERT_INT, help="VRRP advert interval, seconds")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds both run untouched (default 10)")
    parser.add_argument("--busy", type=int, default=0, help="CPU burners running during the quiet period")
    parser.add_argument("--partitions", type=int, default=3, help="partitions healed (default 3)")
    parser.add_argument("--no-conntrackd", action="store_true", help="without conntrackd (TCP state not shared)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/ha.py needs root (network namespaces)", file=sys.stderr)
        return 2
    version = subprocess.run(["keepalived", "--version"], capture_output=True, text=True, check=False)
    print((version.stdout or version.stderr).splitlines()[0], f"| advert_int {args.advert_int} s",
          f"| load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if not args.no_conntrackd and shutil.which("conntrackd") is None:
        print("conntrackd is missing (scripts/bootstrap installs it); or pass --no-conntrackd", file=sys.stderr)
        return 2
    pair = Bench(prefix="kb" + uuid.uuid4().hex[:6], tmp=Path(tempfile.mkdtemp(prefix="fermion-ha-")))
    pair.advert_int = args.advert_int
    pair.sync = not args.no_conntrackd
    hot: list[subprocess.Popen[bytes]] = []
    crash_gaps: list[float] = []
    reports: list[float] = []
    stalls: list[float | None] = []
    stop_gaps: list[float] = []
    heals: list[tuple[float, float, float | None, int, str]] = []
    tcp: Connection | None = None
    try:
        pair.build()
        active = pair.start()
        with ticker_server(pair.ns("s"), PORT):
            tcp = Connection(pair)
            for n in range(args.rounds):
                g, r, s = failover(pair, active, crash=True, tcp=tcp)
                crash_gaps.append(g)
                reports.append(r)
                stalls.append(s)
                print(f"host lost {n + 1}/{args.rounds}: {active} -> {other(active)}: gap {g:.2f} s, reported after "
                      f"{r:.2f} s, TCP " + (f"stalled {s:.2f} s" if s is not None else "broken"), file=sys.stderr)
                active = other(active)
            for n in range(args.graceful):
                g, _, _ = failover(pair, active, crash=False, tcp=tcp)
                stop_gaps.append(g)
                print(f"stop {n + 1}/{args.graceful}: gap {g:.2f} s", file=sys.stderr)
                active = other(active)
            for n in range(args.partitions):
                h = partition(pair, active, tcp)
                heals.append(h)
                print(f"partition {n + 1}/{args.partitions}: {active} cut off and back: one master after {h[0]:.2f} s "
                      f"({h[4]}), ping gap {h[1]:.2f} s, TCP " + (f"stall {h[2]:.2f} s" if h[2] is not None else
                                                                  "broken") + f", {h[3]} changes after",
                      file=sys.stderr)
                active = h[4] if h[4] != "both" else active
            tcp.close()
            tcp = None
        pair.drain()
        hot = burners(args.busy)
        time.sleep(args.quiet)
        changes = pair.drain()
    finally:
        if tcp is not None:
            tcp.close()
        for proc in hot:
            proc.kill()
            proc.wait()
        pair.cleanup()
        shutil.rmtree(pair.tmp, ignore_errors=True)
        leftovers = netns.names(pair.prefix)
        if leftovers:
            print(f"namespaces left behind: {leftovers}", file=sys.stderr)
    survived = [s for s in stalls if s is not None]
    healed = [h for h in heals if h[4] != "both"]
    rows = [row("failover gap, host lost (ping every 50 ms)", crash_gaps),
            ("TCP through SNAT survived, host lost", f"{len(survived)}/{len(stalls)}",
             "yes" if stalls and len(survived) == len(stalls) else "no", str(len(stalls))),
            row("TCP stall, host lost (a line every 50 ms)", survived),
            row("takeover reported to the agent, host lost", reports),
            row("failover gap, keepalived stopped", stop_gaps),
            row("partition healed: one master after", [h[0] for h in healed]),
            row("partition healed: ping gap", [h[1] for h in healed]),
            ("partition healed: TCP survived", f"{sum(h[2] is not None for h in heals)}/{len(heals)}", "-",
             str(len(heals))),
            ("partition healed: state changes in the 2 s after", str(sum(h[3] for h in heals)), "-", str(len(heals))),
            (f"state changes in {args.quiet:g} s, both up, {args.busy} CPU burners", str(len(changes)), "-", "1")]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{width}} | {'p50':<7} | {'max':<7} | n")
    print("-" * (width + 24))
    for name, p50, worst, count in rows:
        print(f"{name:<{width}} | {p50:<7} | {worst:<7} | {count}")
    print(f"\nconntrackd: {'off' if args.no_conntrackd else 'on'}")
    print("targets (issue 16): failover gap p50 <= 2 s; TCP survives; after a partition one master within 5 s, "
          "no flap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
