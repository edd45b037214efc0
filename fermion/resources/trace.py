"""Trace (Fermion's own extension): POST /v2.0/traces answers whether a source reaches a destination on a protocol
and port, hop by hop, from the model and the agents' reports (docs/trace.md). Nothing is stored."""

from __future__ import annotations

from typing import Any

from fermion.resources.base import Extension

PROTOCOLS = ("tcp", "udp", "icmp")
FIELDS = ("source", "destination", "protocol", "port", "probe")
TRACE = Extension("fermion-trace", "Fermion trace",
                  "Explains whether a port (or the external network) reaches another on a protocol and port: each "
                  "hop's decision and the rule or attribute behind it, then a verdict.",
                  "2026-11-22T00:00:00-00:00")


def openapi(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """POST /v2.0/traces in the OpenAPI document."""
    endpoint = {"type": "string", "maxLength": 255,
                "description": "a port id, an address, a lab instance's name, or 'external'"}
    body = {"type": "object", "required": ["source", "destination"], "additionalProperties": False,
            "properties": {"source": endpoint, "destination": endpoint,
                           "protocol": {"type": "string", "enum": list(PROTOCOLS), "default": "tcp"},
                           "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                           "probe": {"type": "boolean", "default": False,
                                     "description": "ask the hosts' agents what their kernels hold (admin)"}}}
    schemas["TraceCreate"] = {"type": "object", "required": ["trace"], "additionalProperties": False,
                              "properties": {"trace": body}}
    hop = {"type": "object", "properties": {k: {"type": "string"} for k in ("name", "kind", "decision", "reason",
                                                                          "rule_id", "group", "attribute")}}
    schemas["Trace"] = {"type": "object", "properties": {
        "verdict": {"type": "string", "enum": ["reachable", "blocked", "not_routable"]},
        "reachable": {"type": "boolean"}, "failed_hop": {"type": "integer"}, "reason": {"type": "string"},
        "hops": {"type": "array", "items": hop}}}
    paths["/v2.0/traces"] = {"post": {
        "operationId": "create_trace",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/TraceCreate"}}}},
        "responses": {"200": {"description": "The hops and the verdict"}, "400": {"description": "Bad request"},
                      "404": {"description": "Not found"}}}}
