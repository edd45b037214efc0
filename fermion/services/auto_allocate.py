"""Auto-allocated topology (auto-allocated-topology): on a project's first GET, a network, a subnet per default
subnet pool and a router uplinked to the default external network (`is_default`), built in ONE transaction.

Race-free: the topology row's primary key is the project; the request that loses the race to insert it rolls
its whole transaction back (nothing it built survives) and runs again, finding the winner's topology.

Subnet pools are another component's: the allocator only needs `DefaultPools` (below). Without default pools
Neutron refuses with AutoAllocationFailure (409); so does this, through `NoDefaultPools`."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection, delete, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NeutronError
from fermion.resources.network import NETWORK
from fermion.resources.router import ROUTER
from fermion.resources.subnet import SUBNET
from fermion.services.common import create_item
from fermion.services.networks import NetworkService
from fermion.services.routers import RouterService
from fermion.services.subnets import SubnetService

DRY_RUN = "dry-run"
_t = m.auto_allocated_topologies.c


class DefaultPools(Protocol):
    """What auto-allocation needs from subnet pools."""

    def default_pools(self, conn: Connection) -> list[dict[str, Any]]:
        """The default subnet pools (each at least {"id", "ip_version"}), IPv4 first; [] when there are none."""
        ...

    def subnet_request(self, conn: Connection, pool: dict[str, Any]) -> dict[str, Any]:
        """The subnet attributes that take a subnet from the pool, e.g. {"subnetpool_id": pool["id"]}."""
        ...


class NoDefaultPools:
    def default_pools(self, conn: Connection) -> list[dict[str, Any]]:
        return []

    def subnet_request(self, conn: Connection, pool: dict[str, Any]) -> dict[str, Any]:
        return {"subnetpool_id": pool["id"]}


def failure(reason: str) -> Conflict:
    return Conflict(f"Deployment error: {reason}.", type="AutoAllocationFailure")


class AutoAllocator:
    def __init__(self, networks: NetworkService, subnets: SubnetService, routers: RouterService,
                 pools: DefaultPools | None = None) -> None:
        self.networks = networks
        self.subnets = subnets
        self.routers = routers
        self.pools: DefaultPools = pools or NoDefaultPools()

    @staticmethod
    def _default_external(conn: Connection) -> str:
        n = m.networks.c
        found = conn.execute(select(n.id).where(n.is_default.is_(True), n.router_external.is_(True))).scalar()
        if found is None:
            raise failure("No default router:external network")
        return str(found)

    @staticmethod
    def topology(conn: Connection, project: str) -> dict[str, Any] | None:
        row = conn.execute(select(m.auto_allocated_topologies).where(_t.project_id == project)).first()
        return dict(row._mapping) if row is not None else None

    def check(self, conn: Connection, project: str) -> dict[str, Any]:
        """?fields=dry-run: would a GET succeed?"""
        self._default_external(conn)
        if not self.pools.default_pools(conn):
            raise failure("No default subnetpools defined")
        return {"id": "dry-run=pass", "tenant_id": project, "project_id": project}

    def get_or_build(self, conn: Connection, project: str, ctx: Context) -> dict[str, Any]:
        found = self.topology(conn, project)
        if found is not None:
            return _response(found["network_id"], project)
        external = self._default_external(conn)
        pools = self.pools.default_pools(conn)
        if not pools:
            raise failure("Unable to provide tenant private network")
        net = self.networks.create(conn, [create_item(NETWORK, {"name": "auto_allocated_network"}, project)], ctx)[0]
        if not insert_if_absent(conn, m.auto_allocated_topologies, {"project_id": project, "network_id": net["id"],
                                                                     "router_id": None}):
            raise RetryRequest("another request built this project's topology first")
        subnet_ids = []
        try:
            for pool in pools:
                raw = {"name": f"auto_allocated_subnet_v{pool['ip_version']}", "network_id": net["id"],
                       "ip_version": pool["ip_version"], **self.pools.subnet_request(conn, pool)}
                subnet_ids.append(self.subnets.create(conn, [create_item(SUBNET, raw, project)], ctx)[0]["id"])
        except (BadRequest, Conflict) as err:
            raise failure("Unable to provide tenant private network") from err
        try:
            raw = {"name": "auto_allocated_router", "external_gateway_info": {"network_id": external}}
            router = self.routers.create(conn, [create_item(ROUTER, raw, project)], ctx)[0]
            item = self.routers.collection.get(conn, router["id"])
            assert item is not None
            for subnet_id in subnet_ids:
                self.routers.add_interface(conn, item, {"subnet_id": subnet_id}, ctx)
        except (BadRequest, Conflict) as err:
            raise failure("Unable to provide external connectivity") from err
        conn.execute(m.auto_allocated_topologies.update().where(_t.project_id == project)
                     .values(router_id=router["id"]))
        return _response(net["id"], project)

    def tear_down(self, conn: Connection, project: str, ctx: Context) -> None:
        """DELETE: interfaces, router, then the network with its subnets (409 while instances use it)."""
        found = self.topology(conn, project)
        if found is None:
            return
        if found["router_id"]:
            router = self.routers.collection.get(conn, found["router_id"], for_update=True)
            if router is not None:
                s = m.subnets.c
                for (subnet_id,) in conn.execute(select(s.id).where(s.network_id == found["network_id"])).all():
                    try:
                        self.routers.remove_interface(conn, router, {"subnet_id": subnet_id})
                    except NeutronError as err:
                        if err.status != 404:
                            raise
                router = self.routers.collection.get(conn, found["router_id"])
                assert router is not None
                self.routers.delete(conn, router, None, ctx)
        network = self.networks.collection.get(conn, found["network_id"], for_update=True)
        if network is not None:
            self.networks.delete(conn, network, None, ctx)
        conn.execute(delete(m.auto_allocated_topologies).where(_t.project_id == project))


def _response(network_id: str, project: str) -> dict[str, Any]:
    return {"id": network_id, "tenant_id": project, "project_id": project}
