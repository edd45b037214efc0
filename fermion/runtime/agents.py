"""Wiring for agents: the same AgentRuntime and drivers in embedded mode (threads in the server process,
in-process transport) and distributed mode (`fermion agent ...` processes over RabbitMQ)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fermion.agent.dhcp.agent import DhcpAgent
from fermion.agent.l2.agent import LinuxBridgeAgent
from fermion.agent.l2.reconciler import L2Config
from fermion.agent.l3.agent import L3Agent
from fermion.agent.ovs.agent import OvsAgent
from fermion.agent.ovs.planner import OvsConfig
from fermion.agent.runtime import AgentRuntime
from fermion.config import settings as cfg
from fermion.rpc.transport import Transport

TUNNEL_TYPES = "vxlan,gre,geneve"  # what an OVS agent terminates unless told otherwise


def _runtime(settings: cfg.Settings, transport: Transport, host: str, driver: Any, zone: str | None) -> AgentRuntime:
    a = settings.agents
    return AgentRuntime(host, driver, transport, a.report_interval, a.resync_interval,
                        availability_zone=zone or a.availability_zone)


def l2_agent(settings: cfg.Settings, transport: Transport, host: str, netns: str | None = None,
             local_ip: str | None = None, interface_mappings: dict[str, str] | None = None,
             zone: str | None = None) -> AgentRuntime:
    driver = LinuxBridgeAgent(host, L2Config(local_ip=local_ip, interface_mappings=interface_mappings or {}), netns)
    return _runtime(settings, transport, host, driver, zone)


def ovs_agent(settings: cfg.Settings, transport: Transport, host: str, netns: str | None = None,
              local_ip: str | None = None, bridge_mappings: dict[str, str] | None = None,
              tunnel_types: str = "", run: str | Path | None = None, zone: str | None = None,
              tap_type: str = "") -> AgentRuntime:
    """The OVS agent; its host's OVS daemons are started in run (default <state dir>/ovs-<host>) if not running."""
    from fermion.dataplane import ovs

    rundir = Path(run) if run else ovs.rundir(cfg.state_dir(), host)
    ovs.start_daemons(rundir, netns)
    ovs.wait_ready(rundir)
    kinds = tuple(t for t in (x.strip() for x in tunnel_types.split(",")) if t)
    driver = OvsAgent(host, OvsConfig(local_ip, bridge_mappings or {}, kinds, tap_type), rundir, netns)
    return _runtime(settings, transport, host, driver, zone)


def dhcp_agent(settings: cfg.Settings, transport: Transport, host: str, netns: str | None = None,
               state_dir: Path | None = None, zone: str | None = None) -> AgentRuntime:
    return _runtime(settings, transport, host, DhcpAgent(host, state_dir or cfg.state_dir(), netns), zone)


def l3_agent(settings: cfg.Settings, transport: Transport, host: str, netns: str | None = None,
             zone: str | None = None, state_dir: Path | None = None, agent_mode: str | None = None) -> AgentRuntime:
    """agent_mode: legacy | dvr | dvr_snat (default: [l3] agent_mode)."""
    driver = L3Agent(host, netns, state_dir or cfg.state_dir(), agent_mode or settings.l3.agent_mode)
    return _runtime(settings, transport, host, driver, zone)


def parse_mappings(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """physnet1:eth1 entries (comma- or list-separated) -> {"physnet1": "eth1"}."""
    out: dict[str, str] = {}
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            physnet, sep, iface = item.partition(":")
            if not sep or not physnet or not iface:
                raise cfg.ConfigError(f"bad interface mapping {item!r}: expected physnet:interface")
            out[physnet] = iface
    return out
