"""Distributed routers on the server (dvr): the `distributed` attribute and its policy, conversions, the device
owners of their ports, SNAT ports, scheduling by L3 agent mode, the hosts with a copy, DVR MACs, floating-IP
agent gateway ports, and the L3 and L2 views each host pulls. A small cloud of three hosts (compute1 and
compute2 in dvr mode, network1 in dvr_snat mode) is played through the in-process RPC transport, as real
agents call the server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fermion.rpc.contracts import (
    FIREWALL_KEY,
    FloatingIpReport,
    FloatingIpStatus,
    Hint,
    L2View,
    L3View,
    PortReport,
    StateReport,
    ViewRequest,
    decode,
    encode,
)
from tests.api import test_floatingip_status
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

L3 = "L3 agent"
LB = "Linux bridge agent"
VTEPS = {"compute1": "198.18.0.21", "compute2": "198.18.0.22", "network1": "198.18.0.11", "network2": "198.18.0.12",
         "legacy1": "198.18.0.13", **{f"host{i}": f"198.18.1.{i + 1}" for i in range(12)}}
DVR_IF = "network:router_interface_distributed"
SNAT = "network:router_centralized_snat"
FIP_GW = "network:floatingip_agent_gateway"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[SyncClient]:
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(url, tmp_path) as c:
        yield c


def agents(client: SyncClient, host: str, mode: str | None) -> str:
    """A host's Linux bridge agent and L3 agent (mode None: a configuration without agent_mode); returns the
    L3 agent's id."""
    lb = StateReport(host=host, agent_type=LB, binary="neutron-linuxbridge-agent", topic="N/A",
                     configurations={"tunneling_ip": VTEPS[host], "tunnel_types": ["vxlan"]}, start_flag=True)
    client.app.transport.call("report_state", encode(lb))
    conf = {} if mode is None else {"agent_mode": mode}
    l3 = StateReport(host=host, agent_type=L3, binary="neutron-l3-agent", topic="l3_agent", configurations=conf,
                     start_flag=True)
    return str(client.app.transport.call("report_state", encode(l3))["agent_id"])


def l3_view(client: SyncClient, host: str) -> L3View:
    return decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest(host, L3))))


def l2_view(client: SyncClient, host: str) -> L2View:
    return decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest(host, LB))))


def ports(api: Api, **filters: Any) -> list[dict[str, Any]]:
    r = api.get("/v2.0/ports", params=filters)
    assert r.status_code == 200, r.text
    return list(r.json()["ports"])


def hosting(api: Api, router_id: str) -> list[str]:
    r = api.get(f"/v2.0/routers/{router_id}/l3-agents")
    assert r.status_code == 200, r.text
    return sorted(a["host"] for a in r.json()["agents"])


def make_router(admin: Api, project: str = "tenant-a", **attrs: Any) -> dict[str, Any]:
    r = admin.post("/v2.0/routers", json={"router": {"name": "r", "project_id": project, **attrs}})
    assert r.status_code == 201, r.text
    return dict(r.json()["router"])


def external(admin: Api) -> dict[str, Any]:
    ext = admin.network(name="public", **{"router:external": True})
    sub = admin.subnet(ext["id"], "198.18.100.0/24", gateway_ip="198.18.100.1",
                       allocation_pools=[{"start": "198.18.100.10", "end": "198.18.100.99"}])
    return {"network": ext["id"], "subnet": sub["id"]}


def set_gateway(admin: Api, router_id: str, network_id: str | None) -> None:
    info = {"network_id": network_id} if network_id else None
    r = admin.put(f"/v2.0/routers/{router_id}", json={"router": {"external_gateway_info": info}})
    assert r.status_code == 200, r.text


def add_interface(api: Api, router_id: str, subnet_id: str) -> str:
    r = api.put(f"/v2.0/routers/{router_id}/add_router_interface", json={"subnet_id": subnet_id})
    assert r.status_code == 200, r.text
    return str(r.json()["port_id"])


