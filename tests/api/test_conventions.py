"""API conventions: discovery documents, request ids, filters, fields, sorting, pagination, tags, If-Match."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

# ------------------------------------------------------------------------------------------- discovery


def test_versions_document_needs_no_auth(client: Any) -> None:
    for path in ("/", ""):
        r = client.request("GET", path)  # no identity headers at all
        assert r.status_code == 200, r.text
        versions = r.json()["versions"]
        v2 = next(v for v in versions if v["id"] == "v2.0")
        assert v2["status"] == "CURRENT"
        assert any(link["rel"] == "self" and link["href"].endswith("/v2.0/") for link in v2["links"])
        assert r.headers["x-openstack-request-id"].startswith("req-")


def test_v2_resources_document(api: Api) -> None:
    for path in ("/v2.0/", "/v2.0", "/v2.0.json"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
        by_collection = {res["collection"]: res for res in r.json()["resources"]}
        assert {"networks", "subnets", "ports"} <= set(by_collection)
        assert by_collection["networks"]["name"] == "network"
        assert by_collection["ports"]["links"][0]["href"].endswith("/v2.0/ports")


def test_extensions_list_and_show(api: Api) -> None:
    r = api.get("/v2.0/extensions")
    assert r.status_code == 200
    exts = r.json()["extensions"]
    aliases = {e["alias"] for e in exts}
    for alias in ("quotas", "standard-attr-tag", "standard-attr-revisions", "revision-if-match", "pagination",
                  "sorting", "external-net", "port-security", "allowed-address-pairs", "binding", "net-mtu",
                  "filter-validation", "project-id"):
        assert alias in aliases, alias
    for e in exts:
        assert {"name", "alias", "description", "updated", "links"} <= set(e)
    assert api.get("/v2.0/extensions.json").json() == r.json()
    r = api.get("/v2.0/extensions/quotas")
    assert r.status_code == 200
    assert r.json()["extension"]["alias"] == "quotas"
    assert api.get("/v2.0/extensions/quotas.json").json() == r.json()


def test_unimplemented_extensions_are_not_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert "bgpvpn" not in aliases and "qos-pps" not in aliases
    assert_fault(api.get("/v2.0/extensions/bgpvpn"), 404)
    assert_fault(api.get("/v2.0/extensions/no-such-thing"), 404)


def test_json_suffix_on_collections_and_members(api: Api) -> None:
    net = api.network(name="n")
    assert ids(api.get("/v2.0/networks.json"), "networks") == [net["id"]]
    assert api.get(f"/v2.0/networks/{net['id']}.json").json()["network"] == net
    r = api.post("/v2.0/networks.json", json={"network": {"name": "m"}})
    assert r.status_code == 201
    r = api.put(f"/v2.0/networks/{net['id']}.json", json={"network": {"name": "renamed"}})
    assert r.status_code == 200 and r.json()["network"]["name"] == "renamed"
    assert api.delete(f"/v2.0/networks/{net['id']}.json").status_code == 204


def test_request_id_and_content_type_on_every_response(api: Api, client: Any) -> None:
    net = api.network()
    responses = [
        client.request("GET", "/"),
        api.get("/v2.0/networks"),
        api.get(f"/v2.0/networks/{net['id']}"),
        api.get(f"/v2.0/networks/{uuid.uuid4()}"),  # 404
        api.post("/v2.0/networks", content=b"{not json", headers={"content-type": "application/json"}),  # 400
        api.get("/v2.0/nothing-here"),  # 404
        api.as_("p", "reader").post("/v2.0/networks", json={"network": {}}),  # 403
        api.delete(f"/v2.0/networks/{net['id']}"),  # 204
    ]
    seen = set()
    for r in responses:
        rid = r.headers.get("x-openstack-request-id", "")
        assert rid.startswith("req-"), (r.status_code, r.headers)
        uuid.UUID(rid[4:])
        seen.add(rid)
        # lists arrive pre-encoded, the rest as objects: both say JSON; a 204 has no body and no type
        expected = None if r.status_code == 204 else "application/json"
        assert r.headers.get("content-type") == expected, (r.status_code, r.headers)
    assert len(seen) == len(responses)  # one per request


def test_unknown_paths_are_404_neutron_errors(api: Api) -> None:
    assert_fault(api.get("/v2.0/bgpvpn/bgpvpns"), 404)
    assert_fault(api.get("/v3/networks"), 404)
    net = api.network()
    assert_fault(api.get(f"/v2.0/networks/{net['id']}/bogus"), 404)


# ---------------------------------------------------------------------------------------------- filters


def test_filter_by_attribute(api: Api) -> None:
    a = api.network(name="a", admin_state_up=False)
    b = api.network(name="b")
    api.network(name="c", shared=True)
    assert ids(api.get("/v2.0/networks?name=a"), "networks") == [a["id"]]
    assert ids(api.get("/v2.0/networks?admin_state_up=false"), "networks") == [a["id"]]
    assert ids(api.get("/v2.0/networks?admin_state_up=False"), "networks") == [a["id"]]
    assert set(ids(api.get("/v2.0/networks?shared=false"), "networks")) == {a["id"], b["id"]}
    assert ids(api.get(f"/v2.0/networks?id={b['id']}"), "networks") == [b["id"]]
    assert ids(api.get("/v2.0/networks?name=zzz"), "networks") == []


def test_repeated_filter_key_means_or(api: Api) -> None:
    a, b = api.network(name="a"), api.network(name="b")
    api.network(name="c")
    assert set(ids(api.get("/v2.0/networks?name=a&name=b"), "networks")) == {a["id"], b["id"]}


def test_filters_combine_with_and(api: Api) -> None:
    a = api.network(name="x", admin_state_up=False)
    api.network(name="x")
    api.network(name="y", admin_state_up=False)
    assert ids(api.get("/v2.0/networks?name=x&admin_state_up=false"), "networks") == [a["id"]]


def test_empty_string_filter(api: Api) -> None:
    blank = api.network()
    api.network(name="named")
    assert ids(api.get("/v2.0/networks?name="), "networks") == [blank["id"]]


def test_filter_by_project_and_tenant_id(api: Api) -> None:
    mine = api.network()
    theirs = api.network(project_id="other")
    assert ids(api.get("/v2.0/networks?project_id=other"), "networks") == [theirs["id"]]
    assert ids(api.get("/v2.0/networks?tenant_id=admin-project"), "networks") == [mine["id"]]


def test_subnet_and_port_filters(api: Api) -> None:
    net = api.network()
    s4 = api.subnet(net["id"], "10.0.0.0/24")
    s6 = api.subnet(net["id"], "2001:db8::/64")
    assert ids(api.get("/v2.0/subnets?ip_version=6"), "subnets") == [s6["id"]]
    assert ids(api.get("/v2.0/subnets?cidr=10.0.0.0/24"), "subnets") == [s4["id"]]
    assert set(ids(api.get(f"/v2.0/subnets?network_id={net['id']}"), "subnets")) == {s4["id"], s6["id"]}
    p1 = api.port(net["id"], device_id="vm1", device_owner="compute:nova")
    api.port(net["id"], device_id="vm2")
    assert ids(api.get("/v2.0/ports?device_id=vm1"), "ports") == [p1["id"]]
    assert ids(api.get("/v2.0/ports?device_owner=compute:nova"), "ports") == [p1["id"]]
    assert ids(api.get(f"/v2.0/ports?mac_address={p1['mac_address']}"), "ports") == [p1["id"]]


@pytest.mark.parametrize("query", ["bogus=1", "tags_any=a", "subnets=x", "router:external=maybe",
                                   "admin_state_up=perhaps", "id=not-a-uuid", "mtu=huge"])
def test_invalid_filters_are_400(api: Api, query: str) -> None:
    api.network()
    assert_fault(api.get(f"/v2.0/networks?{query}"), 400)


def test_unknown_filter_on_ports_and_subnets(api: Api) -> None:
    assert_fault(api.get("/v2.0/ports?colour=red"), 400)
    assert_fault(api.get("/v2.0/subnets?colour=red"), 400)


# ----------------------------------------------------------------------------------------------- fields


def test_fields_selects_attributes(api: Api) -> None:
    net = api.network(name="n")
    r = api.get("/v2.0/networks?fields=id&fields=name")
    assert r.json()["networks"] == [{"id": net["id"], "name": "n"}]
    r = api.get(f"/v2.0/networks/{net['id']}?fields=mtu")
    assert r.json()["network"] == {"mtu": 1450}  # a VXLAN tenant network: 1500 less 50 bytes of encapsulation
    r = api.get(f"/v2.0/networks/{net['id']}?fields=router:external&fields=tenant_id")
    assert r.json()["network"] == {"router:external": False, "tenant_id": "admin-project"}


def test_fields_with_unknown_attribute_is_ignored_or_rejected(api: Api) -> None:
    net = api.network()
    r = api.get(f"/v2.0/networks/{net['id']}?fields=id&fields=bogus")
    assert r.status_code in (200, 400)
    if r.status_code == 200:
        assert r.json()["network"] == {"id": net["id"]}


# ---------------------------------------------------------------------------------------------- sorting


def test_sort_by_name(api: Api) -> None:
    for name in ("b", "c", "a"):
        api.network(name=name)
    r = api.get("/v2.0/networks?sort_key=name&sort_dir=asc")
    assert [n["name"] for n in r.json()["networks"]] == ["a", "b", "c"]
    r = api.get("/v2.0/networks?sort_key=name&sort_dir=desc")
    assert [n["name"] for n in r.json()["networks"]] == ["c", "b", "a"]
    r = api.get("/v2.0/networks?sort_key=name")
    assert [n["name"] for n in r.json()["networks"]] == ["a", "b", "c"]


def test_sort_by_several_keys(api: Api) -> None:
    api.network(name="x", mtu=1400)
    api.network(name="y", mtu=1400)
    api.network(name="x", mtu=1300)
    r = api.get("/v2.0/networks?sort_key=name&sort_dir=asc&sort_key=mtu&sort_dir=desc")
    assert [(n["name"], n["mtu"]) for n in r.json()["networks"]] == [("x", 1400), ("x", 1300), ("y", 1400)]


@pytest.mark.parametrize("query", ["sort_key=bogus", "sort_key=tags", "sort_key=subnets",
                                   "sort_key=name&sort_dir=sideways",
                                   "sort_key=name&sort_dir=asc&sort_dir=desc"])
def test_invalid_sort_is_400(api: Api, query: str) -> None:
    api.network()
    assert_fault(api.get(f"/v2.0/networks?{query}"), 400)


# ------------------------------------------------------------------------------------------- pagination


def _path(href: str) -> str:
    parts = urlsplit(href)
    return f"{parts.path}?{parts.query}"


def _walk(api: Api, first: str, rel: str) -> list[list[str]]:
    pages: list[list[str]] = []
    url: str | None = first
    while url is not None:
        r = api.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([n["id"] for n in body["networks"]])
        links = {link["rel"]: link["href"] for link in body.get("networks_links", [])}
        url = _path(links[rel]) if rel in links else None
        assert len(pages) < 20, "pagination does not terminate"
    return pages


def test_pagination_walks_every_item_once_in_order(api: Api) -> None:
    created = [api.network(name=f"n{i}")["id"] for i in range(7)]
    expected = sorted(created)
    pages = _walk(api, "/v2.0/networks?limit=3", "next")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == expected


def test_pagination_with_sort_key(api: Api) -> None:
    names = ["e", "a", "d", "b", "c", "a"]
    for name in names:
        api.network(name=name)
    everything = api.get("/v2.0/networks?sort_key=name&sort_dir=desc").json()["networks"]
    pages = _walk(api, "/v2.0/networks?limit=2&sort_key=name&sort_dir=desc", "next")
    assert [i for p in pages for i in p] == [n["id"] for n in everything]
    assert [n["name"] for n in everything] == ["e", "d", "c", "b", "a", "a"]


def test_pagination_exact_multiple_ends_with_an_empty_page(api: Api) -> None:
    # as Neutron: a full page always links to the next one; the client learns the end from an empty page
    created = sorted(api.network()["id"] for _ in range(4))
    pages = _walk(api, "/v2.0/networks?limit=2", "next")
    assert pages == [created[:2], created[2:], []]


def test_pagination_links(api: Api) -> None:
    created = sorted(api.network()["id"] for _ in range(5))
    r = api.get("/v2.0/networks?limit=2")
    body = r.json()
    assert ids(r, "networks") == created[:2]
    rels = {link["rel"] for link in body["networks_links"]}
    assert rels == {"next", "previous"}  # as Neutron: a full page links both ways, even the first
    nxt = next(link["href"] for link in body["networks_links"] if link["rel"] == "next")
    assert nxt.startswith("http://")
    assert f"marker={created[1]}" in nxt and "limit=2" in nxt
    r = api.get(_path(nxt))
    assert ids(r, "networks") == created[2:4]
    assert {link["rel"] for link in r.json()["networks_links"]} == {"next", "previous"}
    r = api.get(f"/v2.0/networks?limit=2&marker={created[3]}")
    assert ids(r, "networks") == created[4:]
    assert {link["rel"] for link in r.json()["networks_links"]} == {"previous"}


def test_page_reverse_walks_backwards(api: Api) -> None:
    created = sorted(api.network()["id"] for _ in range(5))
    r = api.get(f"/v2.0/networks?limit=2&marker={created[4]}&page_reverse=True")
    assert ids(r, "networks") == created[2:4]  # the page before the marker, still in ascending order
    prev = {link["rel"]: link["href"] for link in r.json()["networks_links"]}["previous"]
    pages = _walk(api, _path(prev), "previous")
    assert pages == [created[0:2], []]  # a full page links on; the empty one ends the walk
    # walking back from the end covers everything once
    back = _walk(api, f"/v2.0/networks?limit=2&marker={created[4]}&page_reverse=True", "previous")
    assert [i for p in reversed(back) for i in p] == created[:4]


def test_limit_without_more_items_has_no_next(api: Api) -> None:
    api.network()
    r = api.get("/v2.0/networks?limit=5")
    assert len(r.json()["networks"]) == 1
    assert [link for link in r.json().get("networks_links", []) if link["rel"] == "next"] == []


def test_pagination_combines_with_filters(api: Api) -> None:
    wanted = sorted(api.network(name="x")["id"] for _ in range(5))
    for _ in range(3):
        api.network(name="y")
    pages = _walk(api, "/v2.0/networks?name=x&limit=2", "next")
    assert [i for p in pages for i in p] == wanted


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "page_reverse=sideways"])
def test_invalid_paging_is_400(api: Api, query: str) -> None:
    assert_fault(api.get(f"/v2.0/networks?{query}"), 400)


def test_ports_and_subnets_paginate(api: Api) -> None:
    net = api.network()
    subs = sorted(api.subnet(net["id"], f"10.0.{i}.0/24")["id"] for i in range(3))
    ports = sorted(api.port(net["id"])["id"] for _ in range(3))
    r = api.get("/v2.0/subnets?limit=2")
    assert ids(r, "subnets") == subs[:2] and "subnets_links" in r.json()
    r = api.get("/v2.0/ports?limit=2")
    assert ids(r, "ports") == ports[:2] and "ports_links" in r.json()


# ------------------------------------------------------------------------------------------------- tags


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports"])
def test_tags_api(api: Api, collection: str) -> None:
    net = api.network()
    if collection == "networks":
        rid = net["id"]
    elif collection == "subnets":
        rid = api.subnet(net["id"])["id"]
    else:
        rid = api.port(net["id"])["id"]
    base = f"/v2.0/{collection}/{rid}/tags"
    r = api.put(base, json={"tags": ["red", "blue"]})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["tags"]) == ["blue", "red"]
    r = api.get(base)
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["blue", "red"]
    assert api.get(f"{base}/red").status_code == 204
    assert_fault(api.get(f"{base}/green"), 404, "TagNotFound")
    assert api.put(f"{base}/green").status_code == 201
    assert api.put(f"{base}/green").status_code == 201  # idempotent
    member = api.get(f"/v2.0/{collection}/{rid}").json()[collection[:-1]]
    assert sorted(member["tags"]) == ["blue", "green", "red"]
    assert api.delete(f"{base}/red").status_code == 204
    assert_fault(api.delete(f"{base}/red"), 404, "TagNotFound")
    assert sorted(api.get(base).json()["tags"]) == ["blue", "green"]
    assert api.delete(base).status_code == 204
    assert api.get(base).json()["tags"] == []


def test_tags_bump_revision(api: Api) -> None:
    net = api.network()
    api.put(f"/v2.0/networks/{net['id']}/tags/t1")
    after = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert after["revision_number"] > net["revision_number"]


def test_tags_on_missing_resource_is_404(api: Api) -> None:
    missing = uuid.uuid4()
    assert_fault(api.get(f"/v2.0/networks/{missing}/tags"), 404, "NetworkNotFound")
    assert_fault(api.put(f"/v2.0/networks/{missing}/tags/x"), 404, "NetworkNotFound")
    assert_fault(api.put(f"/v2.0/ports/{missing}/tags", json={"tags": []}), 404, "PortNotFound")


@pytest.mark.parametrize("body", [{"tags": "red"}, {"tags": [1]}, {"tags": ["a,b"]}, {"tags": ["x" * 61]},
                                  {"tags": ["a", "a"]}, {"tag": ["a"]}, ["a"]])
def test_invalid_tags_body(api: Api, body: Any) -> None:
    net = api.network(tags=["keep"])
    assert_fault(api.put(f"/v2.0/networks/{net['id']}/tags", json=body), 400)
    assert api.get(f"/v2.0/networks/{net['id']}/tags").json()["tags"] == ["keep"]


def test_invalid_single_tag(api: Api) -> None:
    net = api.network()
    assert_fault(api.put(f"/v2.0/networks/{net['id']}/tags/{'x' * 61}"), 400)
    assert api.get(f"/v2.0/networks/{net['id']}/tags").json()["tags"] == []


def test_tag_filters(api: Api) -> None:
    ab = api.network(tags=["a", "b"])["id"]
    a = api.network(tags=["a"])["id"]
    c = api.network(tags=["c"])["id"]
    none = api.network()["id"]

    def q(query: str) -> set[str]:
        return set(ids(api.get(f"/v2.0/networks?{query}"), "networks"))

    assert q("tags=a") == {ab, a}
    assert q("tags=a,b") == {ab}
    assert q("tags=a&tags=b") == {ab}
    assert q("tags-any=b,c") == {ab, c}
    assert q("not-tags=a,b") == {a, c, none}
    assert q("not-tags=a") == {c, none}
    assert q("not-tags-any=a,c") == {none}
    assert q("tags=a&not-tags=b") == {a}
    assert q("tags-any=a,c&not-tags-any=b") == {a, c}


def test_tags_on_create(api: Api) -> None:
    net = api.network(tags=["x", "y"])
    sub = api.subnet(net["id"], tags=["s"])
    port = api.port(net["id"], tags=["p"])
    assert sorted(net["tags"]) == ["x", "y"] and sub["tags"] == ["s"] and port["tags"] == ["p"]
    assert ids(api.get("/v2.0/ports?tags=p"), "ports") == [port["id"]]
    assert ids(api.get("/v2.0/subnets?tags=s"), "subnets") == [sub["id"]]


def test_tags_are_not_updatable_through_the_resource(api: Api) -> None:
    net = api.network()
    assert_fault(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"tags": ["a"]}}), 400)


# --------------------------------------------------------------------------------------------- If-Match


def _one_of(api: Api, collection: str) -> dict[str, Any]:
    """A fresh network, subnet or port."""
    net = api.network()
    if collection == "networks":
        return net
    if collection == "subnets":
        return api.subnet(net["id"])
    return api.port(net["id"])


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports"])
def test_if_match_on_update(api: Api, collection: str) -> None:
    item = _one_of(api, collection)
    member = collection[:-1]
    url = f"/v2.0/{collection}/{item['id']}"
    rev = item["revision_number"]
    r = api.put(url, json={member: {"name": "stale"}}, headers={"If-Match": f"revision_number={rev + 5}"})
    assert_fault(r, 412, "RevisionNumberConstraintFailed")
    assert api.get(url).json()[member]["name"] == ""
    r = api.put(url, json={member: {"name": "fresh"}}, headers={"If-Match": f"revision_number={rev}"})
    assert r.status_code == 200, r.text
    assert r.json()[member]["name"] == "fresh"
    assert r.json()[member]["revision_number"] == rev + 1
    # the old revision no longer matches
    r = api.put(url, json={member: {"name": "again"}}, headers={"If-Match": f"revision_number={rev}"})
    assert_fault(r, 412, "RevisionNumberConstraintFailed")


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports"])
def test_if_match_on_delete(api: Api, collection: str) -> None:
    item = _one_of(api, collection)
    url = f"/v2.0/{collection}/{item['id']}"
    rev = item["revision_number"]
    assert_fault(api.delete(url, headers={"If-Match": f"revision_number={rev + 1}"}), 412,
                 "RevisionNumberConstraintFailed")
    assert api.get(url).status_code == 200
    assert api.delete(url, headers={"If-Match": f"revision_number={rev}"}).status_code == 204
    assert api.get(url).status_code == 404


def test_malformed_if_match_is_400(api: Api) -> None:
    net = api.network()
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "x"}}, headers={"If-Match": "rev=1"})
    assert_fault(r, 400)
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["name"] == ""


# ----------------------------------------------------------------------------------------- error bodies


def test_error_bodies_use_neutron_type_names(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"])
    api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.5"}])
    checks = [
        (api.get(f"/v2.0/networks/{uuid.uuid4()}"), 404, "NetworkNotFound"),
        (api.get(f"/v2.0/subnets/{uuid.uuid4()}"), 404, "SubnetNotFound"),
        (api.get(f"/v2.0/ports/{uuid.uuid4()}"), 404, "PortNotFound"),
        (api.delete(f"/v2.0/networks/{net['id']}"), 409, "NetworkInUse"),
        (api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
            {"ip_address": "10.0.0.5"}]}}), 409, "IpAddressAlreadyAllocated"),
        (api.as_("p", "member").post("/v2.0/networks", json={"network": {"shared": True}}), 403,
         "PolicyNotAuthorized"),
        (api.post("/v2.0/networks", json={"network": {"bogus": 1}}), 400, None),
    ]
    for r, status, type_ in checks:
        assert_fault(r, status, type_)


def test_page_reverse_without_marker_gives_the_last_page(api: Api) -> None:
    created = sorted(api.network()["id"] for _ in range(5))
    r = api.get("/v2.0/networks?limit=2&page_reverse=True")
    assert ids(r, "networks") == created[3:]
    rels = {link["rel"] for link in r.json()["networks_links"]}
    assert rels == {"next", "previous"}  # a full page, as Neutron links it


def test_limit_zero_means_no_limit(api: Api) -> None:
    created = sorted(api.network()["id"] for _ in range(3))
    assert ids(api.get("/v2.0/networks?limit=0"), "networks") == created


def test_sort_dir_without_sort_key_is_400(api: Api) -> None:
    assert_fault(api.get("/v2.0/networks?sort_dir=asc"), 400)


def test_sorting_subnets_and_ports(api: Api) -> None:
    net = api.network()
    for cidr in ("10.0.2.0/24", "10.0.0.0/24", "10.0.1.0/24"):
        api.subnet(net["id"], cidr)
    r = api.get("/v2.0/subnets?sort_key=cidr&sort_dir=desc")
    assert [s["cidr"] for s in r.json()["subnets"]] == ["10.0.2.0/24", "10.0.1.0/24", "10.0.0.0/24"]
    for mac in ("fa:16:3e:00:00:02", "fa:16:3e:00:00:03", "fa:16:3e:00:00:01"):
        api.port(net["id"], mac_address=mac)
    r = api.get("/v2.0/ports?sort_key=mac_address")
    assert [p["mac_address"] for p in r.json()["ports"]] == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02",
                                                            "fa:16:3e:00:00:03"]


def test_filter_by_router_external_and_shared(api: Api) -> None:
    ext = api.network(**{"router:external": True})
    shared = api.network(shared=True)
    plain = api.network()
    assert ids(api.get("/v2.0/networks?router:external=True"), "networks") == [ext["id"]]
    assert set(ids(api.get("/v2.0/networks?router:external=false"), "networks")) == {shared["id"], plain["id"]}
    member = api.as_("someone")
    assert ids(member.get("/v2.0/networks?shared=true"), "networks") == [shared["id"]]
    assert ids(member.get("/v2.0/networks?router:external=true"), "networks") == [ext["id"]]
    assert member.get("/v2.0/networks?project_id=admin-project&shared=false&router:external=false").json() == {
        "networks": []}
