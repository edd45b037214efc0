"""The L3 agent's translation of the L3 view into the router data plane."""

from __future__ import annotations

from fermion.agent.l3.agent import to_dataplane
from fermion.rpc.contracts import ConntrackHelper, Router, RouterPort


def test_conntrack_helpers_reach_the_data_plane_sorted_and_deduplicated() -> None:
    port = RouterPort(id="p1", network_id="n1", mac="fa:16:3e:00:00:01", mtu=1500, addresses=["10.0.0.1/24"])
    router = Router(id="r1", revision=2, admin_state_up=True, interfaces=[port],
                    conntrack_helpers=[ConntrackHelper("udp", 69, "tftp"), ConntrackHelper("tcp", 21, "ftp"),
                                       ConntrackHelper("tcp", 21, "ftp")])
    assert to_dataplane(router).conntrack_helpers == (("tcp", 21, "ftp"), ("udp", 69, "tftp"))
    assert to_dataplane(Router(id="r2", revision=1, admin_state_up=True, interfaces=[])).conntrack_helpers == ()
