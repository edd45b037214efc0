"""A floating IP's status is the truth (issue 16 point 8): DOWN until the L3 agent serving its router reports it
realized, ERROR when that agent failed to realize the router, DOWN again when its association changes, when its
router moves to another host and when no live agent serves the router. The agents are played through the
in-process RPC transport, as a real agent calls the server; the user reads the status through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.rpc import contracts
from fermion.rpc.contracts import FloatingIp, FloatingIpReport, FloatingIpStatus, Hint, StateReport, decode, encode
from tests.api.test_agents import age_heartbeat
from tests.api.test_l3_ha import l3_agent, l3_view, lb_agent, make_ha, report_states
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient

L3 = "L3 agent"


def topology(admin: Api, tenant: Api, router_id: str | None = None) -> dict[str, Any]:
    """An external network, a tenant router (the given one, else a new one) with its gateway there and an
    interface on a tenant subnet, and an instance's port on that subnet."""
    ext = admin.network(name="public", **{"router:external": True})
    admin.subnet(ext["id"], "198.18.100.0/24", allocation_pools=[{"start": "198.18.100.10", "end": "198.18.100.99"}])
    if router_id is None:
        router_id = tenant.create("routers", name="r")["id"]
    r = admin.put(f"/v2.0/routers/{router_id}", json={"router": {"external_gateway_info": {"network_id": ext["id"]}}})
    assert r.status_code == 200, r.text
    net = tenant.network(name="n")
    sub = tenant.subnet(net["id"], "10.1.0.0/24")
    r = tenant.put(f"/v2.0/routers/{router_id}/add_router_interface", json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    vm = tenant.port(net["id"], device_id="vm-1", device_owner="compute:nova")
    return {"ext": ext["id"], "router": router_id, "network": net["id"], "vm": vm["id"]}


def fip_of(api: Api, fip_id: str) -> dict[str, Any]:
    r = api.get(f"/v2.0/floatingips/{fip_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["floatingip"])


def status(api: Api, fip_id: str) -> str:
    return str(fip_of(api, fip_id)["status"])


def associate(api: Api, fip_id: str, port_id: str | None) -> dict[str, Any]:
    r = api.put(f"/v2.0/floatingips/{fip_id}", json={"floatingip": {"port_id": port_id}})
    assert r.status_code == 200, r.text
    return dict(r.json()["floatingip"])


def seen(client: SyncClient, host: str, fip_id: str) -> FloatingIp:
    """The floating IP as the host's L3 agent finds it in its view."""
    found = [f for r in l3_view(client, host).routers for f in r.floating_ips if f.id == fip_id]
    assert len(found) == 1, found
    return found[0]


def report(client: SyncClient, host: str, **statuses: tuple[int, str]) -> int:
    """What the L3 agent on host reports: floating IP id -> (revision, status)."""
    msg = FloatingIpReport(host=host, statuses={k: FloatingIpStatus(*v) for k, v in statuses.items()})
    return int(client.app.transport.call("report_floatingip_statuses", encode(msg))["changed"])


def realized(client: SyncClient, host: str, fip_id: str, outcome: str = "ACTIVE") -> None:
    """The agent on host realized what its view says (or failed to: outcome ERROR) and reports it."""
    report(client, host, **{fip_id: (seen(client, host, fip_id).revision, outcome)})


@pytest.fixture
def hints(client: SyncClient) -> Iterator[list[Hint]]:
    """The hints the server sends the agents from now on."""
    got: list[Hint] = []
    stop = client.app.transport.listen(lambda message: got.append(decode(Hint, message)))
    yield got
    stop()


# ---------------------------------------------------------------- a legacy router
def test_down_until_the_agent_reports_it_realized_down_again_when_disassociated(
        client: SyncClient, admin: Api, tenant: Api) -> None:
    l3_agent(client, "net1")
    t = topology(admin, tenant)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    assert fip["status"] == "DOWN"  # associated, but no agent has said anything yet
    assert seen(client, "net1", fip["id"]) == FloatingIp(fip["floating_ip_address"], fip["fixed_ip_address"],
                                                         id=fip["id"], revision=fip["revision_number"], status="DOWN")
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"
    assert [f["id"] for f in tenant.get("/v2.0/floatingips?status=ACTIVE").json()["floatingips"]] == [fip["id"]]
    assert report(client, "net1", **{fip["id"]: (fip["revision_number"], "ACTIVE")}) == 0  # already

    assert associate(tenant, fip["id"], None)["status"] == "DOWN"
    assert l3_view(client, "net1").routers[0].floating_ips == []
    got = associate(tenant, fip["id"], t["vm"])
    assert got["status"] == "DOWN"  # a new association: DOWN until the agent reports it again
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"


def test_error_when_the_agent_fails_to_realize_the_router(client: SyncClient, admin: Api, tenant: Api) -> None:
    l3_agent(client, "net1")
    t = topology(admin, tenant)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    realized(client, "net1", fip["id"], "ERROR")
    assert status(tenant, fip["id"]) == "ERROR"
    assert seen(client, "net1", fip["id"]).status == "ERROR"  # what the agent compares its next try with
    realized(client, "net1", fip["id"])  # a later try succeeds
    assert status(tenant, fip["id"]) == "ACTIVE"
    realized(client, "net1", fip["id"], "DOWN")  # the router was set down: the agent removed it
    assert status(tenant, fip["id"]) == "DOWN"
    report(client, "net1", **{fip["id"]: (fip["revision_number"], "BOGUS")})  # ignored
    assert status(tenant, fip["id"]) == "DOWN"


def test_a_report_made_for_an_older_association_changes_nothing_and_the_agent_looks_again(
        client: SyncClient, admin: Api, tenant: Api, hints: list[Hint]) -> None:
    l3_agent(client, "net1")
    t = topology(admin, tenant)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    before = seen(client, "net1", fip["id"])  # the agent pulls its view ...
    other = tenant.port(t["network"], device_id="vm-2", device_owner="compute:nova")
    moved = associate(tenant, fip["id"], other["id"])  # ... the floating IP moves to another instance ...
    assert moved["revision_number"] > before.revision
    hints.clear()
    report(client, "net1", **{fip["id"]: (before.revision, "ACTIVE")})  # ... and the report of the old one arrives
    assert status(tenant, fip["id"]) == "DOWN"
    assert [(h.kind, h.id, h.host) for h in hints] == [("router", t["router"], "net1")]  # look again
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"

    # the instance's port is deleted: the floating IP is left unassociated, at a new revision
    current = seen(client, "net1", fip["id"])
    assert tenant.delete(f"/v2.0/ports/{other['id']}").status_code == 204
    gone = fip_of(tenant, fip["id"])
    assert gone["status"] == "DOWN" and gone["port_id"] is None and gone["revision_number"] > current.revision
    report(client, "net1", **{fip["id"]: (current.revision, "ACTIVE")})
    assert status(tenant, fip["id"]) == "DOWN"


def test_only_the_host_serving_the_router_is_heeded(client: SyncClient, admin: Api, api: Api, tenant: Api) -> None:
    net1 = l3_agent(client, "net1")
    net2 = l3_agent(client, "net2")
    t = topology(admin, tenant)
    (host,) = [a["host"] for a in api.get(f"/v2.0/routers/{t['router']}/l3-agents").json()["agents"]]
    other = "net2" if host == "net1" else "net1"
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    assert report(client, other, **{fip["id"]: (fip["revision_number"], "ACTIVE")}) == 0
    assert status(tenant, fip["id"]) == "DOWN"
    realized(client, host, fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"

    # moved by hand to the other agent: DOWN until that one reports it
    agent_of = {"net1": net1, "net2": net2}
    assert api.delete(f"/v2.0/agents/{agent_of[host]}/l3-routers/{t['router']}").status_code == 204
    assert status(tenant, fip["id"]) == "DOWN"
    r = api.post(f"/v2.0/agents/{agent_of[other]}/l3-routers", json={"router_id": t["router"]})
    assert r.status_code == 201, r.text
    assert report(client, host, **{fip["id"]: (fip["revision_number"], "ACTIVE")}) == 0  # no longer its router
    assert status(tenant, fip["id"]) == "DOWN"
    realized(client, other, fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"

    # the agent is deleted: nothing serves the router any more
    assert api.delete(f"/v2.0/agents/{agent_of[other]}").status_code == 204
    assert status(tenant, fip["id"]) == "DOWN"


def test_down_when_its_agent_dies_and_active_again_when_it_reports(
        client: SyncClient, admin: Api, tenant: Api, hints: list[Hint]) -> None:
    agent_id = l3_agent(client, "net1")
    lb_agent(client, "compute1")
    t = topology(admin, tenant)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"
    age_heartbeat(client, agent_id, seconds=120)  # agent_down_time is 30 s by default
    lb_agent(client, "compute1")  # any agent's heartbeat looks for routers of dead agents
    assert status(tenant, fip["id"]) == "DOWN"

    hints.clear()
    msg = StateReport(host="net1", agent_type=L3, binary="neutron-l3-agent", topic="l3_agent",
                      configurations={"agent_mode": "legacy"}, start_flag=False)
    assert client.app.transport.call("report_state", encode(msg))["revived"] is True
    assert ("router", t["router"], "net1") in [(h.kind, h.id, h.host) for h in hints]  # it looks again ...
    realized(client, "net1", fip["id"])  # ... and reports what it still has
    assert status(tenant, fip["id"]) == "ACTIVE"


def test_an_agent_older_than_1_9_keeps_its_floating_ips_active(client: SyncClient, admin: Api, tenant: Api,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1.8 agent reports no floating IPs: while it lives, those of its routers read ACTIVE, as they did."""
    l3_agent(client, "net1")
    t = topology(admin, tenant)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    monkeypatch.setattr(contracts, "VERSION", "1.8")  # what the agent's calls carry
    l3_agent(client, "net1")
    assert status(tenant, fip["id"]) == "ACTIVE"


# ---------------------------------------------------------------- an HA router
def test_an_ha_router_s_floating_ips_follow_its_active_instance(client: SyncClient, admin: Api,
                                                                tenant: Api) -> None:
    for host in ("net1", "net2"):
        l3_agent(client, host)
    rid = make_ha(client, "tenant-a")
    t = topology(admin, tenant, rid)
    fip = tenant.create("floatingips", floating_network_id=t["ext"], port_id=t["vm"])
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "DOWN"  # no instance is active yet: nothing answers for it

    report_states(client, "net1", {rid: "active"})
    realized(client, "net2", fip["id"])  # the standby realized it too, but does not carry its traffic
    assert status(tenant, fip["id"]) == "DOWN"
    realized(client, "net1", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"

    # failover: DOWN until the new active instance's agent reports it
    report_states(client, "net2", {rid: "active"})
    assert status(tenant, fip["id"]) == "DOWN"
    assert seen(client, "net2", fip["id"]).status == "DOWN"
    realized(client, "net1", fip["id"])  # the old active instance's late report
    assert status(tenant, fip["id"]) == "DOWN"
    realized(client, "net2", fip["id"])
    assert status(tenant, fip["id"]) == "ACTIVE"


# ---------------------------------------------------------------- every database
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_reports_on_every_database(tmp_path: Path, kind: str) -> None:
    with servers.temporary_database(kind, tmp_path) as url, make_client(url, tmp_path) as c:
        admin = Api(c, "admin-project", "admin")
        tenant = Api(c, "tenant-a", "member")
        agent_id = l3_agent(c, "net1")
        t = topology(admin, tenant)
        fips = [tenant.create("floatingips", floating_network_id=t["ext"]) for _ in range(2)]
        associate(tenant, fips[0]["id"], t["vm"])
        vm2 = tenant.port(t["network"], device_id="vm-2", device_owner="compute:nova")
        associate(tenant, fips[1]["id"], vm2["id"])
        realized(c, "net1", fips[0]["id"])
        realized(c, "net1", fips[1]["id"], "ERROR")
        assert [status(tenant, f["id"]) for f in fips] == ["ACTIVE", "ERROR"]
        age_heartbeat(c, agent_id, seconds=120)
        lb_agent(c, "compute1")
        assert [status(tenant, f["id"]) for f in fips] == ["DOWN", "DOWN"]
