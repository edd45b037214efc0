"""Agents for the lab's emulated hosts: threads in the all-in-one server (embedded mode, started by a
supervisor that follows the lab's state file) or `fermion agent` processes (distributed mode)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from fermion.agent.dhcp.agent import AGENT_TYPE as DHCP_AGENT
from fermion.agent.l2.agent import AGENT_TYPE as L2_AGENT
from fermion.agent.l3.agent import AGENT_TYPE as L3_AGENT
from fermion.agent.ovs.agent import AGENT_TYPE as OVS_AGENT
from fermion.agent.runtime import AgentRuntime
from fermion.config import settings as cfg
from fermion.dataplane import netns, ovs
from fermion.lab.state import AgentProcess, LabHost, LabState
from fermion.rpc.transport import Transport
from fermion.runtime.agents import TUNNEL_TYPES, dhcp_agent, l2_agent, l3_agent, ovs_agent

LOG = logging.getLogger(__name__)
AGENT_TYPES = {"l2": L2_AGENT, "ovs": OVS_AGENT, "dhcp": DHCP_AGENT, "l3": L3_AGENT}


def restart_dir(state_dir: Path) -> Path:
    """Embedded mode: `fermion lab restart-agent` leaves a file HOST.KIND here; the supervisor restarts that
    agent and removes the file."""
    return state_dir / "lab-restart"


def supervisor_status(state_dir: Path) -> Path:
    """Embedded mode: the supervisor's process and the hosts whose agents it runs (absent: none)."""
    return state_dir / "lab-agents.json"


def supervised_hosts(state_dir: Path) -> set[str]:
    """Embedded mode: the hosts whose agents a live supervisor runs now."""
    try:
        status = json.loads(supervisor_status(state_dir).read_text())
    except (OSError, ValueError):
        return set()
    return set(status.get("hosts", [])) if netns.alive(int(status.get("pid", 0))) else set()


def wait_unsupervised(state_dir: Path, hosts: set[str], timeout: float) -> bool:
    """Until no live supervisor runs agents of these hosts (it follows the state file within its poll).
    False on timeout."""
    deadline = time.monotonic() + timeout
    while supervised_hosts(state_dir) & hosts:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def build_agent(kind: str, settings: cfg.Settings, transport: Transport, state: LabState, host: LabHost,
                state_dir: Path) -> AgentRuntime:
    if kind == "dhcp":
        return dhcp_agent(settings, transport, host.name, host.netns, state_dir, zone=_zone(host))
    if kind == "l3":
        return l3_agent(settings, transport, host.name, host.netns, zone=_zone(host), state_dir=state_dir,
                        agent_mode=host.agent_mode())
    if kind == "ovs":
        return ovs_agent(settings, transport, host.name, host.netns, host.underlay_ip, state.bridge_mappings(host),
                         TUNNEL_TYPES, ovs.rundir(state_dir, host.name), zone=_zone(host))
    return l2_agent(settings, transport, host.name, host.netns, host.underlay_ip, state.mappings(host),
                    zone=_zone(host))


def _zone(host: LabHost) -> str | None:
    """The zone given with --zones; None: the configuration's ([agents] availability_zone, nova)."""
    return None if host.zone == "nova" else host.zone


def build_agents(settings: cfg.Settings, transport: Transport, state: LabState, host: LabHost,
                 state_dir: Path) -> list[AgentRuntime]:
    return [build_agent(kind, settings, transport, state, host, state_dir) for kind in host.kinds()]