def instance(admin: Api, network_id: str, host: str, name: str = "vm") -> dict[str, Any]:
    return admin.port(network_id, name=name, project_id="tenant-a", device_id=name, device_owner="compute:nova",
                      **{"binding:host_id": host})


@pytest.fixture
def cloud(client: SyncClient, admin: Api, tenant: Api) -> dict[str, Any]:
    """compute1 and compute2 (dvr), network1 (dvr_snat); a distributed router with its gateway on the external
    network and interfaces on two tenant subnets; vm1 on compute1 on the first subnet."""
    ids = {host: agents(client, host, mode) for host, mode in
           (("compute1", "dvr"), ("compute2", "dvr"), ("network1", "dvr_snat"))}
    ext = external(admin)
    router = make_router(admin, distributed=True)
    set_gateway(admin, router["id"], ext["network"])
    net1, net2 = tenant.network(name="n1"), tenant.network(name="n2")
    sub1, sub2 = tenant.subnet(net1["id"], "10.1.0.0/24"), tenant.subnet(net2["id"], "10.2.0.0/24")
    if1, if2 = add_interface(tenant, router["id"], sub1["id"]), add_interface(tenant, router["id"], sub2["id"])
    vm1 = instance(admin, net1["id"], "compute1", "vm1")
    return {"agents": ids, "ext": ext, "router": router["id"], "nets": [net1["id"], net2["id"]],
            "subnets": [sub1["id"], sub2["id"]], "interfaces": [if1, if2], "vm1": vm1}


# ---------------------------------------------------------------- the attribute
def test_distributed_is_the_admins_and_defaults_to_false(client: SyncClient, admin: Api, tenant: Api) -> None:
    aliases = {e["alias"]: e for e in admin.get("/v2.0/extensions").json()["extensions"]}
    assert aliases["dvr"]["name"] == "Distributed Virtual Router"
    assert "router-admin-state-down-before-update" in aliases
    mine = tenant.create("routers", name="mine")
    assert "distributed" not in mine
    assert admin.get(f"/v2.0/routers/{mine['id']}").json()["router"]["distributed"] is False
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"name": "x", "distributed": True}}), 403)
    assert_fault(tenant.put(f"/v2.0/routers/{mine['id']}", json={"router": {"distributed": False}}), 403)
    assert_fault(admin.post("/v2.0/routers", json={"router": {"name": "x", "distributed": "maybe"}}), 400)
    assert make_router(admin, distributed=True)["distributed"] is True
    assert make_router(admin, distributed=None)["distributed"] is False  # null: the default


def test_the_default_comes_from_router_distributed(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"l3": {"router_distributed": True}}) as client:
        admin = Api(client, "admin-project", "admin")
        router = Api(client, "tenant-a", "member").create("routers", name="r")
        assert admin.get(f"/v2.0/routers/{router['id']}").json()["router"]["distributed"] is True
        assert make_router(admin, distributed=False)["distributed"] is False


# ---------------------------------------------------------------- conversions
def test_converting_needs_the_router_down_before_the_request(client: SyncClient, admin: Api, tenant: Api) -> None:
    agents(client, "network1", "dvr_snat")
    ext = external(admin)
    router = make_router(admin)
    rid = router["id"]
    set_gateway(admin, rid, ext["network"])
    net = tenant.network()
    if_port = add_interface(tenant, rid, tenant.subnet(net["id"], "10.1.0.0/24")["id"])
    assert admin.get(f"/v2.0/ports/{if_port}").json()["port"]["binding:host_id"] == "network1"

    for body in ({"distributed": True}, {"distributed": True, "admin_state_up": False}):
        r = admin.put(f"/v2.0/routers/{rid}", json={"router": body})
        assert_fault(r, 400, "BadRequest")
        assert r.json()["NeutronError"]["message"] == (
            "Bad router request: Cannot change the 'distributed' attribute of active routers. Please set router "
            "admin_state_up to False prior to upgrade.")
    assert admin.get(f"/v2.0/routers/{rid}").json()["router"]["admin_state_up"] is True  # nothing changed
    same = admin.put(f"/v2.0/routers/{rid}", json={"router": {"distributed": False, "name": "same"}})
    assert same.status_code == 200, same.text  # the same value: no conversion, no 400

    assert admin.put(f"/v2.0/routers/{rid}", json={"router": {"admin_state_up": False}}).status_code == 200
    assert_fault(admin.put(f"/v2.0/routers/{rid}", json={"router": {"distributed": True, "admin_state_up": True}}),
                 400)
    r = admin.put(f"/v2.0/routers/{rid}", json={"router": {"distributed": True}})
    assert r.status_code == 200, r.text
    assert r.json()["router"]["distributed"] is True
    port = admin.get(f"/v2.0/ports/{if_port}").json()["port"]
    assert (port["device_owner"], port["binding:host_id"]) == (DVR_IF, "")
    (snat,) = ports(admin, device_owner=SNAT)
    assert snat["binding:host_id"] == "network1"

    r = admin.put(f"/v2.0/routers/{rid}", json={"router": {"distributed": False}})  # back: allowed too
    assert r.status_code == 200, r.text
    port = admin.get(f"/v2.0/ports/{if_port}").json()["port"]
    assert (port["device_owner"], port["binding:host_id"]) == ("network:router_interface", "network1")
    assert ports(admin, device_owner=SNAT) == []


