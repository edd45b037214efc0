"""The L3 agent with distributed routers: which part of a router each agent mode builds, what the local copy
and the SNAT part are made of, the host-wide floating-IP namespaces and bridge filter recomputed on scoped
syncs, and who reports a distributed router's floating IPs (the kernel edge, the managers, is stubbed:
tests/dataplane/test_dvr.py has the real one)."""

from __future__ import annotations

from typing import Any

import pytest

from fermion.agent.l3 import dvr as agent_dvr
from fermion.agent.l3.agent import L3Agent
from fermion.dataplane import DataplaneError, naming
from fermion.dataplane import dvr as dp_dvr
from fermion.dataplane import router as dp
from fermion.rpc.contracts import (
    DvrRouter,
    FipGateway,
    FloatingIp,
    FloatingIpStatus,
    HaRouter,
    L3View,
    Neighbor,
    ProbeRequest,
    Router,
    RouterPort,
    encode,
)

EXT = "ext-net"


def _port(pid: str, address: str, network: str = "n1") -> RouterPort:
    return RouterPort(id=pid, network_id=network, mac="fa:16:3e:00:00:01", mtu=1450, addresses=[address])


def router(rid: str = "r1", local: bool = True, central: bool = False, fips: int = 1, **kw: Any) -> Router:
    return Router(id=rid, revision=1, admin_state_up=True, interfaces=[_port(f"qr-{rid}", "10.1.0.1/24")],
                  gateway=_port(f"qg-{rid}", "198.18.100.20/24", EXT), gateway_ip="198.18.100.1",
                  floating_ips=[FloatingIp(f"198.18.100.{50 + i}", f"10.1.0.{11 + i}", id=f"{rid}-f{i}", revision=3,
                                           status="DOWN") for i in range(fips)],
                  distributed=DvrRouter(local=local, central=central, snat_ports=[_port(f"sg-{rid}", "10.1.0.3/24")],
                                        neighbors=[Neighbor("10.1.0.11", "fa:16:3e:00:00:11")]), **kw)


GATEWAY = FipGateway(EXT, _port("fg-port", "198.18.100.11/24", EXT), "198.18.100.1")


class Routers:
    """A router manager's edge: what it was asked to build."""

    def __init__(self, failing: set[str] | None = None, ha: str = "standby") -> None:
        self.built: dict[str, dp.Router] = {}
        self.failing = failing or set()
        self.ha = ha

    def ensure(self, r: dp.Router, repair: bool = False) -> list[str]:
        if r.id in self.failing:
            raise DataplaneError("no")
        self.built[r.id] = r
        return []

    def namespace(self, router_id: str) -> str:
        return f"qrouter-{router_id}"

    def present(self) -> set[str]:
        return set(self.built)

    def remove(self, router_id: str) -> None:
        del self.built[router_id]

    def ha_state(self, router_id: str) -> str:
        return self.ha

    def last_transition(self, router_id: str) -> float:
        return 0.0

    def cleanup_keepalived(self, keep: set[str]) -> list[str]:
        return []

    def garp(self, ns: str, device: str, ip: str) -> None:
        pass

    def close(self) -> None:
        pass


class Dvr:
    """The DVR manager's edge."""

    def __init__(self) -> None:
        self.local: dict[str, dp_dvr.LocalCopy] = {}
        self.fips: dict[str, dp_dvr.FipNamespace] = {}
        self.taps: list[str] = []
        self.mac = ""

    def fip_namespace(self, network_id: str) -> str:
        return f"fip-{network_id}"

    def ensure_fip(self, fip: dp_dvr.FipNamespace) -> list[str]:
        self.fips[fip.network_id] = fip
        return []

    def route_fips(self, fip: dp_dvr.FipNamespace) -> list[str]:
        self.fips[fip.network_id] = fip
        return []

    def present_fips(self) -> set[str]:
        return set(self.fips)

    def remove_fip(self, network_id: str) -> list[str]:
        del self.fips[network_id]
        return ["removed"]

    def ensure_local(self, copy: dp_dvr.LocalCopy) -> list[str]:
        self.local[copy.router_id] = copy
        return []

    def unplug(self, router_id: str) -> None:
        self.local.pop(router_id, None)

    def ensure_bridge(self, taps: list[str], mac: str) -> list[str]:
        self.taps, self.mac = list(taps), mac
        return []


