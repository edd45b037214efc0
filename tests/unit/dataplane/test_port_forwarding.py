"""The port forwarding table a router gets (pure rendering, no kernel)."""

from __future__ import annotations

from fermion.dataplane import port_forwarding as pfwd
from fermion.dataplane import router as dp

FIP = "198.18.1.50"


def gateway_router(*forwards: pfwd.Forward) -> dp.Router:
    qg = dp.Interface("gw", "qg-1", "tap1", "fa:16:3e:00:00:01", 1500, ("198.18.1.10/24",))
    return dp.Router(id="r1", interfaces=(), gateway=qg, gateway_ip="198.18.1.1", port_forwardings=forwards)


def test_a_range_maps_port_n_to_port_n_and_n_to_1_is_one_rule() -> None:
    lines = pfwd.render([pfwd.Forward(FIP, "udp", (7000, 7002), "10.1.0.5", (9000, 9002)),
                         pfwd.Forward(FIP, "tcp", (8000, 8009), "10.1.0.6", (80, 80))])
    text = "\n".join(lines)
    for n in range(3):
        assert f"{FIP} . udp . {7000 + n} : 10.1.0.5 . {9000 + n}" in text
    assert text.count(f"ip daddr {FIP} tcp dport 8000-8009 dnat ip to 10.1.0.6:80") == 2  # prerouting and output
    assert "8001" not in text  # N:1 is not expanded


def test_nothing_to_forward_renders_nothing_and_nonsense_is_left_out() -> None:
    assert pfwd.render([]) == []
    assert pfwd.render([pfwd.Forward(FIP, "icmp", (1, 1), "10.1.0.5", (1, 1)),
                        pfwd.Forward(FIP, "tcp", (10, 12), "10.1.0.5", (20, 21)),
                        pfwd.Forward("2001:db8::1", "tcp", (10, 10), "10.1.0.5", (20, 20))]) == []


def test_the_floating_ip_is_on_the_gateway_and_in_the_nat_transaction() -> None:
    plain = gateway_router()
    forwarded = gateway_router(pfwd.Forward(FIP, "tcp", (2222, 2222), "10.1.0.5", (22, 22)))
    assert f"{FIP}/32" in dp.desired_addresses(forwarded)["qg-1"]
    assert f"{FIP}/32" not in dp.desired_addresses(plain)["qg-1"]
    text = dp.render_nat(forwarded)
    assert f"table ip {pfwd.TABLE}" in text and f"{FIP} . tcp . 2222 : 10.1.0.5 . 22" in text
    assert dp.nat_digest(text) != dp.nat_digest(dp.render_nat(plain))  # a change is seen after a restart too
