"""The server-side services, composed (no mixins): one object per aggregate sharing one database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from fermion.context import Context
from fermion.db.engine import Database
from fermion.ml2.binding import PortBinder
from fermion.ml2.manager import Ml2Config, TypeManager, build_drivers
from fermion.ml2.mech_drivers.linuxbridge import LinuxBridgeDriver
from fermion.ml2.mech_drivers.openvswitch import OpenvswitchDriver
from fermion.services.address_groups import AddressGroupService
from fermion.services.address_scopes import AddressScopeService
from fermion.services.agents import AgentService
from fermion.services.auto_allocate import AutoAllocator, DefaultPools
from fermion.services.conntrack_helpers import DEFAULT_HELPERS, ConntrackHelperService
from fermion.services.default_security_group_rules import DefaultSecurityGroupRuleService
from fermion.services.dhcp import DhcpService
from fermion.services.flavors import FlavorService, ServiceProfileService
from fermion.services.floatingips import FloatingIpService
from fermion.services.fwaas import FirewallService
from fermion.services.l3_ha import HaRouters, HaSettings
from fermion.services.metering import MeteringLabelService, MeteringRuleService
from fermion.services.networks import NetworkService
from fermion.services.port_bindings import PortBindingService
from fermion.services.port_forwardings import PortForwardingService
from fermion.services.ports import PortService
from fermion.services.qos import QosService
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.rbac import RbacService
from fermion.services.routers import RouterService
from fermion.services.security_group_rules import SecurityGroupRuleService
from fermion.services.security_groups import SecurityGroupService
from fermion.services.segments import SegmentRangeService, SegmentService
from fermion.services.subnetpools import SubnetPoolService
from fermion.services.subnets import SubnetService
from fermion.services.trace import TraceService
from fermion.services.trunks import TrunkService


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
    segments: SegmentService
    segment_ranges: SegmentRangeService
    address_groups: AddressGroupService
    default_security_group_rules: DefaultSecurityGroupRuleService
    conntrack_helpers: ConntrackHelperService
    flavors: FlavorService
    service_profiles: ServiceProfileService
    auto_allocator: AutoAllocator
    rbac: RbacService
    address_scopes: AddressScopeService
    subnetpools: SubnetPoolService
    port_bindings: PortBindingService
    fwaas: FirewallService
    qos: QosService
    port_forwardings: PortForwardingService
    trunks: TrunkService
    trace: TraceService
    metering_labels: MeteringLabelService = field(default_factory=MeteringLabelService)
    metering_label_rules: MeteringRuleService = field(default_factory=MeteringRuleService)

    @classmethod
    def build(cls, db: Database, *, quota_defaults: dict[str, int] | None = None, default_mtu: int = 1500,
              base_mac: str = "fa:16:3e:00:00:00", ml2: Ml2Config | None = None,
              agent_down_time: float = 30.0, dhcp_agents_per_network: int = 1,
              dns_domain: str = "openstacklocal.",
              conntrack_helpers: tuple[str, ...] = DEFAULT_HELPERS,
              default_pools: DefaultPools | None = None, ha: HaSettings | None = None,
              router_distributed: bool = False) -> Services:
        quotas = QuotaService(quota_defaults)
        ml2 = ml2 or Ml2Config()
        types = TypeManager(build_drivers(ml2), ml2.tenant_network_types, default_mtu)
        agents = AgentService(agent_down_time)
        binder = PortBinder([LinuxBridgeDriver(), OpenvswitchDriver()])
        ports = PortService(quotas, base_mac, binder, agents, dns_domain)
        dhcp = DhcpService(agents, ports, dhcp_agents_per_network)
        flavors = FlavorService()
        pools = SubnetPoolService(quotas)
        networks, subnets = NetworkService(quotas, types), SubnetService(quotas, dhcp.schedule, pools)
        routers = RouterService(quotas, ports, agents, flavors, HaRouters(ha or HaSettings(), networks, subnets),
                                router_distributed)
        floatingips = FloatingIpService(quotas, routers)
        return cls(db=db, quotas=quotas, networks=networks, subnets=subnets, ports=ports, agents=agents, dhcp=dhcp,
                   segments=SegmentService(types), segment_ranges=SegmentRangeService(types),
                   routers=routers, floatingips=floatingips,
                   security_groups=SecurityGroupService(quotas), security_group_rules=SecurityGroupRuleService(quotas),
                   address_groups=AddressGroupService(quotas),
                   default_security_group_rules=DefaultSecurityGroupRuleService(),
                   conntrack_helpers=ConntrackHelperService(conntrack_helpers), flavors=flavors,
                   service_profiles=ServiceProfileService(),
                   auto_allocator=AutoAllocator(networks, subnets, routers, default_pools or pools),
                   rbac=RbacService(quotas), address_scopes=AddressScopeService(quotas), subnetpools=pools,
                   port_bindings=PortBindingService(ports), fwaas=FirewallService(routers),
                   qos=QosService(quotas),
                   port_forwardings=PortForwardingService(floatingips._router_for, routers.changed),
                   trunks=TrunkService(ports, agents), trace=TraceService(agents))

    def by_collection(self, collection: str) -> Any:
        table: dict[str, Any] = {
            "networks": self.networks, "subnets": self.subnets, "ports": self.ports, "routers": self.routers,
            "floatingips": self.floatingips, "security_groups": self.security_groups,
            "security_group_rules": self.security_group_rules, "segments": self.segments,
            "network_segment_ranges": self.segment_ranges, "address_groups": self.address_groups,
            "default_security_group_rules": self.default_security_group_rules, "flavors": self.flavors,
            "service_profiles": self.service_profiles, "rbac_policies": self.rbac,
            "address_scopes": self.address_scopes, "subnetpools": self.subnetpools,
            "metering_labels": self.metering_labels, "metering_label_rules": self.metering_label_rules,
            "firewall_rules": self.fwaas.rules, "firewall_policies": self.fwaas.policies,
            "firewall_groups": self.fwaas.groups, "policies": self.qos, "trunks": self.trunks}
        return table[collection]
