"""The ASGI application: an explicit pipeline of small steps, then routing to the controllers.

request id -> body limit -> fault translation -> authentication -> routing (in a worker thread)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError

from fermion import logs, memory, metrics
from fermion.api import discovery
from fermion.api.agents import AgentController
from fermion.api.auth import Authenticator
from fermion.api.autherrors import KeystoneUnavailable, Unauthorized
from fermion.api.auto_allocate import AutoAllocateController
from fermion.api.bindings import BindingController
from fermion.api.conntrack_helpers import ConntrackHelperController
from fermion.api.controller import Controller
from fermion.api.flavors import FlavorController
from fermion.api.floatingip_pools import FloatingIpPoolController
from fermion.api.fwaas import FwaasController
from fermion.api.ip_availability import IpAvailabilityController
from fermion.api.metering import MeteringController
from fermion.api.port_forwardings import PortForwardingController
from fermion.api.qos import QosController
from fermion.api.quotas import QuotaController
from fermion.api.trace import TraceController
from fermion.api.wire import Request, Response, fault
from fermion.context import Context
from fermion.db.engine import lost_connection
from fermion.errors import NeutronError, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.resources.address_group import ACTIONS as ADDRESS_GROUP_ACTIONS
from fermion.resources.catalog import RESOURCES, openapi_document
from fermion.resources.trunk import ACTIONS as TRUNK_ACTIONS
from fermion.services.registry import Services

LOG = logging.getLogger("fermion.api")
ACCESS = logging.getLogger("fermion.access")
# answered without authentication (/metrics unless [server] metrics_public = false), with their metric label
PUBLIC = {"": "versions", "/healthz": "healthz", "/openapi.json": "openapi", "/metrics": "metrics"}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
TRIM_AFTER = 1 << 20  # give memory of large responses back to the OS
ROUTER_ACTIONS = ("add_router_interface", "remove_router_interface", "add_extraroutes", "remove_extraroutes")
POOL_ACTIONS = ("add_prefixes", "remove_prefixes", "onboard_network_subnets")
ALLOWED = {"list": ("GET", "POST"), "member": ("GET", "PUT", "DELETE")}
POOLS = ("floatingip_pools", "floatingip-pools")  # Neutron's path, and the hyphenated one other collections use
SUBROUTES = {"tags", "dhcp-agents", "l3-agents", "default", "details", "conntrack_helpers", "port_forwardings",
             "service_profiles", "next_providers", "bindings", "counters", *ROUTER_ACTIONS, *ADDRESS_GROUP_ACTIONS,
             *POOL_ACTIONS, *TRUNK_ACTIONS}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TooLarge(NeutronError):
    status = 413
    type = "RequestEntityTooLarge"


class MethodNotAllowed(NeutronError):
    status = 405
    type = "HTTPMethodNotAllowed"


@functools.cache
def openapi_json() -> bytes:
    return orjson.dumps(openapi_document())


class FermionApp:
    def __init__(self, services: Services, enforcer: Enforcer, authenticate: Authenticator,
                 max_body: int = 114688, threads: int = 4) -> None:
        self.services = services
        self.enforcer = enforcer
        self.authenticate = authenticate
        self.max_body = max_body
        self.controllers = {res.path: Controller(res, services, enforcer) for res in RESOURCES.values()}
        for res in RESOURCES.values():  # Neutron answers both spellings (network_segment_ranges, tempest's hyphens)
            if "/" not in res.path:  # not those under a prefix (/fwaas/...)
                self.controllers.setdefault(res.collection.replace("_", "-"), self.controllers[res.path])
        self.fwaas = FwaasController(services, self.controllers)
        self.quotas = QuotaController(services, enforcer)
        self.agents = AgentController(services, enforcer)
        self.conntrack_helpers = ConntrackHelperController(services, enforcer, self.controllers["routers"])
        self.port_forwardings = PortForwardingController(services, enforcer, self.controllers["floatingips"])
        self.floatingip_pools = FloatingIpPoolController(services, enforcer)
        self.flavors = FlavorController(services, enforcer)
        self.auto_allocate = AutoAllocateController(services, enforcer)
        self.bindings = BindingController(self.controllers["ports"])
        self.metering = MeteringController(services, self.controllers["metering/metering-labels"],
                                           self.controllers["metering/metering-label-rules"])
        self.qos = QosController(services, enforcer, self.controllers["qos/policies"])
        self.traces = TraceController(services, enforcer)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fermion-api")
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.transport: Any = None  # the RPC transport, wired by runtime/
        self.failover: Any = None  # the dead-agent check (services.failover), wired by runtime/
        self.metrics: CollectorRegistry | None = None  # scrape-time gauges (pool, agents), wired by runtime/
        self.metrics_public = True
        self.console: Any = None  # the web console's ASGI handler of /ui (fermion.console), wired by runtime/
        self.ip_availability = IpAvailabilityController(services, enforcer)
        self.routes = {*self.controllers, "extensions", "quotas", "agents", "availability_zones", "service-providers",
                       "auto-allocated-topology", "network-ip-availabilities", "metering", "fwaas", "qos", "traces",
                       *POOLS}
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if self.console is not None and (path == "/ui" or path.startswith("/ui/")):
            await self.console(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = f"req-{uuid.uuid4()}"
        req: Request | None = None
        try:
            body = await self._read_body(receive)
            req = Request.from_scope(scope, body)
            req.request_id = request_id
            resp = await self._handle(req)
        except NeutronError as err:
            resp = fault(err)
        except Exception:  # noqa: BLE001 - the last guard: log and answer 500 in Neutron's shape
            LOG.exception("unhandled error in %s %s (%s)", scope.get("method"), scope.get("path"), request_id)
            resp = fault(NeutronError("Request Failed: internal server error while processing your request.",
                                      type="HTTPInternalServerError"))
        payload = resp.encode()
        headers = [(b"x-openstack-request-id", request_id.encode()),
                   (b"content-length", str(len(payload)).encode()), *resp.headers]
        if payload:  # any JSON body encodes to at least two bytes; no body encodes to none
            headers.append((b"content-type", resp.content_type))
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        big = len(payload) > TRIM_AFTER
        del payload
        self._account(scope, resp.status, time.perf_counter() - started, request_id,
                      req.project_id if req is not None else None)
        if big:
            resp.body = resp.payload = None
            memory.trim()

    def _account(self, scope: dict[str, Any], status: int, seconds: float, request_id: str,
                 project_id: str | None) -> None:
        """The request's metrics and its access-log line."""
        method = scope["method"]
        label = method if method in METHODS else "other"
        resource = self.resource_label(scope["path"])
        key = (resource, label, status)
        series = self._series.get(key)
        if series is None:  # label children looked up once per route, method and status: a few µs a request
            series = self._series[key] = (metrics.API_REQUESTS.labels(resource, label, str(status)),
                                          metrics.API_LATENCY.labels(resource, label))
        series[0].inc()
        series[1].observe(seconds)
        if ACCESS.isEnabledFor(logging.INFO):
            path = scope["path"]
            if scope.get("query_string"):
                path = f"{path}?{scope['query_string'].decode('latin-1')}"
            fields = {"method": method, "path": path, "status": status, "duration_ms": round(seconds * 1000, 1),
                      "request_id": request_id, "project_id": project_id or "-"}
            # made and handled directly: Logger.info would also walk the stack for a caller nobody reads
            ACCESS.handle(ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, "%s %s %s",
                                            (method, path, status), None, extra={"fields": fields}))

    def resource_label(self, path: str) -> str:
        """The route a path took, as a bounded label: `ports`, `ports/{id}`, `routers/{id}/add_router_interface`;
        `unknown` for anything that is no route."""
        path = path.rstrip("/")
        public = PUBLIC.get(path)
        if public is not None:
            return public
        if path.endswith(".json"):
            path = path[:-5]
        parts = path.split("/")  # ["", "v2.0", collection, id, sub, tag]
        if len(parts) < 2 or parts[0] or parts[1] != "v2.0":
            return "unknown"
        if len(parts) == 2:
            return "v2.0"
        head = parts[2]
        if head == "metering" and len(parts) >= 4:  # /v2.0/metering/metering-labels/{id}/counters
            parts = ["", "v2.0", f"metering/{parts[3]}", *parts[4:]]
            head = parts[2]
        if head == "ports" and len(parts) >= 5 and parts[4] == "bindings":
            return {5: "ports/{id}/bindings", 6: "ports/{id}/bindings/{host}"}.get(
                len(parts), "ports/{id}/bindings/{host}/activate" if parts[6:] == ["activate"] else "unknown")
        if head not in self.routes or len(parts) > 6:
            return "unknown"
        if len(parts) == 3:
            return head
        if len(parts) == 4:
            return f"{head}/{{id}}"
        if parts[4] not in SUBROUTES:
            return "unknown"
        return f"{head}/{{id}}/{parts[4]}" + ("/{tag}" if len(parts) == 6 else "")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                self.pool.shutdown(wait=False)
                logs.flush()  # the access lines still buffered
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise TooLarge(f"Request body is larger than the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _handle(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        # the public documents first: `.json` is the Neutron suffix of API paths, part of /openapi.json's name
        if path in PUBLIC:
            if path == "/healthz":
                return Response(200, {"status": "ok"})
            if path == "/openapi.json":
                return Response(200, payload=openapi_json())
            if path == "/metrics" and self.metrics_public:
                return await self._metrics()
            if path == "":
                return discovery.versions(req)
        if path.endswith(".json"):
            path = path[:-5]
        try:
            ctx = await self.authenticate(req.headers, req.request_id)
        except Unauthorized as err:
            return Response(401, {"error": {"code": 401, "title": "Unauthorized",
                                            "message": str(err) or "The request you have made requires "
                                            "authentication."}},
                            [(b"www-authenticate", b'Keystone uri="keystone"')])
        except KeystoneUnavailable as err:
            raise NeutronError(f"Identity service unavailable: {err}", type="ServiceUnavailable",
                               status=503) from None
        req.project_id = ctx.project_id
        if path == "/metrics":  # [server] metrics_public = false: for admins only, like the agents API
            if not ctx.is_admin:
                raise NeutronError("rule:get_metrics is disallowed by policy", type="PolicyNotAuthorized",
                                   status=403)
            return await self._metrics()
        parts = [p for p in path.split("/") if p]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._route, req, ctx, parts)

    async def _metrics(self) -> Response:
        # the agents' liveness is a database read: not on the event loop
        text = await asyncio.get_running_loop().run_in_executor(self.pool, metrics.render, self.metrics)
        return Response(200, payload=text, content_type=metrics.CONTENT_TYPE.encode())

    def _route(self, req: Request, ctx: Context, parts: list[str]) -> Response:
        try:
            try:
                return self._dispatch(req, ctx, parts)
            except DBAPIError as err:
                if req.method != "GET" or not lost_connection(err):
                    raise
                # the database connection broke (e.g. the server restarted): a read may simply run again
                LOG.warning("database connection lost during %s %s; reading again", req.method, req.path)
                return self._dispatch(req, ctx, parts)
        except PolicyNotAuthorized as err:
            raise NeutronError(f"rule:{err.action} is disallowed by policy", type="PolicyNotAuthorized",
                               status=403) from None

    def _dispatch(self, req: Request, ctx: Context, parts: list[str]) -> Response:
        if not parts or parts[0] != "v2.0":
            raise NotFound("The resource could not be found.")
        rest = parts[1:]
        method = req.method
        if not rest:
            return discovery.resources(req)
        head = rest[0]
        if head == "extensions":
            if len(rest) == 1:
                return discovery.extensions(req)
            if len(rest) == 2:
                return discovery.extension(req, rest[1])
            raise NotFound("The resource could not be found.")
        if head == "metering" and len(rest) >= 2:
            return self.metering.handle(req, ctx, rest[1:])
        if head == "quotas":
            return self.quotas.handle(req, ctx, rest[1:])
        if head == "agents":
            return self.agents.handle(req, ctx, rest[1:])
        if head == "availability_zones" and len(rest) == 1:
            return self.agents.zones(req, ctx)
        if head in POOLS:
            return self.floatingip_pools.handle(req, ctx, rest[1:])
        if head == "auto-allocated-topology":
            return self.auto_allocate.handle(req, ctx, rest[1:])
        if head == "service-providers":
            return self.flavors.providers(req, ctx, rest[1:])
        if head == "flavors" and len(rest) >= 3:
            return self.flavors.handle(req, ctx, rest[1], rest[2:])
        if head == "fwaas":
            return self.fwaas.handle(req, ctx, rest[1:])
        if head == "network-ip-availabilities":
            return self.ip_availability.handle(req, ctx, rest[1:])
        if head == "qos":
            return self.qos.handle(req, ctx, rest[1:])
        if head == "traces":
            return self.traces.handle(req, ctx, rest[1:])
        if head == "policies" and len(rest) in (3, 4) and rest[2] == "tags":  # Neutron's tag path of QoS policies
            return self.qos.handle(req, ctx, ["policies", *rest[1:]])
        if head == "networks" and len(rest) == 3 and rest[2] == "dhcp-agents":
            return self.agents.network_agents(req, ctx, rest[1])
        if head == "routers" and len(rest) >= 3 and rest[2] == "conntrack_helpers":
            return self.conntrack_helpers.handle(req, ctx, rest[1], rest[3:])
        if head == "floatingips" and len(rest) >= 3 and rest[2] == "port_forwardings":
            return self.port_forwardings.handle(req, ctx, rest[1], rest[3:])
        if head == "routers" and len(rest) == 3 and rest[2] == "l3-agents":
            return self.agents.router_agents(req, ctx, rest[1])
        ctl = self.controllers.get(head)
        if ctl is None:
            raise NotFound("The resource could not be found.")
        if len(rest) == 1:
            if method == "GET":
                return ctl.list(req, ctx)
            if method == "POST":
                return ctl.create(req, ctx)
            raise MethodNotAllowed(f"The method {method} is not allowed on {head}")
        ident = rest[1]
        if len(rest) == 2:
            if method == "GET":
                return ctl.show(req, ctx, ident)
            if method == "PUT":
                return ctl.update(req, ctx, ident)
            if method == "DELETE":
                return ctl.delete(req, ctx, ident)
            raise MethodNotAllowed(f"The method {method} is not allowed on this {ctl.res.member}")
        if head == "ports" and rest[2] == "bindings":
            return self.bindings.handle(req, ctx, ident, rest[3:])
        if rest[2] == "tags" and len(rest) <= 4 and ctl.res.tags:
            return ctl.tags(req, ctx, ident, rest[3] if len(rest) == 4 else None)
        if len(rest) == 3 and head == "trunks" and rest[2] == "get_subports":
            if method != "GET":
                raise MethodNotAllowed(f"The method {method} is not allowed on {rest[2]}")
            return ctl.get_subports(req, ctx, ident)
        if len(rest) == 3 and ((head == "routers" and rest[2] in ROUTER_ACTIONS)
                               or (head == "trunks" and rest[2] in TRUNK_ACTIONS)
                               or (head == "address-groups" and rest[2] in ADDRESS_GROUP_ACTIONS)
                               or (head == "subnetpools" and rest[2] in POOL_ACTIONS)):
            if method != "PUT":
                raise MethodNotAllowed(f"The method {method} is not allowed on {rest[2]}")
            return ctl.action(req, ctx, ident, rest[2])
        raise NotFound("The resource could not be found.")
