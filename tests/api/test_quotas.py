"""/v2.0/quotas: list, show, update, reset, defaults, details and enforcement at create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fermion.config import settings as cfg
from fermion.db import migrate
from fermion.db.engine import Database
from fermion.runtime.embedded import build_app
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

DEFAULTS = {"network": 100, "subnet": 100, "port": 500}


def _set(api: Api, project: str, **limits: int) -> dict[str, Any]:
    r = api.put(f"/v2.0/quotas/{project}", json={"quota": limits})
    assert r.status_code == 200, r.text
    return r.json()["quota"]


def test_show_defaults_for_an_unknown_project(api: Api) -> None:
    for path in ("/v2.0/quotas/p1", "/v2.0/quotas/p1.json"):
        r = api.get(path)
        assert r.status_code == 200, r.text
        assert {k: r.json()["quota"][k] for k in DEFAULTS} == DEFAULTS


def test_default_document(api: Api) -> None:
    _set(api, "p1", network=3)
    for path in ("/v2.0/quotas/p1/default", "/v2.0/quotas/p1/default.json"):
        r = api.get(path)
        assert r.status_code == 200, r.text
        assert {k: r.json()["quota"][k] for k in DEFAULTS} == DEFAULTS


def test_update_show_list_and_delete(api: Api) -> None:
    assert api.get("/v2.0/quotas").json() == {"quotas": []}
    quota = _set(api, "p1", network=5, port=7)
    assert quota["network"] == 5 and quota["port"] == 7 and quota["subnet"] == 100
    assert api.get("/v2.0/quotas/p1").json()["quota"]["network"] == 5
    listed = api.get("/v2.0/quotas").json()["quotas"]
    assert len(listed) == 1
    assert listed[0]["project_id"] == listed[0]["tenant_id"] == "p1"
    assert (listed[0]["network"], listed[0]["port"]) == (5, 7)
    assert api.get("/v2.0/quotas.json").json()["quotas"] == listed
    r = api.delete("/v2.0/quotas/p1")
    assert r.status_code == 204
    assert {k: api.get("/v2.0/quotas/p1").json()["quota"][k] for k in DEFAULTS} == DEFAULTS
    assert api.get("/v2.0/quotas").json() == {"quotas": []}


def test_update_twice_keeps_other_limits(api: Api) -> None:
    _set(api, "p1", network=5)
    quota = _set(api, "p1", subnet=6)
    assert (quota["network"], quota["subnet"], quota["port"]) == (5, 6, 500)


def test_details(api: Api) -> None:
    alice = api.as_("alice")
    net = alice.network()
    alice.subnet(net["id"])
    alice.port(net["id"])
    alice.port(net["id"])
    _set(api, "alice", port=10)
    for path in ("/v2.0/quotas/alice/details", "/v2.0/quotas/alice/details.json"):
        r = api.get(path)
        assert r.status_code == 200, r.text
        q = r.json()["quota"]
        assert q["network"] == {"limit": 100, "used": 1, "reserved": 0}
        assert q["subnet"] == {"limit": 100, "used": 1, "reserved": 0}
        assert q["port"] == {"limit": 10, "used": 2, "reserved": 0}
    # a project may read its own usage
    assert alice.get("/v2.0/quotas/alice/details").json()["quota"]["port"]["used"] == 2


def test_network_quota_is_enforced(api: Api) -> None:
    _set(api, "alice", network=2)
    alice = api.as_("alice")
    alice.network()
    alice.network()
    err = assert_fault(alice.post("/v2.0/networks", json={"network": {}}), 409, "OverQuota")
    assert "network" in err["message"]
    assert len(alice.get("/v2.0/networks").json()["networks"]) == 2
    # other projects are unaffected
    assert api.as_("bob").post("/v2.0/networks", json={"network": {}}).status_code == 201


def test_quota_counts_resources_an_admin_creates_for_the_project(api: Api) -> None:
    _set(api, "alice", network=1)
    api.network(project_id="alice")
    assert_fault(api.post("/v2.0/networks", json={"network": {"project_id": "alice"}}), 409, "OverQuota")


def test_deleting_frees_quota(api: Api) -> None:
    _set(api, "alice", network=1)
    alice = api.as_("alice")
    net = alice.network()
    assert_fault(alice.post("/v2.0/networks", json={"network": {}}), 409, "OverQuota")
    assert alice.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert alice.post("/v2.0/networks", json={"network": {}}).status_code == 201


def test_subnet_and_port_quotas(api: Api) -> None:
    _set(api, "alice", subnet=1, port=2)
    alice = api.as_("alice")
    net = alice.network()
    alice.subnet(net["id"], "10.0.0.0/24")
    assert_fault(alice.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.0.1.0/24",
                                                               "ip_version": 4}}), 409, "OverQuota")
    alice.port(net["id"])
    alice.port(net["id"])
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 409, "OverQuota")
    assert len(alice.get("/v2.0/ports").json()["ports"]) == 2
    assert len(alice.get("/v2.0/subnets").json()["subnets"]) == 1


def test_quota_applies_to_bulk_create(api: Api) -> None:
    _set(api, "alice", network=2)
    alice = api.as_("alice")
    r = alice.post("/v2.0/networks", json={"networks": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    assert_fault(r, 409, "OverQuota")
    assert alice.get("/v2.0/networks").json()["networks"] == []
    r = alice.post("/v2.0/networks", json={"networks": [{"name": "a"}, {"name": "b"}]})
    assert r.status_code == 201


def test_bulk_port_create_over_quota_writes_nothing(api: Api) -> None:
    _set(api, "alice", port=1)
    alice = api.as_("alice")
    net = alice.network()
    alice.subnet(net["id"])
    r = alice.post("/v2.0/ports", json={"ports": [{"network_id": net["id"]}, {"network_id": net["id"]}]})
    assert_fault(r, 409, "OverQuota")
    assert alice.get("/v2.0/ports").json()["ports"] == []
    # the addresses were not kept either: the whole pool is still free for a specific request
    assert alice.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.2"}])["fixed_ips"][0]["ip_address"] == \
        "10.0.0.2"


def test_zero_and_unlimited(api: Api) -> None:
    _set(api, "alice", network=0)
    alice = api.as_("alice")
    assert_fault(alice.post("/v2.0/networks", json={"network": {}}), 409, "OverQuota")
    _set(api, "alice", network=-1)
    r = alice.post("/v2.0/networks", json={"networks": [{} for _ in range(5)]})
    assert r.status_code == 201
    assert api.get("/v2.0/quotas/alice").json()["quota"]["network"] == -1


def test_lowering_below_usage_blocks_new_creates(api: Api) -> None:
    alice = api.as_("alice")
    for _ in range(3):
        alice.network()
    _set(api, "alice", network=2)
    assert_fault(alice.post("/v2.0/networks", json={"network": {}}), 409, "OverQuota")
    assert len(alice.get("/v2.0/networks").json()["networks"]) == 3


def test_non_admin_cannot_change_quotas(api: Api) -> None:
    alice = api.as_("alice")
    assert_fault(alice.put("/v2.0/quotas/alice", json={"quota": {"network": 1000}}), 403, "PolicyNotAuthorized")
    assert_fault(alice.delete("/v2.0/quotas/alice"), 403, "PolicyNotAuthorized")
    assert_fault(alice.get("/v2.0/quotas"), 403, "PolicyNotAuthorized")
    assert alice.get("/v2.0/quotas/alice").json()["quota"]["network"] == 100
    assert_fault(alice.get("/v2.0/quotas/bob"), 403, "PolicyNotAuthorized")
    assert api.get("/v2.0/quotas").json() == {"quotas": []}


def test_reader_may_read_own_quota(api: Api) -> None:
    reader = api.as_("alice", "reader")
    assert reader.get("/v2.0/quotas/alice").status_code == 200
    assert_fault(reader.put("/v2.0/quotas/alice", json={"quota": {"network": 1}}), 403)


def test_project_tenant_lookup(api: Api) -> None:
    r = api.as_("alice").get("/v2.0/quotas/project")
    assert r.status_code == 200 and r.json() == {"project": {"project_id": "alice"}}


@pytest.mark.parametrize("body", [
    {"quota": {"network": "lots"}},
    {"quota": {"network": -2}},
    {"quota": {"network": 1.5}},
    {"quota": {"network": True}},
    {"quota": {"trunk": 5}},
    {"quota": {"bogus": 5}},
    {"quota": [1]},
    {"quotas": {"network": 5}},
    [],
])
def test_invalid_quota_updates(api: Api, body: Any) -> None:
    assert_fault(api.put("/v2.0/quotas/alice", json=body), 400)
    assert api.get("/v2.0/quotas").json() == {"quotas": []}


def test_quota_numeric_strings_are_accepted(api: Api) -> None:
    assert _set(api, "alice", network="7")["network"] == 7  # type: ignore[arg-type]


def test_unknown_quota_paths_are_404(api: Api) -> None:
    assert_fault(api.get("/v2.0/quotas/alice/bogus"), 404)
    assert_fault(api.put("/v2.0/quotas/alice/default", json={"quota": {"network": 1}}), 404)


def test_floating_ip_and_gateway_ports_count_against_no_quota(tmp_path: Path) -> None:
    # the ports a floating IP or a router gateway gets belong to no project (as in Neutron): the default
    # port quota must not cap how many of them the whole cloud can have
    url = f"sqlite:///{tmp_path / 'quotas.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    with SyncClient(build_app(cfg.Settings().replace("database", url=url).replace("quotas", port=2))) as client:
        admin = Api(client, "admin-project", "admin")
        ext = admin.network(name="public", **{"router:external": True})
        admin.subnet(ext["id"], "198.18.0.0/24")
        r = admin.post("/v2.0/floatingips", json={"floatingips": [{"floating_network_id": ext["id"]}] * 3})
        assert r.status_code == 201, r.text
        for name in ("r1", "r2"):
            admin.create("routers", name=name, external_gateway_info={"network_id": ext["id"]})
        assert len(admin.get("/v2.0/ports", params={"network_id": ext["id"]}).json()["ports"]) == 5
        # a project's own ports still count
        net = admin.network()
        admin.subnet(net["id"])
        assert_fault(admin.post("/v2.0/ports", json={"ports": [{"network_id": net["id"]}] * 3}), 409, "OverQuota")
