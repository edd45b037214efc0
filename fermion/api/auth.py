"""Who is calling: Neutron's noauth headers, or a Keystone token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from fermion.context import Context

if TYPE_CHECKING:  # httpx is only needed in keystone mode; keep it off the start-up path
    from fermion.api.keystone import KeystoneAuthenticator

# Keystone's default implied roles: admin implies member implies reader.
IMPLIED = {"admin": ("member", "reader"), "member": ("reader",)}


def expand_roles(roles: set[str]) -> frozenset[str]:
    out = set(roles)
    for role in roles:
        out.update(IMPLIED.get(role, ()))
    return frozenset(out)


class Authenticator(Protocol):
    async def __call__(self, headers: Mapping[str, str], request_id: str) -> Context: ...


class NoAuth:
    """Neutron's noauth: X-Project-Id (or X-Tenant-Id), X-User-Id and X-Roles; else the default identity."""

    def __init__(self, default_project_id: str, default_roles: tuple[str, ...]) -> None:
        self.default_project_id = default_project_id
        self.default_roles = expand_roles(set(default_roles))

    async def __call__(self, headers: Mapping[str, str], request_id: str) -> Context:
        project = headers.get("x-project-id") or headers.get("x-tenant-id")
        user = headers.get("x-user-id")
        roles_header = headers.get("x-roles")
        if project is None and roles_header is None:
            return Context(self.default_project_id, user, self.default_roles, request_id)
        roles = {r.strip().lower() for r in (roles_header or "").split(",") if r.strip()}
        return Context(project, user, expand_roles(roles), request_id)


class KeystoneAuth:
    def __init__(self, authenticator: KeystoneAuthenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, headers: Mapping[str, str], request_id: str) -> Context:
        ctx = await self.authenticator.authenticate(headers.get("x-auth-token"), request_id)
        return Context(ctx.project_id, ctx.user_id, expand_roles(set(ctx.roles)), request_id)


__all__ = ["Authenticator", "KeystoneAuth", "NoAuth", "expand_roles"]