def agent(mode: str, qrouter: Routers | None = None, snat: Routers | None = None) -> tuple[L3Agent, Dvr]:
    a = L3Agent("h1", agent_mode=mode)
    a.manager = qrouter or Routers()  # type: ignore[assignment]
    a.snat = snat or Routers()  # type: ignore[assignment]
    a.dvr_manager = Dvr()  # type: ignore[assignment]
    return a, a.dvr_manager  # type: ignore[return-value]


def view(*routers: Router, gateways: tuple[FipGateway, ...] = (GATEWAY,)) -> dict[str, Any]:
    return encode(L3View(host="h1", routers=list(routers), dvr_mac="fa:16:3f:00:00:01", fip_gateways=list(gateways)))


def test_agent_mode_is_checked_and_reported() -> None:
    assert L3Agent("h1").configurations()["agent_mode"] == "legacy"
    assert L3Agent("h1", agent_mode="dvr_snat").configurations()["agent_mode"] == "dvr_snat"
    with pytest.raises(ValueError):
        L3Agent("h1", agent_mode="centralized")


def test_a_dvr_host_builds_the_local_copy_with_its_dvr_parts() -> None:
    a, d = agent("dvr")
    result = a.sync(view(router()), None)
    assert not result.failed
    built = a.manager.built["r1"]  # type: ignore[attr-defined]
    assert built.gateway is None and built.floating_ips == () and built.ha is None and built.distributed
    assert [i.device for i in built.interfaces] == [naming.router_interface("qr-r1")]
    copy = d.local["r1"]
    assert copy.snat == (dp_dvr.SnatRedirect("10.1.0.0/24", "10.1.0.3", naming.router_interface("qr-r1")),)
    assert copy.neighbors == (("10.1.0.11", "fa:16:3e:00:00:11"),)
    assert copy.floating_ips == (dp.FloatingIp("198.18.100.50", "10.1.0.11"),) and copy.fip_namespace == f"fip-{EXT}"
    assert d.fips[EXT].routes == (("198.18.100.50", "r1"),)
    assert d.taps == [naming.tap("qr-r1")] and d.mac == "fa:16:3f:00:00:01"
    assert a.snat.built == {}  # type: ignore[attr-defined]
    assert result.floating_ips == {"r1-f0": FloatingIpStatus(3, "ACTIVE")}


def test_no_snat_redirect_without_snat_and_no_floating_ip_without_a_gateway_here() -> None:
    a, d = agent("dvr")
    result = a.sync(view(router(enable_snat=False), gateways=()), None)
    assert d.local["r1"].snat == () and d.local["r1"].floating_ips == ()
    assert result.floating_ips == {"r1-f0": FloatingIpStatus(3, "ERROR")}  # nowhere to serve it from


def test_the_snat_part_is_built_on_a_dvr_snat_host_only_with_sg_devices_and_ha() -> None:
    ha = HaRouter(vr_id=3, interface=_port("ha-port", "169.254.192.5/18", "ha"), state="standby")
    central = router(local=False, central=True, fips=0, ha=ha)
    a, d = agent("dvr_snat", snat=Routers(ha="active"))
    result = a.sync(view(central), None)
    part = a.snat.built["r1"]  # type: ignore[attr-defined]
    assert [i.device for i in part.interfaces] == [naming.snat_device("sg-r1")]
    assert part.interfaces[0].addresses == ("10.1.0.3/24",)
    assert part.gateway is not None and part.gateway.device == naming.router_gateway("qg-r1")
    assert part.floating_ips == () and part.ha is not None and part.ha.vr_id == 3
    assert a.manager.built == {} and d.local == {} and d.taps == []  # type: ignore[attr-defined]
    assert result.ha_states == {"r1": "active"}  # the SNAT part's VRRP state is the router's
    b, _ = agent("dvr")
    b.sync(view(central), None)
    assert b.snat.built == {}  # type: ignore[attr-defined]  # a dvr host never takes the SNAT part


