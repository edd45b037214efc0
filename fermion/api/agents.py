"""/v2.0/agents (agent extension), DHCP scheduling (dhcp_agent_scheduler):
/v2.0/agents/{id}/dhcp-networks[/{network_id}] and /v2.0/networks/{id}/dhcp-agents, and L3 scheduling
(l3_agent_scheduler): /v2.0/agents/{id}/l3-routers[/{router_id}] and /v2.0/routers/{id}/l3-agents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NeutronError, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.services import zones
from fermion.services.agents import SORT_KEYS
from fermion.services.registry import Services
from fermion.validation import InvalidValue, uuid_str


@dataclass(frozen=True)
class Hosted:
    """One kind of thing agents host: the policy names, the body key, and the service calls."""

    policy: str  # dhcp-network -> get_dhcp-networks, create_dhcp-network, delete_dhcp-network
    key: str
    collection_key: str
    collection: Any
    list_ids: Callable[[Connection, str], list[str]]
    add: Callable[[Connection, str, str], None]
    remove: Callable[[Connection, str, str], None]


class AgentController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.services = services
        self.agents = services.agents
        self.enforcer = enforcer

    def _enforce(self, action: str, ctx: Context) -> None:
        if not self.enforcer.check(action, {"project_id": ctx.project_id}, ctx):
            raise PolicyNotAuthorized(action)

    def _allowed(self, action: str, ctx: Context) -> bool:
        return self.enforcer.check(action, {"project_id": ctx.project_id}, ctx)

    @staticmethod
    def _filters(req: Request) -> tuple[dict[str, list[str]], list[str]]:
        filters: dict[str, list[str]] = defaultdict(list)
        fields: list[str] = []
        for key, value in req.query:
            if key == "fields":
                fields.append(value)
            elif key not in ("limit", "marker", "sort_key", "sort_dir", "page_reverse"):
                filters[key].append(value)
        return dict(filters), fields

    @staticmethod
    def _sorts(req: Request) -> list[tuple[str, bool]]:
        """sort_key/sort_dir pairs (agent_sort_key): (attribute, ascending)."""
        keys = [v for k, v in req.query if k == "sort_key"]
        dirs = [v for k, v in req.query if k == "sort_dir"]
        for key in keys:
            if key not in SORT_KEYS:
                raise BadRequest(f"{key} is an invalid attribute for sort_keys")
        for d in dirs:
            if d not in ("asc", "desc"):
                raise BadRequest(f"{d} is an invalid value for sort_dir, valid values are 'asc' and 'desc'")
        if dirs and len(dirs) != len(keys):
            raise BadRequest("The number of sort_keys and sort_dirs must be same")
        return [(k, (dirs[i] if dirs else "asc") == "asc") for i, k in enumerate(keys)]

    @staticmethod
    def _shape(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k in fields} if fields else item

    def handle(self, req: Request, ctx: Context, parts: list[str]) -> Response:
        db = self.services.db
        method = req.method
        if not parts:
            if method != "GET":
                raise NotFound("The resource could not be found.")
            filters, fields = self._filters(req)
            if not self._allowed("get_agent", ctx):
                return Response(200, {"agents": []})  # as Neutron: the list holds what the policy shows
            with db.read() as conn:
                items = self.agents.list_agents(conn, filters, self._sorts(req))
            return Response(200, {"agents": [self._shape(i, fields) for i in items]})
        agent_id = parts[0]
        if len(parts) == 1:
            return self._member(req, ctx, agent_id)
        if parts[1] == "dhcp-networks" and len(parts) <= 3:
            return self._dhcp_networks(req, ctx, agent_id, parts[2] if len(parts) == 3 else None)
        if parts[1] == "l3-routers" and len(parts) <= 3:
            return self._l3_routers(req, ctx, agent_id, parts[2] if len(parts) == 3 else None)
        raise NotFound("The resource could not be found.")

    def zones(self, req: Request, ctx: Context) -> Response:
        """GET /v2.0/availability_zones (availability_zone, availability_zone_filter): list only."""
        if req.method != "GET":
            raise NeutronError(f"The method {req.method} is not allowed on availability_zones",
                               type="HTTPMethodNotAllowed", status=405)
        self._enforce("get_availability_zone", ctx)
        filters, fields = self._filters(req)
        with self.services.db.read() as conn:
            items = zones.list_zones(conn, filters)
        return Response(200, {"availability_zones": [self._shape(i, fields) for i in items]})

    def _member(self, req: Request, ctx: Context, agent_id: str) -> Response:
        db = self.services.db
        if not self._allowed("get_agent", ctx):
            # as Neutron: to one who may not see agents, an agent does not exist
            raise NotFound("The resource could not be found.")
        if req.method == "GET":
            self._enforce("get_agent", ctx)
            _, fields = self._filters(req)
            with db.read() as conn:
                return Response(200, {"agent": self._shape(self.agents.to_api(self.agents.get(conn, agent_id)),
                                                           fields)})
        if req.method == "PUT":
            self._enforce("update_agent", ctx)
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("agent"), dict):
                raise BadRequest("Unable to find 'agent' in request body")

            def update(conn: Connection) -> dict[str, Any]:
                self.agents.update(conn, agent_id, body["agent"])
                return self.agents.to_api(self.agents.get(conn, agent_id))

            return Response(200, {"agent": db.write(update)})
        if req.method == "DELETE":
            self._enforce("delete_agent", ctx)

            def remove(conn: Connection) -> None:
                self.agents.get(conn, agent_id)
                self.services.routers.agent_deleted(conn, agent_id)  # its floating-IP gateway ports (dvr)
                self.agents.delete(conn, agent_id)

            db.write(remove)
            return Response(204)
        raise NotFound("The resource could not be found.")

    def _dhcp_networks(self, req: Request, ctx: Context, agent_id: str, network_id: str | None) -> Response:
        dhcp = self.services.dhcp
        return self._hosted(req, ctx, agent_id, network_id, Hosted(
            "dhcp-network", "network_id", "networks", self.services.networks.collection, dhcp.network_ids,
            dhcp.add, dhcp.remove))

    def _l3_routers(self, req: Request, ctx: Context, agent_id: str, router_id: str | None) -> Response:
        routers = self.services.routers
        return self._hosted(req, ctx, agent_id, router_id, Hosted(
            "l3-router", "router_id", "routers", routers.collection, routers.router_ids, routers.add_to_agent,
            routers.remove_from_agent))

    def _hosted(self, req: Request, ctx: Context, agent_id: str, child: str | None, h: Hosted) -> Response:
        """What an agent hosts (its networks or routers): list, schedule one more, unschedule one."""
        db = self.services.db
        if req.method == "GET" and child is None:
            self._enforce(f"get_{h.policy}s", ctx)
            with db.read() as conn:
                self.agents.get(conn, agent_id)
                items = [x for x in (h.collection.get(conn, i) for i in h.list_ids(conn, agent_id)) if x is not None]
            return Response(200, {h.collection_key: items})
        if req.method == "POST" and child is None:
            self._enforce(f"create_{h.policy}", ctx)
            body = req.json()
            if not isinstance(body, dict) or h.key not in body:
                raise BadRequest(f"Unable to find '{h.key}' in request body")
            try:
                wanted = uuid_str(body[h.key])
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for {h.key}. Reason: {err}.") from None
            db.write(lambda conn: h.add(conn, agent_id, wanted))
            # Neutron's scheduler returns nothing, which its serializer writes as JSON null (clients parse it)
            return Response(201, payload=b"null")
        if req.method == "DELETE" and child is not None:
            self._enforce(f"delete_{h.policy}", ctx)
            db.write(lambda conn: h.remove(conn, agent_id, child))
            return Response(204)
        raise NotFound("The resource could not be found.")

    def router_agents(self, req: Request, ctx: Context, router_id: str) -> Response:
        if req.method != "GET":
            raise NotFound("The resource could not be found.")
        self._enforce("get_l3-agents", ctx)
        with self.services.db.read() as conn:
            if self.services.routers.collection.get(conn, router_id) is None:
                raise NotFound(f"Router {router_id} could not be found.", type="RouterNotFound")
            ids = self.services.routers.hosting_agent_ids(conn, router_id)
            states = self.services.routers.ha_states(conn, router_id)
            items = [self.agents.to_api(self.agents.get(conn, i)) for i in ids]
        for item in items:
            if item["id"] in states:  # an HA router's instance (l3-ha): its VRRP state
                item["ha_state"] = states[item["id"]]
        return Response(200, {"agents": items})

    def network_agents(self, req: Request, ctx: Context, network_id: str) -> Response:
        if req.method != "GET":
            raise NotFound("The resource could not be found.")
        self._enforce("get_dhcp-agents", ctx)
        with self.services.db.read() as conn:
            if self.services.networks.collection.get(conn, network_id) is None:
                raise NotFound(f"Network {network_id} could not be found.", type="NetworkNotFound")
            ids = self.services.dhcp.agent_ids(conn, network_id)
            items = [self.agents.to_api(self.agents.get(conn, i)) for i in ids]
        return Response(200, {"agents": items})