def test_an_ha_router_becomes_distributed_and_ha(client: SyncClient, admin: Api) -> None:
    for host in ("network1", "network2"):
        agents(client, host, "dvr_snat")
    rid = make_router(admin, ha=True, admin_state_up=False)["id"]
    assert len(hosting(admin, rid)) == 2
    r = admin.put(f"/v2.0/routers/{rid}", json={"router": {"distributed": True}})
    assert r.status_code == 200, r.text
    got = admin.get(f"/v2.0/routers/{rid}").json()["router"]
    assert (got["ha"], got["distributed"]) == (True, True)
    assert hosting(admin, rid) == ["network1", "network2"]  # the SNAT part, HA on both dvr_snat agents
    for host in ("network1", "network2"):
        (router,) = l3_view(client, host).routers
        assert router.distributed is not None and router.distributed.central and router.ha is not None


# ---------------------------------------------------------------- scheduling
def test_routers_go_where_the_agent_mode_allows(client: SyncClient, admin: Api) -> None:
    ids = {"compute1": agents(client, "compute1", "dvr"), "legacy1": agents(client, "legacy1", None)}
    centralized = make_router(admin)["id"]
    assert hosting(admin, centralized) == ["legacy1"]  # no agent_mode: legacy
    distributed = make_router(admin, distributed=True)["id"]
    assert hosting(admin, distributed) == []  # no dvr_snat agent yet: unscheduled
    ids["network1"] = agents(client, "network1", "dvr_snat")  # its first report schedules it
    assert hosting(admin, distributed) == ["network1"]

    r = admin.post(f"/v2.0/agents/{ids['compute1']}/l3-routers", json={"router_id": centralized})
    assert_fault(r, 409, "DVRL3CannotAssignToDvrAgent")
    r = admin.post(f"/v2.0/agents/{ids['legacy1']}/l3-routers", json={"router_id": distributed})
    assert_fault(r, 409, "RouterL3AgentMismatch")
    assert l3_view(client, "compute1").routers == []


