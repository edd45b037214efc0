"""Reading `nft list table` back (trace --probe): the kernel's layout (wrapped elements, zero-padded marks) and
the text our renderers write compare equal element by element."""

from __future__ import annotations

from fermion.dataplane import nftlist
from fermion.dataplane.router import FloatingIp as Fip
from fermion.dataplane.router import Interface, Router, render_nat

# as nft 1.0.6 printed it for the input below (tests/dataplane and the probe read the same)
KERNEL = """table inet fermion_sg {
\tset rg-g1-v4 {
\t\ttype ipv4_addr
\t\telements = { 10.0.0.5, 10.0.0.7,
\t\t\t     10.0.0.9, 10.0.0.11 }
\t}

\tmap egress {
\t\ttype mark : verdict
\t\telements = { 0x00000001 : jump out-p1 }
\t}

\tset empty {
\t\ttype ipv4_addr
\t}

\tchain out-p1 {
\t\tdrop
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tmeta mark & 0x0000ffff vmap @egress
\t}
}
"""


def test_the_kernels_listing_is_read_as_chains_and_elements() -> None:
    chains, sets = nftlist.parse(KERNEL)
    assert chains == {"out-p1", "forward"}
    assert sets == {"rg-g1-v4": {"10.0.0.5", "10.0.0.7", "10.0.0.9", "10.0.0.11"},
                    "egress": {"0x1 : jump out-p1"}, "empty": set()}
    assert nftlist.normalize("0x1 : jump out-p1") in sets["egress"]  # our renderers' spelling


def test_rendered_nat_is_read_the_same_way_and_compared() -> None:
    gw = Interface(port_id="p-gw", device="qg-1", tap="tap1", mac="fa:16:3e:00:00:01", mtu=1500,
                   addresses=("198.19.0.10/24",))
    qr = Interface(port_id="p-qr", device="qr-1", tap="tap2", mac="fa:16:3e:00:00:02", mtu=1450,
                   addresses=("10.1.0.1/24",))
    router = Router(id="r1", interfaces=(qr,), gateway=gw, gateway_ip="198.19.0.1",
                    floating_ips=(Fip("198.19.0.42", "10.1.0.17"),))
    chains, sets = nftlist.parse(render_nat(router))
    assert {"prerouting", "output", "postrouting", "filter_forward"} <= chains
    assert sets["fip_dnat"] == {"198.19.0.42 : 10.1.0.17"} and sets["snat_nets"] == {"10.1.0.0/24"}
    assert nftlist.compare("fip_dnat", sets["fip_dnat"], set()) == (["element 198.19.0.42 : 10.1.0.17 of fip_dnat"], [])
    extra = nftlist.compare("fip_dnat", set(), {"1.2.3.4 : 10.0.0.1"})
    assert extra == ([], ["element 1.2.3.4 : 10.0.0.1 of fip_dnat"])
    assert nftlist.compare("fip_dnat", {"x"}, None) == (["fip_dnat"], [])
