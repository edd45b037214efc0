"""/v2.0/ports/{id}/bindings (binding-extended) as live migration uses it: an inactive binding on the target
host, its activation (the agents' host views follow the active binding), and the old binding's removal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from fermion.db import models as m
from tests.api.test_binding import BRIDGE_DETAILS, l2_view, report, report_ports
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

PROJECT = "proj-a"


@pytest.fixture
def port(client: SyncClient, api: Api) -> dict[str, Any]:
    report(client, "compute-1")
    report(client, "compute-2")
    net = api.network(name="n", project_id=PROJECT)
    api.subnet(net["id"], project_id=PROJECT)
    return api.port(net["id"], project_id=PROJECT, device_owner="compute:nova", device_id="vm-1",
                    **{"binding:host_id": "compute-1", "binding:profile": {"src": 1}})


def _bindings(api: Api, port_id: str, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/ports/{port_id}/bindings{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["bindings"])


def _create(api: Api, port_id: str, **attrs: Any) -> Any:
    return api.post(f"/v2.0/ports/{port_id}/bindings", json={"binding": attrs})


def _activate(api: Api, port_id: str, host: str) -> Any:
    return api.put(f"/v2.0/ports/{port_id}/bindings/{host}/activate")


def _ports_in_view(client: SyncClient, host: str) -> list[str]:
    return [p.id for p in l2_view(client, host).ports]


def test_a_port_lists_its_active_binding(api: Api, port: dict[str, Any]) -> None:
    assert _bindings(api, port["id"]) == [{"host": "compute-1", "vif_type": "bridge", "vnic_type": "normal",
                                           "status": "ACTIVE", "profile": {"src": 1},
                                           "vif_details": BRIDGE_DETAILS}]
    r = api.get(f"/v2.0/ports/{port['id']}/bindings/compute-1")
    assert r.status_code == 200 and r.json()["binding"]["status"] == "ACTIVE"
    assert_fault(api.get(f"/v2.0/ports/{port['id']}/bindings/compute-9"), 404, "PortBindingNotFound")


def test_live_migration_moves_the_port_between_hosts(client: SyncClient, api: Api, port: dict[str, Any]) -> None:
    pid = port["id"]
    report_ports(client, "compute-1", up={pid: port["revision_number"]})
    assert api.get(f"/v2.0/ports/{pid}").json()["port"]["status"] == "ACTIVE"

    r = _create(api, pid, host="compute-2", profile={"dst": 2})
    assert r.status_code == 201, r.text
    revision = api.get(f"/v2.0/ports/{pid}").json()["port"]["revision_number"]
    assert revision == port["revision_number"] + 1  # a binding revises its port
    assert r.json()["binding"] == {"host": "compute-2", "vif_type": "bridge", "vnic_type": "normal",
                                   "status": "INACTIVE", "profile": {"dst": 2}, "vif_details": BRIDGE_DETAILS}
    listed = {b["host"]: b["status"] for b in _bindings(api, pid)}
    assert listed == {"compute-1": "ACTIVE", "compute-2": "INACTIVE"}
    # an inactive binding changes nothing on the port or in the hosts' views
    shown = api.get(f"/v2.0/ports/{pid}").json()["port"]
    assert shown["binding:host_id"] == "compute-1" and shown["status"] == "ACTIVE"
    assert pid in _ports_in_view(client, "compute-1") and pid not in _ports_in_view(client, "compute-2")

    r = _activate(api, pid, "compute-2")
    assert r.status_code == 200, r.text
    assert r.json()["binding"]["status"] == "ACTIVE" and r.json()["binding"]["host"] == "compute-2"
    shown = api.get(f"/v2.0/ports/{pid}").json()["port"]
    assert shown["binding:host_id"] == "compute-2" and shown["binding:profile"] == {"dst": 2}
    assert shown["status"] == "DOWN"  # until the new host's agent has wired it
    assert pid in _ports_in_view(client, "compute-2") and pid not in _ports_in_view(client, "compute-1")
    old = {b["host"]: b for b in _bindings(api, pid)}["compute-1"]
    assert old["status"] == "INACTIVE" and old["vif_type"] == "unbound" and old["profile"] == {"src": 1}
    assert report_ports(client, "compute-2", up={pid: shown["revision_number"]}) == 1
    assert api.get(f"/v2.0/ports/{pid}").json()["port"]["status"] == "ACTIVE"

    assert api.delete(f"/v2.0/ports/{pid}/bindings/compute-1").status_code == 204
    assert [b["host"] for b in _bindings(api, pid)] == ["compute-2"]
    assert_fault(api.delete(f"/v2.0/ports/{pid}/bindings/compute-1"), 404, "PortBindingNotFound")


def test_binding_errors_are_neutrons(api: Api, port: dict[str, Any]) -> None:
    pid = port["id"]
    assert_fault(_create(api, pid, host="compute-1"), 409, "PortBindingAlreadyExists")
    assert _create(api, pid, host="compute-2").status_code == 201
    err = assert_fault(_create(api, pid, host="compute-2"), 409, "PortBindingAlreadyExists")
    assert err["message"] == f"Binding for port {pid} on host compute-2 already exists."
    err = assert_fault(_activate(api, pid, "compute-1"), 409, "PortBindingAlreadyActive")
    assert err["message"] == f"Binding for port {pid} on host compute-1 is already active."
    err = assert_fault(_activate(api, pid, "compute-3"), 404, "PortBindingNotFound")
    assert err["message"] == f"Binding for port {pid} for host compute-3 could not be found."
    assert_fault(_create(api, pid), 400)
    assert_fault(_create(api, pid, host="compute-3", vnic_type="warp"), 400)
    assert_fault(_create(api, pid, host="compute-3", profile="x"), 400)
    assert_fault(_create(api, pid, host="compute-3", vif_type="ovs"), 400)
    # no agent there: Neutron's PortBindingError, and nothing is stored
    assert_fault(_create(api, pid, host="compute-3"), 500, "PortBindingError")
    assert sorted(b["host"] for b in _bindings(api, pid)) == ["compute-1", "compute-2"]
    missing = "00000000-0000-0000-0000-000000000000"
    assert_fault(api.get(f"/v2.0/ports/{missing}/bindings"), 404, "PortNotFound")
    assert_fault(_create(api, missing, host="compute-2"), 404, "PortNotFound")


def test_only_compute_ports_have_bindings(api: Api, port: dict[str, Any]) -> None:
    other = api.port(port["network_id"], device_owner="network:dhcp")
    err = assert_fault(api.get(f"/v2.0/ports/{other['id']}/bindings"), 400, "BadRequest")
    assert "Operation only valid on compute ports" in err["message"]
    assert_fault(_create(api, other["id"], host="compute-2"), 400, "BadRequest")


def test_filters_and_fields(api: Api, port: dict[str, Any]) -> None:
    assert _create(api, port["id"], host="compute-2").status_code == 201
    assert [b["host"] for b in _bindings(api, port["id"], "?status=INACTIVE")] == ["compute-2"]
    assert [b["host"] for b in _bindings(api, port["id"], "?host=compute-1")] == ["compute-1"]
    assert _bindings(api, port["id"], "?host=compute-1&fields=status") == [{"status": "ACTIVE"}]
    assert_fault(api.get(f"/v2.0/ports/{port['id']}/bindings?color=red"), 400)


def test_bindings_are_for_admins_and_the_service_user(api: Api, port: dict[str, Any]) -> None:
    member = api.as_(PROJECT, "member")
    pid = port["id"]
    assert _bindings(member, pid) == []
    assert_fault(member.get(f"/v2.0/ports/{pid}/bindings/compute-1"), 404)
    assert_fault(_create(member, pid, host="compute-2"), 403, "PolicyNotAuthorized")
    service = api.as_("service-project", "service")
    assert _create(service, pid, host="compute-2").status_code == 201
    assert_fault(_activate(member, pid, "compute-2"), 403, "PolicyNotAuthorized")
    assert_fault(member.delete(f"/v2.0/ports/{pid}/bindings/compute-2"), 404)
    assert _activate(service, pid, "compute-2").status_code == 200
    stranger = api.as_("proj-b", "member")
    assert_fault(stranger.get(f"/v2.0/ports/{pid}/bindings"), 404, "PortNotFound")


def test_moving_the_port_by_update_or_deleting_it_drops_its_bindings(client: SyncClient, api: Api,
                                                                    port: dict[str, Any]) -> None:
    pid = port["id"]
    assert _create(api, pid, host="compute-2").status_code == 201
    r = api.put(f"/v2.0/ports/{pid}", json={"port": {"binding:host_id": "compute-2"}})
    assert r.status_code == 200, r.text
    assert [(b["host"], b["status"]) for b in _bindings(api, pid)] == [("compute-2", "ACTIVE")]
    assert _create(api, pid, host="compute-1").status_code == 201
    assert api.delete(f"/v2.0/ports/{pid}").status_code == 204
    assert_fault(api.get(f"/v2.0/ports/{pid}/bindings"), 404, "PortNotFound")
    with client.app.services.db.read() as conn:  # nothing left behind for a port of the same id
        assert conn.execute(select(m.port_bindings).where(m.port_bindings.c.port_id == pid)).all() == []


def test_deleting_the_active_binding_unbinds_the_port(client: SyncClient, api: Api, port: dict[str, Any]) -> None:
    pid = port["id"]
    assert api.delete(f"/v2.0/ports/{pid}/bindings/compute-1").status_code == 204
    shown = api.get(f"/v2.0/ports/{pid}").json()["port"]
    assert shown["binding:host_id"] == "" and shown["binding:vif_type"] == "unbound"
    assert pid not in _ports_in_view(client, "compute-1")


def test_a_binding_is_updated_in_place(api: Api, port: dict[str, Any]) -> None:
    pid = port["id"]
    assert _create(api, pid, host="compute-2").status_code == 201
    r = api.put(f"/v2.0/ports/{pid}/bindings/compute-2", json={"binding": {"profile": {"pci": "0000:01:00.1"}}})
    assert r.status_code == 200, r.text
    assert r.json()["binding"]["profile"] == {"pci": "0000:01:00.1"} and r.json()["binding"]["status"] == "INACTIVE"
    r = api.put(f"/v2.0/ports/{pid}/bindings/compute-1", json={"binding": {"profile": {"x": 1}}})
    assert r.status_code == 200 and r.json()["binding"]["status"] == "ACTIVE"
    assert api.get(f"/v2.0/ports/{pid}").json()["port"]["binding:profile"] == {"x": 1}
    # a vnic_type no driver binds: refused, and the binding stays as it was
    assert_fault(api.put(f"/v2.0/ports/{pid}/bindings/compute-2", json={"binding": {"vnic_type": "direct"}}),
                 500, "PortBindingError")
    assert {b["host"]: b["vnic_type"] for b in _bindings(api, pid)} == {"compute-1": "normal", "compute-2": "normal"}
    assert_fault(api.put(f"/v2.0/ports/{pid}/bindings/compute-9", json={"binding": {}}), 404, "PortBindingNotFound")
    assert_fault(api.as_(PROJECT, "member").put(f"/v2.0/ports/{pid}/bindings/compute-2",
                                                json={"binding": {"profile": {}}}), 403)


@pytest.fixture
def live(any_db_url: str) -> Any:
    """A served app (real HTTP, many connections) on each database, with agents on two hosts."""
    from fermion.config import settings as cfg
    from fermion.db import migrate
    from fermion.db.engine import Database
    from fermion.rpc.contracts import StateReport, encode
    from fermion.runtime.embedded import build_app
    from tests.api.test_binding import LB, LB_CONF
    from tests.support.inproc_server import serve_in_thread

    db = Database(any_db_url)
    migrate.upgrade(db.engine)
    db.dispose()
    app = build_app(cfg.Settings().replace("database", url=any_db_url))
    with serve_in_thread(app) as endpoint:  # (RPC is served from the app's start-up on)
        for host in ("compute-1", "compute-2"):
            app.transport.call("report_state", encode(StateReport(
                host=host, agent_type=LB, binary="lb", topic="N/A", configurations=LB_CONF, start_flag=True)))
        yield endpoint


def test_concurrent_creates_and_activations_of_one_binding(live: str) -> None:
    import httpx

    headers = {"X-Project-Id": PROJECT, "X-Roles": "admin"}
    with httpx.Client(base_url=live, headers=headers, timeout=60) as c:
        net = c.post("/v2.0/networks", json={"network": {"name": "n"}}).json()["network"]
        port = c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                                    "binding:host_id": "compute-1"}}).json()["port"]
    pid = port["id"]

    def race(method: str, path: str, body: Any = None) -> list[int]:
        def one(_: int) -> int:
            with httpx.Client(base_url=live, headers=headers, timeout=60) as c:
                return c.request(method, path, json=body).status_code
        with ThreadPoolExecutor(8) as pool:
            return sorted(pool.map(one, range(8)))

    assert race("POST", f"/v2.0/ports/{pid}/bindings", {"binding": {"host": "compute-2"}}) == [201] + [409] * 7
    assert race("PUT", f"/v2.0/ports/{pid}/bindings/compute-2/activate") == [200] + [409] * 7
    with httpx.Client(base_url=live, headers=headers, timeout=60) as c:
        bindings = c.get(f"/v2.0/ports/{pid}/bindings").json()["bindings"]
    assert sorted((b["host"], b["status"]) for b in bindings) == [("compute-1", "INACTIVE"), ("compute-2", "ACTIVE")]


def test_the_openapi_document_describes_the_bindings(api: Api) -> None:
    doc = api.get("/openapi.json").json()
    assert {"get", "post"} <= set(doc["paths"]["/v2.0/ports/{port_id}/bindings"])
    assert {"get", "put", "delete"} <= set(doc["paths"]["/v2.0/ports/{port_id}/bindings/{host}"])
    assert "put" in doc["paths"]["/v2.0/ports/{port_id}/bindings/{host}/activate"]
    create = doc["components"]["schemas"]["BindingCreate"]["properties"]["binding"]
    assert create["required"] == ["host"] and {"host", "vnic_type", "profile"} <= set(create["properties"])
