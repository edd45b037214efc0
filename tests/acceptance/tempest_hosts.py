"""The tempest cloud's data plane: one emulated network host, built with the lab's topology (a host namespace
on an underlay namespace; physnet1 on its eth1, the external network's physnet on its eth2, all in
198.18.0.0/15), whose L2, DHCP and L3 agents are `fermion agent` processes. They reach the server's workers
over RabbitMQ under an RPC prefix of this run's own, so concurrent runs share no queue.

Without root or RabbitMQ the cloud runs the API server alone and the tests that need agents are not run."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from typing import Any

import kombu

from fermion.dataplane import netns
from fermion.lab import topology
from fermion.lab.state import LabHost, LabState
from fermion.runtime.lab import AGENT_TYPES, agent_argv

TRANSPORT_URL = "amqp://guest:guest@127.0.0.1:5672//"
HOST = "network1"
# The tests that cannot pass without agents: a router interface's port turns ACTIVE only once an agent has
# plugged it (tempest's remove_router_interface clean-up and neutron-tempest-plugin's interface status tests
# wait for that), and the agent tests need agents to list and schedule routers to.
NEEDS_AGENTS = (
    r"tempest\.api\.network\.test_routers\.Routers(IpV6)?Test\.(test_add_multiple_router_interfaces|"
    r"test_add_remove_router_interface_with_subnet_id|test_router_interface_port_update_with_fixed_ip|"
    r"test_update_delete_extra_route)",
    r"tempest\.api\.network\.test_routers_negative\.RoutersNegative(IpV6)?Test\."
    r"(test_add_router_interfaces_on_overlapping_subnets_returns_400|test_router_remove_interface_in_use_returns_409)",
    r"neutron_tempest_plugin\.api\.test_routers\.Routers(IpV6)?Test\.(test_router_interface_status|"
    r"test_router_interface_update_and_remove_gateway_ip)",
    r"neutron_tempest_plugin\.api\.admin\.(test_agent_management|test_l3_agent_scheduler)\.",
)
TOOLS = ("ip", "dnsmasq", "nft", "bridge")


def redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def unavailable(transport_url: str) -> str | None:
    """Why this machine cannot run the agents (None: it can)."""
    if os.geteuid() != 0:
        return "not root (the emulated host's namespaces need it)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    try:
        with kombu.Connection(transport_url, connect_timeout=3) as conn:
            conn.connect()
    except Exception as err:  # noqa: BLE001 - whatever the failure, there is no broker for the agents
        return f"cannot use RabbitMQ at {redacted(transport_url)} ({err or type(err).__name__})"
    return None


class NetworkHost:
    """The namespaces (their names start with a prefix of this run's own) and the agents' command lines; the
    caller starts the agents and ends them before destroy()."""

    def __init__(self, transport_url: str) -> None:
        run = secrets.token_hex(4)
        self.transport_url = transport_url
        self.rpc_prefix = f"fermion-tempest-{run}"
        self.state = LabState(prefix=f"tempest{run}", mode="distributed", endpoint="")

    @property
    def host(self) -> LabHost:
        return self.state.hosts[HOST]

    def rpc_config(self) -> str:
        """The [rpc] section the server and the agents share."""
        return f'[rpc]\ntransport_url = "{self.transport_url}"\nprefix = "{self.rpc_prefix}"\n'

    def build(self) -> None:
        topology.build(self.state, [HOST], [HOST])

    def agent_commands(self, config: str) -> dict[str, list[str]]:
        """Each agent's command line (with this config file), by kind: l2, dhcp, l3."""
        self.state.config = config
        return {kind: agent_argv(self.state, self.host, kind) for kind in self.host.kinds()}

    def missing(self, reported: list[dict[str, Any]]) -> list[str]:
        """The agent types of the host not (yet) reported alive."""
        alive = {a["agent_type"] for a in reported if a["host"] == HOST and a["alive"]}
        return [AGENT_TYPES[kind] for kind in self.host.kinds() if AGENT_TYPES[kind] not in alive]

    def destroy(self) -> list[str]:
        """Delete the namespaces (with what still runs in them: dnsmasq) and the broker's hints exchange,
        which outlives its users. Returns the namespaces deleted."""
        gone = topology.destroy(self.state)
        try:
            with kombu.Connection(self.transport_url, connect_timeout=3) as conn:
                conn.default_channel.exchange_delete(f"{self.rpc_prefix}.hints")
        except Exception:  # noqa: BLE001, S110 - never declared (no agent came up) or the broker went away
            pass
        return gone

    def leftovers(self) -> list[str]:
        return netns.names(f"{self.state.prefix}-")
