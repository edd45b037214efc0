"""Requests and responses on the wire: parsing, JSON, Neutron's fault body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fermion.errors import BadRequest, NeutronError


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    base_url: str
    request_id: str = ""
    project_id: str | None = None  # who asked, once authenticated (for the access log)
    parts: list[str] = field(default_factory=list)

    @classmethod
    def from_scope(cls, scope: dict[str, Any], body: bytes) -> Request:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 9696)
            host = f"{server[0]}:{server[1]}"
        scheme = headers.get("x-forwarded-proto") or scope.get("scheme", "http")
        path = scope["path"]
        query = parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True)
        return cls(method=scope["method"], path=path, query=query, headers=headers, body=body,
                   base_url=f"{scheme}://{host}")

    def json(self) -> Any:
        if not self.body.strip():
            raise BadRequest("Resource body required")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as err:
            raise BadRequest(f"Malformed request body: {err}", type="MalformedRequestBody") from None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    payload: bytes | None = None  # the body already encoded (then `body` is None)
    content_type: bytes = b"application/json"

    def encode(self) -> bytes:
        if self.payload is not None:
            return self.payload
        if self.body is None:
            return b""
        return orjson.dumps(self.body)


def fault(err: NeutronError) -> Response:
    return Response(err.status, {"NeutronError": {"type": err.type, "message": err.message, "detail": ""}})
