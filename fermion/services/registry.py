"""The server-side services, composed (no mixins): one object per aggregate sharing one database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection

from fermion.context import Context
from fermion.db.engine import Database
from fermion.ml2.binding import PortBinder
from fermion.ml2.manager import Ml2Config, TypeManager, build_drivers
from fermion.ml2.mech_drivers.linuxbridge import LinuxBridgeDriver
from fermion.services.agents import AgentService
from fermion.services.dhcp import DhcpService
from fermion.services.floatingips import FloatingIpService
from fermion.services.networks import NetworkService
from fermion.services.port_bindings import PortBindingService
from fermion.services.ports import PortService
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.routers import RouterService
from fermion.services.security_group_rules import SecurityGroupRuleService
from fermion.services.security_groups import SecurityGroupService
from fermion.services.subnets import SubnetService


class ResourceService(Protocol):
    """What the generic API controller needs from a service (ports also take the networks, see api/)."""

    collection: Collection

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None: ...

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None: ...


@dataclass
class Services:
    db: Database
    quotas: QuotaService
    networks: NetworkService
    subnets: SubnetService
    ports: PortService
    agents: AgentService
    dhcp: DhcpService
    routers: RouterService
    floatingips: FloatingIpService
    security_groups: SecurityGroupService
    security_group_rules: SecurityGroupRuleService
    port_bindings: PortBindingService

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
        routers = RouterService(quotas, ports, agents)
        return cls(db=db, quotas=quotas, networks=NetworkService(quotas, types),
                   subnets=SubnetService(quotas, dhcp.schedule), ports=ports, agents=agents, dhcp=dhcp,
                   routers=routers, floatingips=FloatingIpService(quotas, routers),
                   security_groups=SecurityGroupService(quotas), security_group_rules=SecurityGroupRuleService(quotas),
                   port_bindings=PortBindingService(ports))

    def by_collection(self, collection: str) -> Any:
        table: dict[str, Any] = {
            "networks": self.networks, "subnets": self.subnets, "ports": self.ports, "routers": self.routers,
            "floatingips": self.floatingips, "security_groups": self.security_groups,
            "security_group_rules": self.security_group_rules}
        return table[collection]
