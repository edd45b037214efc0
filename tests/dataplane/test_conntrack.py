"""Connection tracking on a real host, proven with packets: each network has its own conntrack zone, so two
tenants with the same addresses never share a connection's state, and a rule change cuts the connections
it no longer allows while the others carry on. One host namespace with two bridges (two networks, the same
CIDR) and four instance namespaces, all with a unique prefix and removed afterwards, even on failure.
Needs root, nft and nsenter."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fermion.dataplane import naming, netns, veth
from fermion.dataplane.conntrack import Conntrack
from fermion.dataplane.firewall import Firewall, FirewallState, Group, PortFilter, Rule
from tests.dataplane.lab import pinger, reply_times, require_root
from tests.dataplane.test_firewall import SERVER

CIDR = "10.78.0"

# a long-lived TCP connection from a fixed source port: one line in, the echo out ("timeout" when nothing
# came back within a second)
PINNED_CLIENT = """
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("0.0.0.0", int(sys.argv[3])))
sock.settimeout(2)
try:
    sock.connect((sys.argv[1], int(sys.argv[2])))
except OSError as err:
    print("refused", err, flush=True)
    sys.exit(0)
print("connected", flush=True)
sock.settimeout(1)
for line in sys.stdin:
    try:
        sock.sendall(line.encode())
        print(sock.recv(100).decode().strip() or "closed", flush=True)
    except OSError:
        print("timeout", flush=True)
"""

EGRESS_ANY = (Rule("egress", "IPv4", None),)
SSH = Group("ssh", True, (*EGRESS_ANY, Rule("ingress", "IPv4", 6, 22, 22)))
PING_SSH = Group("ping-ssh", True, (*EGRESS_ANY, Rule("ingress", "IPv4", 1), Rule("ingress", "IPv4", 6, 22, 22)))
CLOSED = Group("closed", True, EGRESS_ANY)


@dataclass
class Vm:
    ns: str
    port: PortFilter


@dataclass
class TwoNetworks:
    """One host with networks a and b on the same CIDR: a1/a2 and b1/b2 have the same addresses."""

    prefix: str
    vms: dict[str, Vm] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.prefix + "h"

    def build(self) -> None:
        netns.create(self.host)
        for net in ("a", "b"):
            bridge = naming.bridge(f"net-{net}")  # a network's bridge names its conntrack zone
            netns.run(["ip", "-n", self.host, "link", "add", bridge, "type", "bridge"])
            netns.run(["ip", "-n", self.host, "link", "set", bridge, "up"])
            for n in (1, 2):
                port_id = str(uuid.uuid4())
                ns = f"{self.prefix}{net}{n}"
                mac = f"fa:16:3e:78:{ord(net):02x}:{n:02x}"
                netns.create(ns)
                veth.plug(self.host, naming.tap(port_id), ns, "eth0", mac, 1500, [f"{CIDR}.{n}/24"])
                netns.run(["ip", "-n", self.host, "link", "set", naming.tap(port_id), "master", bridge, "up"])
                self.vms[f"{net}{n}"] = Vm(ns, PortFilter(port_id, naming.tap(port_id), mac, (f"{CIDR}.{n}",),
                                                          network=f"net-{net}"))

    def destroy(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
        for name in [self.host, *(vm.ns for vm in self.vms.values())]:
            netns.delete(name)

    def state(self, **groups: Group) -> FirewallState:
        """Every vm in CLOSED unless named: vm name -> its group."""
        ports = tuple(PortFilter(**{**vm.port.__dict__, "groups": (groups.get(name, CLOSED).id,)})
                      for name, vm in self.vms.items())
        return FirewallState(ports, tuple({g.id: g for g in (CLOSED, *groups.values())}.values()))

    def spawn(self, vm: str, code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.vms[vm].ns, sys.executable, "-c", code, *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def serve(self, vm: str) -> None:
        proc = self.spawn(vm, SERVER, "22")
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def session(self, src: str, dst: str, sport: int) -> Session:
        return Session(self.spawn(src, PINNED_CLIENT, f"{CIDR}.{dst[-1]}", "22", str(sport)))

    def pinger(self, src: str, dst: str) -> subprocess.Popen[str]:
        proc = pinger(self.vms[src].ns, f"{CIDR}.{dst[-1]}")
        self.procs.append(proc)
        return proc


@dataclass
class Session:
    proc: subprocess.Popen[str]

    def __post_init__(self) -> None:
        self.connected = self._line() == "connected"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def say(self, word: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return self._line()


@pytest.fixture
def bed() -> Iterator[TwoNetworks]:
    require_root(("ip", "nft", "nsenter", "ping"), "conntrack tests")
    bed = TwoNetworks(f"ct{secrets.token_hex(2)}-")
    try:
        bed.build()
        yield bed
    finally:
        bed.destroy()


def test_same_addresses_in_two_networks_never_share_connection_state(bed: TwoNetworks) -> None:
    fw = Firewall(bed.host)
    fw.apply(bed.state(a2=SSH))
    bed.serve("a2")
    bed.serve("b2")
    a = bed.session("a1", "a2", 40022)
    assert a.connected and a.say("a") == "a"
    # the very same 5-tuple on network b: b2 admits no one, and a's connection must not stand in for it
    b = bed.session("b1", "b2", 40022)
    assert not b.connected, "network b saw network a's connection state"
    zones = {f.zone for f in Conntrack(bed.host).flows() if f.dport == 22}
    assert len(zones) == 1 and 0 not in zones, "bridged connections are tracked in their network's zone"

    fw.apply(bed.state(a2=SSH, b2=SSH))
    b = bed.session("b1", "b2", 40022)
    assert b.connected and b.say("b") == "b", "both tenants now hold the same 5-tuple at once"
    assert a.say("a again") == "a again"
    flows = [f for f in Conntrack(bed.host).flows() if f.dport == 22 and f.sport == 40022]
    assert len(flows) == 2 and len({f.zone for f in flows}) == 2

    fw.apply(bed.state(a2=SSH))  # b's rule goes: b's connection is cut, a's carries on
    assert b.say("b cut") == "timeout"
    assert a.say("a still") == "a still"


def test_a_rule_change_cuts_within_a_second_what_it_no_longer_allows(bed: TwoNetworks) -> None:
    fw = Firewall(bed.host)
    fw.apply(bed.state(a2=PING_SSH, b2=PING_SSH))
    bed.serve("a2")
    pinger_a, pinger_b = bed.pinger("a1", "a2"), bed.pinger("b1", "b2")
    ssh = bed.session("a1", "a2", 40023)
    assert ssh.connected and ssh.say("one") == "one"
    time.sleep(0.5)
    cut = time.time()
    fw.apply(bed.state(a2=SSH, b2=PING_SSH))  # network a's ping rule goes; tcp 22 stays allowed
    time.sleep(1.5)
    got_a, got_b = reply_times(pinger_a), reply_times(pinger_b)
    assert got_a and got_a[-1] < cut + 1.0, "the ping to a2 stopped within a second"
    assert got_b and got_b[-1] > cut + 1.0, "the ping in network b (same addresses) carried on"
    assert ssh.say("two") == "two", "the connection still allowed is untouched"
    assert fw.revoked >= 1
