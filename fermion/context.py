"""The identity a request acts with, shared by api/, policy/ and services/."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Context:
    project_id: str | None
    user_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def credentials(self) -> dict[str, object]:
        """What policy rules see on the left-hand side of a check (oslo.policy's creds)."""
        return {
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "user_id": self.user_id,
            "roles": sorted(self.roles),
            "is_admin": self.is_admin,
        }

    @classmethod
    def admin(cls, project_id: str | None = None) -> Context:
        return cls(project_id=project_id, roles=frozenset({"admin", "member", "reader"}))