# ---------------------------------------------------------------- ports
def test_interface_snat_and_gateway_ports(client: SyncClient, admin: Api, tenant: Api, cloud: dict[str, Any]) -> None:
    rid = cloud["router"]
    interfaces = ports(admin, device_id=rid, device_owner=DVR_IF)
    assert sorted(p["id"] for p in interfaces) == sorted(cloud["interfaces"])
    assert {p["binding:host_id"] for p in interfaces} == {""}
    snat = ports(admin, device_id=rid, device_owner=SNAT)
    assert len(snat) == 2
    assert {p["project_id"] for p in snat} == {""}
    assert {p["binding:host_id"] for p in snat} == {"network1"}
    assert sorted(p["fixed_ips"][0]["subnet_id"] for p in snat) == sorted(cloud["subnets"])
    gateway_ips = {p["fixed_ips"][0]["ip_address"] for p in interfaces}
    assert not gateway_ips & {p["fixed_ips"][0]["ip_address"] for p in snat}  # new addresses
    (gw,) = ports(admin, device_id=rid, device_owner="network:router_gateway")
    assert gw["binding:host_id"] == "network1"

    # what the user sees: the SNAT ports are not the router's interfaces, nor the user's to delete
    assert_fault(admin.delete(f"/v2.0/ports/{snat[0]['id']}"), 409, "ServicePortInUse")
    assert_fault(tenant.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"port_id": snat[0]["id"]}),
                 404, "RouterInterfaceNotFound")
    r = tenant.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"subnet_id": cloud["subnets"][1]})
    assert r.status_code == 200, r.text
    assert len(ports(admin, device_id=rid, device_owner=SNAT)) == 1  # its SNAT port went with it
    set_gateway(admin, rid, None)
    assert ports(admin, device_id=rid, device_owner=SNAT) == []
    set_gateway(admin, rid, cloud["ext"]["network"])
    assert len(ports(admin, device_id=rid, device_owner=SNAT)) == 1
    assert_fault(tenant.delete(f"/v2.0/routers/{rid}"), 409, "RouterInUse")
    r = tenant.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"subnet_id": cloud["subnets"][0]})
    assert r.status_code == 200, r.text
    assert ports(admin, device_id=rid, device_owner=SNAT) == []
    assert tenant.delete(f"/v2.0/routers/{rid}").status_code == 204


def test_hosts_with_copies_are_listed_as_hosting(client: SyncClient, admin: Api, cloud: dict[str, Any]) -> None:
    rid = cloud["router"]
    assert hosting(admin, rid) == ["compute1", "network1"]
    routers_of = {h: [x["id"] for x in admin.get(f"/v2.0/agents/{a}/l3-routers").json()["routers"]]
                  for h, a in cloud["agents"].items()}
    assert routers_of == {"compute1": [rid], "compute2": [], "network1": [rid]}
    instance(admin, cloud["nets"][1], "compute2", "vm2")  # the second subnet
    assert hosting(admin, rid) == ["compute1", "compute2", "network1"]
    assert admin.delete(f"/v2.0/ports/{cloud['vm1']['id']}").status_code == 204
    assert hosting(admin, rid) == ["compute2", "network1"]


