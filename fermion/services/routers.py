"""RouterService (being written)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import BadRequest
from fermion.resources.router import ROUTER
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService


class RouterService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = Collection(ROUTER, m.routers)
        self.quotas = quotas

    def create(self, conn: Connection, items: list[dict[str, Any]], ctx: Context | None = None) -> list[dict[str, Any]]:
        raise BadRequest("not implemented yet")

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        raise BadRequest("not implemented yet")

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        raise BadRequest("not implemented yet")
