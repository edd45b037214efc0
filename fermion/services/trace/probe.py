"""fermion trace --probe: ask the agents hosting each hop what their kernel holds for it (an RPC request with a
reply, contract 1.14) and add the answer to the hop: ok, drift (what is missing or extra), or unanswered.

Which agents: a port's (and its filters') L2 agent on the port's host; a network hop's, the L2 agents of the
trace's ports on that network; a router's (and its NAT's) L3 agents, every one hosting it (HA: each instance).
One request per agent, all at once, so a trace waits at most one timeout however many agents are silent."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fermion.rpc.contracts import ProbeReply, ProbeRequest, decode, encode
from fermion.rpc.transport import RpcError, RpcUnavailable, Transport, agent_target
from fermion.services.trace.model import Model, Trace
from fermion.services.trace.walk import L2_AGENTS, L3_AGENT

OK, DRIFT, UNANSWERED = "ok", "drift", "unanswered"


@dataclass
class _Ask:
    """What one agent is asked for, and which hops its answers belong to: (hop index, result key)."""

    host: str
    agent_type: str
    ports: set[str] = field(default_factory=set)
    filters: set[str] = field(default_factory=set)
    routers: set[str] = field(default_factory=set)
    hops: list[tuple[int, str]] = field(default_factory=list)


def probe(transport: Transport | None, model: Model, result: Trace, hops: list[dict[str, Any]],
          timeout: float) -> str:
    """Set hops[i]["probe"] for every hop that has kernel objects behind it; returns the overall result."""
    asks: dict[tuple[str, str], _Ask] = {}

    def ask(host: str, agent_type: str, index: int, kind: str, ident: str) -> None:
        entry = asks.setdefault((host, agent_type), _Ask(host, agent_type))
        {"port": entry.ports, "filters": entry.filters, "router": entry.routers}[kind].add(ident)
        if (index, f"{kind} {ident}") not in entry.hops:
            entry.hops.append((index, f"{kind} {ident}"))

    endpoints = [p for p in (result.query.source.port_id, result.query.destination.port_id) if p]
    for index, hop in enumerate(result.hops):
        resource = hop.resource or {}
        if hop.port_id is not None:  # a filtering hop: its port's filters
            resource = {"type": "port", "id": hop.port_id}
        for host, agent_type, kind, ident in _targets(model, hop.kind, resource, endpoints):
            ask(host, agent_type, index, kind, ident)
    answers = _call_all(transport, list(asks.values()), timeout)
    per_hop: dict[int, list[dict[str, Any]]] = {}
    for entry, answer in zip(asks.values(), answers, strict=True):
        for index, key in entry.hops:
            per_hop.setdefault(index, []).append(_host_result(entry, answer, key))
    overall = OK
    for index, found in per_hop.items():
        hops[index]["probe"] = _merge(found)
        overall = _worst(overall, hops[index]["probe"]["result"])
    return overall if per_hop else OK


def _targets(model: Model, kind: str, resource: dict[str, str], endpoints: list[str]
             ) -> Iterable[tuple[str, str, str, str]]:
    """(host, agent type, object kind, id) behind one hop."""
    rtype, ident = resource.get("type"), resource.get("id", "")
    if kind in ("port", "anti_spoofing", "security_groups") and rtype == "port":
        port = model.ports.get(ident)
        if port is not None and port.host:
            what = "port" if kind == "port" else "filters"
            if kind != "port" and not port.port_security:
                return
            yield from ((port.host, a, what, ident) for a in _l2_agents(model, port.host))
    elif kind == "network" and rtype == "network":
        for port_id in endpoints:
            port = model.ports.get(port_id)
            if port is not None and port.host and port.network_id == ident:
                yield from ((port.host, a, "port", port_id) for a in _l2_agents(model, port.host))
    elif kind in ("router", "nat"):
        router_id = _router_of(model, rtype, ident)
        router = model.routers.get(router_id or "")
        if router is not None and not router.distributed:
            yield from ((b.host, L3_AGENT, "router", router.id) for b in router.bindings)


def _router_of(model: Model, rtype: str | None, ident: str) -> str | None:
    if rtype == "router":
        return ident
    if rtype == "port_forwarding":
        ident = next((f.floatingip_id for f in model.forwardings if f.id == ident), "")
        rtype = "floatingip"
    if rtype == "floatingip":
        return next((f.router_id for f in model.floating_ips if f.id == ident), None)
    return None


def _l2_agents(model: Model, host: str) -> list[str]:
    return sorted({a.agent_type for a in model.agents.get(host, ()) if a.agent_type in L2_AGENTS}) or \
        [L2_AGENTS[0]]  # none registered: asking tells the user no one answers there


def _call_all(transport: Transport | None, asks: list[_Ask], timeout: float) -> list[ProbeReply | str]:
    """Each agent's reply, or why there is none; the agents are asked at the same time."""
    def call(entry: _Ask) -> ProbeReply | str:
        if transport is None:
            return "no RPC transport in this server"
        request = ProbeRequest(host=entry.host, ports=sorted(entry.ports), filters=sorted(entry.filters),
                               routers=sorted(entry.routers))
        try:
            reply = transport.call_agent(agent_target(entry.agent_type, entry.host), "probe", encode(request),
                                         timeout=timeout)
            return decode(ProbeReply, reply)
        except RpcUnavailable as err:
            return str(err)
        except (RpcError, ValueError) as err:
            return f"the {entry.agent_type} on {entry.host} failed: {err}"

    if not asks:
        return []
    with ThreadPoolExecutor(min(16, len(asks)), thread_name_prefix="fermion-trace-probe") as pool:
        return list(pool.map(call, asks))


def _host_result(entry: _Ask, answer: ProbeReply | str, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {"host": entry.host, "agent": entry.agent_type}
    if isinstance(answer, str):
        return {**out, "result": UNANSWERED, "reason": answer}
    found = answer.results.get(key)
    if found is None:
        return {**out, "result": UNANSWERED, "reason": f"the {entry.agent_type} on {entry.host} did not look at "
                                                       f"{key} (not probed yet: a distributed router; or an older "
                                                       "agent)"}
    drift = bool(found.missing or found.extra)
    return {**out, "result": DRIFT if drift else OK, "checked": found.checked, "missing": found.missing,
            "extra": found.extra}


def _worst(a: str, b: str) -> str:
    order = (OK, UNANSWERED, DRIFT)
    return max(a, b, key=order.index)


def _merge(found: list[dict[str, Any]]) -> dict[str, Any]:
    """One hop's probe: drift when any host drifts, else unanswered when any did not answer, else ok."""
    result = OK
    for item in found:
        result = _worst(result, item["result"])
    return {"result": result,
            "missing": [f"{f['host']}: {m}" for f in found for m in f.get("missing", ())],
            "extra": [f"{f['host']}: {e}" for f in found for e in f.get("extra", ())],
            "hosts": found}
