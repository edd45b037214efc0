"""The server-side services, composed (no mixins): one object per aggregate sharing one database."""

from __future__ import annotations

from dataclasses import dataclass

from fermion.db.engine import Database
from fermion.ml2.binding import PortBinder
from fermion.ml2.manager import Ml2Config, TypeManager, build_drivers
from fermion.ml2.mech_drivers.linuxbridge import LinuxBridgeDriver
from fermion.services.agents import AgentService
from fermion.services.dhcp import DhcpService
from fermion.services.networks import NetworkService
from fermion.services.ports import PortService
from fermion.services.quotas import QuotaService
from fermion.services.subnets import SubnetService


@dataclass
class Services:
    db: Database
    quotas: QuotaService
    networks: NetworkService
    subnets: SubnetService
    ports: PortService
    agents: AgentService
    dhcp: DhcpService

    @classmethod
    def build(cls, db: Database, *, quota_defaults: dict[str, int] | None = None, default_mtu: int = 1500,
              base_mac: str = "fa:16:3e:00:00:00", ml2: Ml2Config | None = None,
              agent_down_time: float = 30.0, dhcp_agents_per_network: int = 1) -> Services:
        quotas = QuotaService(quota_defaults)
        ml2 = ml2 or Ml2Config()
        types = TypeManager(build_drivers(ml2), ml2.tenant_network_types, default_mtu)
        agents = AgentService(agent_down_time)
        ports = PortService(quotas, base_mac, PortBinder([LinuxBridgeDriver()]), agents)
        dhcp = DhcpService(agents, ports, dhcp_agents_per_network)
        return cls(db=db, quotas=quotas, networks=NetworkService(quotas, types),
                   subnets=SubnetService(quotas, dhcp.schedule), ports=ports, agents=agents, dhcp=dhcp)

    def by_collection(self, collection: str) -> NetworkService | SubnetService | PortService:
        table: dict[str, NetworkService | SubnetService | PortService] = {
            "networks": self.networks, "subnets": self.subnets, "ports": self.ports}
        return table[collection]
