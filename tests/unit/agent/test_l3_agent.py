"""The L3 agent's translation of the L3 view into the router data plane."""

from __future__ import annotations

from fermion.agent.l3.agent import L3Agent, to_dataplane
from fermion.rpc.contracts import ConntrackHelper, Router, RouterPort


def test_conntrack_helpers_reach_the_data_plane_sorted_and_deduplicated() -> None:
    port = RouterPort(id="p1", network_id="n1", mac="fa:16:3e:00:00:01", mtu=1500, addresses=["10.0.0.1/24"])
    router = Router(id="r1", revision=2, admin_state_up=True, interfaces=[port],
                    conntrack_helpers=[ConntrackHelper("udp", 69, "tftp"), ConntrackHelper("tcp", 21, "ftp"),
                                       ConntrackHelper("tcp", 21, "ftp")])
    assert to_dataplane(router).conntrack_helpers == (("tcp", 21, "ftp"), ("udp", 69, "tftp"))
    assert to_dataplane(Router(id="r2", revision=1, admin_state_up=True, interfaces=[])).conntrack_helpers == ()



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