def test_a_scoped_sync_keeps_the_host_wide_parts_of_the_other_routers() -> None:
    a, d = agent("dvr")
    a.sync(view(router("r1"), router("r2", fips=0)), None)
    assert d.taps == sorted([naming.tap("qr-r1"), naming.tap("qr-r2")])
    a.sync(view(), {"r2"})  # r2 gone: r1 keeps its floating IP route and its taps in the filter
    assert d.fips[EXT].routes == (("198.18.100.50", "r1"),)
    assert d.taps == [naming.tap("qr-r1")] and "r2" not in a.manager.built  # type: ignore[attr-defined]
    a.sync(view(gateways=()), None)  # nothing left: the fip namespace and the filter go
    assert d.fips == {} and d.taps == []


def test_a_failed_local_copy_reports_its_floating_ips_as_error() -> None:
    a, _ = agent("dvr", qrouter=Routers(failing={"r1"}))
    result = a.sync(view(router()), None)
    assert result.failed and result.floating_ips == {"r1-f0": FloatingIpStatus(3, "ERROR")}


def test_a_legacy_agent_leaves_distributed_routers_alone() -> None:
    a, d = agent("legacy")
    result = a.sync(view(router(central=True)), None)
    assert a.manager.built == {} and a.snat.built == {} and d.local == {}  # type: ignore[attr-defined]
    assert result.floating_ips == {}


def test_local_copy_translation_is_pure() -> None:
    r = router()
    assert agent_dvr.local_copy(r, None).floating_ips == ()
    assert agent_dvr.bridge_taps([r, router("r2")]) == sorted([naming.tap("qr-r1"), naming.tap("qr-r2")])


def test_a_probe_does_not_answer_for_a_distributed_router() -> None:
    # its copies are not compared yet: an answer with nothing missing would read as "ok" in the trace
    a, _ = agent("dvr")
    found = a.probe(view(router("r1"), router("r2")), ProbeRequest(host="h1", routers=["r1", "gone"]))
    assert "router r1" not in found
    assert found["router gone"].missing == ["router gone in this host's view"]


def test_a_new_copys_taps_are_filtered_before_it_is_plugged_and_a_gone_ones_until_it_is_unplugged() -> None:
    """A qr- tap's first frames (IPv6 DAD, MLD) must leave with the host's DVR MAC, never the router's: the
    other hosts' bridges would learn the gateway's MAC on the tunnel and drop what their instances send it."""
    a, d = agent("dvr")
    filtered_when_plugged: dict[str, list[str]] = {}
    plug = a.manager.ensure  # the router manager plugs the copy's qr- devices

    def ensure(r: dp.Router, repair: bool = False) -> list[str]:
        filtered_when_plugged[r.id] = list(d.taps)
        return plug(r, repair)

    a.manager.ensure = ensure  # type: ignore[method-assign]
    a.sync(view(router("r1")), None)
    assert naming.tap("qr-r1") in filtered_when_plugged["r1"]
    filtered_when_removed: list[str] = []
    unplug = d.unplug

    def unplug_copy(router_id: str) -> None:
        filtered_when_removed.extend(d.taps)
        unplug(router_id)

    d.unplug = unplug_copy  # type: ignore[method-assign]
    a.sync(view(router("r2")), None)
    assert naming.tap("qr-r2") in filtered_when_plugged["r2"]
    assert naming.tap("qr-r1") in filtered_when_removed  # still filtered while its copy was there
    assert d.taps == [naming.tap("qr-r2")]
