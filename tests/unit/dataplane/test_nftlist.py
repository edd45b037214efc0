"""Reading `nft list table` back (trace --probe, full resyncs' repair): the kernel's layout (wrapped elements,
zero-padded marks) and the text our renderers write compare equal element by element; what drifted and the
commands that repair it."""

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


def test_drift_against_the_kernels_listing_and_the_commands_that_repair_it() -> None:
    want = nftlist.Listing(
        chains={"out-p1": ("drop",), "forward": ("meta mark and 0xffff vmap @egress",), "in-p1": ("accept", "drop")},
        hooks={"forward": "type filter hook forward priority 0; policy accept;"},
        sets={"rg-g1-v4": {"10.0.0.5", "10.0.0.7", "10.0.0.9"}, "egress": {"0x1 : jump out-p1"},
              "ag-a1-v4": {"10.9.0.0/24"}},
        specs={"rg-g1-v4": ("set", "type ipv4_addr; "), "egress": ("map", "type mark : verdict; "),
               "ag-a1-v4": ("set", "type ipv4_addr; flags interval; ")})
    have = nftlist.read(KERNEL)
    found = nftlist.drift(want, have)
    assert found.missing_chains == ["in-p1"] and found.changed_chains == [] and found.extra_chains == []
    assert found.missing_sets == ["ag-a1-v4"] and found.extra_sets == {"empty": "set"}
    assert found.missing_elements == {"ag-a1-v4": ["10.9.0.0/24"]}
    assert found.extra_elements == {"rg-g1-v4": ["10.0.0.11"]}
    assert nftlist.repair("inet fermion_sg", want, found) == [
        "add set inet fermion_sg ag-a1-v4 { type ipv4_addr; flags interval; }",
        "add chain inet fermion_sg in-p1",
        "delete element inet fermion_sg rg-g1-v4 { 10.0.0.11 }",
        "add rule inet fermion_sg in-p1 accept",
        "add rule inet fermion_sg in-p1 drop",
        "add element inet fermion_sg ag-a1-v4 { 10.9.0.0/24 }",
        "delete set inet fermion_sg empty",
    ]
    # a chain flushed by hand is refilled (rules are counted: the kernel rewrites their text)
    have.chains["out-p1"] = ()
    assert nftlist.drift(want, have).changed_chains == ["out-p1"]
    missing, _ = nftlist.describe(nftlist.drift(want, have), "chain {}", "set {}", lambda k, name, e: "a1" not in name)
    assert missing == ["chain in-p1", "rules of chain out-p1"]
    assert nftlist.drift(want, None).table and not nftlist.drift(want, nftlist.read("\n".join(
        ["table inet fermion_sg {"] + [f"chain {n} {{\n{chr(10).join(r)}\n}}" for n, r in want.chains.items()]
        + [f"{k} {n} {{\nelements = {{ {', '.join(sorted(want.sets[n]))} }}\n}}" if want.sets[n] else
           f"{k} {n} {{\n}}" for n, (k, _) in want.specs.items()] + ["}"])))


def test_a_routers_nat_tables_reconciled_element_by_element() -> None:
    gw = Interface(port_id="p-gw", device="qg-1", tap="tap1", mac="fa:16:3e:00:00:01", mtu=1500,
                   addresses=("198.19.0.10/24",))
    qr = Interface(port_id="p-qr", device="qr-1", tap="tap2", mac="fa:16:3e:00:00:02", mtu=1450,
                   addresses=("10.1.0.1/24",))
    rendered = render_nat(Router(id="r1", interfaces=(qr,), gateway=gw, gateway_ip="198.19.0.1",
                                 floating_ips=(Fip("198.19.0.42", "10.1.0.17"),)))
    ours = [("ip", "fermion_nat"), ("ip6", "fermion_scope6"), ("inet", "fermion_cthelper")]
    assert nftlist.reconcile(rendered, rendered, ours) == ([], {})
    # by hand: the floating IP's DNAT element deleted, postrouting flushed, an old helper table left over
    listed = rendered.replace("elements = { 198.19.0.42 : 10.1.0.17 }", "").replace(
        "oifname \"qg-1\" ip saddr @snat_nets snat to 198.19.0.10", "")
    listed += "table inet fermion_cthelper {\n}\n"
    lines, found = nftlist.reconcile(rendered, listed, ours)
    assert lines == [
        "flush chain ip fermion_nat postrouting",
        *[f"add rule ip fermion_nat postrouting {r}" for r in nftlist.read(rendered).chains["postrouting"]],
        "add element ip fermion_nat fip_dnat { 198.19.0.42 : 10.1.0.17 }",
        "delete table inet fermion_cthelper",
    ]
    assert nftlist.described(found) == (
        ["rules of chain postrouting of table ip fermion_nat",
         "element 198.19.0.42 : 10.1.0.17 of fip_dnat of table ip fermion_nat"],
        ["table inet fermion_cthelper"])
    # the whole table gone: made again from its block, the others left alone
    lines, _ = nftlist.reconcile(rendered, nftlist.tables(rendered)[("ip6", "fermion_scope6")], ours)
    assert lines == [nftlist.tables(rendered)[("ip", "fermion_nat")]]
