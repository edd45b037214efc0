"""The L3 agent's translation of the L3 view into the router data plane, and what it reports of floating IPs
(the router manager, which touches the kernel, is stubbed: tests/dataplane has the real one)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from fermion.agent.l3.agent import L3Agent, to_dataplane
from fermion.dataplane import DataplaneError
from fermion.dataplane import router as dp
from fermion.rpc.contracts import (
    ConntrackHelper,
    FloatingIp,
    FloatingIpStatus,
    HaRouter,
    L3View,
    Router,
    RouterPort,
    encode,
)


def test_conntrack_helpers_reach_the_data_plane_sorted_and_deduplicated() -> None:
    port = RouterPort(id="p1", network_id="n1", mac="fa:16:3e:00:00:01", mtu=1500, addresses=["10.0.0.1/24"])
    router = Router(id="r1", revision=2, admin_state_up=True, interfaces=[port],
                    conntrack_helpers=[ConntrackHelper("udp", 69, "tftp"), ConntrackHelper("tcp", 21, "ftp"),
                                       ConntrackHelper("tcp", 21, "ftp")])
    assert to_dataplane(router).conntrack_helpers == (("tcp", 21, "ftp"), ("udp", 69, "tftp"))
    assert to_dataplane(Router(id="r2", revision=1, admin_state_up=True, interfaces=[])).conntrack_helpers == ()


# ---------------------------------------------------------------- floating IP status reports
class Routers:
    """The router manager's edge: which routers it fails to build (a DataplaneError, as the kernel's refusal
    comes back), and the VRRP state of HA ones."""

    def __init__(self, failing: dict[str, str] | None = None, ha: dict[str, str] | None = None) -> None:
        self.failing = failing or {}
        self.ha = ha or {}
        self.built: list[str] = []

    def ensure(self, router: dp.Router, repair: bool = False) -> list[str]:
        if router.id in self.failing:
            raise DataplaneError(self.failing[router.id])
        self.built.append(router.id)
        return []

    def ha_state(self, router_id: str) -> str:
        return self.ha[router_id]

    def last_transition(self, router_id: str) -> float:
        return 0.0

    def namespace(self, router_id: str) -> str:
        return f"qrouter-{router_id}"

    def present(self) -> set[str]:
        return set(self.built)

    def remove(self, router_id: str) -> None:
        self.built.remove(router_id)

    def cleanup_keepalived(self, keep: set[str]) -> list[str]:
        return []

    def close(self) -> None:
        pass


def fip(fid: str, status: str, revision: int = 2) -> FloatingIp:
    return FloatingIp(floating_ip="198.18.100.20", fixed_ip="10.0.0.5", id=fid, revision=revision, status=status)


def view(*routers: Router) -> dict[str, Any]:
    return encode(L3View(host="network1", routers=list(routers)))


def agent_with(manager: Routers) -> L3Agent:
    agent = L3Agent("network1")
    agent.manager = manager  # type: ignore[assignment]
    return agent


def failures(operation: str = "ensure") -> float:
    return REGISTRY.get_sample_value("fermion_agent_router_failures_total",
                                     {"host": "network1", "operation": operation}) or 0.0


def test_floating_ips_are_reported_where_the_host_differs_from_the_server(caplog: pytest.LogCaptureFixture) -> None:
    ok = Router(id="r-ok", revision=3, admin_state_up=True, interfaces=[],
                floating_ips=[fip("f1", "DOWN"), fip("f2", "ACTIVE"), fip("f3", "ERROR", revision=5)])
    broken = Router(id="r-broken", revision=1, admin_state_up=True, interfaces=[],
                    floating_ips=[fip("f4", "DOWN"), fip("f5", "ERROR")])
    down = Router(id="r-down", revision=1, admin_state_up=False, interfaces=[], floating_ips=[fip("f6", "ACTIVE")])
    agent = agent_with(Routers(failing={"r-broken": "nft in qrouter-r-broken: Operation not permitted"}))
    before = failures()
    with caplog.at_level(logging.WARNING):
        result = agent.sync(view(ok, broken, down), None)
    assert result.failed  # retried with backoff
    assert result.floating_ips == {"f1": FloatingIpStatus(2, "ACTIVE"), "f3": FloatingIpStatus(5, "ACTIVE"),
                                   "f4": FloatingIpStatus(2, "ERROR"), "f6": FloatingIpStatus(2, "DOWN")}
    assert failures() == before + 1
    (record,) = [r for r in caplog.records if "r-broken" in r.getMessage()]
    assert "not realized" in record.getMessage() and "Operation not permitted" in record.getMessage()

    # a view from a 1.8 server has no floating IP ids: nothing to report
    old = Router(id="r-old", revision=1, admin_state_up=True, interfaces=[],
                 floating_ips=[FloatingIp(floating_ip="198.18.100.21", fixed_ip="10.0.0.6")])
    assert agent.sync(view(old), None).floating_ips == {}


def test_an_ha_router_s_floating_ips_are_reported_by_its_active_instance_only() -> None:
    ha = HaRouter(vr_id=1, interface=RouterPort(id="p-ha", network_id="ha", mac="fa:16:3e:00:00:09", mtu=1450,
                                                addresses=["169.254.192.3/18"]), state="standby")
    standby = Router(id="r-standby", revision=1, admin_state_up=True, interfaces=[], ha=ha,
                     floating_ips=[fip("f1", "DOWN")])
    promoted = Router(id="r-promoted", revision=1, admin_state_up=True, interfaces=[], ha=ha,
                      floating_ips=[fip("f2", "ACTIVE")])  # as the instance that was active reported it
    agent = agent_with(Routers(ha={"r-standby": "standby", "r-promoted": "active"}))
    result = agent.sync(view(standby, promoted), None)
    assert result.ha_states == {"r-promoted": "active"}
    # the server sets them DOWN when it hears of the transition: this instance reports them all after it
    assert result.floating_ips == {"f2": FloatingIpStatus(2, "ACTIVE")}

    # an instance the server knows as active fails: its floating IPs are ERROR
    active = dataclasses.replace(standby, ha=dataclasses.replace(ha, state="active"))
    result = agent_with(Routers(failing={"r-standby": "keepalived did not start"})).sync(view(active), None)
    assert result.floating_ips == {"f1": FloatingIpStatus(2, "ERROR")}


def test_an_instance_the_server_gave_away_does_not_claim_the_router_back_at_every_sync() -> None:
    """Two active instances (a partition; both agents still reach the server): once the server took this
    host's claim and then believed the other's, this one claims again only after a transition of its own,
    or when the server asks (a hint)."""
    agent = L3Agent("net1")
    transitions = {"r1": 10.0}
    agent.manager.last_transition = transitions.__getitem__  # type: ignore[method-assign]

    def sync(heard: str, asked: bool = False) -> bool:
        told = agent._tell("r1", "active", heard, asked)
        if told:
            agent._claim({"r1": transitions["r1"]})  # the server took the report
        return told

    assert sync("standby")  # its takeover
    assert not sync("active")  # the server has it
    assert not sync("standby")  # another host claimed it since: the server believes that one
    assert not sync("standby")  # ... and a periodic sync changes nothing
    assert sync("standby", asked=True)  # the server asks: the other gave it up
    assert not sync("standby")
    transitions["r1"] = 20.0  # keepalived went through a transition since (backup, then master again)
    assert sync("standby")


def test_a_claim_the_server_did_not_take_is_made_again() -> None:
    """A report lost on its way is not a claim: the next periodic sync makes it again."""
    agent = L3Agent("net1")
    agent.manager.last_transition = {"r1": 10.0}.__getitem__  # type: ignore[method-assign]
    assert agent._tell("r1", "active", "standby", asked=False)
    assert agent._tell("r1", "active", "standby", asked=False)
    assert agent._tell("r1", "standby", "active", asked=False)  # going standby is always said
