"""The DVR data plane's pure parts: which neighbour goes on which qr- device, the SNAT redirects, and the
nftables text of a local copy's floating-IP NAT and of the host's bridge filter."""

from __future__ import annotations

from fermion.dataplane import dvr, naming
from fermion.dataplane.router import FloatingIp, Interface

ROUTER = "0123456789abcdef-router"


def _qr(port: str, *addresses: str) -> Interface:
    return Interface(port_id=port, device=naming.router_interface(port), tap=naming.tap(port), mac="fa:16:3e:00:00:01",
                     mtu=1450, addresses=addresses)


A = _qr("aaaaaaaaaaaa-1", "10.1.0.1/24", "2001:db8:1::1/64")
B = _qr("bbbbbbbbbbbb-1", "10.2.0.1/24")


def test_neighbours_go_on_the_device_of_their_subnet_and_the_router_s_own_addresses_are_left_out() -> None:
    neighbors = (("10.1.0.11", "FA:16:3E:00:00:11"), ("10.2.0.12", "fa:16:3e:00:00:12"),
                 ("2001:db8:1::11", "fa:16:3e:00:00:11"), ("10.1.0.1", "fa:16:3e:00:00:01"),
                 ("10.9.0.1", "fa:16:3e:00:00:99"))
    copy = dvr.LocalCopy(ROUTER, (A, B), neighbors=neighbors)
    assert dvr.neighbors_by_device(copy) == {
        A.device: {("10.1.0.11", "fa:16:3e:00:00:11"), ("2001:db8:1::11", "fa:16:3e:00:00:11")},
        B.device: {("10.2.0.12", "fa:16:3e:00:00:12")}}


def test_snat_redirects_one_per_ipv4_subnet_with_a_snat_port() -> None:
    redirects = dvr.snat_redirects((A, B), ["10.2.0.3/24", "10.1.0.4/24", "10.1.0.3/24", "2001:db8:1::3/64"])
    assert redirects == (dvr.SnatRedirect("10.1.0.0/24", "10.1.0.3", A.device),
                         dvr.SnatRedirect("10.2.0.0/24", "10.2.0.3", B.device))
    # Neutron's numbering: the address as an integer, far above main (32766) and the floating-IP rules
    assert redirects[0].table == 167837699 > dvr.FIP_PRIORITY
    assert dvr.snat_redirects((A, B), ["10.3.0.3/24"]) == ()


def test_floating_ip_nat_is_deterministic_and_bound_to_rfp() -> None:
    fips = (FloatingIp("198.18.100.51", "10.1.0.12"), FloatingIp("198.18.100.50", "10.1.0.11"),
            FloatingIp("198.18.100.52", "10.1.0.11"))
    text = dvr.render_fip_nat(dvr.LocalCopy(ROUTER, (A,), floating_ips=fips))
    assert text == dvr.render_fip_nat(dvr.LocalCopy(ROUTER, (A,), floating_ips=tuple(reversed(fips))))
    rfp = naming.rfp(ROUTER)
    assert f'iifname "{rfp}" dnat to ip daddr map @fip_dnat' in text
    assert f'oifname "{rfp}" snat to ip saddr map @fip_snat' in text
    assert "198.18.100.50 : 10.1.0.11, 198.18.100.51 : 10.1.0.12, 198.18.100.52 : 10.1.0.11" in text
    assert "10.1.0.11 : 198.18.100.50, 10.1.0.12 : 198.18.100.51" in text  # the lowest is the source
    empty = dvr.render_fip_nat(dvr.LocalCopy(ROUTER, (A,)))
    assert "elements" not in empty and dvr.digest(empty) not in (None, dvr.digest(text))


def test_bridge_filter_rewrites_and_drops_for_the_local_taps_only() -> None:
    text = dvr.render_bridge(["tapb", "tapa", "tapa"], "FA:16:3F:00:00:01")
    assert 'elements = { "tapa", "tapb" }' in text
    assert 'iifname @local_taps oifname != "tap*" ether saddr set fa:16:3f:00:00:01' in text
    assert 'iifname @local_taps oifname != "tap*" ether type arp drop' in text
    assert "nd-neighbor-solicit" in text and "nd-router-advert" in text
    assert 'iifname != "tap*" oifname @local_taps drop' in text
    # rules come before the rewrite: ARP/ND are dropped, not rewritten
    assert text.index("ether type arp drop") < text.index("ether saddr set")
    no_mac = dvr.render_bridge(["tapa"], "")
    assert "ether saddr set" not in no_mac and dvr.digest(no_mac) != dvr.digest(dvr.render_bridge(["tapa"], "x"))
