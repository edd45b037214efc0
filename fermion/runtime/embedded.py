"""Wiring: build the API application from settings (all-in-one process)."""

from __future__ import annotations

import dataclasses
import os
import random

from fermion import logs, memory, metrics
from fermion.api.app import FermionApp
from fermion.api.auth import Authenticator, KeystoneAuth, NoAuth
from fermion.config import settings as cfg
from fermion.console.feed import ChangeFeed
from fermion.console.handlers import AuthInfo, Console
from fermion.db import migrate
from fermion.db.engine import Database
from fermion.ml2.manager import Ml2Config
from fermion.policy import Enforcer
from fermion.resources.catalog import attribute_policies
from fermion.rpc.endpoints import ServerEndpoints
from fermion.rpc.notifier import Notifier
from fermion.rpc.transport import Transport
from fermion.runtime.periodic import Periodic
from fermion.runtime.transport import transport_for
from fermion.services.failover import AgentFailover, FailoverSettings
from fermion.services.l3_ha import HaSettings
from fermion.services.metering import all_counters
from fermion.services.registry import Services
from fermion.services.segments import default_ranges

_JITTER = random.Random()  # background threads keep off the global generator (a caller may seed or check it)


def build_enforcer(settings: cfg.Settings) -> Enforcer:
    enforcer = Enforcer()
    enforcer.register_defaults(attribute_policies())
    if settings.auth.policy_file:
        enforcer.load_policy_file(settings.auth.policy_file)
    return enforcer


def build_app(settings: cfg.Settings, check_schema: bool = True, transport: Transport | None = None) -> FermionApp:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".", exist_ok=True)
    db = Database(url, pool_size=settings.database.pool_size)
    services = Services.build(db, quota_defaults=dataclasses.asdict(settings.quotas),
                              default_mtu=settings.network.global_physnet_mtu,
                              base_mac=settings.network.base_mac,
                              ml2=Ml2Config(**dataclasses.asdict(settings.ml2)),
                              agent_down_time=settings.agents.agent_down_time,
                              dhcp_agents_per_network=settings.agents.dhcp_agents_per_network,
                              dns_domain=settings.network.dns_domain,
                              conntrack_helpers=settings.l3.conntrack_helpers,
                              ha=HaSettings(default=settings.l3.ha, max_agents=settings.l3.max_l3_agents_per_router,
                                            cidr=settings.l3.l3_ha_net_cidr,
                                            network_type=settings.l3.l3_ha_network_type),
                              router_distributed=settings.l3.router_distributed)
    if check_schema:
        migrate.require_current(db.engine, url)
        ranges = default_ranges(services.networks.types)
        db.write(lambda conn: services.segment_ranges.sync_defaults(conn, ranges))
    # RPC: hints go out after each commit; agents' calls are answered by the endpoints
    transport = transport or transport_for(settings)
    endpoints = ServerEndpoints(services)
    services.trace.transport = transport  # trace --probe asks the agents
    notifier = Notifier(transport)
    feed = ChangeFeed(lambda: agents_alive(db, services))

    def after_commit(events: list[object]) -> None:
        notifier(events)  # the agents' hints first: the console can wait
        feed(events)

    db.on_commit = after_commit
    authenticate: Authenticator
    keystone = None
    if settings.auth.strategy == "keystone":
        from fermion.api.keystone import KeystoneAuthenticator, KeystoneSettings

        k = settings.keystone
        keystone = KeystoneAuthenticator(KeystoneSettings(
            auth_url=k.auth_url, username=k.username, password=k.password, project_name=k.project_name,
            user_domain_name=k.user_domain_name, project_domain_name=k.project_domain_name,
            cache_seconds=k.cache_seconds))
        authenticate = KeystoneAuth(keystone)
    else:
        authenticate = NoAuth(settings.auth.default_project_id, settings.auth.default_roles)
    app = FermionApp(services, build_enforcer(settings), authenticate,
                     max_body=settings.server.max_request_body_size, threads=settings.server.threads)
    app.transport = transport
    auth_info = AuthInfo(settings.auth.strategy, settings.auth.default_project_id, settings.auth.default_roles)
    app.console = Console(feed, authenticate, auth_info, keystone)
    app.metrics_public = settings.server.metrics_public

    def agents() -> list[metrics.AgentSample]:
        with db.read() as conn:
            return services.agents.liveness(conn)

    def metering() -> list[tuple[str, str, int, int]]:
        with db.read() as conn:
            return all_counters(conn)

    app.metrics = metrics.scrape_registry(metrics.ServerCollector(db.pool_status, agents),
                                          metrics.MeteringCollector(metering))
    if keystone is not None:
        app.on_startup.append(keystone.start)
        app.on_shutdown.append(keystone.close)

    async def _serve_rpc() -> None:
        transport.serve(endpoints.handlers())

    app.on_startup.append(_serve_rpc)

    # every server process checks for dead agents; the first check waits agent_down_time so that agents
    # reporting since before this process started are seen alive, and a random part spreads the processes
    failover = AgentFailover(db, services.agents, services.routers, services.dhcp, FailoverSettings(
        routers=settings.l3.allow_automatic_l3agent_failover, networks=settings.agents.allow_automatic_dhcp_failover))
    app.failover = failover
    if failover.enabled:
        check = Periodic("fermion-agent-failover", failover.run, failover.interval,
                         settings.agents.agent_down_time + _JITTER.uniform(0, failover.interval))

        async def _start_check() -> None:
            check.start()

        async def _stop_check() -> None:
            check.stop()

        app.on_startup.append(_start_check)
        app.on_shutdown.append(_stop_check)

    async def _dispose() -> None:
        transport.close()
        db.dispose()

    app.on_shutdown.append(_dispose)
    return app


def agents_alive(db: Database, services: Services) -> dict[str, bool]:
    """{agent id: alive} now, for the console's feed."""
    with db.read() as conn:
        return {row["id"]: row["alive"] for row in services.agents.list_agents(conn, {})}


def app_from_env() -> FermionApp:
    """uvicorn factory for multi-worker serving: settings come through the environment."""
    settings = cfg.load(os.environ.get("FERMION_CONFIG") or None)
    overrides = os.environ.get("FERMION_SERVE_DATABASE_URL")
    if overrides:
        settings = settings.replace("database", url=overrides)
    logs.setup(settings.logging.level, settings.logging.format)
    app = build_app(settings)
    memory.freeze_startup_objects()
    return app
