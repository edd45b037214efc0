"""A port's bindings (binding-extended): the active one, plus inactive ones on other hosts that live
migration prepares and then activates.

The active binding stays on the port row (binding:host_id, vif_type, ...): it is what the agents' host views
read, so activating a binding is swapping it with the port row's in one transaction; the agents of both
hosts then get a hint and converge (the old host removes the port, the new host wires it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NeutronError, NotFound
from fermion.rpc.contracts import Hint
from fermion.services import common, trunk_ports
from fermion.services.ports import PortService

ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"


def _not_found(port_id: str, host: str) -> NotFound:
    return NotFound(f"Binding for port {port_id} for host {host} could not be found.", type="PortBindingNotFound")


def _binding_error(port_id: str, host: str) -> NeutronError:
    # Neutron's PortBindingError, a 500: no mechanism driver could bind the port there
    return NeutronError(f"Binding for port {port_id} on host {host} could not be created or updated.",
                        type="PortBindingError")


def check_compute_port(port: dict[str, Any]) -> None:
    if not port["device_owner"].startswith("compute:"):
        raise BadRequest(f"Bad port request: Invalid port {port['id']}. Operation only valid on compute ports.",
                         type="BadRequest")


def active_binding(port: dict[str, Any]) -> dict[str, Any]:
    return {"host": port["binding:host_id"], "vif_type": port["binding:vif_type"],
            "vnic_type": port["binding:vnic_type"], "status": ACTIVE, "profile": port["binding:profile"] or {},
            "vif_details": port["binding:vif_details"] or {}}


def _inactive(row: Any) -> dict[str, Any]:
    return {"host": row.host, "vif_type": row.vif_type, "vnic_type": row.vnic_type, "status": INACTIVE,
            "profile": row.profile or {}, "vif_details": row.vif_details or {}}


class PortBindingService:
    def __init__(self, ports: PortService) -> None:
        self.ports = ports

    @staticmethod
    def _inactive_rows(conn: Connection, port_id: str, host: str | None = None) -> list[Any]:
        b = m.port_bindings.c
        stmt = select(m.port_bindings).where(b.port_id == port_id)
        if host is not None:
            stmt = stmt.where(b.host == host)
        return list(conn.execute(stmt.order_by(b.host)))

    def list(self, conn: Connection, port: dict[str, Any]) -> list[dict[str, Any]]:
        check_compute_port(port)
        return [active_binding(port)] + [_inactive(r) for r in self._inactive_rows(conn, port["id"])]

    def show(self, conn: Connection, port: dict[str, Any], host: str) -> dict[str, Any]:
        check_compute_port(port)
        if host == port["binding:host_id"]:
            return active_binding(port)
        rows = self._inactive_rows(conn, port["id"], host)
        if not rows:
            raise _not_found(port["id"], host)
        return _inactive(rows[0])

    def create(self, conn: Connection, port: dict[str, Any], host: str, vnic_type: str,
               profile: dict[str, Any]) -> dict[str, Any]:
        """An INACTIVE binding on another host (the port always has an active one, as every Neutron port)."""
        check_compute_port(port)
        pid = port["id"]
        if host == port["binding:host_id"] or self._inactive_rows(conn, pid, host):
            raise Conflict(f"Binding for port {pid} on host {host} already exists.", type="PortBindingAlreadyExists")
        binding = self.ports.bind(conn, port["network_id"], host, vnic_type,
                                      bool(port.get("port_security_enabled", True)),
                                      port.get("device_owner") or "")
        if not binding.bound:
            raise _binding_error(pid, host)
        row = {"port_id": pid, "host": host, "vnic_type": vnic_type, "profile": profile,
               "vif_type": binding.vif_type, "vif_details": binding.vif_details}
        # the primary key (port, host) turns a concurrent twin into a conflict, never a duplicate
        if not insert_if_absent(conn, m.port_bindings, row):
            raise Conflict(f"Binding for port {pid} on host {host} already exists.", type="PortBindingAlreadyExists")
        self._revised(conn, port)
        return {"host": host, "vif_type": binding.vif_type, "vnic_type": vnic_type, "status": INACTIVE,
                "profile": profile, "vif_details": binding.vif_details}

    def update(self, conn: Connection, port: dict[str, Any], host: str, vnic_type: str | None,
               profile: dict[str, Any] | None) -> dict[str, Any]:
        """Change a binding's vnic_type or profile; the host's binding is bound again for the new values."""
        check_compute_port(port)
        pid = port["id"]
        if host == port["binding:host_id"]:
            changes: dict[str, Any] = {}
            if vnic_type is not None:
                changes["binding:vnic_type"] = vnic_type
            if profile is not None:
                changes["binding:profile"] = profile
            if changes:
                self.ports.update(conn, port, changes, None)
            now = self.ports.collection.get(conn, pid)
            assert now is not None
            if now["binding:vif_type"] == "binding_failed":
                raise _binding_error(pid, host)
            return active_binding(now)
        rows = self._inactive_rows(conn, pid, host)
        if not rows:
            raise _not_found(pid, host)
        vnic_type = vnic_type or rows[0].vnic_type
        profile = rows[0].profile or {} if profile is None else profile
        binding = self.ports.bind(conn, port["network_id"], host, vnic_type,
                                      bool(port.get("port_security_enabled", True)),
                                      port.get("device_owner") or "")
        if not binding.bound:
            raise _binding_error(pid, host)
        b = m.port_bindings.c
        conn.execute(update(m.port_bindings).where(b.port_id == pid, b.host == host).values(
            vnic_type=vnic_type, profile=profile, vif_type=binding.vif_type, vif_details=binding.vif_details))
        self._revised(conn, port)
        return {"host": host, "vif_type": binding.vif_type, "vnic_type": vnic_type, "status": INACTIVE,
                "profile": profile, "vif_details": binding.vif_details}

    def activate(self, conn: Connection, port: dict[str, Any], host: str) -> dict[str, Any]:
        """Make the host's inactive binding the active one; the old active binding becomes inactive (unbound,
        as Neutron clears it) and the port goes DOWN until the new host's agent has wired it."""
        check_compute_port(port)
        pid, old_host = port["id"], port["binding:host_id"]
        if host == old_host:
            raise Conflict(f"Binding for port {pid} on host {host} is already active.",
                           type="PortBindingAlreadyActive")
        rows = self._inactive_rows(conn, pid, host)
        if not rows:
            raise _not_found(pid, host)
        wanted = rows[0]
        binding = self.ports.bind(conn, port["network_id"], host, wanted.vnic_type,
                                      bool(port.get("port_security_enabled", True)),
                                      port.get("device_owner") or "")  # the host may have changed
        if not binding.bound:
            raise _binding_error(pid, host)
        b = m.port_bindings.c
        conn.execute(delete(m.port_bindings).where(b.port_id == pid, b.host == host))
        if old_host:
            conn.execute(insert(m.port_bindings).values(
                port_id=pid, host=old_host, vnic_type=port["binding:vnic_type"],
                profile=port["binding:profile"] or {}, vif_type="unbound", vif_details={}))
        common.bump(conn, m.ports, pid, {
            "binding_host_id": host, "binding_vnic_type": wanted.vnic_type, "binding_profile": wanted.profile or {},
            "binding_vif_type": binding.vif_type, "binding_vif_details": binding.vif_details, "status": "DOWN"})
        trunk_ports.port_changed(conn, self.ports, pid, host)  # a trunk parent takes its subports along
        self._hint_hosts(conn, port, host, old_host)
        return {"host": host, "vif_type": binding.vif_type, "vnic_type": wanted.vnic_type, "status": ACTIVE,
                "profile": wanted.profile or {}, "vif_details": binding.vif_details}

    def delete(self, conn: Connection, port: dict[str, Any], host: str) -> None:
        check_compute_port(port)
        pid = port["id"]
        if host == port["binding:host_id"]:
            # the active binding: the port is left unbound (its agent removes it)
            common.bump(conn, m.ports, pid, {"binding_host_id": "", "binding_vif_type": "unbound",
                                             "binding_vif_details": {}, "status": "DOWN"})
            trunk_ports.port_changed(conn, self.ports, pid, "")
            self._hint_hosts(conn, port, None, host)
            return
        b = m.port_bindings.c
        if conn.execute(delete(m.port_bindings).where(b.port_id == pid, b.host == host)).rowcount == 0:
            raise _not_found(pid, host)
        self._revised(conn, port)

    def _revised(self, conn: Connection, port: dict[str, Any]) -> None:
        """A binding revises its port, as in Neutron; the active host's agent hears of the new revision (a
        port it has still to wire becomes ACTIVE only once realized at it)."""
        common.bump(conn, m.ports, port["id"], {})
        self._hint_hosts(conn, port, port["binding:host_id"], None)

    @staticmethod
    def _hint_hosts(conn: Connection, port: dict[str, Any], new_host: str | None, old_host: str | None) -> None:
        revision = port["revision_number"] + 1
        for host in (new_host, old_host):
            if host:
                common.emit(conn, Hint("port", port["id"], revision, port["network_id"], host))
