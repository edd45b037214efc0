"""Agents for the lab's emulated hosts: threads in the all-in-one server (embedded mode, started by a
supervisor that follows the lab's state file) or `fermion agent` processes (distributed mode)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from fermion.agent.runtime import AgentRuntime
from fermion.config import settings as cfg
from fermion.lab.state import LabHost, LabState
from fermion.rpc.transport import Transport
from fermion.runtime.agents import dhcp_agent, l2_agent, l3_agent

LOG = logging.getLogger(__name__)


def build_agents(settings: cfg.Settings, transport: Transport, state: LabState, host: LabHost,
                 state_dir: Path) -> list[AgentRuntime]:
    agents = [l2_agent(settings, transport, host.name, host.netns, host.underlay_ip, state.mappings())]
    if host.dhcp:  # the network node: DHCP and routers
        agents.append(dhcp_agent(settings, transport, host.name, host.netns, state_dir))
        agents.append(l3_agent(settings, transport, host.name, host.netns))
    return agents


class LabSupervisor:
    """Keeps one set of in-process agents per lab host, following the state file (level-triggered too)."""

    def __init__(self, settings: cfg.Settings, transport: Transport, state_file: Path, poll: float = 1.0) -> None:
        self.settings = settings
        self.transport = transport
        self.state_file = state_file
        self.poll = poll
        self.running: dict[str, list[AgentRuntime]] = {}
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

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - keep supervising; the next round retries
                LOG.exception("lab supervisor")
            self._stop.wait(self.poll)

    def reconcile(self) -> None:
        state = LabState.load(self.state_file)
        wanted = {} if state is None or state.mode != "embedded" else state.hosts
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


def spawn_agents(state: LabState, host: LabHost, log_dir: Path, env: dict[str, str] | None = None) -> list[int]:
    """Distributed mode: one `fermion agent` process per agent, in the root namespace, managing the host's
    namespace from outside (--netns)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "fermion.cli.main", "agent"]
    mappings = ",".join(f"{k}:{v}" for k, v in state.mappings().items())
    commands = [[*base, "l2", "--host", host.name, "--netns", host.netns, "--local-ip", host.underlay_ip,
                 "--physical-interface-mappings", mappings]]
    if host.dhcp:
        commands.append([*base, "dhcp", "--host", host.name, "--netns", host.netns])
        commands.append([*base, "l3", "--host", host.name, "--netns", host.netns])
    pids = []
    for argv in commands:
        log = open(log_dir / f"{argv[4]}-{host.name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
        log.close()
        pids.append(proc.pid)
    return pids
