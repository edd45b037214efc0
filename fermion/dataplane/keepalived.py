"""keepalived for one HA router, run as Neutron's L3 agent runs it: one VRRP instance on the router's HA
device (`ha-...`), every instance BACKUP with nopreempt so the first to time out becomes master and stays
so, a fixed primary VIP on the HA device and everything else (the router's internal and gateway addresses,
floating IPs, routes) as excluded VIPs and virtual routes that only the master holds.

Files, under one directory per router (the workdir): keepalived.conf, pid and pid-vrrp, keepalived.log
(its console log: hosts often have no syslog), notify.sh and notify.fifo, state and transitions. keepalived
writes each transition to the fifo in order and the notify script, which keepalived starts once, records
it: `state` holds the last one, `transitions` gets a line `<unix time> <state>`, and a datagram
`<router id> <state>` goes to the agent's socket (Notifications) when one is given. keepalived runs
detached from the agent, so a restarted agent adopts it from its pid files, without a transition.
docs/kernel.md has the measured behaviour this relies on."""

from __future__ import annotations

import hashlib
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import netaddr

from fermion.dataplane import DataplaneError, files, netns
from fermion.dataplane import router as rt

# VRRPv3 takes fractions of a second. A backup takes over after 3 missed adverts plus a skew of
# (256 - priority) / 256 of one: 3.8 x 0.3 s = 1.14 s at priority 50, within the 2 s failover target.
ADVERT_INT = 0.3
PRIORITY = 50  # Neutron's: equal everywhere, nopreempt decides
GARP_MASTER_DELAY = 1  # seconds: a second round of gratuitous ARPs after taking over (Neutron: 60)
GARP_MASTER_REPEAT = 3  # gratuitous ARPs per address in each round
PRIMARY_VIP_PARENT = "169.254.0.0/16"
# Neutron keeps the primary VIP's /24 off the metadata address and the DVR link-local range
PRIMARY_VIP_AVOID = ("169.254.169.254/32", "169.254.64.0/18")
STATES = ("master", "backup", "fault", "stopped")
HA_STATE = {"master": "active", "backup": "standby", "fault": "standby", "stopped": "standby"}  # Neutron's ha_state
START_TIMEOUT = 5.0  # seconds for both processes to write their pid files
STOP_TIMEOUT = 5.0  # a master sends its priority-0 advert and removes its addresses before it exits
LOG_LIMIT = 1 << 20  # the console log is emptied at a start when larger
SOCKET_PATH_MAX = 107  # sun_path, less its terminating NUL
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")  # keepalived splits script lines on spaces and quotes
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DEVICE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class Address:
    """An excluded VIP: an address only the master carries. keepalived takes the scope from the address
    (an IPv6 link-local one is scope link) and refuses one given for IPv6."""

    cidr: str
    device: str


@dataclass(frozen=True)
class Route:
    """A virtual route: only the master has it. Several nexthops make a multipath route."""

    destination: str
    nexthops: tuple[str, ...]
    device: str | None = None


@dataclass(frozen=True)
class Config:
    router_id: str
    namespace: str
    ha_device: str  # ha-<port id[:11]>: VRRP runs over it
    vrid: int  # virtual_router_id, unique on the HA network
    primary_vip: str  # CIDR on the HA device; never changes for the router's life (see primary_vip())
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    priority: int = PRIORITY
    advert_int: float = ADVERT_INT
    on_transition: Path | None = None  # run with the new state (master, backup, fault) before it is recorded


@dataclass(frozen=True)
class Transition:
    at: float  # unix time the notify script recorded it
    state: str


# ------------------------------------------------------------------------------------------- pure parts
def primary_vip(vrid: int, ha_cidrs: Iterable[str] = ()) -> str:
    """Neutron's primary VIP: address <vrid> of the first /24 of 169.254.0.0/16 that overlaps neither the HA
    network nor the link-local ranges Neutron reserves."""
    _check_vrid(vrid)
    avoid = [netaddr.IPNetwork(c) for c in (*PRIMARY_VIP_AVOID, *ha_cidrs)]
    for candidate in netaddr.IPNetwork(PRIMARY_VIP_PARENT).subnet(24):
        if not any(candidate.first <= a.last and a.first <= candidate.last for a in avoid):
            return f"{candidate.network + vrid}/24"
    raise DataplaneError(f"no free /24 for a primary VIP in {PRIMARY_VIP_PARENT}")


