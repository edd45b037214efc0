"""Typed settings from a TOML file plus environment overrides. Unknown keys are rejected."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


def state_dir() -> Path:
    return Path(os.environ.get("FERMION_STATE_DIR") or Path.home() / ".local/share/fermion")


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 9696
    workers: int = 1
    # requests run at once per process: with one GIL, more threads than this only add switching
    # (8 busy threads cost 30 % more CPU per request than 4); raise it when the database is remote
    threads: int = 4
    max_request_body_size: int = 114688
    # GET /metrics without credentials, as scrapers have none (it shows agent host names, no tenant data);
    # false: only for admins (a Keystone token with the admin role)
    metrics_public: bool = True


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""  # empty: SQLite file in the state directory
    pool_size: int = 16


@dataclass(frozen=True)
class Auth:
    strategy: str = "noauth"  # noauth | keystone
    default_project_id: str = "fermion-default"
    default_roles: tuple[str, ...] = ("admin",)
    policy_file: str = ""


@dataclass(frozen=True)
class Keystone:
    auth_url: str = ""
    username: str = ""
    password: str = ""
    project_name: str = "service"
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    cache_seconds: float = 60.0


@dataclass(frozen=True)
class NetworkSettings:
    global_physnet_mtu: int = 1500
    base_mac: str = "fa:16:3e:00:00:00"
    # Neutron's dns_domain: the domain of the instances' names (dns_assignment, the DHCP servers' DNS). With
    # the default, ports' dns_name and dns_domain are accepted and ignored, as in Neutron
    dns_domain: str = "openstacklocal."


@dataclass(frozen=True)
class Ml2:
    type_drivers: tuple[str, ...] = ("local", "flat", "vlan", "vxlan", "gre", "geneve")
    tenant_network_types: tuple[str, ...] = ("vxlan",)
    flat_networks: tuple[str, ...] = ("*",)
    network_vlan_ranges: tuple[str, ...] = ("physnet1:100:199",)
    vxlan_vni_ranges: tuple[str, ...] = ("1000:1999",)
    gre_tunnel_id_ranges: tuple[str, ...] = ("1:1000",)
    geneve_vni_ranges: tuple[str, ...] = ("1:1000",)


@dataclass(frozen=True)
class Rpc:
    # empty: in-process (embedded mode); amqp://guest:guest@127.0.0.1:5672// for distributed mode
    transport_url: str = ""
    prefix: str = "fermion"  # names the exchanges/queues, so deployments can share a broker


@dataclass(frozen=True)
class Agents:
    agent_down_time: float = 30.0  # no heartbeat for this long: the agent is dead
    report_interval: float = 5.0
    resync_interval: float = 60.0  # full pull + reconcile even when no hint came
    dhcp_agents_per_network: int = 1
    # Neutron's allow_automatic_dhcp_failover: the networks of a DHCP agent dead for agent_down_time move to a
    # live one (the server checks every agent_down_time / 2)
    allow_automatic_dhcp_failover: bool = True
    # HOST:PORT where a `fermion agent` process serves /metrics (also --metrics-address); empty: not served
    metrics_address: str = ""
    availability_zone: str = "nova"  # the zone agents report for their host (also --availability-zone)


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"  # debug | info | warning | error | critical
    format: str = "text"  # text | json (one object per line)


@dataclass(frozen=True)
class Quotas:
    """Each resource's default limit per project (-1: unlimited), as Neutron's [quotas] quota_<resource>."""
    network: int = 100
    subnet: int = 100
    port: int = 500
    router: int = 10
    floatingip: int = 50
    security_group: int = 10
    security_group_rule: int = 100
    rbac_policy: int = 10


@dataclass(frozen=True)
class L3:
    # Neutron's [DEFAULT] l3_conntrack_helpers: the helpers a router's conntrack_helpers may name
    conntrack_helpers: tuple[str, ...] = ("amanda:tcp", "ftp:tcp", "h323:tcp", "irc:tcp", "netbios-ns:udp",
                                          "pptp:tcp", "sane:tcp", "sip:tcp", "snmp:udp", "tftp:udp")
    # HA routers, Neutron's l3_ha options: the default of a new router's `ha`, how many L3 agents host an HA
    # router (0: every live one; VRRP needs two), the subnet of the projects' HA networks and its network type
    # ("" : the first tenant network type)
    ha: bool = False
    max_l3_agents_per_router: int = 3
    l3_ha_net_cidr: str = "169.254.192.0/18"
    l3_ha_network_type: str = ""
    # Neutron's allow_automatic_l3agent_failover (false there): the legacy routers of an L3 agent dead for
    # [agents] agent_down_time move to a live one; HA routers stay, keepalived moves their traffic
    allow_automatic_l3agent_failover: bool = True
    # Neutron's agent_mode of an L3 agent: legacy (centralized routers), dvr (local copies of distributed
    # routers and their floating IPs) or dvr_snat (that, plus distributed routers' central SNAT parts)
    agent_mode: str = "legacy"
    # Neutron's router_distributed: the default of a new router's `distributed` (dvr)
    router_distributed: bool = False


@dataclass(frozen=True)
class Settings:
    server: Server = field(default_factory=Server)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: Auth = field(default_factory=Auth)
    keystone: Keystone = field(default_factory=Keystone)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    quotas: Quotas = field(default_factory=Quotas)
    ml2: Ml2 = field(default_factory=Ml2)
    rpc: Rpc = field(default_factory=Rpc)
    agents: Agents = field(default_factory=Agents)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    l3: L3 = field(default_factory=L3)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{state_dir() / 'fermion.sqlite'}"

    def replace(self, section: str, **values: Any) -> Settings:
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})

    def validate(self) -> Settings:
        if self.auth.strategy not in ("noauth", "keystone"):
            raise ConfigError(f"auth.strategy must be 'noauth' or 'keystone', not {self.auth.strategy!r}")
        if self.auth.strategy == "keystone" and not (self.keystone.auth_url and self.keystone.username):
            raise ConfigError("auth.strategy = 'keystone' needs keystone.auth_url, username and password")
        if not 0 < self.server.port < 65536:
            raise ConfigError(f"server.port {self.server.port} is out of range")
        if self.server.workers < 1 or self.server.threads < 1:
            raise ConfigError("server.workers and server.threads must be at least 1")
        bad = [k for k, v in dataclasses.asdict(self.quotas).items() if v < -1]
        if bad:
            raise ConfigError(f"quotas.{bad[0]} must be -1 (unlimited) or greater")
        if self.network.global_physnet_mtu < 68:
            raise ConfigError("network.global_physnet_mtu must be at least 68")
        if self.network.dns_domain:
            from fermion.validation import InvalidValue, dns

            try:
                dns.dns_domain(dns.normalized_domain(self.network.dns_domain))
            except InvalidValue as err:
                raise ConfigError(f"network.dns_domain: {err}") from None
        if self.rpc.transport_url and not self.rpc.transport_url.startswith(("amqp://", "amqps://")):
            raise ConfigError("rpc.transport_url must be empty (in-process) or an amqp:// URL")
        a = self.agents
        if min(a.agent_down_time, a.report_interval, a.resync_interval) <= 0 or a.dhcp_agents_per_network < 1:
            raise ConfigError("[agents] intervals must be positive and dhcp_agents_per_network at least 1")
        if a.agent_down_time <= a.report_interval:
            raise ConfigError("agents.agent_down_time must be longer than agents.report_interval")
        if a.metrics_address:
            from fermion.metrics import parse_address

            try:
                parse_address(a.metrics_address)
            except ValueError as err:
                raise ConfigError(f"agents.metrics_address: {err}") from None
        if not a.availability_zone or len(a.availability_zone) > 255 or "," in a.availability_zone:
            raise ConfigError("agents.availability_zone must be a name of 1 to 255 characters without commas")
        if self.logging.level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ConfigError(f"logging.level must be debug, info, warning, error or critical, not "
                              f"{self.logging.level!r}")
        if self.logging.format not in ("text", "json"):
            raise ConfigError(f"logging.format must be 'text' or 'json', not {self.logging.format!r}")
        from fermion.services.conntrack_helpers import parse_helpers
        from fermion.services.l3_ha import check_ha

        try:
            parse_helpers(self.l3.conntrack_helpers)
            check_ha(self.l3.max_l3_agents_per_router, self.l3.l3_ha_net_cidr)
        except ValueError as err:
            raise ConfigError(f"[l3] {err}") from None
        if self.l3.agent_mode not in ("legacy", "dvr", "dvr_snat"):
            raise ConfigError(f"l3.agent_mode must be legacy, dvr or dvr_snat, not {self.l3.agent_mode!r}")
        from fermion.ml2.manager import Ml2Config, build_drivers

        try:
            build_drivers(Ml2Config(**dataclasses.asdict(self.ml2)))
        except ValueError as err:
            raise ConfigError(f"[ml2] {err}") from None
        return self


def _section(cls: type, name: str, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)}")
    values = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name}.{key} must be a list of strings")
            value = tuple(value)
        elif isinstance(default, bool) or isinstance(value, bool):
            if type(value) is not type(default):
                raise ConfigError(f"{name}.{key} must be of type {type(default).__name__}")
        elif not isinstance(value, type(default)):
            if not (isinstance(default, float) and isinstance(value, int)):
                raise ConfigError(f"{name}.{key} must be of type {type(default).__name__}")
        values[key] = value
    return cls(**values)


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    path = path or env.get("FERMION_CONFIG")
    settings = Settings()
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path}: {err}") from None
        sections = {f.name: f.type for f in fields(Settings)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"unknown section(s): {', '.join(unknown)}")
        parts = {name: _section(type(getattr(settings, name)), name, value) for name, value in data.items()}
        settings = dataclasses.replace(settings, **parts)
    if env.get("FERMION_DATABASE_URL"):
        settings = settings.replace("database", url=env["FERMION_DATABASE_URL"])
    if env.get("FERMION_TRANSPORT_URL"):
        settings = settings.replace("rpc", transport_url=env["FERMION_TRANSPORT_URL"])
    if env.get("FERMION_RPC_PREFIX"):
        settings = settings.replace("rpc", prefix=env["FERMION_RPC_PREFIX"])
    if env.get("FERMION_LOG_LEVEL"):
        settings = settings.replace("logging", level=env["FERMION_LOG_LEVEL"].lower())
    if env.get("FERMION_LOG_FORMAT"):
        settings = settings.replace("logging", format=env["FERMION_LOG_FORMAT"].lower())
    return settings.validate()