class LabSupervisor:
    """Keeps one set of in-process agents per lab host, following the state file (level-triggered too)."""

    def __init__(self, settings: cfg.Settings, transport: Transport, state_file: Path, poll: float = 1.0) -> None:
        self.settings = settings
        self.transport = transport
        self.state_file = state_file
        self.poll = poll
        self.running: dict[str, list[AgentRuntime]] = {}
        self._published: list[str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fermion-lab-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for agents in self.running.values():
            for agent in agents:
                agent.stop()
        self.running.clear()
        supervisor_status(self.state_file.parent).unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - keep supervising; the next round retries
                LOG.exception("lab supervisor")
            self._stop.wait(self.poll)

    def reconcile(self) -> None:
        state = LabState.load(self.state_file)
        # a failed host (`fermion lab fail`) runs no agents until it is healed
        wanted = {} if state is None or state.mode != "embedded" else {
            name: host for name, host in state.hosts.items() if not host.failed}
        for name in list(self.running):
            if name not in wanted:
                for agent in self.running.pop(name):
                    agent.stop()
        for name, host in wanted.items():
            if name not in self.running and state is not None:
                agents = build_agents(self.settings, self.transport, state, host, self.state_file.parent)
                for agent in agents:
                    agent.start()
                self.running[name] = agents
                LOG.info("lab: started agents for host %s", name)
        if state is not None:
            self._restart_requested(state)
        self._publish()

    def _restart_requested(self, state: LabState) -> None:
        requests = restart_dir(self.state_file.parent)
        for request in sorted(requests.glob("*.*")) if requests.is_dir() else []:
            name, _, kind = request.name.partition(".")
            agents = self.running.get(name, [])
            for i, agent in enumerate(agents):
                if agent.driver.agent_type == AGENT_TYPES.get(kind):
                    agent.stop()  # the kernel state stays; the new agent resyncs and finds it in place
                    agents[i] = build_agent(kind, self.settings, self.transport, state, state.hosts[name],
                                            self.state_file.parent)
                    agents[i].start()
                    LOG.info("lab: restarted the %s agent of host %s", kind, name)
            request.unlink(missing_ok=True)

    def _publish(self) -> None:
        hosts = sorted(self.running)
        if hosts != self._published:
            path = supervisor_status(self.state_file.parent)
            if hosts:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"pid": os.getpid(), "hosts": hosts}))
                os.replace(tmp, path)
            else:
                path.unlink(missing_ok=True)
            self._published = hosts


# ---------------------------------------------------------------- distributed mode: agent processes
def agent_argv(state: LabState, host: LabHost, kind: str) -> list[str]:
    """One `fermion agent` in the root namespace, managing the host's namespace from outside (--netns), with
    the lab's whole configuration (transport URL, RPC prefix, agent intervals)."""
    argv = [sys.executable, "-m", "fermion.cli.main", "agent", kind, "--host", host.name, "--netns", host.netns]
    if state.config:
        argv += ["--config", state.config]
    if kind == "l2":
        mappings = ",".join(f"{k}:{v}" for k, v in state.mappings(host).items())
        argv += ["--local-ip", host.underlay_ip, "--physical-interface-mappings", mappings]
    if kind == "ovs":
        mappings = ",".join(f"{k}:{v}" for k, v in state.bridge_mappings(host).items())
        # its OVS daemons: in <state dir>/ovs-<host>, the agent's default (the lab gives it FERMION_STATE_DIR)
        argv += ["--local-ip", host.underlay_ip, "--bridge-mappings", mappings, "--tunnel-types", TUNNEL_TYPES]
    if kind == "l3":
        argv += ["--agent-mode", host.agent_mode()]
    if _zone(host):
        argv += ["--availability-zone", host.zone]
    return argv


def spawn_agent(state: LabState, host: LabHost, kind: str, log_dir: Path) -> AgentProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{kind}-{host.name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(agent_argv(state, host, kind), stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **state.agent_env}, start_new_session=True)
    log.close()
    return AgentProcess(kind=kind, pid=proc.pid, start=start_time(proc.pid) or 0)


def spawn_agents(state: LabState, host: LabHost, log_dir: Path) -> list[AgentProcess]:
    """Start the host's agents that are not running; record them in the host. Returns those started."""
    host.agents = [a for a in host.agents if running(a, host)]
    have = {a.kind for a in host.agents}
    started = [spawn_agent(state, host, kind, log_dir) for kind in host.kinds() if kind not in have]
    host.agents += started
    return started


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def running(proc: AgentProcess, host: LabHost) -> bool:
    """The process the lab started is still running (not a later process that reuses its PID)."""
    if not netns.alive(proc.pid):
        return False
    if proc.start:
        return start_time(proc.pid) == proc.start
    try:  # recorded without a start time: known by its command line
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"agent" in cmdline and host.netns.encode() in cmdline


def stop_agents(host: LabHost, procs: list[AgentProcess], timeout: float = 5.0) -> None:
    """Stop those of the processes that are still ours (SIGTERM, then SIGKILL after timeout)."""
    victims = [p.pid for p in procs if running(p, host)]
    netns.terminate(victims, timeout)
    for pid in victims:
        try:  # our child when this process started it: do not leave a zombie
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