# ---------------------------------------------------------------- the views
def test_each_host_gets_its_share_of_the_router(client: SyncClient, admin: Api, tenant: Api,
                                               cloud: dict[str, Any]) -> None:
    vm1 = cloud["vm1"]
    fip = tenant.create("floatingips", floating_network_id=cloud["ext"]["network"], port_id=vm1["id"])
    compute1, compute2, network1 = (l3_view(client, h) for h in ("compute1", "compute2", "network1"))

    (router,) = compute1.routers
    assert router.id == cloud["router"] and router.distributed is not None
    assert (router.distributed.local, router.distributed.central) == (True, False)
    assert sorted(p.id for p in router.interfaces) == sorted(cloud["interfaces"])
    snat_ids = sorted(p["id"] for p in ports(admin, device_owner=SNAT))
    assert sorted(p.id for p in router.distributed.snat_ports) == snat_ids
    neighbours = {n.ip: n.mac for n in router.distributed.neighbors}
    assert neighbours[vm1["fixed_ips"][0]["ip_address"]] == vm1["mac_address"]
    for snat in ports(admin, device_owner=SNAT):
        assert neighbours[snat["fixed_ips"][0]["ip_address"]] == snat["mac_address"]
    assert not {"10.1.0.1", "10.2.0.1"} & set(neighbours)  # its own interfaces are not neighbours
    assert [f.id for f in router.floating_ips] == [fip["id"]]
    assert router.gateway is not None and router.gateway_ip == "198.18.100.1"
    assert router.ha is None
    assert compute1.dvr_mac.startswith("fa:16:3f:")
    (gateway,) = compute1.fip_gateways
    assert (gateway.network_id, gateway.gateway_ip) == (cloud["ext"]["network"], "198.18.100.1")
    assert gateway.port.addresses[0].startswith("198.18.100.") and gateway.port.addresses[0].endswith("/24")

    assert compute2.routers == [] and compute2.fip_gateways == []
    assert compute2.dvr_mac.startswith("fa:16:3f:") and compute2.dvr_mac != compute1.dvr_mac

    (central,) = network1.routers
    assert central.distributed is not None
    assert (central.distributed.local, central.distributed.central) == (False, True)
    assert central.floating_ips == []  # served where the instance is
    assert len(central.distributed.snat_ports) == 2
    assert network1.dvr_mac.startswith("fa:16:3f:") and network1.fip_gateways == []

    # the fip gateway port: project '', the agent's id as device, bound (plugged) on compute1
    (port,) = ports(admin, device_owner=FIP_GW)
    assert (port["project_id"], port["device_id"], port["binding:host_id"]) == (
        "", cloud["agents"]["compute1"], "compute1")
    assert port["binding:vif_type"] == vm1["binding:vif_type"]
    assert l3_view(client, "compute1").fip_gateways == compute1.fip_gateways  # made once

    # the L2 views: compute1 plugs both interfaces (bound to no host) and its fip gateway port
    c1 = l2_view(client, "compute1")
    assert {p.id for p in c1.ports} == {vm1["id"], *cloud["interfaces"], port["id"]}
    n1 = l2_view(client, "network1")
    assert {p.id for p in n1.ports} >= set(snat_ids) and not set(cloud["interfaces"]) & {p.id for p in n1.ports}
    assert l2_view(client, "compute2").ports == []
    vm2 = instance(admin, cloud["nets"][0], "compute2", "vm2")
    c2 = l2_view(client, "compute2")
    assert {p.id for p in c2.ports} == {vm2["id"], *cloud["interfaces"]}
    macs = {p["id"]: p["mac_address"] for p in ports(admin, device_owner=DVR_IF)}
    for network in c2.networks:  # L2 population never points at a distributed interface elsewhere
        assert not set(macs.values()) & {r.mac for r in network.remote_ports}

    # disassociated: the gateway port goes when compute1 next asks
    r = tenant.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
    assert r.status_code == 200, r.text
    assert l3_view(client, "compute1").fip_gateways == []
    assert ports(admin, device_owner=FIP_GW) == []


def test_the_l2_view_carries_what_an_ovs_host_needs_for_its_copies(client: SyncClient, admin: Api,
                                                                  cloud: dict[str, Any]) -> None:
    """An OVS host gives its copies' frames the host's DVR MAC and keeps ARP for their addresses home: its L2
    view carries both, whichever of its agents asks first; the copies' interfaces are in its firewall view,
    unfiltered (the OVS firewall isolates a plugged port it is not told about)."""
    c1 = l2_view(client, "compute1")  # before compute1's L3 agent ever asked: the MAC is made now
    assert c1.dvr_mac.startswith("fa:16:3f:") and c1.dvr_mac == l3_view(client, "compute1").dvr_mac
    addresses = {p["id"]: [f["ip_address"] for f in p["fixed_ips"]] for p in ports(admin, device_owner=DVR_IF)}
    assert {p.id: p.ips for p in c1.ports if p.device_owner == DVR_IF} == addresses
    assert all(p.ips == [] for p in c1.ports if p.device_owner != DVR_IF)
    assert l2_view(client, "compute2").dvr_mac == ""  # no copy there
    assert decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest(
        "compute1", LB, [FIREWALL_KEY])))).dvr_mac == c1.dvr_mac  # partial views too
    firewall = decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest("compute1", LB)))).firewall
    assert firewall is not None
    secured = {p.id: p.port_security for p in firewall.ports}
    assert {k: secured.get(k) for k in cloud["interfaces"]} == dict.fromkeys(cloud["interfaces"], False)
    assert secured[cloud["vm1"]["id"]] is True


