"""Statements run on the driver's cursor (db/direct.py) give what SQLAlchemy's own execution gives, on
every backend: same rows and types, defaults filled, JSON values, IN-lists of any length, wrapped errors."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, exc, insert, select

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.engine import Database
from fermion.db.migrate import upgrade
from tests.conftest import Api, make_client

_n = m.networks.c
BY_IDS = Prepared(select(m.networks).where(_n.id.in_(bindparam("b_ids", expanding=True))).order_by(_n.id))
INSERT_NETWORK = Prepared(insert(m.networks))
INSERT_PORT = Prepared(insert(m.ports))
_p = m.ports.c
PORT = Prepared(select(_p.id, _p.allowed_address_pairs, _p.binding_profile, _p.admin_state_up,
                       _p.created_at).where(_p.id == bindparam("b_id")))
NOT_ACTIVE = Prepared(select(_p.id).where(_p.network_id == bindparam("b_net"), _p.status != "ACTIVE"))


@pytest.fixture
def db(any_db_url: str) -> Iterator[Database]:
    database = Database(any_db_url)
    upgrade(database.engine)
    yield database
    database.dispose()


def _network(ident: str) -> dict[str, object]:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    return {"id": ident, "project_id": "p", "created_at": now, "updated_at": now, "admin_state_up": True,
            "status": "ACTIVE", "mtu": 1450}


def test_rows_match_sqlalchemy_for_in_lists_of_any_length(db: Database) -> None:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(5)]
    db.write(lambda conn: [INSERT_NETWORK.run(conn, _network(i)) for i in ids])
    with db.read() as conn:
        for wanted in (ids[:1], ids[1:4], ids, ["absent"]):
            direct = BY_IDS.rows(conn, {"b_ids": wanted})
            core = [tuple(r) for r in conn.execute(BY_IDS.stmt, {"b_ids": wanted})]
            assert direct == core
            assert [r[0] for r in direct] == sorted(i for i in wanted if i in ids)


def test_insert_fills_scalar_defaults_and_keeps_types(db: Database) -> None:
    db.write(lambda conn: INSERT_NETWORK.run(conn, _network("n1")))
    with db.read() as conn:
        row = BY_IDS.dicts(conn, {"b_ids": ["n1"]})[0]
    # name, description, shared... were left out: the columns' defaults went in, as with SQLAlchemy
    assert row["name"] == "" and row["revision_number"] == 1
    assert row["shared"] is False and row["port_security_enabled"] is True
    assert row["created_at"] == datetime.datetime(2026, 1, 2, 3, 4, 5)


def test_json_lists_are_values_not_in_lists(db: Database) -> None:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    pairs = [{"ip_address": "10.0.0.9", "mac_address": "fa:16:3e:00:00:01"}]
    port = {"id": "p1", "project_id": "p", "created_at": now, "updated_at": now, "network_id": "n1",
            "mac_address": "fa:16:3e:00:00:02", "admin_state_up": False, "status": "DOWN", "device_id": "",
            "device_owner": "", "port_security_enabled": True, "allowed_address_pairs": pairs,
            "binding_profile": {"a": [1, 2]}, "binding_vif_details": {}}

    def write(conn: object) -> None:
        INSERT_NETWORK.run(conn, _network("n1"))  # type: ignore[arg-type]
        INSERT_PORT.run_many(conn, [port])  # type: ignore[arg-type]

    db.write(write)
    with db.read() as conn:
        assert PORT.first(conn, {"b_id": "p1"}) == ("p1", pairs, {"a": [1, 2]}, False, now)
        assert NOT_ACTIVE.rows(conn, {"b_net": "n1"}) == [("p1",)]  # the literal "ACTIVE" is bound too


def test_driver_errors_arrive_wrapped_and_roll_back(db: Database) -> None:
    db.write(lambda conn: INSERT_NETWORK.run(conn, _network("n1")))

    def twice(conn: object) -> None:
        INSERT_NETWORK.run(conn, _network("n2"))  # type: ignore[arg-type]
        INSERT_NETWORK.run(conn, _network("n1"))  # type: ignore[arg-type]

    with pytest.raises(exc.IntegrityError):
        db.write(twice)
    with db.read() as conn:
        assert [r[0] for r in BY_IDS.rows(conn, {"b_ids": ["n1", "n2"]})] == ["n1"]


def test_port_show_matches_the_list_on_every_backend(any_db_url: str, tmp_path: Path) -> None:
    # a show reads addresses, groups and tags in one statement; a list reads them per kind
    with make_client(any_db_url, tmp_path) as client:
        api = Api(client, "admin-project", "admin")
        net = api.network()
        first = api.subnet(net["id"], cidr="10.9.0.0/24")
        second = api.subnet(net["id"], cidr="10.9.1.0/24")
        group = api.post("/v2.0/security-groups", json={"security_group": {"name": "web"}}).json()["security_group"]
        port = api.port(net["id"], tags=["b", "a"], security_groups=[group["id"]],
                        fixed_ips=[{"subnet_id": second["id"], "ip_address": "10.9.1.7"},
                                   {"subnet_id": first["id"], "ip_address": "10.9.0.9"},
                                   {"subnet_id": first["id"], "ip_address": "10.9.0.5"}])
        shown = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
        listed = api.get(f"/v2.0/ports?network_id={net['id']}").json()["ports"]
    assert shown == listed[0] == port
    assert shown["tags"] == ["a", "b"] and shown["security_groups"] == [group["id"]]
    assert shown["fixed_ips"] == sorted([{"subnet_id": second["id"], "ip_address": "10.9.1.7"},
                                         {"subnet_id": first["id"], "ip_address": "10.9.0.9"},
                                         {"subnet_id": first["id"], "ip_address": "10.9.0.5"}],
                                        key=lambda f: (f["subnet_id"], f["ip_address"]))


def test_a_connection_without_begin_commits_like_sqlalchemy_autobegin(db: Database) -> None:
    with db.engine.connect() as conn:
        INSERT_NETWORK.run(conn, _network("n1"))
        conn.commit()
    with db.engine.connect() as conn:
        INSERT_NETWORK.run(conn, _network("n2"))  # never committed: rolled back when returned to the pool
    with db.read() as conn:
        assert [r[0] for r in BY_IDS.rows(conn, {"b_ids": ["n1", "n2"]})] == ["n1"]


def test_subnet_checks_and_revision_updates_on_every_backend(any_db_url: str, tmp_path: Path) -> None:
    # a subnet create reads its network's MTU and subnets in one statement; bump() updates run prepared
    with make_client(any_db_url, tmp_path) as client:
        api = Api(client, "admin-project", "admin")
        net = api.network(mtu=1200)
        r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "fd10::/64", "ip_version": 6}})
        assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkMTUSubnetConflict"
        api.subnet(net["id"], cidr="10.8.0.0/24")
        r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.8.0.128/25",
                                                        "ip_version": 4}})
        assert r.status_code == 400 and "overlaps" in r.json()["NeutronError"]["message"]
        assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"] == net["revision_number"] + 1
        port = api.port(net["id"])
        pairs = [{"ip_address": "10.8.0.99", "mac_address": "fa:16:3e:00:00:09"}]
        stale = {"If-Match": f"revision_number={port['revision_number'] - 1}"}
        r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"allowed_address_pairs": pairs}}, headers=stale)
        assert r.status_code == 412
        current = {"If-Match": f"revision_number={port['revision_number']}"}
        r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"allowed_address_pairs": pairs, "name": "p"}},
                    headers=current)
        assert r.status_code == 200, r.text
        shown = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert shown["allowed_address_pairs"] == pairs and shown["name"] == "p"
    assert shown["revision_number"] == port["revision_number"] + 1


def test_large_and_small_port_pages_read_alike(api: Api) -> None:
    # up to 500 ports a page reads addresses, groups and tags in one statement; larger ones read each apart
    assert api.put("/v2.0/quotas/admin-project", json={"quota": {"port": -1}}).status_code == 200
    net = api.network()
    first = api.subnet(net["id"], cidr="10.7.0.0/22")
    second = api.subnet(net["id"], cidr="10.7.8.0/24")
    group = api.post("/v2.0/security-groups", json={"security_group": {"name": "g"}}).json()["security_group"]
    special = api.port(net["id"], tags=["z", "a"], security_groups=[group["id"]],
                       fixed_ips=[{"subnet_id": second["id"]}, {"subnet_id": first["id"]}, {"subnet_id": first["id"]}])
    bulk = [{"network_id": net["id"], "device_id": f"d{i}"} for i in range(501)]
    assert api.post("/v2.0/ports", json={"ports": bulk}).status_code == 201
    large = api.get(f"/v2.0/ports?network_id={net['id']}").json()["ports"]
    assert len(large) == 502
    small = api.get(f"/v2.0/ports?network_id={net['id']}&limit=10").json()["ports"]
    assert small == large[:10]
    mine = api.get(f"/v2.0/ports?device_id={special['device_id']}&tags=a").json()["ports"]
    assert mine == [p for p in large if p["id"] == special["id"]] == [special]
    assert len(special["fixed_ips"]) == 3 and special["tags"] == ["a", "z"]


def test_large_and_small_network_and_subnet_pages_read_alike(api: Api) -> None:
    # up to 500 networks (subnets) a page reads subnets, segments, zones and tags (service types and tags) in
    # one statement; larger ones read each apart
    assert api.put("/v2.0/quotas/admin-project", json={"quota": {"network": -1, "subnet": -1}}).status_code == 200
    scope = api.post("/v2.0/address-scopes", json={"address_scope": {"name": "s", "ip_version": 4}}).json()
    pool = api.post("/v2.0/subnetpools", json={"subnetpool": {
        "name": "p", "prefixes": ["10.90.0.0/16"], "address_scope_id": scope["address_scope"]["id"]}}).json()
    multi = api.network(tags=["y", "x"], segments=[{"provider:network_type": "vxlan"},
                                                   {"provider:network_type": "vlan", "provider:physical_network":
                                                    "physnet1"}])
    api.create("subnets", network_id=multi["id"], ip_version=4, subnetpool_id=pool["subnetpool"]["id"],
               prefixlen=24)
    api.subnet(multi["id"], cidr="fd80:1::/64", tags=["t"], service_types=["network:dhcp", "compute:nova"])
    api.subnet(multi["id"], cidr="fd80::/64")
    bulk = [{"name": f"n{i}"} for i in range(501)]
    assert api.post("/v2.0/networks", json={"networks": bulk}).status_code == 201
    large = api.get("/v2.0/networks").json()["networks"]
    assert len(large) > 500
    shown = api.get(f"/v2.0/networks/{multi['id']}").json()["network"]
    assert shown == next(n for n in large if n["id"] == multi["id"])
    assert shown["tags"] == ["x", "y"] and len(shown["segments"]) == 2 and len(shown["subnets"]) == 3
    assert shown["ipv4_address_scope"] == scope["address_scope"]["id"] and shown["ipv6_address_scope"] is None
    assert api.get("/v2.0/networks?limit=20").json()["networks"] == large[:20]
    subnets = api.get(f"/v2.0/subnets?network_id={multi['id']}").json()["subnets"]
    assert sorted(s["id"] for s in subnets) == sorted(shown["subnets"])
    first = next(s for s in subnets if s["cidr"] == "fd80:1::/64")
    assert first["service_types"] == ["compute:nova", "network:dhcp"] and first["tags"] == ["t"]
    assert api.get(f"/v2.0/subnets/{first['id']}").json()["subnet"] == first
