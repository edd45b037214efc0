"""Service flavors, service profiles and service providers (flavors, service-type), as Neutron's flavors
plugin: admin-managed; a profile names a provider driver (or only metainfo); a flavor is bound to profiles;
a router created with a flavor (l3-flavors) takes the flavor's next provider, which must be an L3 one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import BadRequest, Conflict, NeutronError, NotFound
from fermion.resources.base import Resource
from fermion.resources.flavor import FLAVOR, SERVICE_PROFILE
from fermion.services.query import Collection

L3 = "L3_ROUTER_NAT"
# The service plugins a flavor may be for (Neutron validates against the loaded plugins)
SERVICE_TYPES = ("FLAVORS", L3)
# The providers Fermion has: one L3 provider, a single-node router, under Neutron's driver name so that service
# profiles written for Neutron validate here too.
PROVIDERS = ({"service_type": L3, "name": "single_node", "default": False,
              "driver": "neutron.services.l3_router.service_providers.single_node.SingleNodeDriver"},)
_f, _sp, _b = m.flavors.c, m.serviceprofiles.c, m.flavorserviceprofilebindings.c


class ServiceUnavailable(NeutronError):
    status = 503
    type = "ServiceUnavailable"


def flavor_not_found(ident: str) -> NotFound:
    return NotFound(f"Flavor {ident} could not be found.", type="FlavorNotFound")


def profile_not_found(ident: str) -> NotFound:
    return NotFound(f"Service Profile {ident} could not be found.", type="ServiceProfileNotFound")


class PlainCollection(Collection):
    """Rows as they are: these tables have no timestamps, revision or tags."""

    def __init__(self, resource: Resource, table: Any) -> None:
        super().__init__(resource, table)

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        out = [{name: row[self._index[col.name]] for name, col in self.plain} for row in rows]
        if complete:
            self.complete(conn, rows, out)
        return out

    def fresh(self, conn: Connection, inserted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for r in inserted if (item := self.get(conn, r["id"])) is not None]


class FlavorCollection(PlainCollection):
    def __init__(self) -> None:
        super().__init__(FLAVOR, m.flavors)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ids = [i["id"] for i in items]
        bound: dict[str, list[str]] = defaultdict(list)
        if ids:
            for fid, sid in conn.execute(select(_b.flavor_id, _b.service_profile_id)
                                         .where(_b.flavor_id.in_(ids)).order_by(_b.service_profile_id)):
                bound[fid].append(sid)
        for item in items:
            item["service_profiles"] = bound.get(item["id"], [])


def _profile_exists(conn: Connection, ident: str) -> None:
    if conn.execute(select(_sp.id).where(_sp.id == ident)).first() is None:
        raise profile_not_found(ident)


def _validate_driver(driver: str) -> None:
    if driver not in {p["driver"] for p in PROVIDERS}:
        raise NotFound(f"Service Profile driver {driver} could not be found.", type="ServiceProfileDriverNotFound")


class FlavorService:
    def __init__(self) -> None:
        self.collection = FlavorCollection()

    def create(self, conn: Connection, items: list[dict[str, Any]], ctx: Context | None = None
               ) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            if item["service_type"] not in SERVICE_TYPES:
                raise BadRequest(f"Invalid input for operation: Invalid service type {item['service_type']}.",
                                 type="InvalidFlavorServiceType")
            row = {"id": new_id(), "name": item["name"], "description": item["description"],
                   "service_type": item["service_type"], "enabled": True if item["enabled"] is None
                   else item["enabled"]}
            conn.execute(insert(m.flavors).values(**row))
            for sid in dict.fromkeys(item.get("service_profiles") or []):
                _profile_exists(conn, sid)
                conn.execute(insert(m.flavorserviceprofilebindings).values(flavor_id=row["id"], service_profile_id=sid))
            rows.append(row)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values = {k: changes[k] for k in ("name", "description", "enabled") if k in changes}
        if values.get("enabled", True) is None:
            values.pop("enabled")
        if values:
            conn.execute(update(m.flavors).where(_f.id == orig["id"]).values(**values))
        if "service_profiles" in changes:
            wanted = list(dict.fromkeys(changes["service_profiles"]))
            for sid in wanted:
                _profile_exists(conn, sid)
            conn.execute(delete(m.flavorserviceprofilebindings).where(_b.flavor_id == orig["id"]))
            for sid in wanted:
                conn.execute(insert(m.flavorserviceprofilebindings)
                             .values(flavor_id=orig["id"], service_profile_id=sid))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        if conn.execute(select(m.routers.c.id).where(m.routers.c.flavor_id == orig["id"]).limit(1)).first():
            raise Conflict(f"Flavor {orig['id']} is used by some service instance.", type="FlavorInUse")
        conn.execute(delete(m.flavors).where(_f.id == orig["id"]))

    # ---------------------------------------------------------------- /flavors/{id}/service_profiles
    def bind(self, conn: Connection, flavor_id: str, profile_id: str) -> None:
        _profile_exists(conn, profile_id)
        if not insert_if_absent(conn, m.flavorserviceprofilebindings,
                                {"service_profile_id": profile_id, "flavor_id": flavor_id}):
            raise Conflict(f"Service Profile {profile_id} is already associated with flavor {flavor_id}.",
                           type="FlavorServiceProfileBindingExists")

    def unbind(self, conn: Connection, flavor_id: str, profile_id: str) -> None:
        res = conn.execute(delete(m.flavorserviceprofilebindings)
                           .where(_b.flavor_id == flavor_id, _b.service_profile_id == profile_id))
        if res.rowcount == 0:
            raise binding_not_found(profile_id, flavor_id)

    def binding(self, conn: Connection, flavor_id: str, profile_id: str) -> dict[str, str]:
        found = conn.execute(select(_b.flavor_id).where(_b.flavor_id == flavor_id,
                                                        _b.service_profile_id == profile_id)).first()
        if found is None:
            raise binding_not_found(profile_id, flavor_id)
        return {"service_profile_id": profile_id, "flavor_id": flavor_id}

    def next_providers(self, conn: Connection, flavor_id: str) -> list[dict[str, Any]]:
        """The provider that serves the flavor: its first bound profile's driver (as Neutron)."""
        flavor = self.collection.get(conn, flavor_id)
        if flavor is None:
            raise flavor_not_found(flavor_id)
        if not flavor["enabled"]:
            raise ServiceUnavailable("Flavor is not enabled.", type="FlavorDisabled")
        if not flavor["service_profiles"]:
            raise binding_not_found("", flavor_id)
        profile = conn.execute(select(m.serviceprofiles).where(_sp.id == flavor["service_profiles"][0])).one()
        if not profile.enabled:
            raise ServiceUnavailable("Service Profile is not enabled.", type="ServiceProfileDisabled")
        provider = next((p for p in PROVIDERS if p["driver"] == profile.driver), None)
        if provider is None:
            raise NotFound(f"Service Profile driver {profile.driver} could not be found.",
                           type="ServiceProfileDriverNotFound")
        return [{"provider": provider["name"], "driver": profile.driver, "metainfo": profile.metainfo}]

    def router_flavor(self, conn: Connection, flavor_id: str) -> str:
        """l3-flavors: the flavor a new router asks for must lead to an L3 provider."""
        flavor = self.collection.get(conn, flavor_id)
        if flavor is None:
            raise flavor_not_found(flavor_id)
        if flavor["service_type"] != L3:
            raise BadRequest(f"Invalid input for operation: Invalid service type {flavor['service_type']}.",
                             type="InvalidFlavorServiceType")
        self.next_providers(conn, flavor_id)
        return flavor_id


