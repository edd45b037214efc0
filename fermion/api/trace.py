"""POST /v2.0/traces (fermion-trace): {"trace": {"source", "destination", "protocol", "port"}} -> 200 with the hops
and the verdict (docs/trace.md); with "probe": true each hop also says what its hosts' agents find in their kernels
(policy create_trace:probe). Policy create_trace, checked on the caller's project and on each endpoint port's:
a port the caller may not trace is not found (404), as Neutron hides what a project cannot see."""

from __future__ import annotations

from typing import Any

from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NeutronError, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.resources.trace import FIELDS, PROTOCOLS
from fermion.services.registry import Services
from fermion.services.trace import to_api
from fermion.validation import InvalidValue, integer, string

ACTION = "create_trace"
PROBE = "create_trace:probe"  # probe: true (admin by default: the answers describe hosts)


class TraceController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.services = services
        self.enforcer = enforcer

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        if rest:
            raise NotFound("The resource could not be found.")
        if req.method != "POST":
            raise NeutronError(f"The method {req.method} is not allowed on traces", type="HTTPMethodNotAllowed",
                               status=405)
        body = req.json()
        source, destination, protocol, port = parse(body)
        probing = probe_asked(body)
        own = {"project_id": ctx.project_id, "tenant_id": ctx.project_id}
        if not self.enforcer.check(ACTION, own, ctx):
            raise PolicyNotAuthorized(ACTION)
        if probing and not self.enforcer.check(PROBE, own, ctx):
            raise PolicyNotAuthorized(PROBE)

        def visible(project: str) -> bool:
            return self.enforcer.check(ACTION, {"project_id": project, "tenant_id": project}, ctx)

        with self.services.db.read() as conn:
            model, walked = self.services.trace.walk(conn, source, destination, protocol, port, visible,
                                                     None if ctx.is_admin else ctx.project_id)
        result = self.services.trace.probe(model, walked) if probing else to_api(walked)
        return Response(200, {"trace": result})


def probe_asked(body: dict[str, Any]) -> bool:
    """The body's probe flag (parse() has checked the body's shape)."""
    value = body["trace"].get("probe", False)
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for probe. Reason: '{value}' is not a boolean.")
    return value


def parse(body: Any) -> tuple[str, str, str, int | None]:
    """(source, destination, protocol, port) of a request body, or 400 in Neutron's words."""
    if not isinstance(body, dict) or "trace" not in body:
        raise BadRequest("Unable to find 'trace' in request body")
    item = body["trace"]
    if not isinstance(item, dict):
        raise BadRequest("Invalid format: the trace must be a JSON object")
    unknown = sorted(k for k in item if k not in FIELDS)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    ends = []
    for key in ("source", "destination"):
        if key not in item:
            raise BadRequest(f"Failed to parse request. Required attribute '{key}' not specified")
        try:
            value = string(255)(item[key]).strip()
        except InvalidValue as err:
            raise BadRequest(f"Invalid input for {key}. Reason: {err}.") from None
        if not value:
            raise BadRequest(f"Invalid input for {key}. Reason: a port id, an address, an instance name or "
                             "'external' is required.")
        ends.append(value)
    protocol = item.get("protocol", "tcp")
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise BadRequest(f"Invalid input for protocol. Reason: '{protocol}' is not in {list(PROTOCOLS)}.")
    protocol = protocol.lower()
    port = item.get("port")
    if protocol == "icmp":
        if port is not None:
            raise BadRequest("Invalid input for port. Reason: icmp has no ports.")
    elif port is None:
        raise BadRequest(f"Failed to parse request. Required attribute 'port' not specified (protocol {protocol})")
    else:
        try:
            port = integer(1, 65535)(port)
        except InvalidValue as err:
            raise BadRequest(f"Invalid input for port. Reason: {err}.") from None
    return ends[0], ends[1], protocol, port