def test_interfaces_are_active_once_a_host_realized_them(client: SyncClient, admin: Api, cloud: dict[str, Any]) -> None:
    if1 = admin.get(f"/v2.0/ports/{cloud['interfaces'][0]}").json()["port"]
    assert if1["status"] == "DOWN"
    msg = PortReport(host="compute1", up={if1["id"]: if1["revision_number"]})
    client.app.transport.call("report_ports", encode(msg))
    assert admin.get(f"/v2.0/ports/{if1['id']}").json()["port"]["status"] == "ACTIVE"


def test_the_fip_gateway_port_goes_with_its_agent(client: SyncClient, admin: Api, tenant: Api,
                                                  cloud: dict[str, Any]) -> None:
    tenant.create("floatingips", floating_network_id=cloud["ext"]["network"], port_id=cloud["vm1"]["id"])
    assert len(l3_view(client, "compute1").fip_gateways) == 1
    assert admin.delete(f"/v2.0/agents/{cloud['agents']['compute1']}").status_code == 204
    assert ports(admin, device_owner=FIP_GW) == []


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                pytest.param("mysql", marks=pytest.mark.mysql)])
def test_dvr_macs_are_unique_under_concurrency(db: str, tmp_path: Path) -> None:
    hosts = [f"host{i}" for i in range(12)]
    with servers.temporary_database(db, tmp_path) as url, make_client(url, tmp_path) as client:
        for host in hosts:
            agents(client, host, "dvr")
        with ThreadPoolExecutor(8) as pool:
            macs = list(pool.map(lambda h: l3_view(client, h).dvr_mac, hosts + hosts))
        assert len(set(macs)) == len(hosts)
        assert macs[:len(hosts)] == macs[len(hosts):]  # each host keeps its own
        assert all(m.startswith("fa:16:3f:") for m in macs)


# ---------------------------------------------------------------- hints
sent = test_floatingip_status.hints  # the fixture: the hints the server sends from now on


def test_instances_moving_tell_the_hosts_that_carry_the_router(client: SyncClient, admin: Api,
                                                               cloud: dict[str, Any], sent: list[Hint]) -> None:
    rid = cloud["router"]
    vm2 = instance(admin, cloud["nets"][1], "compute2", "vm2")
    routed = {h.host for h in sent if h.kind == "router" and h.id == rid}
    assert routed == {"compute1", "compute2", "network1"}  # neighbours changed; compute2 gains a copy
    plugged = {(h.id, h.host) for h in sent if h.kind == "port" and h.host == "compute2"}
    assert {(p, "compute2") for p in cloud["interfaces"]} <= plugged  # its L2 agent plugs both interfaces

    sent.clear()
    r = admin.put(f"/v2.0/ports/{vm2['id']}", json={"port": {"binding:host_id": "compute1"}})
    assert r.status_code == 200, r.text
    assert {h.host for h in sent if h.kind == "router" and h.id == rid} == {"compute1", "compute2", "network1"}
    assert l3_view(client, "compute2").routers == []  # it lost its copy, and heard of it

    sent.clear()
    fip = admin.create("floatingips", floating_network_id=cloud["ext"]["network"], port_id=vm2["id"],
                       project_id="tenant-a")
    assert "compute1" in {h.host for h in sent if h.kind == "router" and h.id == rid}
    assert fip["status"] == "DOWN"


def test_the_instances_host_makes_its_floating_ip_active(client: SyncClient, admin: Api, tenant: Api,
                                                        cloud: dict[str, Any]) -> None:
    fip = tenant.create("floatingips", floating_network_id=cloud["ext"]["network"], port_id=cloud["vm1"]["id"])
    (seen,) = l3_view(client, "compute1").routers[0].floating_ips
    report = {fip["id"]: FloatingIpStatus(seen.revision, "ACTIVE")}
    client.app.transport.call("report_floatingip_statuses", encode(FloatingIpReport("network1", report)))
    assert tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["status"] == "DOWN"  # SNAT host
    client.app.transport.call("report_floatingip_statuses", encode(FloatingIpReport("compute1", report)))
    assert tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["status"] == "ACTIVE"
    r = admin.put(f"/v2.0/ports/{cloud['vm1']['id']}", json={"port": {"binding:host_id": "compute2"}})
    assert r.status_code == 200, r.text
    assert tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["status"] == "DOWN"  # moved
