"""Port binding with the openvswitch mechanism driver: vif_type ovs on hosts whose Open vSwitch agent carries
the segment, ports with port security bound there and in the host's firewall view (the agent's OpenFlow
firewall filters them), and the L2 views of a VXLAN
network spanning a Linux-bridge host and an OVS host (L2 population both ways)."""

from __future__ import annotations

from typing import Any

from fermion.rpc.contracts import L2View, StateReport, ViewRequest, decode, encode
from tests.api.test_binding import report, show
from tests.conftest import Api
from tests.support.asgi import SyncClient

OVS = "Open vSwitch agent"
OVS_CONF = {"tunneling_ip": "198.18.0.21", "tunnel_types": ["vxlan", "gre", "geneve"],
            "bridge_mappings": {"physnet1": "br-eth1"}}


def report_ovs(client: SyncClient, host: str, conf: dict[str, Any] | None = None) -> None:
    msg = StateReport(host=host, agent_type=OVS, binary="fermion-openvswitch-agent", topic="N/A",
                      configurations=OVS_CONF if conf is None else conf, start_flag=True)
    client.app.transport.call("report_state", encode(msg))


def view(client: SyncClient, host: str, agent_type: str) -> L2View:
    return decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest(host, agent_type, None))))


def test_ovs_host_binds_gre_geneve_and_vlan_without_port_security(client: SyncClient, api: Api) -> None:
    report_ovs(client, "ovs-1")
    for kind, extra in (("gre", {}), ("geneve", {}), ("vlan", {"provider:physical_network": "physnet1"})):
        net = api.network(name=kind, **{"provider:network_type": kind, **extra})
        api.subnet(net["id"])
        port = api.port(net["id"], port_security_enabled=False, **{"binding:host_id": "ovs-1"})
        got = show(api, port["id"])
        assert got["binding:vif_type"] == "ovs", got["binding:vif_details"]
        assert got["binding:vif_details"]["bridge_name"] == "br-int"
        assert got["binding:vif_details"]["datapath_type"] == "netdev"


def test_port_security_binds_on_an_ovs_host_and_is_in_its_firewall_view(client: SyncClient, api: Api) -> None:
    report_ovs(client, "ovs-1")
    net = api.network(name="n")
    api.subnet(net["id"])
    port = api.port(net["id"], **{"binding:host_id": "ovs-1"})
    got = show(api, port["id"])
    assert got["binding:vif_type"] == "ovs", got["binding:vif_details"]
    assert got["binding:vif_details"]["port_filter"] is True
    fw = view(client, "ovs-1", OVS).firewall
    assert fw is not None
    [entry] = [p for p in fw.ports if p.id == port["id"]]
    assert entry.port_security and entry.groups == got["security_groups"] and entry.network_id == net["id"]
    assert {g.id for g in fw.groups} == set(got["security_groups"])
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"port_security_enabled": False,
                                                           "security_groups": []}})
    assert r.status_code == 200, r.text
    assert show(api, port["id"])["binding:vif_type"] == "ovs"
    fw = view(client, "ovs-1", OVS).firewall
    assert fw is not None
    [entry] = [p for p in fw.ports if p.id == port["id"]]
    assert not entry.port_security and not entry.groups


def test_a_vxlan_network_spans_linuxbridge_and_ovs_hosts(client: SyncClient, api: Api) -> None:
    report(client, "lb-1")
    report_ovs(client, "ovs-1")
    net = api.network(name="mixed", **{"provider:network_type": "vxlan"})
    api.subnet(net["id"], cidr="10.9.0.0/24")
    lb = api.port(net["id"], **{"binding:host_id": "lb-1"})
    ov = api.port(net["id"], **{"binding:host_id": "ovs-1"})
    assert show(api, lb["id"])["binding:vif_type"] == "bridge"
    assert show(api, ov["id"])["binding:vif_type"] == "ovs"
    on_lb, on_ovs = view(client, "lb-1", "Linux bridge agent"), view(client, "ovs-1", OVS)
    assert [p.id for p in on_ovs.ports] == [ov["id"]]
    assert on_lb.networks[0].vteps == ["198.18.0.21"] and on_ovs.networks[0].vteps == ["198.18.0.11"]
    assert [r.mac for r in on_lb.networks[0].remote_ports] == [ov["mac_address"]]
    assert [r.mac for r in on_ovs.networks[0].remote_ports] == [lb["mac_address"]]