def from_router(router: rt.Router, namespace: str, ha_device: str, vrid: int, primary: str,
                priority: int = PRIORITY, advert_int: float = ADVERT_INT, on_transition: Path | None = None) -> Config:
    """The keepalived view of a router: every address the router manager would give its devices (floating
    IPs as /32 on the gateway) plus each device's IPv6 link-local address, and its routes, the default
    route leaving through the gateway device. Every host's copy of a device has the same MAC, so the
    devices must not make their own link-local addresses (addrgenmode none): a backup that sends anything
    from that MAC draws the network's traffic to itself."""
    devices = [*router.interfaces, *([router.gateway] if router.gateway is not None else [])]
    wanted = rt.desired_addresses(router)
    addresses = []
    for device in sorted(devices, key=lambda d: d.device):
        link_local = netaddr.EUI(device.mac).ipv6_link_local()
        cidrs = sorted(wanted[device.device], key=netaddr.IPNetwork) + [f"{link_local}/64"]
        addresses += [Address(cidr, device.device) for cidr in cidrs]
    gateway = router.gateway.device if router.gateway is not None else None
    routes = [Route(dst, hops, gateway if dst in ("0.0.0.0/0", "::/0") and len(hops) == 1 else None)
              for dst, hops in sorted(rt.desired_routes(router).items())]
    return Config(router_id=router.id, namespace=namespace, ha_device=ha_device, vrid=vrid, primary_vip=primary,
                  addresses=tuple(addresses), routes=tuple(routes), priority=priority, advert_int=advert_int,
                  on_transition=on_transition)


def _check_vrid(vrid: int) -> None:
    if not 1 <= vrid <= 255:
        raise DataplaneError(f"virtual_router_id {vrid} is outside 1-255")


def _device(name: str) -> str:
    if not _DEVICE.match(name):
        raise DataplaneError(f"bad device name {name!r}")
    return name


def _net(cidr: str) -> netaddr.IPNetwork:
    try:
        return netaddr.IPNetwork(cidr)
    except (netaddr.AddrFormatError, ValueError) as err:
        raise DataplaneError(f"bad address {cidr!r}: {err}") from err


def _host(cidr: str) -> str:
    net = _net(cidr)
    return f"{net.ip}/{net.prefixlen}"


def _path(path: Path) -> str:
    text = str(path)
    if not _SAFE_PATH.match(text):
        raise DataplaneError(f"keepalived cannot take the path {text!r} (spaces, quotes or other specials)")
    return text


def _advert(seconds: float) -> str:
    """VRRPv3 counts adverts in centiseconds, up to 40.95 s."""
    centis = round(seconds * 100)
    if not 1 <= centis <= 4095 or abs(centis - seconds * 100) > 1e-6:
        raise DataplaneError(f"advert_int {seconds} is not a multiple of 0.01 s between 0.01 and 40.95")
    return f"{centis / 100:g}"


def _address_line(a: Address) -> str:
    # no_track: a router device going down must not put the whole router in FAULT (Neutron does the same)
    return f"{_host(a.cidr)} dev {_device(a.device)} no_track"


def _route_line(r: Route) -> str:
    dst = str(_net(r.destination).cidr)
    if not r.nexthops:
        if r.device is None:
            raise DataplaneError(f"route {dst} has neither a nexthop nor a device")
        return f"{dst} dev {_device(r.device)} no_track"
    hops = [str(netaddr.IPAddress(_net(h).ip)) for h in r.nexthops]
    dev = f" dev {_device(r.device)}" if r.device else ""
    if len(hops) == 1:
        return f"{dst} via {hops[0]}{dev} no_track"
    # keepalived wants no_track before the nexthops of a multipath route
    return f"{dst} no_track " + " ".join(f"nexthop via {h}{dev}" for h in hops)