def binding_not_found(profile_id: str, flavor_id: str) -> NotFound:
    return NotFound(f"Service Profile {profile_id} is not associated with flavor {flavor_id}.",
                    type="FlavorServiceProfileBindingNotFound")


class ServiceProfileService:
    def __init__(self) -> None:
        self.collection = PlainCollection(SERVICE_PROFILE, m.serviceprofiles)

    def create(self, conn: Connection, items: list[dict[str, Any]], ctx: Context | None = None
               ) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            if item["driver"]:
                _validate_driver(item["driver"])
            elif not item["metainfo"]:
                raise BadRequest("Invalid input for operation: Service Profile needs either a driver or metainfo.",
                                 type="ServiceProfileEmpty")
            row = {"id": new_id(), "description": item["description"], "driver": item["driver"],
                   "metainfo": item["metainfo"], "enabled": True if item["enabled"] is None else item["enabled"]}
            conn.execute(insert(m.serviceprofiles).values(**row))
            rows.append(row)
        return rows

    def _not_in_use(self, conn: Connection, ident: str) -> None:
        if conn.execute(select(_b.flavor_id).where(_b.service_profile_id == ident).limit(1)).first():
            raise Conflict(f"Service Profile {ident} is used by some service instance.", type="ServiceProfileInUse")

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        if changes.get("driver"):
            _validate_driver(changes["driver"])
        self._not_in_use(conn, orig["id"])
        values = {k: v for k, v in changes.items() if not (k == "enabled" and v is None)}
        if values:
            conn.execute(update(m.serviceprofiles).where(_sp.id == orig["id"]).values(**values))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        self._not_in_use(conn, orig["id"])
        conn.execute(delete(m.serviceprofiles).where(_sp.id == orig["id"]))


def service_providers() -> list[dict[str, Any]]:
    return [{k: p[k] for k in ("service_type", "name", "default")} for p in PROVIDERS]
