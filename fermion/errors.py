"""Neutron's error vocabulary. The API turns these into {"NeutronError": {type, message, detail}}."""

from __future__ import annotations


class NeutronError(Exception):
    status = 500
    type = "NeutronError"

    def __init__(self, message: str, *, type: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status


class BadRequest(NeutronError):
    status = 400
    type = "HTTPBadRequest"


class InvalidInput(BadRequest):
    type = "InvalidInput"

    def __init__(self, message: str, *, type: str | None = None) -> None:
        super().__init__(f"Invalid input for operation: {message}", type=type)


class NotFound(NeutronError):
    status = 404
    type = "HTTPNotFound"


class Conflict(NeutronError):
    status = 409
    type = "Conflict"


class Forbidden(NeutronError):
    status = 403
    type = "PolicyNotAuthorized"


class PreconditionFailed(NeutronError):
    status = 412
    type = "RevisionNumberConstraintFailed"


class OverQuota(Conflict):
    type = "OverQuota"

    def __init__(self, resource: str) -> None:
        super().__init__(f"Quota exceeded for resources: ['{resource}'].")


def not_found(kind: str, label: str, ident: str) -> NotFound:
    key = {"Network": "net_id", "Subnet": "subnet_id", "Port": "port_id"}.get(label, "id")
    return NotFound(f"{label} {ident} could not be found.", type=kind) if key else NotFound(ident)