def render(cfg: Config, workdir: Path) -> str:
    """keepalived.conf. Deterministic: the same Config gives the same text, whatever the order of its
    addresses and routes. Raises DataplaneError on anything keepalived would refuse."""
    _check_vrid(cfg.vrid)
    if not _NAME.match(cfg.router_id):
        raise DataplaneError(f"bad router id {cfg.router_id!r}")
    if not 1 <= cfg.priority <= 254:
        raise DataplaneError(f"priority {cfg.priority} is outside 1-254")
    primary = _net(cfg.primary_vip)
    if primary.version != 4:
        raise DataplaneError(f"primary VIP {cfg.primary_vip} must be IPv4 (the VRRP instance's family)")
    addresses = sorted({_address_line(a) for a in cfg.addresses})
    routes = sorted({_route_line(r) for r in cfg.routes})
    lines = [
        f"# Fermion: router {cfg.router_id}. Rewritten by the L3 agent; edits are lost.",
        "global_defs {",
        f"    router_id fermion-{cfg.router_id[:11]}",
        "    vrrp_version 3",  # fractional advert_int
        "    script_user root",
        "    enable_script_security",  # refuses a script that anyone but root could change
        "    dynamic_interfaces",  # a device plugged after a reload is used, not refused
        f"    vrrp_notify_fifo {_path(workdir / 'notify.fifo')}",
        f"    vrrp_notify_fifo_script {_path(workdir / 'notify.sh')}",
        "}",
        f"vrrp_instance VR_{cfg.vrid} {{",
        "    state BACKUP",
        f"    interface {_device(cfg.ha_device)}",
        f"    virtual_router_id {cfg.vrid}",
        f"    priority {cfg.priority}",
        "    nopreempt",
        f"    advert_int {_advert(cfg.advert_int)}",
        f"    garp_master_delay {GARP_MASTER_DELAY}",
        f"    garp_master_repeat {GARP_MASTER_REPEAT}",
        # two masters meeting (a partition heals; the higher address stays): the one that yields says so
        # first, so the one that stays sends its gratuitous ARPs again (garp_lower_prio_repeat, the same
        # count) and the networks' bridges, which last heard the other, follow it
        "    higher_prio_send_advert",
        "    virtual_ipaddress {",
        f"        {primary.ip}/{primary.prefixlen} dev {cfg.ha_device}",
        "    }",
    ]
    if addresses:
        lines += ["    virtual_ipaddress_excluded {", *(f"        {a}" for a in addresses), "    }"]
    if routes:
        lines += ["    virtual_routes {", *(f"        {r}" for r in routes), "    }"]
    return "\n".join([*lines, "}"]) + "\n"


def notify_script(router_id: str, workdir: Path, sock: Path | None, on_transition: Path | None = None) -> str:
    """The fifo script keepalived starts once ($1: the fifo). keepalived writes a line per transition of
    the instance (`INSTANCE "VR_1" MASTER 50`) in order; notify scripts started per transition may run
    out of order. on_transition runs first, with the new state, its input away from the fifo. The datagram
    goes through logger (util-linux, in every Debian) because sh cannot send one; it is only a wake-up: the
    state file is the record."""
    if not _NAME.match(router_id):
        raise DataplaneError(f"bad router id {router_id!r}")
    hook = f"    {shlex.quote(_path(on_transition))} \"$state\" </dev/null\n" if on_transition is not None else ""
    send = ""
    if sock is not None:
        send = (f"    timeout 2 logger -d -u {shlex.quote(_path(sock))} --socket-errors=off "
                f"--rfc5424=notq,notime,nohost -t fermion-ha \"{router_id} $state\" 2>/dev/null\n")
    return ("#!/bin/sh\n"
            "# Fermion: records each VRRP transition keepalived writes to the fifo ($1). Rewritten by the L3 agent.\n"
            f"dir={shlex.quote(_path(workdir))}\n"
            "while read -r kind name state priority; do\n"
            "    [ \"$kind\" = INSTANCE ] || continue\n"
            "    case $state in MASTER) state=master;; BACKUP) state=backup;; FAULT) state=fault;; *) continue;; esac\n"
            f"{hook}"
            "    printf '%s\\n' \"$state\" > \"$dir/state.tmp\" && mv -f \"$dir/state.tmp\" \"$dir/state\"\n"
            "    printf '%s %s\\n' \"$(date +%s.%N)\" \"$state\" >> \"$dir/transitions\"\n"
            f"{send}"
            "done < \"$1\"\n")


