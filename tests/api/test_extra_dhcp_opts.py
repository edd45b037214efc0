"""extra_dhcp_opt: ports' extra DHCP options, created, listed, updated and removed (null value) as Neutron's,
and what the DHCP agent's view carries for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_agents import DHCP, dhcp_view, report
from tests.conftest import Api, make_client
from tests.support.neutron import assert_fault

TFTP = [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
        {"opt_name": "tftp-server", "opt_value": "123.123.123.123"},
        {"opt_name": "server-ip-address", "opt_value": "123.123.123.45"}]


@pytest.fixture
def net(api: Api) -> dict[str, Any]:
    net = api.network()
    api.subnet(net["id"], "10.0.0.0/24")
    return net


def _opts(port: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(o["opt_name"], o["opt_value"], o["ip_version"]) for o in port["extra_dhcp_opts"]}


def test_extension_is_advertised(api: Api) -> None:
    ext = api.get("/v2.0/extensions/extra_dhcp_opt").json()["extension"]
    assert ext["name"] == "Neutron Extra DHCP options"


def test_create_list_show_with_options(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"], extra_dhcp_opts=TFTP)
    want = {(o["opt_name"], o["opt_value"], 4) for o in TFTP}
    assert _opts(port) == want
    listed = [p for p in api.get("/v2.0/ports").json()["ports"] if p["id"] == port["id"]][0]
    assert _opts(listed) == want
    assert _opts(api.get(f"/v2.0/ports/{port['id']}").json()["port"]) == want
    assert api.port(net["id"])["extra_dhcp_opts"] == []


def test_update_adds_changes_and_removes_by_null_value(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"])
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "renamed", "extra_dhcp_opts": TFTP}})
    assert r.status_code == 200, r.text
    assert len(r.json()["port"]["extra_dhcp_opts"]) == 3
    change = [{"opt_name": "bootfile-name", "opt_value": "changed.0"},
              {"opt_name": "tftp-server", "opt_value": None},
              {"opt_name": "ntp-server", "opt_value": "10.0.0.99", "ip_version": "6"}]
    updated = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"extra_dhcp_opts": change}}).json()["port"]
    assert _opts(updated) == {("bootfile-name", "changed.0", 4), ("server-ip-address", "123.123.123.45", 4),
                              ("ntp-server", "10.0.0.99", 6)}
    # an option is named with its IP version: the v4 one is another option
    again = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"extra_dhcp_opts": [
        {"opt_name": "ntp-server", "opt_value": None, "ip_version": 4}]}}).json()["port"]
    assert ("ntp-server", "10.0.0.99", 6) in _opts(again)
    # null for the whole list changes nothing; an empty list neither
    for body in (None, []):
        same = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"extra_dhcp_opts": body}}).json()["port"]
        assert _opts(same) == _opts(again)


def test_null_and_empty_values_on_create(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"], extra_dhcp_opts=[{"opt_name": "bootfile-name", "opt_value": None},
                                                {"opt_name": "router", "opt_value": ""},
                                                {"opt_name": "classless-static-route", "opt_value": None}])
    # a null value stores nothing; router and classless-static-route may be blank (withheld from the client)
    assert port["extra_dhcp_opts"] == [{"opt_name": "router", "opt_value": "", "ip_version": 4}]


@pytest.mark.parametrize("opts", [
    "bootfile-name",
    [{"opt_name": "bootfile-name"}],
    [{"opt_value": "x"}],
    [{"opt_name": "", "opt_value": "x"}],
    [{"opt_name": "bootfile-name", "opt_value": ""}],
    [{"opt_name": "bootfile-name", "opt_value": "two\nlines"}],
    [{"opt_name": "n" * 65, "opt_value": "x"}],
    [{"opt_name": "bootfile-name", "opt_value": "v" * 256}],
    [{"opt_name": "bootfile-name", "opt_value": "x", "ip_version": 5}],
    [{"opt_name": "bootfile-name", "opt_value": "x", "ip_version": "four"}],
    [{"opt_name": "bootfile-name", "opt_value": 7}],
    ["bootfile-name"],
])
def test_bad_options_are_refused(api: Api, net: dict[str, Any], opts: Any) -> None:
    r = api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "extra_dhcp_opts": opts}})
    err = assert_fault(r, 400)
    assert err["message"].startswith("Invalid input for extra_dhcp_opts. Reason: ")
    assert [p for p in api.get("/v2.0/ports").json()["ports"] if p["device_owner"] == ""] == []
    port = api.port(net["id"], extra_dhcp_opts=TFTP[:1])
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"extra_dhcp_opts": opts}}), 400)
    assert _opts(api.get(f"/v2.0/ports/{port['id']}").json()["port"]) == {("bootfile-name", "pxelinux.0", 4)}


def test_a_member_sets_options_on_its_own_port(api: Api) -> None:
    member = api.as_("p1", "member")
    net = member.network()
    port = member.port(net["id"], extra_dhcp_opts=TFTP[:1])
    assert _opts(port) == {("bootfile-name", "pxelinux.0", 4)}


def test_the_dhcp_view_carries_options_and_names(api: Api, net: dict[str, Any]) -> None:
    """What the DHCP agent pulls: each address of a port with the port's options and dns_assignment."""
    report(api.client, "dhcp-host", DHCP)
    api.subnet(net["id"], "10.0.1.0/24")
    port = api.port(net["id"], extra_dhcp_opts=TFTP[:1],
                    fixed_ips=[{"ip_address": "10.0.0.20"}, {"ip_address": "10.0.1.20"}])
    served = dhcp_view(api.client, "dhcp-host").networks[0]
    assert served.dns_domain == "openstacklocal."
    mine = [h for h in served.hosts if h.port_id == port["id"]]
    assert [h.ip for h in mine] == [f["ip_address"] for f in port["fixed_ips"]]
    for h in mine:
        assert [(o.name, o.value, o.ip_version) for o in h.options] == [("bootfile-name", "pxelinux.0", 4)]
        names = next(a for a in port["dns_assignment"] if a["ip_address"] == h.ip)
        assert (h.hostname, h.fqdn) == (names["hostname"], names["fqdn"])


def test_options_and_names_on_every_database(any_db_url: str, tmp_path: Path) -> None:
    with make_client(any_db_url, tmp_path, {"network": {"dns_domain": "example.org."}}) as c:
        api = Api(c, "admin-project", "admin")
        net = api.network(dns_domain="net.example.")
        api.subnet(net["id"], "10.0.0.0/24")
        plain = api.port(net["id"])
        assert (plain["extra_dhcp_opts"], plain["dns_name"], plain["dns_domain"]) == ([], "", "")
        port = api.port(net["id"], dns_name="vm1", extra_dhcp_opts=TFTP)
        r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"extra_dhcp_opts": [
            {"opt_name": o["opt_name"], "opt_value": None} for o in TFTP]}})
        assert r.json()["port"]["extra_dhcp_opts"] == []
        listed = {p["id"]: p for p in api.get("/v2.0/ports").json()["ports"]}
        assert listed[port["id"]]["extra_dhcp_opts"] == [] and listed[plain["id"]]["extra_dhcp_opts"] == []
        assert listed[port["id"]]["dns_assignment"][0]["fqdn"] == "vm1.example.org."
        assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["dns_domain"] == "net.example."
