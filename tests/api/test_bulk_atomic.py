"""Every bulk create is all or nothing on every database: a bulk whose last item is refused, or that runs
out of addresses, segment ids or quota, leaves nothing behind and holds nothing that a later request needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fermion.config import settings as cfg
from fermion.db import migrate
from fermion.db.engine import Database
from fermion.runtime.embedded import build_app
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def admin(any_db_url: str) -> Iterator[Api]:
    db = Database(any_db_url)
    migrate.upgrade(db.engine)
    db.dispose()
    # two VXLAN ids in all, so that a leaked one would show
    settings = cfg.Settings().replace("database", url=any_db_url).replace("ml2", vxlan_vni_ranges=("1000:1001",))
    with SyncClient(build_app(settings)) as client:
        yield Api(client, "atomic", "admin")


def _bulk(api: Api, collection: str, items: list[dict[str, Any]]) -> Any:
    return api.post(f"/v2.0/{collection.replace('_', '-')}", json={collection: items})


def _listed(api: Api, collection: str, **filters: str) -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/{collection.replace('_', '-')}", params=filters)
    assert r.status_code == 200, r.text
    return list(r.json()[collection])


def _addresses(api: Api, network_id: str) -> list[str]:
    return sorted(f["ip_address"] for p in _listed(api, "ports", network_id=network_id) for f in p["fixed_ips"])


def test_networks(admin: Api) -> None:
    two = [{"name": "a"}, {"name": "b"}]
    assert_fault(_bulk(admin, "networks", [*two, {"name": "c", "provider:network_type": "bogus"}]), 400)
    assert_fault(_bulk(admin, "networks", [*two, {"name": "c"}]), 503, "NoNetworkAvailable")  # a third id
    assert _listed(admin, "networks") == []
    r = _bulk(admin, "networks", two)  # both ids are free again
    assert r.status_code == 201, r.text
    assert sorted(n["provider:segmentation_id"] for n in r.json()["networks"]) == [1000, 1001]


def test_subnets(admin: Api) -> None:
    net = admin.network()
    two = [{"network_id": net["id"], "cidr": cidr, "ip_version": 4} for cidr in ("10.1.0.0/24", "10.1.1.0/24")]
    assert_fault(_bulk(admin, "subnets", [*two, {**two[0], "cidr": "10.1.0.0/25"}]), 400)  # overlaps the first
    assert_fault(_bulk(admin, "subnets", [*two, {**two[0], "network_id": MISSING}]), 404)
    assert _listed(admin, "subnets") == []
    assert _bulk(admin, "subnets", two).status_code == 201


def test_ports(admin: Api) -> None:
    net = admin.network()
    sub = admin.subnet(net["id"], "10.2.0.0/29")  # five addresses: .2 to .6
    five = [{"network_id": net["id"]}] * 5
    assert_fault(_bulk(admin, "ports", [*five, {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.9.0.1"}]}]),
                 400)
    assert_fault(_bulk(admin, "ports", [*five, {"network_id": net["id"]}]), 409, "IpAddressGenerationFailure")
    assert_fault(_bulk(admin, "ports", [*five[:4], {"network_id": net["id"],
                                                     "fixed_ips": [{"subnet_id": sub["id"]}] * 2}]),
                 409, "IpAddressGenerationFailure")
    assert _listed(admin, "ports", network_id=net["id"]) == []
    r = _bulk(admin, "ports", five)
    assert r.status_code == 201, r.text
    assert _addresses(admin, net["id"]) == [f"10.2.0.{i}" for i in range(2, 7)]


def test_ports_over_quota(admin: Api) -> None:
    assert admin.put("/v2.0/quotas/tight", json={"quota": {"port": 3}}).status_code == 200
    tight = admin.as_("tight", "member")
    net = tight.network()
    tight.subnet(net["id"], "10.3.0.0/24")
    assert_fault(_bulk(tight, "ports", [{"network_id": net["id"]}] * 4), 409, "OverQuota")
    assert _listed(tight, "ports") == []
    assert _bulk(tight, "ports", [{"network_id": net["id"]}] * 3).status_code == 201
    assert tight.get("/v2.0/quotas/tight/details.json").json()["quota"]["port"]["used"] == 3


def test_security_group_rules(admin: Api) -> None:
    group = admin.post("/v2.0/security-groups", json={"security_group": {"name": "web"}}).json()["security_group"]
    before = sorted(r["id"] for r in _listed(admin, "security_group_rules", security_group_id=group["id"]))
    rules = [{"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
              "port_range_min": port, "port_range_max": port} for port in (22, 80)]
    assert_fault(_bulk(admin, "security_group_rules", [*rules, {**rules[0], "protocol": "bogus"}]), 400)
    assert_fault(_bulk(admin, "security_group_rules", [*rules, {**rules[0], "direction": "egress",
                                                                "remote_group_id": MISSING}]), 404)
    assert sorted(r["id"] for r in _listed(admin, "security_group_rules", security_group_id=group["id"])) == before
    assert _bulk(admin, "security_group_rules", rules).status_code == 201


def test_floating_ips(admin: Api) -> None:
    ext = admin.network(name="public", **{"router:external": True})
    admin.subnet(ext["id"], "198.18.0.0/29")  # five addresses
    five = [{"floating_network_id": ext["id"]}] * 5
    assert_fault(_bulk(admin, "floatingips", [*five, {"floating_network_id": ext["id"],
                                                      "floating_ip_address": "198.19.0.1"}]), 400)
    assert_fault(_bulk(admin, "floatingips", [*five, five[0]]), 409, "IpAddressGenerationFailure")
    assert _listed(admin, "floatingips") == [] and _listed(admin, "ports", network_id=ext["id"]) == []
    r = _bulk(admin, "floatingips", five)
    assert r.status_code == 201, r.text
    assert sorted(f["floating_ip_address"] for f in r.json()["floatingips"]) == [f"198.18.0.{i}" for i in range(2, 7)]
    assert _addresses(admin, ext["id"]) == [f"198.18.0.{i}" for i in range(2, 7)]