def command(cfg: Config, workdir: Path) -> list[str]:
    """In the foreground (-n) with its log on the console (-l), which the agent sends to keepalived.log;
    detached from the agent by setsid, so it outlives an agent restart."""
    return ["ip", "netns", "exec", cfg.namespace, "keepalived", "-n", "-l", "-P",
            "-f", _path(workdir / "keepalived.conf"), "-p", _path(workdir / "pid"),
            "-r", _path(workdir / "pid-vrrp")]


def parse_transitions(text: str) -> list[Transition]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in STATES:
            try:
                found.append(Transition(float(parts[0]), parts[1]))
            except ValueError:
                continue
    return found


# ------------------------------------------------------------------------------------------- processes
def _ours(pid: int, conf: str) -> bool:
    """pid is a live keepalived reading conf (a pid file may outlive its process and the pid be reused)."""
    argv = netns.cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == "keepalived" and conf in argv and netns.alive(pid)


class Keepalived:
    """One router's keepalived, adopted from its pid files: constructing it does nothing."""

    def __init__(self, workdir: Path, notify_socket: Path | None = None) -> None:
        self.workdir = workdir
        self.notify_socket = notify_socket

    @property
    def conf(self) -> Path:
        return self.workdir / "keepalived.conf"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int((self.workdir / name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _ours(pid, str(self.conf)) else None

    def pids(self) -> tuple[int | None, int | None]:
        """(main process, VRRP process), each None unless alive and ours."""
        return self._pid("pid"), self._pid("pid-vrrp")

    def running(self) -> bool:
        main, vrrp = self.pids()
        return main is not None and vrrp is not None

    def ensure(self, cfg: Config) -> str:
        """Write the files and make keepalived run them. Returns what it did: started, restarted, reloaded
        or unchanged. A reload (SIGHUP) adds and removes addresses and routes without a transition."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = render(cfg, self.workdir)
        script = notify_script(cfg.router_id, self.workdir, self.notify_socket, cfg.on_transition)
        script_changed = files.replace(self.workdir / "notify.sh", script, mode=0o755)
        conf_changed = not self.conf.exists() or self.conf.read_text() != text
        if conf_changed:
            self._replace_tested(cfg, text)
        argv = command(cfg, self.workdir)
        digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()
        stamp = self.workdir / "cmdline.sha256"
        main, vrrp = self.pids()
        if main is not None and vrrp is not None and stamp.exists() and stamp.read_text() == digest:
            if conf_changed or script_changed:
                os.kill(main, signal.SIGHUP)  # also restarts the fifo script
                return "reloaded"
            return "unchanged"
        action = "restarted" if main is not None or vrrp is not None else "started"
        self._terminate()
        self._start(cfg, argv)
        stamp.write_text(digest)
        return action

    def _replace_tested(self, cfg: Config, text: str) -> None:
        """Only a configuration keepalived accepts takes the place of the running one: its vrrp process
        re-reads the file whenever it is respawned."""
        new = self.workdir / "keepalived.conf.new"
        new.write_text(text)
        proc = netns.run(["ip", "netns", "exec", cfg.namespace, "keepalived", "-t", "-f", str(new)], check=False)
        if proc.returncode != 0:
            raise DataplaneError(f"keepalived refuses the configuration of router {cfg.router_id}: "
                                 f"{(proc.stderr or proc.stdout).strip() or proc.returncode}")
        os.replace(new, self.conf)

    def _start(self, cfg: Config, argv: list[str]) -> None:
        # keepalived exits quietly when a stale pid file names a live process; the old state is not its
        for name in ("pid", "pid-vrrp", "state"):
            (self.workdir / name).unlink(missing_ok=True)
        log_path = self.workdir / "keepalived.log"
        if log_path.exists() and log_path.stat().st_size > LOG_LIMIT:
            log_path.write_bytes(b"")
        with open(log_path, "ab") as log:
            offset = log.tell()
            try:
                proc = subprocess.run(["setsid", "-f", *argv], stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise DataplaneError(f"keepalived for router {cfg.router_id}: {err}") from err
        if proc.returncode != 0:
            raise DataplaneError(f"keepalived for router {cfg.router_id} did not start: setsid {proc.returncode}")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.running():
            said = self._log_since(offset)
            if "Stopped Keepalived" in said or time.monotonic() > deadline:
                raise DataplaneError(f"keepalived for router {cfg.router_id} did not start: "
                                     + (" | ".join(said.strip().splitlines()[-4:]) or "no pid files"))
            time.sleep(0.01)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.workdir / "keepalived.log", "rb") as f:
                f.seek(offset)
                return f.read(1 << 16).decode(errors="replace")
        except OSError:
            return ""

    def _terminate(self) -> None:
        victims = [pid for pid in self.pids() if pid is not None]
        if victims:
            netns.terminate(victims, timeout=STOP_TIMEOUT)
        for name in ("pid", "pid-vrrp"):
            (self.workdir / name).unlink(missing_ok=True)

    def stop(self) -> None:
        """SIGTERM: a master hands over at once (priority-0 advert) and removes its addresses and routes.
        keepalived stops the notify script before it would report STOP, so the stop is recorded here."""
        was_running = any(pid is not None for pid in self.pids())
        self._terminate()
        if was_running and self.workdir.is_dir():
            (self.workdir / "state").write_text("stopped\n")
            with open(self.workdir / "transitions", "a") as f:
                f.write(f"{time.time():.6f} stopped\n")

    def state(self) -> str:
        """The last state keepalived reported (master, backup or fault); stopped when it is not running."""
        if not self.running():
            return "stopped"
        try:
            state = (self.workdir / "state").read_text().strip()
        except OSError:
            return "backup"  # started, its first transition (to BACKUP) not recorded yet
        return state if state in STATES else "backup"

    def primary(self) -> tuple[str, str] | None:
        """(address, device) of the instance's first virtual address, from its configuration (None: no file)."""
        try:
            lines = self.conf.read_text().splitlines()
        except OSError:
            return None
        for i, line in enumerate(lines[:-1]):
            if line.strip() == "virtual_ipaddress {":
                address, _, device = lines[i + 1].split()[:3]
                return address.split("/")[0], device
        return None

    def transitions(self) -> list[Transition]:
        try:
            return parse_transitions((self.workdir / "transitions").read_text())
        except OSError:
            return []


# ------------------------------------------------------------------------------------------- the host
def instances(state_dir: Path) -> dict[str, list[int]]:
    """Router id -> the live processes started with a file of its workdir under state_dir (keepalived's
    main and VRRP processes, the notify script, conntrackd), found in /proc whatever their pid files say;
    routers with a workdir but nothing running are listed with no pids."""
    found: dict[str, list[int]] = {}
    if state_dir.is_dir():
        for entry in state_dir.iterdir():
            if (entry / "keepalived.conf").exists():
                found.setdefault(entry.name, [])
    prefix = str(state_dir).rstrip("/") + "/"
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        for arg in netns.cmdline(pid):
            router_id, _, file = arg[len(prefix):].partition("/")
            if arg.startswith(prefix) and router_id and file:
                if netns.alive(pid):
                    found.setdefault(router_id, []).append(pid)
                break
    return found


def cleanup(state_dir: Path, keep: Iterable[str]) -> list[str]:
    """Stop the keepalived (and conntrackd) of every router under state_dir not in keep (all at once:
    keepalived takes about a second to exit) and remove its files. Returns the router ids cleaned up."""
    wanted = set(keep)
    stale = {router_id: pids for router_id, pids in instances(state_dir).items() if router_id not in wanted}
    netns.terminate([pid for pids in stale.values() for pid in pids], timeout=STOP_TIMEOUT)
    for router_id in stale:
        shutil.rmtree(state_dir / router_id, ignore_errors=True)
    return sorted(stale)


class Notifications:
    """The agent's end of the notify scripts' datagrams: one unix socket for every router of a host.
    A datagram only says that a router's state changed; Keepalived.state() has the record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def open(self) -> None:
        if len(os.fsencode(self.path)) > SOCKET_PATH_MAX:
            raise DataplaneError(f"socket path too long for AF_UNIX: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # left by an earlier agent
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        self._sock = sock

    def read(self, timeout: float) -> list[tuple[str, str]]:
        """(router id, state) of the datagrams that arrive within timeout (empty on timeout)."""
        if self._sock is None:
            raise DataplaneError("notifications socket not open")
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return []
        found: list[tuple[str, str]] = []
        while True:
            try:
                data = self._sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return found
            parts = data.decode(errors="replace").split()
            if len(parts) >= 2 and parts[-1] in STATES:  # logger puts a syslog header first
                found.append((parts[-2], parts[-1]))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.path.unlink(missing_ok=True)
