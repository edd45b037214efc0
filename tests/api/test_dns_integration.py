"""dns-integration, dns-domain-ports, dns-integration-domain-keywords and subnet-dns-publish-fixed-ip: the
attributes, their validation and Neutron's rule that the default dns_domain ('openstacklocal.') keeps no port
names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.neutron import assert_fault

ALIASES = ("dns-integration", "dns-domain-ports", "dns-integration-domain-keywords", "subnet-dns-publish-fixed-ip")


@pytest.fixture
def named(tmp_path: Path) -> Iterator[Api]:
    """An admin on a server whose dns_domain is example.org. (port names are kept)."""
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"network": {"dns_domain": "example.org"}}) as c:
        yield Api(c, "admin-project", "admin")


def _assignment(port: dict[str, Any]) -> list[dict[str, str]]:
    return sorted(port["dns_assignment"], key=lambda a: a["ip_address"])


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert set(ALIASES) <= aliases
    ext = api.get("/v2.0/extensions/dns-integration").json()["extension"]
    assert ext["name"] == "DNS Integration"


def test_default_domain_names_ports_by_address_and_ignores_dns_name(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.0.0.0/24")
    port = api.port(net["id"], dns_name="vm1", dns_domain="test.org.")
    ip = port["fixed_ips"][0]["ip_address"]
    host = "host-" + ip.replace(".", "-")
    # Neutron with dns_domain = openstacklocal: the names are accepted and not kept
    assert port["dns_name"] == "" and port["dns_domain"] == ""
    assert port["dns_assignment"] == [{"ip_address": ip, "hostname": host, "fqdn": f"{host}.openstacklocal."}]
    shown = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert shown["dns_assignment"] == port["dns_assignment"] and shown["dns_name"] == ""
    updated = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_name": "vm2"}}).json()["port"]
    assert updated["dns_name"] == ""


def test_port_dns_name_and_domain_with_a_configured_domain(named: Api) -> None:
    net = named.network()
    named.subnet(net["id"], "10.0.0.0/24")
    named.subnet(net["id"], "2001:db8::/64")
    port = named.port(net["id"], dns_name="VM1", dns_domain="Test.Org.")
    assert port["dns_name"] == "vm1"  # case-insensitive: stored lower-case
    assert port["dns_domain"] == "test.org."
    ips = sorted(f["ip_address"] for f in port["fixed_ips"])
    assert len(ips) == 2
    assert _assignment(port) == [{"ip_address": ip, "hostname": "vm1", "fqdn": "vm1.example.org."} for ip in ips]
    listed = named.get(f"/v2.0/ports?id={port['id']}").json()["ports"][0]
    assert listed["dns_name"] == "vm1" and listed["dns_domain"] == "test.org."
    assert _assignment(listed) == _assignment(port)
    r = named.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_name": "d2", "dns_domain": "d.org."}})
    assert r.status_code == 200, r.text
    updated = r.json()["port"]
    assert (updated["dns_name"], updated["dns_domain"]) == ("d2", "d.org.")
    assert {a["fqdn"] for a in updated["dns_assignment"]} == {"d2.example.org."}
    assert [p["id"] for p in named.get("/v2.0/ports?dns_name=d2").json()["ports"]] == [port["id"]]
    # an FQDN inside the configured domain is its own fqdn
    fq = named.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_name": "web.example.org."}}).json()["port"]
    assert {(a["hostname"], a["fqdn"]) for a in fq["dns_assignment"]} == {("web.example.org.", "web.example.org.")}
    # clearing the name goes back to host-<address>
    cleared = named.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_name": ""}}).json()["port"]
    v4 = next(ip for ip in ips if ":" not in ip)
    assert {"ip_address": v4, "hostname": "host-" + v4.replace(".", "-"),
            "fqdn": "host-" + v4.replace(".", "-") + ".example.org."} in cleared["dns_assignment"]
    assert named.get("/v2.0/ports?dns_name=d2").json()["ports"] == []


def test_port_without_addresses_has_no_assignment(named: Api) -> None:
    net = named.network()
    port = named.port(net["id"], dns_name="lonely")
    assert port["dns_assignment"] == [] and port["dns_name"] == "lonely"


def test_dns_assignment_follows_fixed_ip_changes(named: Api) -> None:
    net = named.network()
    sub = named.subnet(net["id"], "10.0.0.0/24")
    port = named.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.10"}])
    assert port["dns_assignment"][0]["hostname"] == "host-10-0-0-10"
    r = named.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.0.0.11"}]}})
    assert [a["fqdn"] for a in r.json()["port"]["dns_assignment"]] == ["host-10-0-0-11.example.org."]


@pytest.mark.parametrize("name,reason", [
    ("-bad", "must not start or end with a hyphen"),
    ("bad_name", "must be 1-63 characters long"),
    ("a" * 64, "must be 1-63 characters long"),
    ("a..b", "Encountered an empty component"),
    ("host.123", "TLD '123' must not be all numeric"),
    ("vm1.other.org.", "Its higher level labels must be equal to the dns_domain option"),
    ("example.org.", "Its higher level labels must be equal to the dns_domain option"),
    (".".join(["a" * 60] * 4), "When the two are concatenated to form a FQDN"),
])
def test_bad_dns_names_are_refused(named: Api, name: str, reason: str) -> None:
    net = named.network()
    err = assert_fault(named.post("/v2.0/ports", json={"port": {"network_id": net["id"], "dns_name": name}}), 400)
    assert err["message"].startswith("Invalid input for dns_name. Reason: ")
    assert reason in err["message"]
    assert named.get("/v2.0/ports").json()["ports"] == []


def test_a_dns_name_must_be_a_string(named: Api) -> None:
    net = named.network()
    assert_fault(named.post("/v2.0/ports", json={"port": {"network_id": net["id"], "dns_name": 5}}), 400)


@pytest.mark.parametrize("domain,reason", [
    ("example.org", "is not a FQDN"),
    ("exa_mple.org.", "must be 1-63 characters long"),
    ("a." * 127 + "org.", "exceeds the 255 character FQDN limit"),
    (("a" * 63 + ".") * 3 + "a" * 61 + ".", "Adding a sub-domain will cause it to exceed"),
    (7, "must be string type"),
])
def test_bad_dns_domains_are_refused(api: Api, domain: Any, reason: str) -> None:
    err = assert_fault(api.post("/v2.0/networks", json={"network": {"dns_domain": domain}}), 400)
    assert err["message"].startswith("Invalid input for dns_domain. Reason: ")
    assert reason in err["message"]
    net = api.network()
    err = assert_fault(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"dns_domain": domain}}), 400)
    assert reason in err["message"]
    port = api.port(net["id"])
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_domain": domain}}), 400)


def test_network_dns_domain(api: Api) -> None:
    net = api.network(dns_domain="Corp.Example.")
    assert net["dns_domain"] == "corp.example."
    assert api.network()["dns_domain"] == ""
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"dns_domain": "other.example."}})
    assert r.json()["network"]["dns_domain"] == "other.example."
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["dns_domain"] == "other.example."
    cleared = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"dns_domain": ""}}).json()["network"]
    assert cleared["dns_domain"] == ""


def test_domain_keywords_are_accepted(named: Api) -> None:
    net = named.network(dns_domain="<project_id>.<user_name>.example.")
    assert net["dns_domain"] == "<project_id>.<user_name>.example."
    port = named.port(net["id"], dns_domain="<project_name>.example.")
    assert port["dns_domain"] == "<project_name>.example."
    err = assert_fault(named.post("/v2.0/networks", json={"network": {"dns_domain": "<tenant>.example."}}), 400)
    assert "must be 1-63 characters long" in err["message"]


def test_subnet_dns_publish_fixed_ip(api: Api) -> None:
    net = api.network()
    plain = api.subnet(net["id"], "10.0.0.0/24")
    assert plain["dns_publish_fixed_ip"] is False
    sub = api.subnet(net["id"], "10.0.1.0/24", dns_publish_fixed_ip=True)
    assert sub["dns_publish_fixed_ip"] is True
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"dns_publish_fixed_ip": False}})
    assert r.json()["subnet"]["dns_publish_fixed_ip"] is False
    assert api.get(f"/v2.0/subnets/{sub['id']}").json()["subnet"]["dns_publish_fixed_ip"] is False
    err = assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"dns_publish_fixed_ip": "maybe"}}),
                       400)
    assert "dns_publish_fixed_ip" in err["message"]


def test_floating_ip_dns_attributes_are_validated_and_read_back_empty(api: Api) -> None:
    ext = api.network(**{"router:external": True})
    api.subnet(ext["id"], "198.18.10.0/24")
    err = assert_fault(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "dns_name": "fip.example.org."}}), 400)
    assert "It should be a relative domain name" in err["message"]
    assert_fault(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "dns_domain": "example.org"}}), 400)
    fip = api.create("floatingips", floating_network_id=ext["id"], dns_name="fip1", dns_domain="example.org.")
    # Neutron keeps them only for an external DNS service
    assert (fip["dns_name"], fip["dns_domain"]) == ("", "")
    shown = api.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert (shown["dns_name"], shown["dns_domain"]) == ("", "")
    assert_fault(api.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"dns_name": "x"}}), 400)


def test_a_member_sets_dns_attributes_on_its_own_resources(named: Api) -> None:
    member = named.as_("p1", "member")
    net = member.network(dns_domain="p1.example.")
    port = member.port(net["id"], dns_name="app", dns_domain="p1.example.")
    assert (port["dns_name"], port["dns_domain"]) == ("app", "p1.example.")
